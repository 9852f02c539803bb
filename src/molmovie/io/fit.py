"""The fit result file: what ``molmovie fit`` found in a measurement.

This module owns the format (format ``"molmovie-fit"``). One layout serves
every measurement method: a common part that any method fills, and one group
per method for what is its own::

    /                  attrs: format="molmovie-fit", version, molmovie_version, method,
                              molecule, converged, message, chi2, n_data, n_params,
                              reduced_chi2, sigma_source, settings (JSON), provenance (JSON)
    /delays (T) [fs]   /q (Q) [1/Angstrom]   /atoms/symbols (N) (optional)
    /dS (T, Q) [fraction]         the measured ΔS
    /sigma (T, Q) [fraction]      its one-σ uncertainty (as given, or estimated: sigma_source)
    /dS_fit (T, Q) [fraction]     the fitted model's ΔS
    /residual (T, Q) [1]          (dS - dS_fit) / sigma

    /ensemble/...   (method "ensemble", :class:`EnsemblePart`)
        gamma, gamma_std [fraction]   t0, t0_std [fs]   irf_fs, irf_fs_std [fs]  (0-d arrays)
        trajectories (M) [index]   weights, weights_std (M) [1]   dissociated (M) [bool]
        pair_labels (P)   quantile_levels (K) [1]
        distance_mean, distance_mean_std, distance_std, distance_std_std (T, P) [Angstrom]
        distance_quantiles, distance_quantiles_std (T, P, K) [Angstrom]
        channels (C) = ("bound", "dissociated")
        channel_fraction, channel_fraction_std (C) [fraction]
        channel_distance_mean, channel_distance_mean_std, channel_distance_std (C, T, P) [Angstrom]
        channel_distance_quantiles (C, T, P, K) [Angstrom]
        dissociated_fraction, dissociated_fraction_std (T) [fraction]
        bootstrap_gamma (B) [fraction]   bootstrap_t0, bootstrap_irf_fs (B) [fs]
        hole_trajectories (G) [index]   hole_weights, hole_weights_std (G) [fraction]   hole_r0 (G, P) [Angstrom]
            (only for a fit with the ground-state hole; channels are then ("bound", "dissociated", "ground"))
        profile_gamma (K) [fraction]   profile_chi2 (K) [1]   the profile likelihood of γ (optional)
        attrs: regularization, rule, rank, birge_ratio (optional, 1 when absent)

    /pdf/...        (method "pdf", :class:`PdfPart`)
        r (R) [Angstrom]   pair_types (P)
        dP, dP_std (T, P, R) [1/Angstrom]       Tikhonov inversion and its 1-σ band
        dP_sine, dP_sine_std (T, R) [1/Angstrom] damped sine transform and its 1-σ band
        ground_P (P, R) [1/Angstrom] (optional)  I_gs (Q) [electron units]
        attrs: damping [Angstrom^2], regularization, rule, penalty, reference

Every array carries a ``units`` attribute; writes are atomic (a temporary
file in the same folder, then a rename); an existing file is replaced only
with ``force=True``; the reader opens files read-only and refuses files of
another format or a newer version with one line.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import numpy as np

from .._errors import InputError, shorten
from .._provenance import with_command
from .._typing import PathLike
from .._version import __version__
from ._files import (
    atomic_hdf5,
    attach_dimensions,
    check_format,
    check_output,
    dimension_scale,
    json_default,
    read_array,
    reading_hdf5,
    write_array,
)

if TYPE_CHECKING:
    import h5py

__all__ = ["FIT_FORMAT", "FIT_VERSION", "FitResult", "EnsemblePart", "PdfPart", "write_fit", "read_fit"]

FIT_FORMAT = "molmovie-fit"
FIT_VERSION = 1


@dataclass
class EnsemblePart:
    """What the trajectory-basis fit (method ``"ensemble"``) adds to a :class:`FitResult`.

    Spreads (``*_std``) are standard deviations over the parametric bootstrap
    replicates (0 when no bootstrap was run). Distances are those of the basis
    trajectories at ``delays - t0`` (clipped to the basis time span; the first
    frame before time zero), weighted by the fitted weights; the IRF is not
    applied (the same convention as :class:`molmovie.io.measurement.Truth`).

    Attributes
    ----------
    gamma, gamma_std : float, fraction
        Excitation fraction γ = Σ c_i.
    t0, t0_std, irf_fs, irf_fs_std : float, fs
        Time zero and the IRF's FWHM.
    trajectories : ndarray of int, shape (M,)
        Indices of the basis trajectories in the basis dataset.
    weights, weights_std : ndarray, shape (M,)
        w_i = c_i / γ (sum 1) and their bootstrap spread.
    dissociated : ndarray of bool, shape (M,)
        Each basis trajectory's fate (its channel).
    pair_labels : tuple of str, length P
    quantile_levels : ndarray, shape (K,)
    distance_mean, distance_mean_std, distance_std, distance_std_std : ndarray, shape (T, P), Angstrom
    distance_quantiles, distance_quantiles_std : ndarray, shape (T, P, K), Angstrom
    channels : tuple of str, length C
        ``("bound", "dissociated")``: trajectories grouped by their fate.
    channel_fraction, channel_fraction_std : ndarray, shape (C,)
        Weight of each channel.
    channel_distance_mean, channel_distance_mean_std, channel_distance_std : ndarray, shape (C, T, P), Angstrom
        Within-channel weighted statistics; NaN for a channel of zero weight.
    channel_distance_quantiles : ndarray, shape (C, T, P, K), Angstrom
    dissociated_fraction, dissociated_fraction_std : ndarray, shape (T,)
        Weighted fraction of trajectories dissociated by each delay.
    bootstrap_gamma, bootstrap_t0, bootstrap_irf_fs : ndarray, shape (B,)
        The bootstrap replicates' values.
    regularization : float
        Strength μ of the pull toward uniform weights (0: none).
    rule : str
        How μ was chosen ("none", "discrepancy", "given").
    rank : int
        Rank of the reduced basis the fit used.
    birge_ratio : float
        √χ²_red when it exceeded 1 and the bootstrap noise was scaled by it (the spreads include it); 1 otherwise.
    hole_trajectories : ndarray of int, shape (G,), or None
        With the ground-state hole: indices (in the basis) of the ground-state trajectories of the hole's sub-basis.
        ``trajectories`` then lists the excited ones only, and ``channels`` is ``("bound", "dissociated", "ground")``
        with ``channel_fraction`` as fractions of all molecules (γ f_bound, γ f_dissociated, 1 − γ); the third channel's
        distances are those of the molecules left in the ground state.
    hole_weights, hole_weights_std : ndarray, shape (G,), fraction, or None
        h_j >= 0 with Σ h_j = γ: how much of ground-state sample j the pump removed (M_g h_j is its removal probability).
    hole_r0 : ndarray, shape (G, P), Angstrom, or None
        Each ground-state sample's distances at excitation: with ``hole_weights``, the excitation's R-dependence.
    profile_gamma, profile_chi2 : ndarray, shape (K,), or None
        The profile likelihood of γ: the data χ² of the best fit with Σ c = γ_k imposed (at the fitted t0 and
        IRF); its spread is part of every reported spread. None in files written before it existed.
    """

    gamma: float
    gamma_std: float
    t0: float
    t0_std: float
    irf_fs: float
    irf_fs_std: float
    trajectories: np.ndarray
    weights: np.ndarray
    weights_std: np.ndarray
    dissociated: np.ndarray
    pair_labels: tuple
    quantile_levels: np.ndarray
    distance_mean: np.ndarray
    distance_mean_std: np.ndarray
    distance_std: np.ndarray
    distance_std_std: np.ndarray
    distance_quantiles: np.ndarray
    distance_quantiles_std: np.ndarray
    channels: tuple
    channel_fraction: np.ndarray
    channel_fraction_std: np.ndarray
    channel_distance_mean: np.ndarray
    channel_distance_mean_std: np.ndarray
    channel_distance_std: np.ndarray
    channel_distance_quantiles: np.ndarray
    dissociated_fraction: np.ndarray
    dissociated_fraction_std: np.ndarray
    bootstrap_gamma: np.ndarray
    bootstrap_t0: np.ndarray
    bootstrap_irf_fs: np.ndarray
    regularization: float
    rule: str
    rank: int
    birge_ratio: float = 1.0
    hole_trajectories: np.ndarray | None = None
    hole_weights: np.ndarray | None = None
    hole_weights_std: np.ndarray | None = None
    hole_r0: np.ndarray | None = None
    profile_gamma: np.ndarray | None = None
    profile_chi2: np.ndarray | None = None


@dataclass
class PdfPart:
    """What the model-free pair-distribution inversion (method ``"pdf"``) adds.

    Attributes
    ----------
    r : ndarray, shape (R,), Angstrom
        Bin centres of the distance grid.
    pair_types : tuple of str, length P
        Element-pair types, e.g. ``("I-I",)`` or ``("C-S", "S-S")``.
    dP, dP_std : ndarray, shape (T, P, R), 1/Angstrom
        ΔP_ab(R, t) from the regularised inversion and its 1-σ band.
    dP_sine, dP_sine_std : ndarray, shape (T, R), 1/Angstrom
        The damped sine transform and its 1-σ band (propagated from σ).
    ground_P : ndarray, shape (P, R), 1/Angstrom, or None
        Ground-state pair density, where known (the bound ΔP >= -P_ground).
    I_gs : ndarray, shape (Q,), electron units
        Ground-state intensity used to turn ΔS into ΔI.
    damping : float, Angstrom^2
        α of the sine transform's exp(-α q²).
    regularization : float
        Tikhonov λ.
    rule : str
        How λ was chosen ("discrepancy", "gcv", "given").
    penalty : str
        "curvature" or "ridge".
    reference : str
        Where I_gs and P_ground came from.
    """

    r: np.ndarray
    pair_types: tuple
    dP: np.ndarray
    dP_std: np.ndarray
    dP_sine: np.ndarray
    dP_sine_std: np.ndarray
    ground_P: np.ndarray | None
    I_gs: np.ndarray
    damping: float
    regularization: float
    rule: str
    penalty: str
    reference: str


@dataclass
class FitResult:
    """A fit of a measurement: the common part, plus the method's own.

    Attributes
    ----------
    method : str
        Name in :data:`molmovie.fitting.MEASUREMENT_METHODS`.
    molecule : str or None
    symbols : tuple of str or None
    delays : ndarray, shape (T,), fs
    q : ndarray, shape (Q,), 1/Angstrom
    dS, sigma, dS_fit : ndarray, shape (T, Q), fraction
        Measured ΔS, its σ, and the fitted model's ΔS.
    chi2 : float
        Σ ((dS - dS_fit) / σ)² over all T·Q points.
    n_data : int
    n_params : float
        Effective number of fitted parameters (stated by each method).
    reduced_chi2 : float
        chi2 / (n_data - n_params).
    converged : bool
        False when the fit did not converge; ``message`` says why.
    message : str
    sigma_source : str
        "measured", or how σ was estimated.
    settings : dict
        The method's settings (JSON-able).
    provenance : dict
        The measurement's provenance, the basis, the molmovie version.
    ensemble, pdf : EnsemblePart or PdfPart or None
    """

    method: str
    molecule: str | None
    symbols: tuple | None
    delays: np.ndarray
    q: np.ndarray
    dS: np.ndarray
    sigma: np.ndarray
    dS_fit: np.ndarray
    chi2: float
    n_data: int
    n_params: float
    reduced_chi2: float
    converged: bool
    message: str
    sigma_source: str
    settings: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    ensemble: EnsemblePart | None = None
    pdf: PdfPart | None = None

    @property
    def residual(self) -> np.ndarray:
        """(dS - dS_fit) / sigma, shape (T, Q)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.sigma > 0, (self.dS - self.dS_fit) / np.where(self.sigma > 0, self.sigma, 1.0), 0.0)


