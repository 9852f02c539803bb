"""Small, exact trajectory files for tests: SHARC run folders and XYZ files written on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CS2_SYMBOLS = ("C", "S", "S")


def cs2_positions(n_steps: int, *, dissociate: bool = False, dt: float = 0.5, seed: int = 0) -> np.ndarray:
    """A linear CS2 that vibrates (symmetric stretch), or loses one S at 0.25 A/fs; shape (T, 3, 3)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps) * dt
    r1 = 1.55 + 0.05 * np.sin(2 * np.pi * t / 50.0)
    r2 = r1 + (0.25 * t if dissociate else 0.0)
    pos = np.zeros((n_steps, 3, 3))
    pos[:, 1, 2] = r1
    pos[:, 2, 2] = -r2
    return pos + 1e-3 * rng.standard_normal(pos.shape)


def write_xyz(path: Path, symbols, positions, times=None, comment="frame") -> Path:
    lines = []
    for k, frame in enumerate(positions):
        lines.append(f"{len(symbols)}")
        lines.append(f"  t= {times[k]:.5f}   1    1" if times is not None else f"{comment} {k}")
        lines += [f"{s} {x:.9f} {y:.9f} {z:.9f}" for s, (x, y, z) in zip(symbols, frame)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_sharc(folder: Path, positions, *, dt: float = 0.5, symbols=CS2_SYMBOLS, hop_at: int | None = 3) -> Path:
    """A SHARC run folder with output.xyz and output.lis (energy = 1.0 + 0.001*step eV, state 2 then 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(positions)
    times = np.arange(n) * dt
    write_xyz(folder / "output.xyz", symbols, positions, times)
    rows = ["#" + "=" * 60, "#     Step |  Time | State | Energy", "#  [fs] | diag | MCH | kin | pot | tot"]
    for k in range(n):
        if hop_at is not None and k == hop_at:
            rows.append("# Surface Hop: new state=    1 old state=    2 randnum=  0.48")
        state = 2 if hop_at is None or k < hop_at else 1
        tot = 1.0 + 0.001 * k
        rows.append(f"{k:10d} {times[k]:14.5f} {state:7d} {state:7d} {0.5:14.6f} {tot - 0.5:14.6f} {tot:14.6f} 1.0 0.1 0.0 100")
    (folder / "output.lis").write_text("\n".join(rows) + "\n")
    return folder


def run_cli(args, capsys) -> tuple[int, str, str]:
    """Run ``molmovie ARGS`` in-process; return (exit code, stdout, stderr)."""
    from molmovie.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, match: str | None = None) -> None:
    """Exit code 2 and exactly one 'molmovie: error:' line on stderr, no traceback."""
    import re

    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("molmovie: error:"), err
    assert "Traceback" not in err
    if match:
        assert re.search(match, lines[0]), lines[0]


def relabelling_tolerance(positions: np.ndarray, masses) -> float:
    """How far (Angstrom) a symmetry-aware RMSD of an exact answer may be from 0 through round-off.

    The best relabelling of a frame is chosen by QCP: the residual E_p + E_q - 2 lambda, lambda the
    largest root of Horn's quartic. For a (near-)linear molecule that root is (nearly) double, so
    floating point fixes it only to ~sqrt(eps) * lambda (lambda ~ E = sum_i m_i |x_i - centroid|^2),
    not eps * lambda. Two relabellings whose squared RMSDs differ by less than ~4 sqrt(eps) E / M
    (M the total mass) are then told apart by round-off, which differs from CPU to CPU (their BLAS);
    the one chosen is reported exactly (Kabsch), so the error is at most sqrt(4 sqrt(eps) E / M):
    ~4e-4 A for CS2, a thousandth of what a real mislabelling costs.
    """
    w = np.asarray(masses, dtype=float)
    x = np.asarray(positions, dtype=float).reshape(-1, len(w), 3)
    x = x[np.all(np.isfinite(x), axis=(1, 2))]
    centred = x - np.einsum("n,fna->fa", w, x)[:, None] / w.sum()
    second_moment = np.einsum("n,fna,fna->f", w, centred, centred).max()
    return float(np.sqrt(4 * np.sqrt(np.finfo(float).eps) * second_moment / w.sum()))


def mds_tolerance(positions: np.ndarray) -> float:
    """How far (Angstrom) coordinates that classical MDS recovers from exact distances may be from the truth, by round-off.

    MDS takes the eigen-decomposition of the centred Gram matrix G (eigenvalues lambda_1 >= lambda_2 ...),
    which the double centring of squared distances gives with an error delta ~ n eps lambda_1. First-order
    perturbation then moves the coordinates sqrt(lambda_k) v_k by ~delta / sqrt(lambda_k) (the eigenvalue)
    plus sqrt(max(lambda_k, lambda_l)) delta / |lambda_k - lambda_l| for each other direction l (the
    eigenvectors mixing): small for a compact molecule, ~1e-12 A for a CS2 bent by 1e-3 A (lambda ~1e-6 A^2),
    and at most ~sqrt(delta) where the molecule is (nearly) linear or planar. Zero eigenvalues (a planar
    or linear frame) are set to zero by MDS and cost nothing. The result: 10x the largest first-order
    bound over the finite frames, which depends on the geometry, not on the CPU's LAPACK.
    """
    x = np.asarray(positions, dtype=float)
    x = x.reshape(-1, *x.shape[-2:])
    x = x[np.all(np.isfinite(x), axis=(1, 2))]
    n = x.shape[1]
    eps = np.finfo(float).eps
    worst = 0.0
    for frame in x - x.mean(axis=1, keepdims=True):
        lam = np.linalg.svd(frame, compute_uv=False) ** 2  # the Gram matrix's non-zero eigenvalues
        delta = n * eps * lam[0]
        kept = lam[lam > 10 * n * eps * lam[0]]  # MDS zeroes the rest
        for k, lk in enumerate(kept):
            bound = delta / np.sqrt(lk) + sum(
                np.sqrt(max(lk, ll)) * delta / abs(lk - ll) for l, ll in enumerate(lam) if l != k and ll != lk
            )
            worst = max(worst, min(bound, np.sqrt(10 * n * eps * lam[0])))
    return 10 * worst


def users_cluster(**kwargs):
    """A Dask ``LocalCluster`` started as a user's own (a context manager), giving back the environment it changed.

    distributed's nannies write their workers' variables (thread counts, ``PYTHONHASHSEED``,
    ``__DASK_PARENT_PID``...) into this process's ``os.environ`` and leave them: a test that
    starts a cluster of its own must not leave them to the tests after it.
    """
    import contextlib
    import logging
    import os

    from distributed import LocalCluster

    @contextlib.contextmanager
    def cluster():
        saved = dict(os.environ)
        try:
            options = {"dashboard_address": None, "silence_logs": logging.ERROR} | kwargs
            with LocalCluster(**options) as started:
                yield started
        finally:
            os.environ.clear()
            os.environ.update(saved)

    return cluster()
