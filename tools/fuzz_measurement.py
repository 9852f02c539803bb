"""Try the measurement commands as a hostile user would; count the clean answers.

    PYTHONPATH=src python tools/fuzz_measurement.py [--cases N] [--seed S] [--keep FOLDER]

Every case runs ``molmovie`` in this process on valid small files, mutated
files (truncated, bytes flipped, a group swapped for a dataset, links added,
dtypes and shapes changed, attributes not UTF-8) or hostile options. A case is
clean when it ends with exit 0, or with exit 2 and one ``molmovie: error:``
line and no traceback, and no input file changed, and (on an error) no output
file appeared. The unclean ones are printed with their arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import h5py
import numpy as np

Q = np.linspace(0.5, 6.0, 12)
DELAYS = np.arange(-150.0, 451.0, 50.0)


def _digest(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(folder))] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def make_base(folder: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from molmovie.io import write_dataset
    from molmovie.io.measurement import write_measurement
    from molmovie.measurement import simulate_measurement

    from _fit_fixtures import diatomic_ensemble

    write_dataset(diatomic_ensemble(8, seed=1, t_end=700.0, dt=25.0), folder / "basis.h5")
    meas = simulate_measurement(
        diatomic_ensemble(6, seed=2, t_end=500.0, dt=25.0), q=Q, delays=DELAYS, gamma=0.05, t0=30.0, irf_fs=70.0, photons=1e6
    )
    write_measurement(meas, folder / "meas.h5")
    from molmovie.cli import main
    from molmovie.datasets import Dataset, make_splits

    train = diatomic_ensemble(8, seed=3, t_end=300.0, dt=10.0)
    write_dataset(Dataset(train.ensemble, splits=make_splits(8, (6, 1, 1))), folder / "train.h5")
    for argv in (
        ["scatter", str(folder / "train.h5"), "--nq", "12", "--qmin", "0.5", "--qmax", "6"],
        ["train", str(folder / "train.h5"), "-o", str(folder / "model.safetensors"), "--method", "nearest"],
    ):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                main(argv)
            except SystemExit as exc:
                assert not exc.code, argv
    rng = np.random.default_rng(0)
    intensity = 100 + rng.random((DELAYS.size, Q.size))
    np.savez(folder / "beam.npz", q=Q, delays=DELAYS, intensity=intensity, variance=np.full(intensity.shape, 0.01))
    with h5py.File(folder / "beam.h5", "w") as f:
        f["q"] = Q
        f["q"].attrs["units"] = "1/A"
        f["delays"] = DELAYS
        f["delays"].attrs["units"] = "fs"
        f["intensity"] = intensity
        f["variance"] = np.full(intensity.shape, 0.01)
    rows = ["q " + " ".join(f"{d:g}" for d in DELAYS)] + [
        f"{q:g} " + " ".join(f"{v:g}" for v in intensity[:, i]) for i, q in enumerate(Q)
    ]
    (folder / "beam.txt").write_text("\n".join(rows) + "\n")


# --------------------------------------------------------------------------- file mutations


def _h5_mutations(src: Path, rng: np.random.Generator) -> list[tuple[str, callable]]:
    with h5py.File(src, "r") as f:
        names: list[str] = []
        f.visit(names.append)
        datasets = [n for n in names if isinstance(f[n], h5py.Dataset)]
        groups = [n for n in names if isinstance(f[n], h5py.Group)]
        attrs = [(n, a) for n in ["/", *names] for a in f[n].attrs]

    def edit(fn):
        def apply(path: Path):
            with h5py.File(path, "r+") as f:
                fn(f)

        return apply

    out = []
    for name in datasets:
        out += [
            (f"{name} swapped for a group", edit(lambda f, n=name: (f.__delitem__(n), f.create_group(n)))),
            (f"{name} as text", edit(lambda f, n=name: (f.__delitem__(n), f.__setitem__(n, np.bytes_("abc"))))),
            (f"{name} empty", edit(lambda f, n=name: (f.__delitem__(n), f.__setitem__(n, np.zeros((0,)))))),
            (f"{name} scalar", edit(lambda f, n=name: (f.__delitem__(n), f.__setitem__(n, 1.0)))),
            (
                f"{name} transposed/2-D",
                edit(lambda f, n=name: (lambda v: (f.__delitem__(n), f.__setitem__(n, np.atleast_2d(v).T.copy())))(f[n][()])),
            ),
            (
                f"{name} NaN",
                edit(
                    lambda f, n=name: (
                        lambda v: f[n].__setitem__(Ellipsis, np.full_like(v, np.nan)) if v.dtype.kind == "f" else None
                    )(f[n][()])
                ),
            ),
            (
                f"{name} huge",
                edit(
                    lambda f, n=name: (lambda v: f[n].__setitem__(Ellipsis, v * 1e300) if v.dtype.kind == "f" else None)(f[n][()])
                ),
            ),
            (
                f"{name} tiny",
                edit(
                    lambda f, n=name: (lambda v: f[n].__setitem__(Ellipsis, v * 1e-300) if v.dtype.kind == "f" else None)(
                        f[n][()]
                    )
                ),
            ),
            (
                f"{name} as complex",
                edit(
                    lambda f, n=name: (
                        lambda v: (f.__delitem__(n), f.__setitem__(n, v.astype(complex))) if v.dtype.kind in "fiu" else None
                    )(f[n][()])
                ),
            ),
            (
                f"{name} external link to meas",
                edit(lambda f, n=name: (f.__delitem__(n), f.__setitem__(n, h5py.ExternalLink("meas.h5", "/q")))),
            ),
            (f"{name} soft-link loop", edit(lambda f, n=name: (f.__delitem__(n), f.__setitem__(n, h5py.SoftLink("/" + n))))),
        ]
    for name in groups:
        out.append(
            (f"{name} group swapped for a dataset", edit(lambda f, n=name: (f.__delitem__(n), f.__setitem__(n, np.arange(3.0)))))
        )
    for node, attr in attrs:
        out += [
            (f"{node}@{attr} not UTF-8", edit(lambda f, n=node, a=attr: f[n].attrs.__setitem__(a, np.bytes_(b"\xff\xfe\x80")))),
            (f"{node}@{attr} a number", edit(lambda f, n=node, a=attr: f[n].attrs.__setitem__(a, 7))),
            (f"{node}@{attr} removed", edit(lambda f, n=node, a=attr: f[n].attrs.__delitem__(a))),
            (f"{node}@{attr} an array", edit(lambda f, n=node, a=attr: f[n].attrs.__setitem__(a, np.arange(3)))),
        ]
    return out


def _byte_mutations(rng: np.random.Generator, size: int) -> list[tuple[str, callable]]:
    out = []
    for frac in (0.0, 0.1, 0.5, 0.9, 0.99):
        out.append((f"truncated at {frac:.0%}", lambda p, fr=frac: p.write_bytes(p.read_bytes()[: int(fr * size)])))
    for _ in range(6):
        at = int(rng.integers(0, size))

        def flip(p, at=at):
            b = bytearray(p.read_bytes())
            b[at : at + 8] = bytes(rng.integers(0, 256, size=len(b[at : at + 8]), dtype=np.uint8))
            p.write_bytes(bytes(b))

        out.append((f"bytes flipped at {at}", flip))
    return out


def _npz_mutations() -> list[tuple[str, callable]]:
    def rewrite(**changes):
        def apply(p: Path):
            with np.load(p) as z:
                arrays = dict(z)
            for k, v in changes.items():
                if v is None:
                    arrays.pop(k, None)
                else:
                    arrays[k] = v(arrays[k]) if callable(v) else v
            with open(p, "wb") as fh:
                np.savez(fh, **arrays)

        return apply

    return [
        ("npz empty q", rewrite(q=np.zeros(0))),
        ("npz empty delays", rewrite(delays=np.zeros(0))),
        ("npz q 2-D", rewrite(q=lambda v: v[None])),
        ("npz q text", rewrite(q=np.array(["a"] * Q.size))),
        ("npz q decreasing", rewrite(q=lambda v: v[::-1].copy())),
        ("npz q NaN", rewrite(q=lambda v: np.where(np.arange(v.size) == 3, np.nan, v))),
        ("npz intensity NaN", rewrite(intensity=lambda v: np.full_like(v, np.nan))),
        ("npz intensity negative", rewrite(intensity=lambda v: -v)),
        ("npz variance negative", rewrite(variance=lambda v: -v)),
        ("npz variance wrong shape", rewrite(variance=lambda v: v[:, :-1])),
        ("npz variance zero", rewrite(variance=lambda v: 0 * v)),
        ("npz no intensity", rewrite(intensity=None)),
        ("npz intensity complex", rewrite(intensity=lambda v: v.astype(complex))),
        ("npz intensity bool", rewrite(intensity=lambda v: v > 100.5)),
        ("npz delays duplicated", rewrite(delays=lambda v: np.sort(np.r_[v[:-1], v[0]]))),
        ("npz q zero", rewrite(q=lambda v: v - v[0])),
    ]


# --------------------------------------------------------------------------- cases


def cases(base: Path, work: Path, rng: np.random.Generator) -> list[tuple[str, list[str], callable | None]]:
    """(label, argv with {W} for the work folder, preparation applied to the work folder)."""
    out: list[tuple[str, list[str], callable | None]] = []
    fit = [
        "fit",
        "{W}/meas.h5",
        "--basis",
        "{W}/basis.h5",
        "-o",
        "{W}/out.h5",
        "--set",
        "bootstrap=2",
        "--set",
        "profile=3",
        "--set",
        "grid=[3,2]",
    ]
    pdf = ["fit", "{W}/meas.h5", "-m", "pdf", "-o", "{W}/out.h5"]
    ingest = ["ingest", "{W}/beam.npz", "-o", "{W}/out.h5", "--molecule", "I2", "--t0", "0"]
    show = ["show", "{W}/meas.h5", "-o", "{W}/out.png"]
    sim = ["simulate-experiment", "{W}/basis.h5", "-o", "{W}/out.h5", "--delays=-100:300:50", "--q", "1:4:8"]

    def mutate(file: str, fn):
        return lambda w: fn(w / file)

    # files mutated: measurement (fit, pdf, show), basis (fit, simulate), beamline (ingest)
    for file, commands in (
        ("meas.h5", (fit, pdf, show)),
        ("basis.h5", (fit, sim)),
        ("beam.h5", (["ingest", "{W}/beam.h5", "-o", "{W}/out.h5", "--molecule", "I2"],)),
    ):
        muts = _h5_mutations(base / file, rng) + _byte_mutations(rng, (base / file).stat().st_size)
        for label, fn in muts:
            for cmd in commands if "@" not in label else commands[-1:]:  # attributes: the fastest reader of the file
                out.append((f"{cmd[0]} with {file}: {label}", cmd, mutate(file, fn)))
    for label, fn in _npz_mutations() + _byte_mutations(rng, (base / "beam.npz").stat().st_size):
        out.append((f"ingest beam.npz: {label}", ingest, mutate("beam.npz", fn)))
    for label, fn in _byte_mutations(rng, (base / "beam.txt").stat().st_size):
        out.append(
            (
                f"ingest beam.txt: {label}",
                ["ingest", "{W}/beam.txt", "-o", "{W}/out.h5", "--molecule", "I2", "--q-units", "1/A", "--delay-units", "fs"],
                mutate("beam.txt", fn),
            )
        )

    # options
    numbers = ["nan", "inf", "-inf", "-1", "0", "1e308", "1e-308", "abc", "", "1e999"]
    fit_boot = [a for a in fit if a not in ("bootstrap=2",)]
    fit_boot = [a for i, a in enumerate(fit_boot) if not (a == "--set" and fit_boot[i + 1] == "--set")]
    for opt in ("--bootstrap", "--seed", "--regularize"):
        for v in numbers:
            out.append((f"fit {opt}={v}", [*(fit_boot if opt == "--bootstrap" else fit), f"{opt}={v}"], None))
    for opt in ("--t0-range", "--irf-range"):
        for v in ("12", "1,2,3", "a,b", "2,1", "nan,1", "1:2:3", "-100:100", ",", "1e999,1", "-100,150"):
            out.append((f"fit {opt}={v}", [*fit, f"{opt}={v}"], None))
    for s in (
        "levels=abc",
        "levels=[]",
        "levels=[2]",
        "bootstrap=-1",
        "bootstrap=1e9",
        "t0_range=12",
        "t0_range=[1]",
        "irf_range=[0,0]",
        "regularize=-1",
        "regularize=1e308",
        "nope=1",
        "bootstrap=abc",
        "levels=[0.5,0.5]",
        "max_gamma=2",
        "gamma_range=[0,3]",
        "seed=-1",
        "hole=7",
        't0_range="1,2"',
    ):
        out.append((f"fit --set {s}", [*fit, "--set", s], None))
    for s in (
        "r_max=250",
        "r_max=-1",
        "r_max=nan",
        "r_max=1e308",
        "n_r=1000000000",
        "damping=-1",
        "regularize=abc",
        "regularize=-1",
        "bins=0",
        "nope=1",
    ):
        out.append((f"fit pdf --set {s}", [*pdf, "--set", s], None))
    for opt, vals in (
        ("--gamma", ["0", "2", "nan", "-0.1", "1"]),
        ("--t0", ["nan", "1e308", "-1e308"]),
        ("--irf-fs", ["-1", "nan", "1e308"]),
        ("--photons", ["-1", "0", "nan", "1e300", "1e-300"]),
        ("--seed", ["-1", "1e3", "2**70"]),
        ("--delays", ["1:0:1", "0:1e9:1e-3", "0:10:0", "abc", "1,2", "12"]),
        ("--q", ["0:0:1", "1:4:1e9", "-1:4:3", "1:4:2.5", "4:1:3"]),
        ("--trajectories", ["99", "-1", "a", "0:0", "0,0"]),
        ("--weights", ["1", "nan,1,1,1,1,1,1,1", "-1,1,1,1,1,1,1,1", "0,0,0,0,0,0,0,0"]),
    ):
        for v in vals:
            extra = ["--photons", "100"] if opt == "--seed" else []
            out.append((f"simulate-experiment {opt}={v}", [*sim, f"{opt}={v}", *extra], None))
    for opt, vals in (("--q", ["nan", "inf", "abc", "1,,2", "-1", "1e308", "3"]), ("--tmax", ["nan", "-1e308", "inf"])):
        for v in vals:
            out.append((f"show {opt}={v}", [*show, f"{opt}={v}"], None))
    out.append(("show to .txt", ["show", "{W}/meas.h5", "-o", "{W}/out.txt"], None))
    for opt, vals in (
        ("--molecule", ["C999999999", "Xx", "", "C-1", "H2O" * 1000]),
        ("--qmin", ["nan", "10", "-1"]),
        ("--qmax", ["0", "nan"]),
        ("--t0", ["nan", "1e308"]),
        ("--reference-before", ["1000", "nan", "-1e308", "100"]),
        ("--legendre", ["-1", "5"]),
        ("--axes", ["q,q", "x,y", "l,q,t"]),
        ("--variance-path", ["/dev/zero", "missing", "q"]),
        ("--symbols", ["I", "Xx Xx", ""]),
        ("--q-units", ["furlong"]),
        ("--delay-units", ["years"]),
        ("--signal-units", ["percent"]),
    ):
        for v in vals:
            out.append((f"ingest {opt}={v}", [*ingest, f"{opt}={v}"], None))

    # transfer and invert: a model trained on train.h5 (nearest), scored on and applied to datasets
    transfer = ["transfer", "{W}/model.safetensors", "{W}/train.h5", "-o", "{W}/out.json"]
    invert = ["invert", "{W}/model.safetensors", "{W}/train.h5", "-o", "{W}/out.h5"]
    for v in ("1e-6", "nan", "0", "-1", "5", "10", "1e308", "inf"):
        out.append((f"transfer --dt={v}", [*transfer, f"--dt={v}"], None))
    for v in ("nan", "-1", "1e308", "0"):
        out.append((f"transfer --tmax={v}", [*transfer, f"--tmax={v}"], None))
    for v in ("nope", "test", ""):
        out.append((f"transfer --split={v}", [*transfer, f"--split={v}"], None))
    muts = _h5_mutations(base / "train.h5", rng) + _byte_mutations(rng, (base / "train.h5").stat().st_size)
    for label, fn in muts:
        for cmd in (transfer, invert) if "@" not in label else (invert,):
            out.append((f"{cmd[0]} with train.h5: {label}", cmd, mutate("train.h5", fn)))
    for label, fn in _byte_mutations(rng, (base / "model.safetensors").stat().st_size):
        for cmd in (transfer, invert):
            out.append((f"{cmd[0]} with model.safetensors: {label}", cmd, mutate("model.safetensors", fn)))

    # outputs that are inputs, through links of every kind
    def link(kind: str, target: str, name: str):
        def apply(w: Path):
            p = w / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if kind == "symlink":
                p.symlink_to(w / target)
            elif kind == "hardlink":
                os.link(w / target, p)
            elif kind == "readonly":
                p.write_bytes(b"keep")
                p.chmod(0o444)
            elif kind == "folder":
                p.mkdir()
            elif kind == "external":
                with h5py.File(w / target, "r+") as f:
                    del f["sigma"]
                    f["sigma"] = h5py.ExternalLink(name, "/x")
                with h5py.File(p, "w") as f:
                    f["x"] = np.ones((DELAYS.size, Q.size))

        return apply

    for kind in ("symlink", "hardlink", "readonly", "folder"):
        for target in ("meas.h5", "basis.h5"):
            for cmd, name in ((fit, "out.h5"), (sim, "out.h5"), (show, "out.png"), (pdf, "out.h5")):
                for force in ([], ["--force"]):
                    out.append((f"{cmd[0]} -o as {kind} to {target} {force}", [*cmd, *force], link(kind, target, name)))
            for fig in ("ensemble_fit_signals.png", "ensemble_distances.png", "ensemble_parameters.png"):
                out.append(
                    (
                        f"fit figure {fig} {kind} to {target}",
                        [*fit, "--figures", "{W}/figs", "--force"],
                        link(kind, target, f"figs/{fig}"),
                    )
                )
    for kind in ("symlink", "hardlink", "readonly", "folder"):
        for target in ("model.safetensors", "train.h5"):
            for cmd, name in ((transfer, "out.json"), (invert, "out.h5")):
                for force in ([], ["--force"]):
                    out.append((f"{cmd[0]} -o as {kind} to {target} {force}", [*cmd, *force], link(kind, target, name)))
    out.append(("fit /sigma external link to the output", [*fit, "--force"], link("external", "meas.h5", "out.h5")))
    out.append(("fit --figures is -o", [*fit, "--figures", "{W}/out.h5"], None))
    out.append(("fit --figures is the measurement", [*fit, "--figures", "{W}/meas.h5"], None))
    out.append(
        (
            "ingest -o is the input through a symlink",
            ["ingest", "{W}/beam.npz", "-o", "{W}/l.h5", "--molecule", "I2", "--force"],
            link("symlink", "beam.npz", "l.h5"),
        )
    )
    out.append(("ingest -o is the variance file", [*ingest, "--force", "--variance-path", "{W}/v.txt", "-o", "{W}/v.txt"], None))
    return out


def run_case(argv: list[str], work: Path) -> tuple[int, str]:
    from molmovie.cli import main

    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main([a.replace("{W}", str(work)) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001
            code = -1
            err.write(traceback.format_exc())
    return code, err.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=0, help="at most this many (0: all)")
    parser.add_argument("--only", default="", help="only cases whose label contains this")
    parser.add_argument("--every", type=int, default=1, help="run every N-th case (a quicker sample)")
    args = parser.parse_args()
    os.environ.setdefault("MOLMOVIE_MAX_MEMORY", "2G")
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(args.seed)
    root = Path(tempfile.mkdtemp(prefix="molmovie-fuzz-"))
    base = root / "base"
    base.mkdir()
    make_base(base)
    todo = [c for c in cases(base, root, rng) if args.only in c[0]]
    todo = todo[:: args.every]
    if args.cases:
        todo = todo[: args.cases]
    bad = 0
    for i, (label, argv, prepare) in enumerate(todo):
        work = root / f"w{i}"
        shutil.copytree(base, work)
        try:
            if prepare is not None:
                prepare(work)
        except Exception as exc:  # noqa: BLE001  # a mutation that does not apply to this file
            print(f"skip  {label}: {exc}", flush=True)
            shutil.rmtree(work, ignore_errors=True)
            continue
        before = _digest(work)
        code, err = run_case(argv, work)
        after = _digest(work)
        lines = [x for x in err.splitlines() if x.strip()]
        named = [a.replace("{W}/", "") for i, a in enumerate(argv) if i == 0 or argv[i - 1] not in ("-o", "--output")]
        # an input of the command changed (through any link), or anything changed after an error
        changed = [k for k in before if before[k] != after.get(k) and (k in named or code != 0)]
        new = sorted(set(after) - set(before))
        clean = (code == 0 or (code == 2 and len(lines) == 1 and lines[0].startswith("molmovie: error:"))) and not changed
        if code not in (0, 2):
            clean = False
        if code == 2 and new:
            clean = False
        if not clean:
            bad += 1
            tail = err.strip().splitlines()[-1] if err.strip() else ""
            print(f"NOT CLEAN  {label}: exit {code}, {len(lines)} lines, changed {changed}, new {new}: {tail[:300]}", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    total = len(todo)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    limit = os.environ.get("MOLMOVIE_MAX_MEMORY")
    print(
        f"{total} cases, {total - bad} clean, {bad} not; peak memory of the process {peak:.0f} MiB (MOLMOVIE_MAX_MEMORY={limit})"
    )
    shutil.rmtree(root, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