# --------------------------------------------------------------------------- units of each stored array

_ENSEMBLE_UNITS = {
    "gamma": "fraction",
    "gamma_std": "fraction",
    "t0": "fs",
    "t0_std": "fs",
    "irf_fs": "fs",
    "irf_fs_std": "fs",
    "trajectories": "index",
    "weights": "1",
    "weights_std": "1",
    "dissociated": "bool",
    "quantile_levels": "1",
    "distance_mean": "Angstrom",
    "distance_mean_std": "Angstrom",
    "distance_std": "Angstrom",
    "distance_std_std": "Angstrom",
    "distance_quantiles": "Angstrom",
    "distance_quantiles_std": "Angstrom",
    "channel_fraction": "fraction",
    "channel_fraction_std": "fraction",
    "channel_distance_mean": "Angstrom",
    "channel_distance_mean_std": "Angstrom",
    "channel_distance_std": "Angstrom",
    "channel_distance_quantiles": "Angstrom",
    "dissociated_fraction": "fraction",
    "dissociated_fraction_std": "fraction",
    "bootstrap_gamma": "fraction",
    "bootstrap_t0": "fs",
    "bootstrap_irf_fs": "fs",
    "hole_trajectories": "index",
    "hole_weights": "fraction",
    "hole_weights_std": "fraction",
    "hole_r0": "Angstrom",
    "profile_gamma": "fraction",
    "profile_chi2": "1",
}
_ENSEMBLE_STRINGS = ("pair_labels", "channels")
_ENSEMBLE_ATTRS = ("regularization", "rule", "rank", "birge_ratio")
_PDF_UNITS = {
    "r": "Angstrom",
    "dP": "1/Angstrom",
    "dP_std": "1/Angstrom",
    "dP_sine": "1/Angstrom",
    "dP_sine_std": "1/Angstrom",
    "ground_P": "1/Angstrom",
    "I_gs": "electron units",
}
_PDF_STRINGS = ("pair_types",)
_PDF_ATTRS = ("damping", "regularization", "rule", "penalty", "reference")
_ROOT_UNITS = {"delays": "fs", "q": "1/Angstrom", "dS": "fraction", "sigma": "fraction", "dS_fit": "fraction"}
_ROOT_ATTRS = ("method", "chi2", "n_data", "n_params", "reduced_chi2", "converged", "message", "sigma_source")


