"""The ingest pipeline: a beamline file -> a :class:`Measurement` (units converted at the edge, ΔS and σ, q range, time zero)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..._errors import InputError
from ..._typing import PathLike
from ...measurement import sm_factor
from ...molecules import builtin, normalise_symbols
from ...scattering.electrons import check_probe
from ..measurement import Measurement
from ._read import _guess_format, read_beamline
from ._reference import difference_signal, pre_t0_chi2

BOHR = 0.529177210903  # Angstrom (CODATA 2018)

#: unit name -> factor to 1/Angstrom
Q_UNITS = {"1/Angstrom": 1.0, "1/nm": 0.1, "1/bohr": 1.0 / BOHR}
#: unit name -> factor to fs
DELAY_UNITS = {"fs": 1.0, "ps": 1000.0}
#: unit name -> factor to a fraction; "sM": the modified scattering ΔsM of electron diffraction, in the file's 1/s units,
#: turned into ΔI/I = ΔsM I_at / (s I_gs) (see :func:`ingest`)
SIGNAL_UNITS = {"fraction": 1.0, "percent": 0.01, "sM": 1.0}

_ALIASES = {
    "1/angstrom": "1/Angstrom",
    "1/a": "1/Angstrom",
    "a-1": "1/Angstrom",
    "angstrom-1": "1/Angstrom",
    "1/ang": "1/Angstrom",
    "inverseangstrom": "1/Angstrom",
    "1/nm": "1/nm",
    "nm-1": "1/nm",
    "1/bohr": "1/bohr",
    "bohr-1": "1/bohr",
    "1/a0": "1/bohr",
    "a0-1": "1/bohr",
    "fs": "fs",
    "femtosecond": "fs",
    "femtoseconds": "fs",
    "ps": "ps",
    "picosecond": "ps",
    "picoseconds": "ps",
    "fraction": "fraction",
    "1": "fraction",
    "percent": "percent",
    "%": "percent",
    "sm": "sM",
    "deltasm": "sM",
    "dsm": "sM",
}


def _unit(text: str, table: dict, what: str, option: str) -> str:
    key = re.sub(r"\s+", "", str(text)).lower().replace("å", "a").replace("^-1", "-1").replace("^{-1}", "-1")
    name = _ALIASES.get(key)
    if name is None or name not in table:
        raise InputError(f"unknown units {text!r} for {what}; {option} takes {', '.join(table)}")
    return name


#: Most atoms a molecule named by its formula may have (the formula is read before any list is built).
MAX_ATOMS = 10_000


def molecule_symbols(molecule: str | None, symbols: str | None) -> tuple[str | None, tuple[str, ...] | None]:
    """The molecule's name and element symbols from ``--molecule`` and ``--symbols``.

    ``symbols`` ("I I" or "I,I") wins; otherwise a built-in molecule's name
    ("cs2") or a formula ("I2", "CS2") gives them.
    """
    if symbols is not None:
        if len(symbols) > 8 * MAX_ATOMS:
            raise InputError(f"--symbols lists more than {MAX_ATOMS:,} atoms")
        syms = normalise_symbols([s for s in re.split(r"[\s,]+", symbols.strip()) if s])
        if not syms:
            raise InputError("--symbols is empty")
        return molecule, syms
    if molecule is None:
        return None, None
    try:
        return molecule, builtin(molecule).symbols
    except InputError:
        pass
    parts = re.findall(r"([A-Z][a-z]?)(\d*)", molecule)
    if not parts or "".join(e + n for e, n in parts) != molecule:
        raise InputError(f"cannot read the atoms of molecule {molecule!r} from its name; give --symbols (e.g. 'I I')")
    counts = [int(n or 1) for _, n in parts]  # digits only, so whole numbers; summed before any list is built
    if sum(counts) > MAX_ATOMS or min(counts) < 1:
        raise InputError(
            f"molecule {molecule!r} has {sum(counts):,} atoms; a gas-phase molecule here has 1 to {MAX_ATOMS:,} (a count of 0 is not one)"
        )
    return molecule, normalise_symbols([e for (e, _), n in zip(parts, counts, strict=True) for _ in range(n)])


def ingest(
    path: PathLike,
    *,
    kind: str = "auto",
    q_units: str | None = None,
    delay_units: str | None = None,
    signal_units: str | None = None,
    t0: float = 0.0,
    reference_before: float | None = None,
    laser_off: PathLike | None = None,
    qmin: float | None = None,
    qmax: float | None = None,
    molecule: str | None = None,
    symbols: str | None = None,
    probe: str = "xray",
    energy_kev: float | None = None,
    anisotropy: tuple[int, ...] = (),
    time_units: str | None = None,
    **read_options: Any,
) -> Measurement:
    """A beamline file as a :class:`Measurement`: units converted, ΔS and σ built, q range cut.

    Parameters
    ----------
    path : path-like
        The beamline file (see :func:`read_beamline`).
    kind : {"auto", "intensity", "difference"}
        Absolute intensities I(q, t) (ΔS is built against a reference) or a
        ready ΔS. ``"auto"``: intensities when the isotropic component is
        positive in the whole q range, a ready ΔS otherwise.
    q_units, delay_units, signal_units : str, optional
        Units of the file's q (:data:`Q_UNITS`), delays (:data:`DELAY_UNITS`)
        and, for a ready ΔS, of its values (:data:`SIGNAL_UNITS`); needed
        when the file's ``units`` attributes do not say, and they override
        them.
    t0 : float
        Time zero in the file's delay units; the stored delays are
        ``(delays - t0)`` in fs.
    reference_before : float, optional
        Intensities without ``laser_off``: the delays strictly before this
        time (file units; default ``t0``) form the reference.
    laser_off : path-like, optional
        A laser-off file as the reference instead: same format, dataset
        paths and Legendre stack; without a delay axis it is one pattern,
        with one its patterns are averaged. A text table is read without σ
        (``variance_path``/``std_path`` name the measurement's tables).
    qmin, qmax : float, optional
        q range kept, 1/Angstrom (inclusive).
    molecule, symbols : str, optional
        See :func:`molecule_symbols`.
    probe : {"xray", "electron"}, default "xray"
        What scattered; for electrons the file's q is s (same definition and
        units) and ΔS is ΔI/I. A ready ΔsM (``signal_units="sM"``, electrons
        only, in the file's 1/s units) is turned into
        ΔI/I = ΔsM · I_at / (s · I_gs), with I_at = Σ|f_A|² at the beam energy
        and I_gs the molecule's built-in geometry's intensity, or I_at where
        there is none (the ground state's own pair term neglected; the
        provenance says which); σ alike. It needs the atoms and s > 0.
    energy_kev : float, optional
        Electrons: the beam's kinetic energy, keV (default 3700).
    anisotropy : tuple of int, default ()
        Anisotropic Legendre orders l > 0 to keep beside the main order (which
        must then be 0): each is read as ``legendre=l`` with the same options and
        reference, ΔS_l = (S_l − S̄_l)/S̄_0 with its σ, and stored as the
        measurement's ``components`` (:class:`molmovie.measurement.LegendreComponent`).
    time_units : str, optional
        Units of ``t0`` and ``reference_before`` (:data:`DELAY_UNITS`, e.g.
        ``"fs"``, as the command line gives them); default the file's delay units.
    **read_options
        Passed to :func:`read_beamline` (paths, ``legendre``, ``axes``,
        ``q_in``, ``format``).

    Returns
    -------
    Measurement
        With provenance: source, arrays read, kind, reference, q range,
        units read, t0 shift, Legendre order, pre-t0 chi2/dof.
    """
    path = Path(path)
    if anisotropy:
        return _with_anisotropy(
            path,
            tuple(anisotropy),
            dict(
                kind=kind,
                q_units=q_units,
                delay_units=delay_units,
                signal_units=signal_units,
                t0=t0,
                reference_before=reference_before,
                laser_off=laser_off,
                qmin=qmin,
                qmax=qmax,
                molecule=molecule,
                symbols=symbols,
                probe=probe,
                energy_kev=energy_kev,
                time_units=time_units,
                **read_options,
            ),
        )
    probe, energy_kev = check_probe(probe, energy_kev)
    raw = read_beamline(path, **read_options)
    name, syms = molecule_symbols(molecule, symbols)
    qu = _unit(q_units or raw.units.get("q") or _missing("q", "--q-units", Q_UNITS), Q_UNITS, "q", "--q-units")
    du = _unit(
        delay_units or raw.units.get("delays") or _missing("the delays", "--delay-units", DELAY_UNITS),
        DELAY_UNITS,
        "the delays",
        "--delay-units",
    )
    if time_units is not None:  # t0 and reference_before in the file's delay units from here on
        tu = _unit(time_units, DELAY_UNITS, "t0", "time_units")
        t0 = t0 * DELAY_UNITS[tu] / DELAY_UNITS[du]
        reference_before = None if reference_before is None else reference_before * DELAY_UNITS[tu] / DELAY_UNITS[du]
    q = raw.q * Q_UNITS[qu]
    if not np.all(np.isfinite(q)) or np.any(np.diff(q) <= 0):
        raise InputError(f"{path}: q ({raw.paths.get('q', 'axis')}) must be finite and strictly increasing")
    if not np.all(np.isfinite(raw.delays)) or np.any(np.diff(raw.delays) <= 0):
        i = int(np.flatnonzero(~(np.diff(raw.delays) > 0))[0]) if np.any(~(np.diff(raw.delays) > 0)) else 0
        raise InputError(
            f"{path}: the delays must be finite and strictly increasing (index {i + 1}: {raw.delays[i]:g} then {raw.delays[min(i + 1, raw.delays.size - 1)]:g})"
        )
    lo = q[0] if qmin is None else qmin
    hi = q[-1] if qmax is None else qmax
    if hi < lo:
        raise InputError(f"the q range is empty: --qmax {hi:g} < --qmin {lo:g}")
    keep = (q >= lo - 1e-9 * max(1.0, abs(lo))) & (q <= hi + 1e-9 * max(1.0, abs(hi)))
    if not keep.any():
        raise InputError(
            f"no q point of the file lies in {lo:g} to {hi:g} 1/Angstrom (the file's q runs from {q[0]:g} to {q[-1]:g} 1/Angstrom)"
        )
    data, var = raw.data[:, keep], None if raw.variance is None else raw.variance[:, keep]
    iso = None if raw.isotropic is None else raw.isotropic[:, keep]
    iso_var = None if raw.isotropic_variance is None else raw.isotropic_variance[:, keep]
    for arr, what in ((data, "the data"), (var, "the variance"), (iso, "the isotropic component"), (iso_var, "its variance")):
        if arr is not None and not np.all(np.isfinite(arr)):
            t, k = np.argwhere(~np.isfinite(arr))[0]
            raise InputError(
                f"{path}: {what} holds NaN or inf in the chosen q range (q = {q[keep][k]:g} 1/Angstrom, delay {raw.delays[t]:g}); narrow --qmin/--qmax"
            )
    for arr, what in ((var, "variance"), (iso_var, "isotropic variance")):
        if arr is not None and np.any(arr < 0):
            t, k = np.argwhere(arr < 0)[0]
            raise InputError(f"{path}: negative {what} {arr[t, k]:g} at q = {q[keep][k]:g} 1/Angstrom, delay {raw.delays[t]:g}")
    if kind == "auto":
        kind = "intensity" if np.all((data if iso is None else iso) > 0) else "difference"
    if kind not in ("intensity", "difference"):
        raise InputError(f"kind must be intensity, difference or auto; got {kind!r}")
    delays_fs = (raw.delays - t0) * DELAY_UNITS[du]
    prov: dict[str, Any] = dict(
        made_by="ingest",
        source=str(path.resolve()),
        arrays=raw.paths,
        kind=kind,
        units_read=dict(q=qu, delays=du, file_attributes=raw.units),
        t0_shift_fs=float(t0 * DELAY_UNITS[du]),
        t0_file_units=float(t0),
        q_range=[float(q[keep][0]), float(q[keep][-1])],
        q_range_asked=[qmin, qmax],
        legendre=raw.legendre,
    )
    if kind == "difference":
        if laser_off is not None or reference_before is not None:
            raise InputError(
                "a ready ΔS (--kind difference) has its reference already; --laser-off and --reference-before do not apply"
            )
        su = _unit(
            signal_units or raw.units.get("data") or _missing("the ΔS values", "--signal-units", SIGNAL_UNITS),
            SIGNAL_UNITS,
            "the ΔS values",
            "--signal-units",
        )
        dS = data * SIGNAL_UNITS[su]
        sigma = None if var is None else np.sqrt(var) * SIGNAL_UNITS[su]
        prov["units_read"]["signal"] = su
        prov["reference"] = "given"
        if su == "sM":
            to_fraction, prov["sM_to_dI_over_I"] = _sm_factor(q[keep], Q_UNITS[qu], name, syms, probe, energy_kev)
            dS = dS * to_fraction
            sigma = None if sigma is None else sigma * to_fraction
    elif laser_off is not None:
        off_options = dict(read_options, single=True)
        off_path = Path(laser_off)
        if off_path.is_file() and (read_options.get("format") or _guess_format(off_path)) == "text":
            off_options.update(variance_path=None, std_path=None)
        off = read_beamline(laser_off, **off_options)
        if off.q.shape != raw.q.shape or not np.allclose(off.q, raw.q, rtol=1e-9, atol=0):
            raise InputError(f"{laser_off}: the laser-off file must have the q values of {path}")
        ref = (
            off.data[:, keep].mean(axis=0),
            None if off.variance is None else off.variance[:, keep].sum(axis=0) / off.data.shape[0] ** 2,
        )
        iso_ref = None
        if raw.legendre:
            if off.isotropic is None:
                raise InputError(f"{laser_off}: Legendre order {raw.legendre} needs order 0 of the laser-off file too")
            iso_ref = (
                off.isotropic[:, keep].mean(axis=0),
                None if off.isotropic_variance is None else off.isotropic_variance[:, keep].sum(axis=0) / off.data.shape[0] ** 2,
            )
        if not np.all(np.isfinite(ref[0])) or (ref[1] is not None and not np.all(np.isfinite(ref[1]))):
            raise InputError(f"{laser_off}: NaN or inf in the chosen q range")
        for part, what in ((off.variance, "variance"), (off.isotropic_variance, "isotropic variance")):
            if part is not None and np.any(part[:, keep] < 0):
                raise InputError(f"{laser_off}: negative laser-off {what} {float(part[:, keep].min()):g}; a variance is >= 0")
        dS, sigma = difference_signal(data, var, laser_off=ref, isotropic_laser_off=iso_ref)
        prov["reference"] = f"laser-off file {Path(laser_off).resolve()} (mean of {off.data.shape[0]} patterns)"
    else:
        before = t0 if reference_before is None else reference_before
        if before > t0:
            raise InputError(
                f"--reference-before {before:g} {du} is after time zero (--t0 {t0:g} {du}); a pre-t0 reference takes only "
                "delays before time zero"
            )
        rows = raw.delays < before
        if not rows.any():
            raise InputError(
                f"{path}: no delay before {before:g} {du} (the first is {raw.delays[0]:g} {du}), so no pre-t0 reference; "
                "give --t0 or --reference-before inside the delays, or --laser-off"
            )
        if raw.legendre and iso is None:
            raise InputError(
                f"{path}: ΔS of Legendre order {raw.legendre} is normalised by order 0, which the file does not hold"
            )
        dS, sigma = difference_signal(data, var, reference_rows=rows, isotropic=iso, isotropic_variance=iso_var)
        prov["reference"] = f"pre-t0 mean of {int(rows.sum())} delay{'s' if rows.sum() != 1 else ''}"
        prov["reference_delays_fs"] = delays_fs[rows].tolist()
    meas = Measurement(q[keep], delays_fs, dS, sigma, syms, name, prov, probe=probe, energy_kev=energy_kev)
    chi2, n = pre_t0_chi2(meas)
    if n and np.isfinite(chi2):
        prov["pre_t0_chi2_dof"] = chi2
    if "reference_delays_fs" in prov and before != t0:
        chi2, n = pre_t0_chi2(meas, before=(before - t0) * DELAY_UNITS[du])
        if np.isfinite(chi2):
            prov["reference_chi2_dof"] = chi2
    return meas


def _with_anisotropy(path: Path, orders: tuple[int, ...], options: dict[str, Any]) -> Measurement:
    """The measurement of order 0 with the anisotropic ``orders`` beside it (see :func:`ingest`)."""
    from dataclasses import replace

    from ...measurement import LegendreComponent

    try:
        wanted = sorted({int(v) for v in orders})
    except (TypeError, ValueError):
        raise InputError(f"--anisotropy takes even Legendre orders > 0, e.g. 2,4; got {orders!r}") from None
    if any(v <= 0 or v % 2 for v in wanted) or any(int(v) != v for v in orders):
        raise InputError(f"--anisotropy takes even Legendre orders > 0, e.g. 2,4; got {','.join(str(v) for v in orders)}")
    if int(options.get("legendre", 0) or 0) != 0:
        raise InputError("--anisotropy keeps orders beside the isotropic one: use it with --legendre 0")
    if options.get("kind") == "difference":
        raise InputError("--anisotropy needs absolute intensities (each order is normalised by order 0 of the reference)")
    base = ingest(path, **options)
    comps = []
    for order in wanted:
        part = ingest(path, **{**options, "legendre": order})
        comps.append(LegendreComponent(order, part.dS, part.sigma))
    prov = dict(base.provenance)
    prov["anisotropy"] = {
        "orders": wanted,
        "definition": "ΔS_l = (S_l − S̄_l)/S̄_0 against the same reference as order 0",
        "pre_t0_chi2_dof": {str(c.order): ingest_pre_t0(c, base) for c in comps},
    }
    return replace(base, components=tuple(comps), provenance=prov)


def ingest_pre_t0(comp: Any, base: Measurement) -> float | None:
    """Mean (ΔS_l/σ)² over the delays before time zero (None without σ or such delays)."""
    rows = base.delays < 0
    if comp.sigma is None or not rows.any():
        return None
    s = comp.sigma[rows]
    ok = s > 0
    return float(np.mean((comp.dS[rows][ok] / s[ok]) ** 2)) if ok.any() else None


def _sm_factor(
    s: np.ndarray, s_factor: float, name: str | None, syms: tuple[str, ...] | None, probe: str, energy_kev: float | None
) -> tuple[np.ndarray, str]:
    """(the factor that turns the file's ΔsM into ΔI/I, per s point; how I_gs was had), for --signal-units sM."""
    if probe != "electron":
        raise InputError("--signal-units sM is the modified scattering of electron diffraction; give --probe electron")
    factor, how = sm_factor(s, syms, name, energy_kev=energy_kev)  # ΔsM [1/Å] = factor ΔI/I
    # ΔsM [1/file unit] * s_factor = ΔsM [1/Å]
    return s_factor / factor, f"ΔI/I = ΔsM I_at / (s I_gs), I_at = Σ|f|² at {energy_kev:g} keV; {how}"


def _missing(what: str, option: str, table: dict) -> NoReturn:
    raise InputError(f"the file does not say the units of {what}; give {option} ({', '.join(table)})")
