"""Trajectory ensembles and the readers that make them.

An :class:`Ensemble` holds M trajectories of one molecule on a common time
axis. Trajectories may be of different lengths (a dissociating SHARC run stops
early): positions are padded with NaN past each trajectory's ``length``.

Readers are looked up by name in :data:`READERS` (like ``ase.io.formats``):

* ``"sharc"`` -- a SHARC run folder with ``output.xyz`` and ``output.lis``;
* ``"xyz"`` -- a multi-frame XYZ file (time from ``t=`` in the comment line,
  else from ``dt``);
* ``"ase"`` -- any trajectory format ASE reads (``.traj``, ``.extxyz``, ...);
* ``"newtonx"`` -- a Newton-X CS run (``TRAJn/RESULTS/dyn.out``; :mod:`molmovie._newtonx`).

:func:`read_ensemble` takes many paths or a folder of runs (SHARC's
``TRAJ_*`` layout, Newton-X's ``TRAJECTORIES/TRAJn``), picks the reader for each, checks that atoms agree,
resamples to a common frame interval and time window, and flags dissociation.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast, overload

import numpy as np
from numpy.typing import ArrayLike

from ._errors import InputError
from ._guards import check_allocation
from ._newtonx import dyn_out_path, parse_dyn_out
from ._typing import PathLike, Progress, Symbols
from .geometry import distances as _distances
from .molecules import BUILTIN, atomic_masses, bond_graph, builtin, formula, fragments, normalise_symbols

if TYPE_CHECKING:
    from ase import Atoms

__all__ = [
    "Ensemble",
    "Trajectory",
    "READERS",
    "read_trajectory",
    "read_sharc",
    "read_xyz",
    "read_ase",
    "read_newtonx",
    "read_ensemble",
    "trajectory_files",
    "ensemble_from_trajectories",
    "is_dissociated",
    "resample",
    "check_time_option",
    "BREAK_SCALE",
]


@dataclass
class Trajectory:
    """One trajectory as read from a file, on its own time axis.

    Attributes
    ----------
    symbols : tuple of str, length n_atoms
    time : ndarray, shape (T,), fs
    positions : ndarray, shape (T, n_atoms, 3), Angstrom
    energy : ndarray, shape (T,), eV, or None
        Total energy.
    state : ndarray of int, shape (T,), or None
        Active electronic state (SHARC's diagonal state index).
    source : str
        Where it came from (a path).
    """

    symbols: tuple[str, ...]
    time: np.ndarray
    positions: np.ndarray
    energy: np.ndarray | None = None
    state: np.ndarray | None = None
    source: str = ""


@dataclass
class Ensemble:
    """M trajectories of one molecule on a common time axis.

    Attributes
    ----------
    molecule : str
        Name of the molecule (a built-in name or the formula).
    symbols : tuple of str, length N
    time : ndarray, shape (T,), fs
    positions : ndarray, shape (M, T, N, 3), Angstrom, NaN past each length
    length : ndarray of int, shape (M,)
        Number of valid frames of each trajectory.
    dissociated : ndarray of bool, shape (M,)
    source : list of str, length M
    energy : ndarray, shape (M, T), eV, or None
        Total energy, NaN past each length.
    state : ndarray of int, shape (M, T), or None
        Active electronic state, -1 where unknown or past the length.
    provenance : dict
        JSON-serialisable record of how the ensemble was made.
    """

    molecule: str
    symbols: tuple[str, ...]
    time: np.ndarray
    positions: np.ndarray
    length: np.ndarray
    dissociated: np.ndarray
    source: list[str]
    energy: np.ndarray | None = None
    state: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.symbols = tuple(self.symbols)
        self.time = np.asarray(self.time, dtype=float)
        self.positions = np.asarray(self.positions, dtype=float)
        raw = np.asarray(self.length)
        if raw.dtype.kind not in "iuf" or (raw.dtype.kind == "f" and not np.all(np.isfinite(raw) & (raw == np.round(raw)))):
            raise ValueError(f"length must hold whole numbers of frames; got {raw.dtype} values")
        # a length beyond int64 (1e300 in a damaged file) becomes -1 here and is refused below
        self.length = raw.astype(np.int64) if raw.size == 0 or np.abs(raw).max() < 2**62 else np.full(raw.shape, -1)
        self.dissociated = np.asarray(self.dissociated, dtype=bool)
        self.source = [str(s) for s in self.source]
        if self.time.ndim != 1 or not np.all(np.isfinite(self.time)):
            raise ValueError(f"time must be one finite time per frame; got shape {self.time.shape}")
        if self.positions.ndim != 4:
            raise ValueError(f"positions must have shape (trajectories, frames, atoms, 3); got {self.positions.shape}")
        m, t, n, three = self.positions.shape
        if three != 3 or n != len(self.symbols) or t != len(self.time):
            raise ValueError(
                f"positions of shape {self.positions.shape} do not fit {len(self.symbols)} atoms and {len(self.time)} frames"
            )
        if self.length.shape != (m,) or self.dissociated.shape != (m,) or len(self.source) != m:
            raise ValueError("length, dissociated and source must have one entry per trajectory")
        if m and (self.length.min() < 0 or self.length.max() > t):
            raise ValueError(f"length must be between 0 and {t} frames")

    @property
    def n_trajectories(self) -> int:
        return self.positions.shape[0]

    @property
    def n_frames(self) -> int:
        return self.positions.shape[1]

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[2]

    @property
    def masses(self) -> np.ndarray:
        """Atomic masses in u, shape (N,)."""
        return atomic_masses(self.symbols)

    @property
    def mask(self) -> np.ndarray:
        """Valid frames, bool array of shape (M, T)."""
        return np.arange(self.n_frames)[None, :] < self.length[:, None]

    @property
    def distances(self) -> np.ndarray:
        """All atom-atom distances, shape (M, T, n_pairs), Angstrom, NaN past each length."""
        return _distances(self.positions)

    def subset(self, indices: ArrayLike) -> Ensemble:
        """The trajectories at ``indices`` (an integer array or a boolean mask), in that order.

        Per-trajectory records (``provenance["trajectories"]``, one per
        trajectory, as the generator writes them) are selected with them.
        """
        idx = np.arange(self.n_trajectories)[_index_array(indices)]
        provenance = dict(self.provenance)
        records = provenance.get("trajectories")
        if isinstance(records, list) and len(records) == self.n_trajectories:
            provenance["trajectories"] = [records[i] for i in idx]
        return replace(
            self,
            positions=self.positions[idx],
            length=self.length[idx],
            dissociated=self.dissociated[idx],
            source=[self.source[i] for i in idx],
            energy=None if self.energy is None else self.energy[idx],
            state=None if self.state is None else self.state[idx],
            provenance=provenance,
        )


def _index_array(indices: ArrayLike) -> np.ndarray:
    """Integer or boolean index array; an empty list selects nothing (not a float array)."""
    idx = np.asarray(indices)
    return idx.astype(np.intp) if idx.size == 0 else idx


# --------------------------------------------------------------------------- dissociation


#: Bond scale of the last frame in :func:`is_dissociated`: fragments count as
#: apart only when no atom of one lies within twice the sum of covalent radii of
#: an atom of the other. Bonds are made at 1.3 x (molecules.BOND_SCALE) and
#: broken at 2 x: between the two is a stretched bond of a hot molecule, not a
#: fragment (for C-H: 1.39 to 2.14 A, which a vibrating bond with ~1-3 eV in it
#: visits).
BREAK_SCALE = 2.0


def is_dissociated(symbols: Symbols, positions: np.ndarray, length: int | None = None) -> bool:
    """Whether a trajectory's molecule has come apart.

    The covalent bond graph of the first frame (atoms closer than 1.3 times
    the sum of their covalent radii) defines the molecule; the trajectory is
    dissociated when, at its last valid frame, it has split into more
    fragments than it started with. At the last frame two atoms still hold
    together within 2 times the sum of their radii (:data:`BREAK_SCALE`), so
    a bond stretched by vibration is not mistaken for a broken one, while a
    fragment that has left (SHARC stops a run once one has) is. Bonds that
    form on the way (e.g. S-S in CS2) count too: a molecule that only
    rearranges has not dissociated.

    Parameters
    ----------
    symbols : sequence of str, length N
    positions : ndarray, shape (T, N, 3), Angstrom
    length : int, optional
        Number of valid frames (default: all).
    """
    pos = np.asarray(positions, dtype=float)
    last = (pos.shape[0] if length is None else int(length)) - 1
    if last < 0:
        return False
    n_start = len(fragments(bond_graph(symbols, pos[0])))
    n_end = len(fragments(bond_graph(symbols, pos[last], scale=BREAK_SCALE)))
    return n_end > n_start


# --------------------------------------------------------------------------- readers

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?"
_TIME_RE = re.compile(rf"\bt\s*=\s*({_FLOAT})")


def _float(text: str, where: str) -> float:
    try:
        value = float(text.replace("D", "E").replace("d", "e"))
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: {text!r} is not a finite number")
    return value


def _parse_xyz(path: Path) -> tuple[tuple[str, ...], list[str], np.ndarray]:
    """Frames of a multi-frame XYZ file: symbols, comment lines, positions (T, N, 3).

    Strict: every frame must have the same atom count and elements, every
    coordinate must be a number, and the file must not end inside a frame.
    """
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text XYZ file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    symbols: tuple[str, ...] | None = None
    comments: list[str] = []
    frames: list[np.ndarray] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        head = lines[i].split()
        try:
            n = int(head[0])
        except ValueError:
            raise InputError(f"{path}, line {i + 1}: expected an atom count, got {lines[i].strip()[:40]!r}") from None
        if len(head) != 1 or n <= 0:
            raise InputError(f"{path}, line {i + 1}: expected a positive atom count, got {lines[i].strip()[:40]!r}")
        if symbols is not None and n != len(symbols):
            raise InputError(f"{path}, line {i + 1}: frame {len(frames) + 1} has {n} atoms, the first frame has {len(symbols)}")
        if i + n + 2 > len(lines):
            raise InputError(f"{path}: truncated: frame {len(frames) + 1} (line {i + 1}) promises {n} atoms but the file ends")
        comments.append(lines[i + 1])
        frame_symbols = []
        coords = np.empty((n, 3))
        for k in range(n):
            lineno = i + 2 + k
            fields = lines[lineno].split()
            where = f"{path}, line {lineno + 1}"
            if len(fields) < 4:
                raise InputError(f"{where}: expected 'symbol x y z', got {lines[lineno].strip()[:60]!r}")
            frame_symbols.append(fields[0])
            coords[k] = [_float(x, where) for x in fields[1:4]]
        try:
            frame_symbols_t = normalise_symbols(frame_symbols)
        except InputError as exc:
            raise InputError(f"{path}, frame {len(frames) + 1}: {exc}") from None
        if symbols is None:
            symbols = frame_symbols_t
        elif frame_symbols_t != symbols:
            raise InputError(
                f"{path}, frame {len(frames) + 1}: elements {''.join(frame_symbols_t)} differ from the first frame's {''.join(symbols)}"
            )
        frames.append(coords)
        i += 2 + n
    if symbols is None:
        raise InputError(f"{path}: no frames (empty XYZ file)")
    return symbols, comments, np.stack(frames)


@overload
def check_time_option(name: str, value: None, *, zero: bool = False) -> None: ...
@overload
def check_time_option(name: str, value: float | str, *, zero: bool = False) -> float: ...
def check_time_option(name: str, value: float | str | None, *, zero: bool = False) -> float | None:
    """A time option in fs: None, or a finite number > 0 (>= 0 with ``zero``).

    Raises
    ------
    InputError
        "The 'dt' parameter must be a finite number of fs > 0; got nan".
    """
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and (number >= 0 if zero else number > 0)):
        raise InputError(f"The '{name}' parameter must be a finite number of fs {'>=' if zero else '>'} 0; got {value!r}")
    return number


def _times_from_comments(comments: list[str], path: Path, dt: float | None) -> np.ndarray:
    found = [m for m in (_TIME_RE.search(c) for c in comments) if m is not None]
    if len(found) == len(comments):
        return np.array([_float(m.group(1), f"{path}, frame {k + 1} comment") for k, m in enumerate(found)])
    if dt is None:
        raise InputError(f"{path}: the comment lines carry no 't=' times; give the frame interval with --dt")
    return np.arange(len(comments)) * check_time_option("dt", dt)


def read_xyz(path: PathLike, *, dt: float | None = None) -> Trajectory:
    """Read a multi-frame XYZ file.

    Times come from ``t= <fs>`` in the comment lines when every frame has one
    (SHARC, many MD codes), otherwise from ``dt`` (fs per frame).
    """
    path = Path(path)
    symbols, comments, positions = _parse_xyz(path)
    time = _times_from_comments(comments, path, dt)
    return Trajectory(symbols, time, positions, source=str(path))


def _read_sharc_lis(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time (fs), active (diag) state and total energy (eV) from SHARC's output.lis."""
    times, states, energies = [], [], []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        where = f"{path}, line {lineno}"
        if len(fields) < 7:
            raise InputError(
                f"{where}: expected at least 7 columns (step, time, states, kinetic, potential, total energy), got {len(fields)}"
            )
        times.append(_float(fields[1], where))
        try:
            states.append(int(fields[2]))
        except ValueError:
            raise InputError(f"{where}: state {fields[2]!r} is not an integer") from None
        energies.append(_float(fields[6], where))
    if not times:
        raise InputError(f"{path}: no data rows")
    return np.array(times), np.array(states, dtype=np.int64), np.array(energies)


def read_sharc(path: PathLike) -> Trajectory:
    """Read a SHARC run folder (``output.xyz`` + ``output.lis``).

    Keeps the time, the total energy and the active (diagonal) state of every
    step. Rows of ``output.lis`` whose time has no frame in ``output.xyz`` (or
    the reverse) are an error, except that one file may have one step more
    than the other (a run stopped between writing them): then both are cut to
    the common steps. A larger difference is an error, never a silent cut.
    """
    folder = Path(path)
    xyz, lis = folder / "output.xyz", folder / "output.lis"
    for f in (xyz, lis):
        if not f.is_file():
            raise InputError(f"{folder}: not a SHARC run folder (no {f.name})")
    traj = read_xyz(xyz)
    t_lis, state, energy = _read_sharc_lis(lis)
    n = min(len(traj.time), len(t_lis))
    if abs(len(traj.time) - len(t_lis)) > 1:
        raise InputError(
            f"{folder}: output.xyz has {len(traj.time)} frames but output.lis {len(t_lis)} steps; a run stopped "
            "while writing differs by one step at most, so one file is cut short or from another run "
            f"(molmovie would keep only {n} frames)"
        )
    if not np.allclose(traj.time[:n], t_lis[:n], atol=1e-4):
        k = int(np.argmax(~np.isclose(traj.time[:n], t_lis[:n], atol=1e-4)))
        raise InputError(
            f"{folder}: output.xyz and output.lis disagree at step {k} (t = {traj.time[k]} fs against {t_lis[k]} fs)"
        )
    return Trajectory(traj.symbols, traj.time[:n], traj.positions[:n], energy[:n], state[:n], source=str(folder))


def read_ase(path: PathLike, *, dt: float | None = None) -> Trajectory:
    """Read any trajectory format ASE understands (``ase.io.read(path, ':')``).

    Times come from ``atoms.info['time']`` (fs) when every frame has it, else
    from ``dt``.
    """
    from ase.io import read

    path = Path(path)
    try:
        frames = cast("list[Atoms]", read(str(path), index=":"))  # index=":" gives a list
    except Exception as exc:  # noqa: BLE001 -- ASE raises many exception types for bad files
        raise InputError(f"{path}: ASE cannot read it ({type(exc).__name__}: {exc})") from None
    if not frames:
        raise InputError(f"{path}: no frames")
    symbols = normalise_symbols(frames[0].get_chemical_symbols())
    for k, a in enumerate(frames):
        if tuple(normalise_symbols(a.get_chemical_symbols())) != symbols:
            raise InputError(f"{path}, frame {k + 1}: atoms differ from the first frame")
    if all("time" in a.info for a in frames):
        time = np.array([float(a.info["time"]) for a in frames])
    elif dt is not None:
        time = np.arange(len(frames)) * check_time_option("dt", dt)
    else:
        raise InputError(f"{path}: frames carry no time; give the frame interval with --dt")
    energy = None
    return Trajectory(symbols, time, np.stack([a.get_positions() for a in frames]), energy, source=str(path))


def read_newtonx(path: PathLike) -> Trajectory:
    """Read a Newton-X CS run: its ``TRAJn`` folder, the ``RESULTS`` folder, or ``dyn.out`` itself.

    Keeps the time and the state of every printed step; positions are
    converted from bohr (``ase.units.Bohr``). See :mod:`molmovie._newtonx` for
    the format read and what is known of it.
    """
    from ase.units import Bohr

    path = Path(path)
    dyn = dyn_out_path(path)
    if dyn is None:
        raise InputError(f"{path}: not a Newton-X run (no dyn.out, RESULTS/dyn.out)")
    symbols, time, positions, state = parse_dyn_out(dyn)
    try:
        elements = normalise_symbols(symbols)
    except InputError as exc:
        raise InputError(f"{dyn}: {exc}") from None
    return Trajectory(elements, time, positions * Bohr, None, state, source=str(path))


#: Readers by name. Each takes a path (and ``dt`` where the format may lack times).
READERS: dict[str, Callable[..., Trajectory]] = {
    "sharc": read_sharc,
    "xyz": read_xyz,
    "ase": read_ase,
    "newtonx": read_newtonx,
}

#: Readers that take a run (a folder or a named file) and read their times from it: no ``dt``.
_RUN_READERS = ("sharc", "newtonx")


def _is_run(path: Path) -> bool:
    """A SHARC run folder (output.xyz) or a Newton-X run (dyn.out, RESULTS/dyn.out)."""
    return (path / "output.xyz").exists() or dyn_out_path(path) is not None


def _guess_format(path: Path) -> str:
    if dyn_out_path(path) is not None:
        return "newtonx"
    if path.is_dir():
        return "sharc"
    if path.suffix.lower() == ".xyz":
        return "xyz"
    return "ase"


def read_trajectory(path: PathLike, *, format: str | None = None, dt: float | None = None) -> Trajectory:
    """Read one trajectory with the reader named ``format`` (guessed from the path if None)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not (path.is_file() or path.is_dir()):  # a FIFO would block, /dev/zero never ends
        raise InputError(f"{path}: not a regular file or folder")
    name = format or _guess_format(path)
    if name not in READERS:
        raise InputError(f"unknown trajectory format {name!r}; known formats are {', '.join(READERS)}")
    reader = READERS[name]
    return reader(path) if name in _RUN_READERS else reader(path, dt=dt)


def _expand(paths: Iterable[PathLike]) -> list[Path]:
    """Paths to trajectories: a folder holding run folders (SHARC's ``TRAJ_*``, Newton-X's ``TRAJn``) expands to them."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if p.is_dir() and not _is_run(p):
            runs = sorted(d for d in p.iterdir() if d.is_dir() and _is_run(d))
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in (".xyz", ".traj", ".extxyz"))
            if not runs and not files:
                raise InputError(
                    f"{p}: empty folder: no SHARC runs (*/output.xyz), no Newton-X runs (*/RESULTS/dyn.out) and no trajectory files"
                )
            out.extend(runs or files)
        else:
            out.append(p)
    if not out:
        raise InputError("no trajectories given")
    _refuse_repeats(out)
    return out