def write_fit(result: FitResult, path: PathLike, *, force: bool = False) -> Path:
    """Write a fit result atomically (see the module docstring for the layout).

    Parameters
    ----------
    result : FitResult
    path : path-like
    force : bool
        Replace an existing file (otherwise that is an :class:`InputError`).

    Returns
    -------
    Path
    """
    import h5py

    path = check_output(path, force=force)
    try:
        settings = json.dumps(result.settings, default=json_default)
        provenance = json.dumps(with_command(result.provenance), default=json_default)
    except (TypeError, ValueError) as exc:
        raise InputError(f"fit settings or provenance are not JSON-able ({exc})") from None
    strings = h5py.string_dtype()
    with atomic_hdf5(path) as f:  # built in memory, written whole: a full disk is one line, never a crash
        f.attrs["format"] = FIT_FORMAT
        f.attrs["version"] = FIT_VERSION
        f.attrs["molmovie_version"] = __version__
        if result.molecule is not None:
            f.attrs["molecule"] = result.molecule
        for name in _ROOT_ATTRS:
            f.attrs[name] = getattr(result, name)
        f.attrs["settings"] = settings
        f.attrs["provenance"] = provenance
        for name, unit in _ROOT_UNITS.items():
            write_array(f, name, np.asarray(getattr(result, name), dtype=float), unit)
        write_array(f, "residual", result.residual, "1")
        if result.symbols is not None:
            f.create_group("atoms").create_dataset("symbols", data=np.array(list(result.symbols), dtype="S3"))
        for part, units, strs, attrs, gname in (
            (result.ensemble, _ENSEMBLE_UNITS, _ENSEMBLE_STRINGS, _ENSEMBLE_ATTRS, "ensemble"),
            (result.pdf, _PDF_UNITS, _PDF_STRINGS, _PDF_ATTRS, "pdf"),
        ):
            if part is None:
                continue
            g = f.create_group(gname)
            for name, unit in units.items():
                value = getattr(part, name)
                if value is not None:
                    write_array(g, name, np.asarray(value), unit)
            for name in strs:
                g.create_dataset(name, data=np.array([str(s) for s in getattr(part, name)], dtype=strings))
            for name in attrs:
                g.attrs[name] = getattr(part, name)
        _label_dimensions(f, result)
    return path


