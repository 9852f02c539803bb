"""The inversion protocol shared by every method.

Every method looks alike from outside (scikit-learn's estimator protocol)::

    method = VRNN(hidden=128)                    # constructor stores settings only
    method.check_settings()                      # InputError on a bad one; returns warnings
    method.fit(train, val=val, progress=None)    # Dataset objects in, returns self
    pred = method.predict(dS, q=q, lengths=L)    # -> Prediction(distances, std)
    method.save("model.safetensors"); VRNN.load("model.safetensors")

A model file (:mod:`molmovie.io.model`) is one safetensors file: plain
arrays, with the method's name, settings, fitted scalars and the
:class:`~molmovie.scattering.SignalSpec` of its training signals as a JSON
string in the file's header metadata. Loading a model parses a JSON header
and copies raw numbers; it never unpickles and never runs code from the file.
"""

from __future__ import annotations

import abc
import inspect
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError, shorten
from .._typing import PathLike, Progress, Symbols
from ..datasets import Dataset
from ..geometry import pair_labels
from ..io.model import MODEL_FORMAT, MODEL_VERSION, need_array, read_model_file, write_model_file
from ..measurement.types import MAX_SIGNAL
from ..molecules import formula as _formula
from ..scattering.spec import SignalSpec

__all__ = [
    "Prediction",
    "InversionMethod",
    "NotFittedError",
    "interpolate_signals",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "read_model_file",
]


class NotFittedError(InputError):
    """A method was asked to predict or save before :meth:`fit`."""


@dataclass
class Prediction:
    """What an inversion method answers.

    Attributes
    ----------
    distances : ndarray, shape (M, T, n_pairs), Angstrom
        Predicted atom-atom distances, pairs in ``numpy.triu_indices`` order;
        NaN past each series' length.
    std : ndarray, shape (M, T, n_pairs), Angstrom, or None
        One standard deviation of each predicted distance; None for methods
        without an uncertainty.
    """

    distances: np.ndarray
    std: np.ndarray | None = None


# --------------------------------------------------------------------------- validation helpers


def check_dataset(ds, role: str, *, need_signals: bool = True):
    """Validate a training or validation :class:`~molmovie.datasets.Dataset`.

    Returns the dataset's valid-frame mask, shape (M, T).
    """
    if ds is None:
        raise InputError(f"the {role} data is missing")
    for attr in ("dS", "q", "length", "positions", "symbols"):
        if not hasattr(ds, attr):
            raise InputError(f"the {role} data must be a molmovie Dataset; got {type(ds).__name__}")
    if ds.n_trajectories == 0:
        raise InputError(f"the {role} split is empty: it has no trajectories to learn from")
    if need_signals and (ds.dS is None or ds.q is None):
        raise InputError(f"the {role} dataset has no scattering signals; run `molmovie scatter` on it first")
    length = np.asarray(ds.length)
    T = ds.n_frames
    if np.any(length < 1) or np.any(length > T):
        raise InputError(f"the {role} dataset has trajectory lengths outside 1..{T}")
    mask = np.arange(T)[None, :] < length[:, None]
    if need_signals:
        dS = np.asarray(ds.dS)
        if dS.shape != (ds.n_trajectories, T, len(ds.q)):
            raise InputError(
                f"the {role} dataset's dS has shape {dS.shape}; expected (trajectories, frames, q) = "
                f"{(ds.n_trajectories, T, len(ds.q))}"
            )
        if not np.all(np.isfinite(dS[mask])):
            raise InputError(f"the {role} dataset's dS has NaN or inf within a trajectory's length")
    return mask


