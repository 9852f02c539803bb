"""Benchmark: the electron forward model against the X-ray one (Eq. (1)), same geometries, same grid.

The electron I(s) runs through the same compiled kernels as Eq. (1), with the
weights 2|f_A||f_B| cos(η_A − η_B) in place of 2 f_A f_B (the issue's bar: within
1.5× of the X-ray kernel's time). Workload as ``bench_scattering.py``:
N-methylmorpholine (18 atoms, 153 pairs) displaced by 0.1 Å, fixed seed, on a
uniform 100-point grid (0.5 to 12 1/Å by default, where MeV-UED measures).

    python benchmarks/bench_electrons.py                # 20,100 geometries
    python benchmarks/bench_electrons.py --geoms 2000   # quicker

Timed, as the median of interleaved repeats (X-ray, electron, X-ray, ...; 1 thread):

- ``kernel``: :func:`molmovie.scattering.intensity_from_distances`, plans cached;
- ``irregular``: the same on a non-uniform grid (one sine per pair and point);
- ``cold plan``: the first call on a new grid (xraylib, or the ELSEPA spline);
- ``torch``: :class:`molmovie.scattering.DebyeTorch` forward, float64, a tenth of the geometries.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def interleaved(fns: dict, repeats: int) -> dict:
    """Median wall time of each fn, run in turns so that machine load falls on all alike."""
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geoms", type=int, default=20_100)
    ap.add_argument("--nq", type=int, default=100)
    ap.add_argument("--smax", type=float, default=12.0)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--energy-kev", type=float, default=3700.0)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()

    import numba

    from molmovie.geometry import distances
    from molmovie.molecules import builtin
    from molmovie.scattering import intensity_from_distances
    from molmovie.scattering.debye import _plan_cached

    numba.set_num_threads(1)
    mol = builtin("nmm")
    rng = np.random.default_rng(0)
    pos = mol.positions + 0.1 * rng.standard_normal((args.geoms, len(mol.symbols), 3))
    d = distances(pos)
    sym = list(mol.symbols)
    s = np.linspace(0.5, args.smax, args.nq)
    s_irr = np.sort(rng.uniform(0.5, args.smax, args.nq))
    xray = {"probe": "xray"}
    elec = {"probe": "electron", "energy_kev": args.energy_kev}
    print(
        f"{args.geoms} geometries of N-methylmorpholine ({len(sym)} atoms, {d.shape[1]} pairs), {args.nq} points to {args.smax:g} 1/Å, 1 thread"
    )

    def cold(kw):
        _plan_cached.cache_clear()
        t0 = time.perf_counter()
        intensity_from_distances(sym, d[:1], s + 1e-9 * rng.random(), **kw)
        return time.perf_counter() - t0

    intensity_from_distances(sym, d[:1], s[:-1], **xray)  # load the compiled kernels before timing a cold plan
    cold_x, cold_e = cold(xray), cold(elec)
    for grid in (s, s_irr):  # compile and cache plans
        intensity_from_distances(sym, d[:64], grid, **xray)
        intensity_from_distances(sym, d[:64], grid, **elec)
    rows = []
    for label, grid in (("kernel (uniform)", s), ("irregular grid", s_irr)):
        t = interleaved(
            {
                "x": lambda g=grid: intensity_from_distances(sym, d, g, **xray),
                "e": lambda g=grid: intensity_from_distances(sym, d, g, **elec),
            },
            args.repeats,
        )
        rows.append((label, t["x"], t["e"]))
    rows.append(("cold plan", cold_x, cold_e))
    if not args.no_torch:
        import torch

        from molmovie.scattering import DebyeTorch

        torch.set_num_threads(1)
        dt = torch.from_numpy(d[: max(1, args.geoms // 10)])
        mx, me = DebyeTorch(sym, s, **xray), DebyeTorch(sym, s, **elec)
        with torch.no_grad():
            t = interleaved({"x": lambda: mx(dt), "e": lambda: me(dt)}, args.repeats)
        rows.append((f"torch float64 ({dt.shape[0]} geometries)", t["x"], t["e"]))
    print(f"{'':34s} {'X-ray':>10s} {'electron':>10s} {'ratio':>7s}")
    for label, tx, te in rows:
        print(f"{label:34s} {tx * 1e3:8.1f} ms {te * 1e3:8.1f} ms {te / tx:7.2f}")


if __name__ == "__main__":
    main()