#: The named axes of the arrays of each group ("delay", "q": the root's scales; the others the group's own).
_ROOT_DIMS = {
    "delays": ("delay",),
    "dS": ("delay", "q"),
    "sigma": ("delay", "q"),
    "dS_fit": ("delay", "q"),
    "residual": ("delay", "q"),
}
_ENSEMBLE_DIMS = {
    **{name: ("delay", "pair") for name in ("distance_mean", "distance_mean_std", "distance_std", "distance_std_std")},
    **{name: ("delay", "pair", "quantile") for name in ("distance_quantiles", "distance_quantiles_std")},
    **{
        name: ("channel", "delay", "pair")
        for name in ("channel_distance_mean", "channel_distance_mean_std", "channel_distance_std")
    },
    "channel_distance_quantiles": ("channel", "delay", "pair", "quantile"),
    "channel_fraction": ("channel",),
    "channel_fraction_std": ("channel",),
    "dissociated_fraction": ("delay",),
    "dissociated_fraction_std": ("delay",),
    "pair_labels": ("pair",),
    "channels": ("channel",),
    "quantile_levels": ("quantile",),
    **{name: ("trajectory",) for name in ("trajectories", "weights", "weights_std", "dissociated")},
    **{name: ("replicate",) for name in ("bootstrap_gamma", "bootstrap_t0", "bootstrap_irf_fs")},
    **{name: ("hole_trajectory",) for name in ("hole_trajectories", "hole_weights", "hole_weights_std")},
    "hole_r0": ("hole_trajectory", "pair"),
    "profile_gamma": ("profile_point",),
    "profile_chi2": ("profile_point",),
}
_PDF_DIMS = {
    "dP": ("delay", "pair", "r"),
    "dP_std": ("delay", "pair", "r"),
    "dP_sine": ("delay", "r"),
    "dP_sine_std": ("delay", "r"),
    "ground_P": ("pair", "r"),
    "I_gs": ("q",),
    "pair_types": ("pair",),
}


def _label_dimensions(f: h5py.File, result: FitResult) -> None:
    """Dimension scales ``delay``, ``q`` and, per method group, ``pair`` (and ``quantile``, ``channel``, ``r``).

    For netCDF readers such as xarray: a netCDF dimension takes its scale's name, so ``/delay``
    is a copy of ``/delays`` (which keeps its name for molmovie's reader), ``/q`` is its own scale,
    and each group holds copies of its labels as ``pair``, ``quantile``, ``channel``,
    ``trajectory`` (``hole_trajectory``), and indices ``replicate`` (bootstrap) and
    ``profile_point``; the pdf group's ``r`` is its own scale. A netCDF array names all its
    axes or none, so every array of a group with one named axis has all of them named.
    """
    import h5py

    f["q"].make_scale("q")
    scales = {"delay": dimension_scale(f, "delay", np.asarray(result.delays, dtype=float), "fs"), "q": f["q"]}
    attach_dimensions(f, {name: tuple(scales[d] for d in dims) for name, dims in _ROOT_DIMS.items()})
    strings = h5py.string_dtype()
    if result.ensemble is not None:
        e, g = result.ensemble, f["ensemble"]
        own = {
            "pair": dimension_scale(g, "pair", np.array([str(s) for s in e.pair_labels], dtype=strings), "1"),
            "quantile": dimension_scale(g, "quantile", np.asarray(e.quantile_levels, dtype=float), "1"),
            "channel": dimension_scale(g, "channel", np.array([str(s) for s in e.channels], dtype=strings), "1"),
            "trajectory": dimension_scale(g, "trajectory", np.asarray(e.trajectories), "index"),
            "replicate": dimension_scale(g, "replicate", np.arange(np.size(e.bootstrap_gamma)), "index"),
        }
        if e.hole_trajectories is not None:
            own["hole_trajectory"] = dimension_scale(g, "hole_trajectory", np.asarray(e.hole_trajectories), "index")
        if e.profile_gamma is not None:
            own["profile_point"] = dimension_scale(g, "profile_point", np.arange(np.size(e.profile_gamma)), "index")
        attach_dimensions(
            g, {name: tuple({**scales, **own}[d] for d in dims) for name, dims in _ENSEMBLE_DIMS.items() if name in g}
        )
    if result.pdf is not None:
        p, g = result.pdf, f["pdf"]
        g["r"].make_scale("r")
        own = {"pair": dimension_scale(g, "pair", np.array([str(s) for s in p.pair_types], dtype=strings), "1"), "r": g["r"]}
        attach_dimensions(g, {name: tuple({**scales, **own}[d] for d in dims) for name, dims in _PDF_DIMS.items() if name in g})


_WHAT = "molmovie fit result"