def check_signals(
    dS: ArrayLike, q: ArrayLike, lengths: ArrayLike | None, model_q: np.ndarray, *, n_q_name: str = "model"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate signals given to ``predict``.

    Parameters
    ----------
    dS : array_like, shape (M, T, Q)
    q : array_like, shape (Q,), 1/Angstrom
    lengths : array_like of int, shape (M,), or None
        Valid frames per series. None: every frame must be finite, except
        trailing all-NaN frames, which count as past the length.
    model_q : ndarray, shape (Q,)
        The q grid the model was trained on; ``q`` must equal it.

    Returns
    -------
    dS : ndarray, float64, shape (M, T, Q)
    lengths : ndarray of int, shape (M,)
    """
    dS = np.asarray(dS, dtype=float)
    if dS.ndim != 3:
        raise InputError(f"dS must have shape (series, frames, q); got an array of shape {dS.shape}")
    M, T, Q = dS.shape
    if T == 0:
        raise InputError("dS has no frames")
    q = np.asarray(q, dtype=float)
    if q.ndim != 1 or len(q) != Q:
        raise InputError(f"q must have one value per column of dS ({Q}); got shape {q.shape}")
    if len(q) != len(model_q) or not np.allclose(q, model_q, rtol=1e-6, atol=1e-9):
        raise InputError(
            f"the signals' q grid ({len(q)} points, {q.min():.4g} to {q.max():.4g} 1/Å) differs from the {n_q_name}'s "
            f"({len(model_q)} points, {model_q.min():.4g} to {model_q.max():.4g} 1/Å); interpolate the signals "
            "onto the model's grid (molmovie invert --interpolate-q)"
        )
    if lengths is None:
        finite = np.isfinite(dS).all(axis=2)
        allnan = np.isnan(dS).all(axis=2)
        n = finite.sum(axis=1)
        ok = finite | allnan
        prefix = np.arange(T)[None, :] < n[:, None]
        if not (ok.all() and np.array_equal(finite, prefix)):
            raise InputError(
                "dS has NaN or inf inside a series; only whole frames of NaN at the end of a series (past its length) are allowed"
            )
    else:
        n = np.asarray(lengths)
        if n.shape != (M,) or not np.issubdtype(n.dtype, np.number) or np.any(n != np.round(n)):
            raise InputError(f"lengths must be {M} whole numbers, one per series; got {shorten(repr(n))}")
        n = n.astype(np.int64)
        if np.any(n < 0) or np.any(n > T):
            raise InputError(f"lengths must lie between 0 and the number of frames {T}; got {n.min()} to {n.max()}")
        mask = np.arange(T)[None, :] < n[:, None]
        if not np.all(np.isfinite(dS[mask])):
            raise InputError("dS has NaN or inf within a series' length")
    valid = dS[np.isfinite(dS)]
    if valid.size and float(np.max(np.abs(valid))) > MAX_SIGNAL:  # squares of it overflow every method's distances
        raise InputError(
            f"dS reaches {float(np.max(np.abs(valid))):.3g}, beyond the bound of {MAX_SIGNAL:g} (a relative difference); "
            "check the signals' units"
        )
    return dS, n.astype(np.int64)  # n: the lengths, checked


def interpolate_signals(dS: ArrayLike, q: ArrayLike, q_target: ArrayLike, lengths: ArrayLike) -> np.ndarray:
    """ΔS on another q grid by linear interpolation in q; the target grid must lie inside the data's.

    Parameters
    ----------
    dS : ndarray, shape (M, T, Q), a fraction
        Finite within each series' length (see :func:`check_signals`).
    q : ndarray, shape (Q,), 1/Angstrom
        Distinct values, in any order.
    q_target : ndarray, shape (Q',), 1/Angstrom, increasing
    lengths : ndarray of int, shape (M,)

    Returns
    -------
    ndarray, shape (M, T, Q'), NaN past each length.
    """
    q = np.asarray(q, dtype=float)
    q_target = np.asarray(q_target, dtype=float)
    order = np.argsort(q)
    q = q[order]
    if np.any(np.diff(q) <= 0):
        raise InputError("q values must be distinct to interpolate")
    tol = 1e-9 * max(1.0, abs(q[-1]))
    if q_target[0] < q[0] - tol or q_target[-1] > q[-1] + tol:
        raise InputError(
            f"the model's q range ({q_target[0]:.4g} to {q_target[-1]:.4g} 1/Å) reaches outside the signals' "
            f"({q[0]:.4g} to {q[-1]:.4g} 1/Å); interpolation does not extrapolate"
        )
    dS = np.asarray(dS, dtype=float)
    valid = np.arange(dS.shape[1])[None, :] < np.asarray(lengths)[:, None]
    rows = np.where(valid[..., None], dS, 0.0)[..., order].reshape(-1, len(q))
    out = np.stack([np.interp(q_target, q, row) for row in rows]) if len(rows) else np.empty((0, len(q_target)))
    out = out.reshape(dS.shape[:-1] + (len(q_target),))
    out[~valid] = np.nan
    return out


def check_choice(name: str, value: object, choices: Collection[object]) -> None:
    if value not in choices:
        raise InputError(f"The {name!r} setting must be one of {', '.join(map(repr, choices))}; got {shorten(repr(value))}")


def check_number(
    name: str, value: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False, integer: bool = False
) -> None:
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        kind = "a whole number" if integer else "a number"
        raise InputError(f"The {name!r} setting must be {kind}; got {shorten(repr(value))}")
    if low is not None and (value <= low if low_open else value < low):
        raise InputError(f"The {name!r} setting must be {'>' if low_open else '>='} {low}; got {shorten(repr(value))}")
    if high is not None and value > high:
        raise InputError(f"The {name!r} setting must be <= {high}; got {shorten(repr(value))}")


# --------------------------------------------------------------------------- the base class


class _Settings:
    """Keyword settings in the scikit-learn shape, shared by the inversion and the measurement methods.

    The constructor only stores its keyword-only arguments (the settings);
    :meth:`get_params`, :meth:`set_params` and :meth:`clone` read and change
    them by name, :meth:`check_settings` validates them, and learned state
    (attributes ending in ``_``) is forgotten by :meth:`_reset` before a fit.
    Subclasses set ``name``, their key in their registry.
    """

    name: str = ""

    @classmethod
    def setting_names(cls) -> list[str]:
        """The names of the constructor's keyword-only arguments."""
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        """The settings given to the constructor, as a dict."""
        return {k: getattr(self, k) for k in self.setting_names()}

    def __repr__(self) -> str:
        cls = type(self)
        sig = inspect.signature(cls.__init__)
        changed = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if sig.parameters[k].default is not v and sig.parameters[k].default != v
        ]
        return f"{cls.__name__}({', '.join(changed)})"

    def set_params(self, **settings: Any) -> Self:
        """Change settings (like scikit-learn's); an unknown name is an :class:`InputError`. Returns self.

        Values are checked by :meth:`check_settings` (and by ``fit``).
        Learned state is kept until the next ``fit``.
        """
        known = self.setting_names()
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise InputError(
                f"the {self.name!r} method has no setting {', '.join(map(repr, unknown))}; its settings are {', '.join(known)}"
            )
        for key, value in settings.items():
            setattr(self, key, value)
        return self

    def clone(self, **settings: Any) -> Self:
        """A new, unfitted method of the same kind and settings (changed by ``settings``)."""
        return type(self)(**self.get_params()).set_params(**settings)

    def check_settings(self) -> list[str]:
        """Validate the settings; an :class:`InputError` names the first bad one.

        Called by ``fit``; call it before reading a large input to fail
        early. Returns warnings (plain sentences) about settings that are
        valid but will not do what one may expect; none by default.
        """
        return []

    def _reset(self) -> None:
        """Forget learned state (attributes ending in ``_``) before a new fit."""
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)


class InversionMethod(_Settings, abc.ABC):
    """Base of the inversion methods: settings handling, fitted checks, the molecule record.

    Subclasses define ``name`` (their key in :data:`molmovie.inversion.METHODS`),
    ``label`` (how tables and figures call them), keyword-only settings in
    ``__init__``, ``check_settings``, ``fit``, ``predict`` and, for their own
    learned arrays, ``_config_state``/``_arrays`` and ``_restore``. Learned
    state ends in ``_``; ``symbols_``, ``molecule_``, ``q_``,
    ``pair_labels_``, ``spec_`` and ``dt_`` (the median frame interval of
    the training trajectories, fs; None in a model file written before it
    was recorded) are set by every ``fit``.

    ``fit(train, val=None, *, progress=None)`` returns self; ``progress``, when
    given, is called as ``progress(done, info)`` after each step of training,
    with ``info["total"]`` the most steps it will take (early stopping may end
    it sooner), ``info["unit"]`` what a step is ("epochs"), and the method's
    own figures (losses). ``predict(dS, *, q, lengths=None)`` returns a
    :class:`Prediction`.
    """

    #: How reports and figures call the method (default: its name).
    label: str = ""
    #: The attribute that ``fit`` sets last; a method is fitted when it exists.
    _fitted_attr: str = "q_"

    def fit_summary(self) -> str:
        """One line on how the fit went (e.g. its best epoch), for a report; empty by default."""
        self._check_fitted("summarising its fit")
        return ""

    # -------------------------------------------------------------- fitted state
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has completed."""
        return hasattr(self, self._fitted_attr)

    def _check_fitted(self, what: str = "predict") -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit(train) (or load a saved model) before {what}"
            )

    @abc.abstractmethod
    def fit(self, train: Dataset, val: Dataset | None = None, *, progress: Progress | None = None) -> Self:
        """Learn from training trajectories (Datasets with signals), validating on ``val``; returns self."""

    @abc.abstractmethod
    def predict(self, dS: ArrayLike, *, q: ArrayLike, lengths: ArrayLike | None = None) -> Prediction:
        """Distances (with standard deviations, for methods that have them) for every frame.

        Parameters
        ----------
        dS : array_like, shape (M, T, Q)
            Difference signals, a fraction.
        q : array_like, shape (Q,), 1/Angstrom
            Must equal the training q grid.
        lengths : array_like of int, shape (M,), optional
            Valid frames per series (default: from trailing NaN frames).

        Returns
        -------
        Prediction
            Shape (M, T, n_pairs), Angstrom, NaN past each length.
        """

    def _start_fit(self, train, val):
        """Forget learned state, check the settings and the data: the training set's valid-frame mask (M, T) and ``val``."""
        self._reset()
        self.check_settings()
        mask = check_dataset(train, "training")
        return mask, self._check_val(train, val)

    def _signals(
        self, dS: ArrayLike, q: ArrayLike, lengths: ArrayLike | None, what: str = "predict"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Signals checked for this fitted model: ``dS`` (M, T, Q) float64, ``lengths`` (M,), ``mask`` (M, T) of valid frames."""
        self._check_fitted(what)
        dS, lengths = check_signals(dS, q, lengths, self.q_)
        mask = np.arange(dS.shape[1])[None, :] < lengths[:, None]
        return dS, lengths, mask

    def _record_dataset(self, train) -> None:
        self.symbols_ = tuple(str(s) for s in train.symbols)
        self.molecule_ = str(train.molecule)
        self.q_ = np.asarray(train.q, dtype=float).copy()
        self.pair_labels_ = list(pair_labels(self.symbols_))
        self.n_pairs_ = len(self.pair_labels_)
        self.spec_ = train.spec
        self.dt_ = _frame_interval(train.time)

    def _check_val(self, train, val):
        if val is None:
            return None
        check_dataset(val, "validation")
        if tuple(val.symbols) != tuple(train.symbols):
            raise InputError("the validation data is of another molecule than the training data (atoms differ)")
        if len(val.q) != len(train.q) or not np.allclose(val.q, train.q):
            raise InputError("the validation data's q grid differs from the training data's")
        return val

    def check_molecule(self, symbols: Symbols, molecule: str | None = None) -> None:
        """Refuse signals of another molecule (or atom order) than the one this model was trained on.

        Parameters
        ----------
        symbols : sequence of str
            The data's atoms, in order.
        molecule : str, optional
            The data's molecule, for the message (default: its formula).

        Raises
        ------
        InputError
            "model of C2H4 (C C H H H H), data of CS2 (C S S): ...".
        """
        self._check_fitted("checking a molecule")
        symbols = tuple(str(s) for s in symbols)
        if symbols != self.symbols_:
            name = molecule or _formula(symbols)
            order = " (the same atoms in another order)" if sorted(symbols) == sorted(self.symbols_) else ""
            raise InputError(
                f"model of {shorten(self.molecule_, 40)} ({shorten(' '.join(self.symbols_), 80)}), data of "
                f"{shorten(name, 40)} ({shorten(' '.join(symbols), 80)}){order}: a model inverts signals of the molecule it was trained on"
            )

    # -------------------------------------------------------------- persistence
    def _common_config(self) -> dict:
        return {
            "settings": _jsonable(self.get_params()),
            "symbols": list(self.symbols_),
            "molecule": self.molecule_,
            "pair_labels": list(self.pair_labels_),
            "signal_attrs": self.spec_.attrs(),  # the spec without q (the array "q"); the key of model files so far
            "dt_fs": getattr(self, "dt_", None),  # the training frame interval (None: unknown, a model file of before)
        }

    def _restore_common(self, config: dict, arrays: dict, path: PathLike) -> None:
        try:
            self.symbols_ = tuple(config["symbols"])
            self.molecule_ = str(config["molecule"])
            self.pair_labels_ = list(config["pair_labels"])
            signal_attrs = dict(config.get("signal_attrs", {}))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: damaged molmovie model file (molecule record incomplete)") from None
        dt = config.get("dt_fs")  # absent from model files written before it was recorded
        if dt is not None and (isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0):
            raise InputError(
                f"{path}: damaged molmovie model file (frame interval dt_fs {shorten(repr(dt))} is not a time step in fs)"
            )
        self.dt_ = None if dt is None else float(dt)
        n, p = len(self.symbols_), len(self.pair_labels_)
        if not all(isinstance(s, str) and s.isalpha() and len(s) <= 3 for s in self.symbols_) or n < 2:
            raise InputError(
                f"{path}: damaged molmovie model file (symbols {shorten(list(self.symbols_))} are not element symbols)"
            )
        if p != n * (n - 1) // 2 or not all(isinstance(label, str) for label in self.pair_labels_):
            raise InputError(
                f"{path}: damaged molmovie model file ({n} symbols make {n * (n - 1) // 2} pairs; the file labels {p})"
            )
        self.molecule_ = shorten(self.molecule_, 60)
        self.n_pairs_ = len(self.pair_labels_)
        self.q_ = np.asarray(need_array(arrays, "q", path), dtype=float)
        if self.q_.ndim != 1 or self.q_.size == 0 or not np.all(np.isfinite(self.q_)) or np.any(self.q_ < 0):
            raise InputError(f"{path}: damaged molmovie model file (array 'q' of shape {self.q_.shape} is not a q grid)")
        try:
            self.spec_ = SignalSpec.from_attrs(self.q_, signal_attrs)
        except InputError as exc:
            raise InputError(f"{path}: damaged molmovie model file ({exc})") from None

    def save(self, path: PathLike, *, force: bool = False) -> Path:
        """Save the fitted model to one safetensors file (atomic write).

        Parameters
        ----------
        path : path-like
            File to write, e.g. ``model.safetensors``.
        force : bool
            Replace an existing file.
        """
        self._check_fitted("save")
        config = self._common_config()
        config.update(self._config_state())
        arrays = {"q": self.q_}
        arrays.update(self._arrays())
        return write_model_file(path, self.name, config, arrays, force=force)

    @classmethod
    def load(cls, path: PathLike) -> InversionMethod:
        """Load a model saved by :meth:`save` (never runs code from the file)."""
        method, config, arrays = read_model_file(path)
        return cls._from_parts(method, config, arrays, path)

    @classmethod
    def _from_parts(cls, method: str, config: dict, arrays: dict, path: PathLike) -> InversionMethod:
        if method != cls.name:
            raise InputError(f"{path} holds a {method!r} model, not a {cls.name!r} one; use molmovie.inversion.load_method")
        settings = config.get("settings")
        if not isinstance(settings, dict):
            raise InputError(f"{path}: damaged molmovie model file (no settings)")
        known = set(cls.setting_names())
        unknown = set(settings) - known
        if unknown:
            raise InputError(f"{path}: model settings {shorten(sorted(unknown))} are unknown to this molmovie version")
        obj = cls(**settings)
        try:
            obj.check_settings()  # before anything the settings size is built (memory_mb=-1, hidden=200000)
        except InputError as exc:
            raise InputError(f"{path}: damaged molmovie model file ({exc})") from None
        obj._restore_common(config, arrays, path)
        obj._restore(config, arrays, path)
        return obj

    # subclasses
    def _config_state(self) -> dict:
        return {}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, config: dict, arrays: dict, path: PathLike) -> None:
        pass


def _frame_interval(time: ArrayLike) -> float | None:
    """The median spacing of a dataset's frame times, fs (None for fewer than two frames)."""
    time = np.asarray(time, dtype=float)
    return float(np.median(np.diff(time))) if time.size > 1 else None


def _jsonable(obj: Any) -> Any:
    """``obj`` with dicts, lists and tuples walked and NumPy scalars made Python numbers (for JSON)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj
