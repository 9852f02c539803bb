"""File formats of molmovie, one module per format."""