def _text(value: Any) -> Any:
    """Bytes decoded (bad bytes replaced); anything else as it is."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _array(group: h5py.Group, name: str, units: str, path: PathLike) -> Any:
    """An array of numbers with its ``units`` attribute, its kind and size checked before it is read."""
    node = group.get(name)
    found = _text(node.attrs.get("units")) if node is not None else None
    if node is not None and not (isinstance(found, str) and found == units):
        raise InputError(f"{path}: damaged {_WHAT} ({group.name.rstrip('/')}/{name} is not an array in {units!r})")
    return read_array(group, name, path, what=_WHAT)


def _strings(group: h5py.Group, name: str, path: PathLike) -> tuple[str, ...]:
    return tuple(str(_text(s)) for s in np.atleast_1d(read_array(group, name, path, kinds="SOU", what=_WHAT)))


_Part = TypeVar("_Part", EnsemblePart, PdfPart)


def _read_part(
    g: h5py.Group, cls: type[_Part], units: dict[str, str], strs: Collection[str], attrs: Collection[str], path: PathLike
) -> _Part:
    kw: dict[str, Any] = {}
    for fld in fields(cls):
        name = fld.name
        if name in units:
            if name not in g:
                if fld.default is None or name == "ground_P":  # optional arrays (ground_P, the hole's)
                    kw[name] = None
                    continue
                raise InputError(f"{path}: damaged {_WHAT} (no array {g.name}/{name})")
            value = _array(g, name, units[name], path)
            kw[name] = float(value) if np.ndim(value) == 0 else value
        elif name in strs:
            kw[name] = _strings(g, name, path)
        elif name in attrs:
            if name not in g.attrs and fld.default is not MISSING:
                continue
            if name not in g.attrs:
                raise InputError(f"{path}: damaged {_WHAT} (no attribute {name} on {g.name})")
            value = _text(g.attrs[name])
            if name == "rank":
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
                    raise InputError(
                        f"{path}: damaged {_WHAT} ({g.name} rank must be a whole number >= 0; got {shorten(value, 40)})"
                    )
                kw[name] = int(value)
            elif isinstance(value, (float, np.floating, int, np.integer)) and not isinstance(value, (bool, np.bool_)):
                if not np.isfinite(value):
                    raise InputError(f"{path}: damaged {_WHAT} ({g.name} {name} is not finite)")
                kw[name] = float(value)
            elif isinstance(value, str):
                kw[name] = value
            else:
                raise InputError(f"{path}: damaged {_WHAT} ({g.name} {name} is neither a number nor text)")
    return cls(**kw)


def _check_result(kw: dict[str, Any], path: PathLike) -> None:
    """What the writer guarantees, checked on reading: kinds, finiteness, ranges and shapes of the common part and each method's."""

    def bad(why: str) -> NoReturn:
        raise InputError(f"{path}: damaged {_WHAT} ({why})")

    for name in ("chi2", "reduced_chi2", "n_params"):
        if not (np.isfinite(kw[name]) and kw[name] >= 0):
            bad(f"{name} must be a finite number >= 0; got {kw[name]!r}")
    if kw["n_data"] < 0:
        bad(f"n_data must be >= 0; got {kw['n_data']}")
    for name in ("delays", "q", "dS", "dS_fit"):
        if not np.all(np.isfinite(kw[name])):
            bad(f"{name} holds NaN or inf")
    for name in ("delays", "q"):
        if kw[name].size and np.any(np.diff(kw[name]) <= 0):
            bad(f"{name} must increase strictly")
    if np.any(~(kw["sigma"] > 0)):
        bad("sigma must be > 0 everywhere")
    parts = {"ensemble": kw["ensemble"], "pdf": kw["pdf"]}
    if kw["method"] in parts and parts[kw["method"]] is None:
        bad(f"a {kw['method']} fit without its /{kw['method']} group")
    e = kw["ensemble"]
    if e is not None:
        T = len(kw["delays"])
        if not (0 < e.gamma <= 1) and kw["converged"]:
            bad(f"a converged fit with γ = {e.gamma:g} outside (0, 1]")
        w = np.asarray(e.weights, dtype=float)
        if w.ndim != 1 or np.any(~np.isfinite(w)) or np.any(w < 0) or (w.size and abs(w.sum() - 1) > 1e-6 and w.sum() > 0):
            bad("weights must be numbers >= 0 that sum to 1")
        if np.shape(e.trajectories) != w.shape or np.shape(e.dissociated) != w.shape:
            bad("weights, trajectories and dissociated differ in length")
        P, K = len(e.pair_labels), np.size(e.quantile_levels)
        for name, shape in (
            ("distance_mean", (T, P)),
            ("distance_std", (T, P)),
            ("distance_quantiles", (T, P, K)),
            ("dissociated_fraction", (T,)),
        ):
            if np.shape(getattr(e, name)) != shape:
                bad(f"ensemble/{name} has shape {np.shape(getattr(e, name))}, expected {shape}")
    p = kw["pdf"]
    if p is not None:
        R = np.size(p.r)
        if np.ndim(p.r) != 1 or not np.all(np.isfinite(p.r)) or (R > 1 and np.any(np.diff(p.r) <= 0)):
            bad("pdf/r must be finite and increase strictly")
        if np.shape(p.dP) != (len(kw["delays"]), len(p.pair_types), R):
            bad(f"pdf/dP has shape {np.shape(p.dP)}, expected {(len(kw['delays']), len(p.pair_types), R)}")


