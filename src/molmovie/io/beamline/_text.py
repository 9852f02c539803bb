"""Text tables: q in the first column and the delays in the header row (or the other way round)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..._errors import InputError
from ..._guards import check_allocation
from .._files import check_input_file
from ._data import BeamlineData

#: Bytes of memory a text table takes per byte of the file while it is parsed (lines, tokens, floats).
_PARSE_FACTOR = 40


def _parse_text(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a text table: a regular file (never a FIFO or a device), its size checked before it is read."""
    check_input_file(path, "text table")
    size = path.stat().st_size
    check_allocation(_PARSE_FACTOR * size, f"{path}: a text table of {size:,} bytes (parsed into numbers)", itemsize=1)
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text table (use an .h5 or .npz suffix for those formats)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the text table ({exc.strerror or exc})") from None
    rows = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if len(rows) < 2:
        raise InputError(f"{path}: a text table needs a header row and at least one row of values")
    sep = "," if "," in rows[1] else None
    split = [[tok.strip() for tok in (r.split(sep) if sep else r.split())] for r in rows]
    return split[0], split[1:]


def _floats(tokens: Iterable[str], path: Path, where: str) -> np.ndarray:
    try:
        return np.array([float(t) for t in tokens])
    except ValueError as exc:
        raise InputError(f"{path}: {where} must be numbers ({exc})") from None


def _read_table(path: Path, q_in: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q (Q,), delays (T,), values (T, Q)) of a text table."""
    header, body = _parse_text(path)
    width = len(body[0])
    if any(len(r) != width for r in body):
        raise InputError(f"{path}: every row of the table must have {width} cells")
    if len(header) == width:
        header = header[1:]  # a corner cell
    if len(header) != width - 1:
        raise InputError(f"{path}: the header row has {len(header)} values for {width - 1} columns of data")
    top = _floats(header, path, "the header row")
    side = _floats([r[0] for r in body], path, "the first column")
    values = _floats([t for r in body for t in r[1:]], path, "the table").reshape(len(body), width - 1)
    if q_in == "column":
        return side, top, values.T
    if q_in == "row":
        return top, side, values
    raise InputError(f"q_in must be 'column' or 'row'; got {q_in!r}")


def _read_text(
    path: Path,
    *,
    variance_path: str | None,
    std_path: str | None,
    legendre: int,
    legendre_path: str | None,
    axes: str | None,
    q_in: str,
    q_path: str | None = None,
    delays_path: str | None = None,
    data_path: str | None = None,
    single: bool = False,
) -> BeamlineData:
    given = [
        name
        for name, v in (
            ("--q-path", q_path),
            ("--delays-path", delays_path),
            ("--data-path", data_path),
            ("--legendre-path", legendre_path),
            ("--axes", axes),
        )
        if v is not None
    ]
    if given:
        raise InputError(
            f"{path}: a text table has one q axis, one delay axis and one pattern per delay; {', '.join(given)} do not apply"
        )
    if legendre != 0:
        raise InputError(
            f"{path}: a text table holds one pattern per delay, no Legendre stack; Legendre order {legendre} is not in the file"
        )
    q, delays, data = _read_table(path, q_in)
    var = None
    other = variance_path or std_path
    if other is not None:
        vq, vd, var = _read_table(Path(other), q_in)
        if vq.shape != q.shape or vd.shape != delays.shape or not (np.array_equal(vq, q) and np.array_equal(vd, delays)):
            raise InputError(f"{other}: the uncertainty table must have the q values and delays of {path}")
        if std_path is not None:
            if np.any(var < 0):
                raise InputError(f"{other}: negative standard deviation {var.min():g}")
            var = var**2
    layout = (
        "q in the first column, delays in the header row"
        if q_in == "column"
        else "q in the header row, delays in the first column"
    )
    paths = {"layout": layout, ("std" if std_path else "variance"): None if other is None else str(Path(other).resolve())}
    return BeamlineData(q=q, delays=delays, data=data, variance=var, units={"q": None, "delays": None, "data": None}, paths=paths)
