"""One figure style for every molmovie figure: journal widths, readable text, PNG at 300 dpi beside PDF.

Figures are drawn at the size they are printed: one column (3.4 in, 86 mm) or
two (7.0 in, 178 mm), the widths of most physics and chemistry journals, with
no text smaller than 7 pt. :func:`journal` applies the style while a plotting
function draws (fonts are fixed when text is made); :func:`figure_files`
renders a figure as PNG (300 dpi) and PDF (vector, fonts embedded as TrueType),
:func:`save_figure` writes both beside each other atomically. Maps of ΔS(q, t)
put the delay on the horizontal axis and q (or R) on the vertical one, in
every figure.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "SINGLE_COLUMN",
    "DOUBLE_COLUMN",
    "MIN_FONT_PT",
    "DPI",
    "FORMATS",
    "STYLE",
    "journal",
    "figure_files",
    "save_figure",
    "signal_names",
]

#: Journal column widths, inches (86 mm and 178 mm).
SINGLE_COLUMN = 3.4
DOUBLE_COLUMN = 7.0
#: The smallest text drawn, points at print size.
MIN_FONT_PT = 7.0
#: Resolution of the PNG files.
DPI = 300
#: What every figure is saved as: a raster for screens and a vector file for print.
FORMATS = ("png", "pdf")

STYLE: dict[str, Any] = {
    "font.size": MIN_FONT_PT,
    "axes.titlesize": MIN_FONT_PT + 0.5,
    "axes.labelsize": MIN_FONT_PT,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "figure.titlesize": MIN_FONT_PT + 1,
    "figure.labelsize": MIN_FONT_PT,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "legend.frameon": False,
    "savefig.dpi": DPI,
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays text, editable in a journal's tools
    "svg.fonttype": "none",
}

F = TypeVar("F", bound=Callable[..., Any])


def signal_names(probe: str = "xray") -> tuple[str, str]:
    """How a figure names the momentum transfer and the signal for ``probe``: ("q", "ΔS") for X-rays, ("s", "ΔI/I")
    for electrons (the same quantities in molmovie, named as each field names them: docs/electrons.md)."""
    return ("s", "ΔI/I") if probe == "electron" else ("q", "ΔS")


def journal(func: F) -> F:
    """Draw ``func``'s figure in :data:`STYLE` (a decorator for plotting functions)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context(cast(Any, STYLE)):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def figure_files(fig: Figure, formats: tuple[str, ...] = FORMATS) -> dict[str, bytes]:
    """The figure rendered in memory, ``{format: bytes}`` (PNG at :data:`DPI`, PDF vector)."""
    import matplotlib

    out = {}
    with matplotlib.rc_context(cast(Any, STYLE)):
        for fmt in formats:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt, dpi=DPI)
            out[fmt] = buffer.getvalue()
    return out


def save_figure(fig: Figure, path: str | Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write the figure as ``path`` with each suffix of ``formats`` (``fig.png`` and ``fig.pdf``), atomically; close it.

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    path = Path(path)
    written = []
    try:
        for fmt, data in figure_files(fig, formats).items():
            target = path.with_suffix("." + fmt)
            with atomic_path(target, suffix=target.suffix) as tmp:
                tmp.write_bytes(data)
            written.append(target)
    finally:
        plt.close(fig)
    return written


def smallest_font(fig: Figure) -> float:
    """The smallest font size (pt) of the visible, non-empty text of a figure (for the tests of readable text)."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return float(min(sizes))