def read_fit(path: PathLike) -> FitResult:
    """Read a fit result file (opened read-only).

    Every array's kind and size are checked against the memory limit before
    it is read (:func:`molmovie.io.read_array`), so a forged header cannot
    make the reader allocate what the file does not hold.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    FitResult

    Raises
    ------
    InputError
        If the file is missing, not HDF5, of another format or a newer
        version, or damaged.
    """

    path = Path(path)
    try:
        kw = _read_fit(path)
    except OSError as exc:  # the HDF5 library meets damage only as it reads (bytes flipped inside a chunk)
        raise InputError(f"{path}: damaged {_WHAT} (cannot be read: {shorten(str(exc), 120)})") from None
    _check_result(kw, path)
    return FitResult(**kw)


def _read_fit(path: Path) -> dict[str, Any]:
    import h5py

    with reading_hdf5(path, "fit result file", f"not an HDF5 file, so not a {_WHAT}") as f:
        check_format(f.attrs, path, FIT_FORMAT, FIT_VERSION, _WHAT)
        try:
            kw = {name: _text(f.attrs[name]) for name in _ROOT_ATTRS}
            kw["settings"] = json.loads(f.attrs.get("settings", "{}"))
            kw["provenance"] = json.loads(f.attrs.get("provenance", "{}"))
            if not isinstance(kw["settings"], dict) or not isinstance(kw["provenance"], dict):
                raise ValueError("settings and provenance must be JSON objects")
            if not isinstance(kw["converged"], (bool, np.bool_)) and kw["converged"] not in (0, 1):
                raise ValueError(f"converged must be true or false; got {shorten(kw['converged'], 40)}")
            kw["converged"] = bool(kw["converged"])
            for name in ("method", "message", "sigma_source"):
                kw[name] = str(kw[name])
            for name in ("chi2", "n_params", "reduced_chi2"):
                kw[name] = float(kw[name])
            if not all(isinstance(kw[n], (bool, np.bool_, int, np.integer)) for n in ("converged", "n_data")):
                raise ValueError("converged and n_data must be a boolean and a whole number")
            kw["n_data"] = int(kw["n_data"])
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise InputError(f"{path}: damaged {_WHAT} ({shorten(str(exc), 120)})") from None
        for name, units in _ROOT_UNITS.items():
            kw[name] = _array(f, name, units, path)
        for name in ("delays", "q"):
            if kw[name].ndim != 1:
                raise InputError(f"{path}: damaged {_WHAT} ({name} has shape {kw[name].shape}, expected one dimension)")
        T, Q = len(kw["delays"]), len(kw["q"])
        for name in ("dS", "sigma", "dS_fit"):
            if kw[name].shape != (T, Q):
                raise InputError(f"{path}: damaged {_WHAT} ({name} has shape {kw[name].shape}, expected {(T, Q)})")
        if "atoms" in f and not isinstance(f["atoms"], h5py.Group):
            raise InputError(f"{path}: damaged {_WHAT} (/atoms is not a group)")
        kw["symbols"] = _strings(f["atoms"], "symbols", path) if "atoms" in f else None
        kw["molecule"] = str(_text(f.attrs["molecule"])) if "molecule" in f.attrs else None
        for part in ("ensemble", "pdf"):
            if part in f and not isinstance(f[part], h5py.Group):
                raise InputError(f"{path}: damaged {_WHAT} (/{part} is not a group)")
        kw["ensemble"] = (
            _read_part(f["ensemble"], EnsemblePart, _ENSEMBLE_UNITS, _ENSEMBLE_STRINGS, _ENSEMBLE_ATTRS, path)
            if "ensemble" in f
            else None
        )
        kw["pdf"] = _read_part(f["pdf"], PdfPart, _PDF_UNITS, _PDF_STRINGS, _PDF_ATTRS, path) if "pdf" in f else None
    return kw