def trajectory_files(paths: Iterable[PathLike]) -> list[Path]:
    """The files :func:`read_ensemble` reads for ``paths``: trajectory files, each SHARC run's output.xyz and output.lis, each Newton-X run's dyn.out.

    A command that writes an output checks it against these, so that no
    trajectory file is ever replaced (``import run/ -o run/output.xyz``).
    Paths that do not exist are skipped here (reading them is what reports them).
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            files.append(p)
            continue
        runs = [p] if _is_run(p) else sorted(d for d in p.iterdir() if d.is_dir())
        files.extend(f for run in runs for f in (run / "output.xyz", run / "output.lis"))
        files.extend(dyn for dyn in map(dyn_out_path, runs) if dyn is not None)
        files.extend(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in (".xyz", ".traj", ".extxyz"))
    return files


def _refuse_repeats(paths: list[Path]) -> None:
    """One file (or run folder) named twice -- directly, through a folder of runs, a link or ``..`` -- is an error.

    Read twice, one trajectory would be stored twice and could land in both
    the training and the validation split.
    """
    seen: dict[tuple[int, int], Path] = {}
    for p in paths:
        st = p.stat()
        key = (st.st_dev, st.st_ino)
        if key in seen:
            twice = f"{p} is given twice" if p == seen[key] else f"{p} and {seen[key]} are the same trajectory, given twice"
            raise InputError(f"{twice} (a path repeated, or a folder of runs and one of its runs); give each trajectory once")
        seen[key] = p


def _refuse_copies(trajectories: list[Trajectory]) -> None:
    """Two trajectories with identical frames (a copied file) are an error, like a path given twice."""
    seen: dict[bytes, str] = {}
    for tr in trajectories:
        digest = hashlib.sha256(
            " ".join(tr.symbols).encode() + np.ascontiguousarray(tr.positions).tobytes() + np.ascontiguousarray(tr.time).tobytes()
        ).digest()
        if digest in seen:
            raise InputError(
                f"{tr.source} holds the same frames as {seen[digest]} (a copy); give each trajectory once, "
                "or one copy would be trained on and the other validated"
            )
        seen[digest] = tr.source


# --------------------------------------------------------------------------- resampling


def resample(traj: Trajectory, *, dt: float | None = None, tmax: float | None = None, tol: float = 1e-6) -> Trajectory:
    """Keep frames on a grid of interval ``dt`` fs from the first frame, up to ``tmax`` fs.

    The trajectory's steps must hit the grid (``dt`` a multiple of the step):
    frames are picked, never interpolated, so that positions stay those of the
    dynamics.
    """
    dt = check_time_option("dt", dt)
    tmax = check_time_option("tmax", tmax, zero=True)
    time = traj.time
    keep = np.ones(len(time), dtype=bool)
    if tmax is not None:
        keep &= time <= time[0] + tmax + tol
    if dt is not None:
        step = np.median(np.diff(time)) if len(time) > 1 else dt
        if step > dt * (1 + 1e-9) or not _is_multiple(dt, step):
            raise InputError(
                f"{traj.source}: cannot resample steps of {step:g} fs to frames of {dt:g} fs (dt must be a multiple of the step)"
            )
        phase = (time - time[0]) / dt
        keep &= np.abs(phase - np.round(phase)) < tol / dt * 1e3
    idx = np.flatnonzero(keep)
    return replace(
        traj,
        time=time[idx],
        positions=traj.positions[idx],
        energy=None if traj.energy is None else traj.energy[idx],
        state=None if traj.state is None else traj.state[idx],
    )


def _is_multiple(dt: float, step: float) -> bool:
    r = dt / step
    return abs(r - round(r)) < 1e-6


# --------------------------------------------------------------------------- ensembles


def ensemble_from_trajectories(
    trajectories: list[Trajectory], *, molecule: str | None = None, provenance: dict | None = None
) -> Ensemble:
    """Stack trajectories of one molecule on a common time axis, padding with NaN.

    All trajectories must have the same atoms in the same order and share a
    time grid (each one's times a prefix of the longest one's, relative to its
    start).
    """
    if not trajectories:
        raise InputError("no trajectories given")
    first = trajectories[0]
    for tr in trajectories[1:]:
        if tr.symbols != first.symbols:
            raise InputError(
                f"{tr.source}: atoms {' '.join(tr.symbols)} differ from {' '.join(first.symbols)} in {first.source}; "
                "all trajectories must list the same elements in the same order"
            )
    longest = max(trajectories, key=lambda tr: len(tr.time))
    time = longest.time - longest.time[0]
    for tr in trajectories:
        rel = tr.time - tr.time[0]
        if len(rel) > 1 and not np.allclose(rel, time[: len(rel)], atol=1e-4):
            raise InputError(f"{tr.source}: its frame times do not match those of {longest.source}; resample with --dt")
    m, t, n = len(trajectories), len(time), len(first.symbols)
    # every trajectory is padded to the longest: many short files and one long one can ask for a lot
    check_allocation((m, t, n, 3), f"{m} trajectories padded to the longest one's {t} frames ({n} atoms)")
    positions = np.full((m, t, n, 3), np.nan)
    length = np.zeros(m, dtype=np.int64)
    has_energy = all(tr.energy is not None for tr in trajectories)
    has_state = all(tr.state is not None for tr in trajectories)
    energy = np.full((m, t), np.nan) if has_energy else None
    state = np.full((m, t), -1, dtype=np.int64) if has_state else None
    dissociated = np.zeros(m, dtype=bool)
    for k, tr in enumerate(trajectories):
        L = len(tr.time)
        positions[k, :L] = tr.positions
        length[k] = L
        if energy is not None:
            energy[k, :L] = tr.energy
        if state is not None and tr.state is not None:
            state[k, :L] = tr.state
        dissociated[k] = is_dissociated(first.symbols, tr.positions, L)
    return Ensemble(
        molecule=molecule or _molecule_name(first.symbols),
        symbols=first.symbols,
        time=time,
        positions=positions,
        length=length,
        dissociated=dissociated,
        source=[tr.source for tr in trajectories],
        energy=energy,
        state=state,
        provenance=dict(provenance or {}),
    )


def _molecule_name(symbols: Symbols) -> str:
    """The built-in name if the formula matches one (CS2 -> "cs2"), else the formula."""
    f = formula(symbols)
    for name in BUILTIN:
        if builtin(name).formula == f:
            return name
    return f


def read_ensemble(
    paths: Iterable[PathLike],
    *,
    format: str | None = None,
    dt: float | None = None,
    tmax: float | None = None,
    input_dt: float | None = None,
    progress: Progress | None = None,
) -> Ensemble:
    """Read many trajectories of one molecule into an :class:`Ensemble`.

    Parameters
    ----------
    paths : sequence of path-like
        Trajectory files, SHARC or Newton-X run folders, or folders of runs (``TRAJ_*``, ``TRAJn``).
    format : str, optional
        Reader name from :data:`READERS` (guessed per path if None).
    dt : float, optional
        Frame interval of the ensemble, fs (a multiple of the trajectories'
        step): ``dt=5`` turns 0.5 fs steps into 5 fs frames.
    tmax : float, optional
        Time window: keep frames with t - t0 <= tmax, fs.
    input_dt : float, optional
        Step of XYZ/ASE files whose frames carry no time, fs.
    progress : callable(done, info), optional
    """
    dt = check_time_option("dt", dt)
    tmax = check_time_option("tmax", tmax, zero=True)
    input_dt = check_time_option("input_dt", input_dt)
    files = _expand(paths)
    trajs = []
    for k, p in enumerate(files):
        tr = read_trajectory(p, format=format, dt=input_dt if input_dt is not None else dt)
        trajs.append(resample(tr, dt=dt, tmax=tmax))
        if progress is not None:
            progress(k + 1, {"total": len(files), "unit": "trajectories"})
    _refuse_copies(trajs)
    prov = {"created_by": "molmovie import", "paths": [str(p) for p in files], "dt_fs": dt, "tmax_fs": tmax}
    return ensemble_from_trajectories(trajs, provenance=prov)
