"""The version of molmovie, in a module of its own so that any module may import it
without running back up into the package's ``__init__``."""

__version__ = "0.1.0"
