"""Newton-X trajectories: the geometries of a run's ``RESULTS/dyn.out``.

Newton-X CS (the Fortran series, 2.x) writes, at every printed step of a
trajectory ``TRAJECTORIES/TRAJn``, into ``RESULTS/dyn.out``::

    STEP        1    Molecular dynamics on state  2    TIME =       0.50 fs
    ...
     geometry:                      (or " New geometry:", " Initial geometry:")
     C    6.0    0.00000000    0.00000000    2.93564320   12.00000000
     S   16.0    ...                 symbol, Z, x, y, z (bohr), mass (u)

    velocity: ...                   (a blank line ends the block)

The format is not documented in a manual this reader could cite: it follows
the ``writedyn`` routine of Newton-X CS (format 101 of the header, and
``(1x,a2,2x,f5.1,4f14.8)`` for an atom) and what third-party tools that read
``dyn.out`` (MLatom's Newton-X interface) take from it. Lines inside a
geometry block that are not atoms (some versions print the complex
coefficients of each state, in parentheses, after each atom) are skipped. A
step printed twice (again after a surface hop) keeps its last print. Newton-X
NS (the Python series) writes HDF5 (H5MD) instead, which this reader does not read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ._errors import InputError

__all__ = ["dyn_out_path", "parse_dyn_out"]

_STEP = re.compile(r"^\s*STEP\s+(\d+)\s+Molecular dynamics on state\s+(\d+)\s+TIME\s*=\s*(\S+)\s*fs", re.IGNORECASE)
_GEOMETRY = re.compile(r"^\s*(?:new\s+|initial\s+)?geometry\s*:", re.IGNORECASE)
_ATOM = re.compile(r"^\s*([A-Za-z]{1,3})\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def dyn_out_path(path: Path) -> Path | None:
    """The ``dyn.out`` of a Newton-X run given as the file, its ``RESULTS`` folder or the ``TRAJn`` folder; else None."""
    for candidate in (path, path / "dyn.out", path / "RESULTS" / "dyn.out"):
        if candidate.name == "dyn.out" and candidate.is_file():
            return candidate
    return None


def _number(text: str, where: str) -> float:
    try:
        value = float(text.replace("D", "E").replace("d", "e"))  # Fortran's double-precision exponent
    except ValueError:
        raise InputError(f"{where}: {text[:30]!r} is not a number") from None
    if not np.isfinite(value):
        raise InputError(f"{where}: {text[:30]!r} is not a finite number")
    return value


def parse_dyn_out(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Symbols, time (T,) fs, positions (T, N, 3) in bohr, and the state of each printed step (T,).

    Raises
    ------
    InputError
        If the file has no step with a geometry, a geometry whose atoms differ
        from the first one's, a number that is not one, or times that go back.
    """
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    symbols: list[str] | None = None
    frames: dict[float, tuple[int, np.ndarray]] = {}  # time -> (state, positions); a reprinted step replaces its first print
    order: list[float] = []
    header: tuple[float, int] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        found = _STEP.match(line)
        if found:
            header = (_number(found.group(3), f"{path}, line {i + 1}"), int(found.group(2)))
        elif _GEOMETRY.match(line) and header is not None:
            atoms, coords = [], []
            i += 1
            while i < len(lines) and lines[i].strip():
                atom = _ATOM.match(lines[i])
                if atom:
                    where = f"{path}, line {i + 1}"
                    atoms.append(atom.group(1).capitalize())
                    coords.append([_number(atom.group(k), where) for k in (3, 4, 5)])
                i += 1
            if not atoms:
                raise InputError(f"{path}, line {i}: a geometry block without atoms ('symbol Z x y z mass' lines)")
            if symbols is None:
                symbols = atoms
            elif atoms != symbols:
                raise InputError(
                    f"{path}, line {i}: the atoms {' '.join(atoms)} differ from the first step's {' '.join(symbols)}"
                )
            time, state = header
            if order and time < order[-1]:
                raise InputError(f"{path}, line {i}: time {time:g} fs comes after {order[-1]:g} fs")
            if time not in frames:
                order.append(time)
            frames[time] = (state, np.array(coords))
            header = None
            continue
        i += 1
    if symbols is None:
        raise InputError(
            f"{path}: no Newton-X step with a geometry ('STEP ... Molecular dynamics on state ... TIME = ... fs' then 'geometry:')"
        )
    return (
        symbols,
        np.array(order),
        np.stack([frames[t][1] for t in order]),
        np.array([frames[t][0] for t in order], dtype=np.int64),
    )
