r"""Signal fit at inference: refine predicted distances against the signal, with the prediction as prior.

An inversion method answers every frame with distances and a standard
deviation, :math:`\hat R \pm \hat\sigma`. Read as a Gaussian prior on
:math:`u = \log R` (the VRNN's own Gaussian, for its default ``target="log"``;
the delta method, :math:`\sigma_u = \hat\sigma / \hat R`, for any other), it
is combined with the likelihood of the measured ΔS under Eq. (1), and each
frame's distances become the maximum a posteriori (MAP) estimate

.. math::

    \hat u = \arg\min_u \sum_{m,t} \Big[
        \tfrac12 \sum_q \Big(\frac{\Delta S^{\mathrm{Eq.1}}_{mtq}(e^{u}) - \Delta S_{mtq}}{\sigma_{mq}}\Big)^2
        + \tfrac{w}{2} \sum_p \Big(\frac{u_{mtp} - \log \hat R_{mtp}}{\hat\sigma_{mtp} / \hat R_{mtp}}\Big)^2 \Big],

over the valid frames t of every series m, with the forward model the one the
signals were simulated with (:func:`molmovie.scattering.simulate`, Eq. (1) of
Asenov et al. through :class:`~molmovie.scattering.DebyeTorch`):

.. math::

    \Delta S^{\mathrm{Eq.1}}_{mt}(q) = \frac{I(q; R_{mt})}{I_{\mathrm{ref},m}(q)} - 1 .

The reference :math:`I_{\mathrm{ref}}` is the one of the signals'
:class:`~molmovie.scattering.SignalSpec`: given (``I_ref``: a measured
laser-off pattern, or a model's stored ground state), else for
``reference="first"`` the intensity of the series' own first frame, refined
with the others (so the model's ΔS is 0 at t = 0 like the data, and every
frame informs the reference), and for ``reference="ground"`` the mean
first-frame intensity of the prior means of all series given (held fixed).

The noise level σ_q (a fraction, like ΔS) ties the prior's weight to the
data: the rule, when ``noise`` is not given,

* photon noise (``spec.photons`` = N photons per pattern): the Poisson
  standard deviation of ΔS that :func:`~molmovie.scattering.simulate` draws,
  :math:`\sigma_q = \sqrt{\sum_{q'} I_\mathrm{ref}(q') / (N\, I_\mathrm{ref}(q))}`
  (the counts' variance :math:`I(q) \sum I / N` with :math:`I \approx I_\mathrm{ref}`,
  ΔS being a few per cent), from the prior means' reference;
* noise-free signals (``spec.photons`` None): :data:`NOISE_FREE_SIGMA`, a
  stated floor for what remains between an idealised Eq. (1) and any real
  signal (see its comment for how it was chosen).

``weight`` (w) multiplies the prior term on top of that (w = 1: the posterior
of a calibrated prior and the stated noise).

By default only the distances between two non-hydrogen atoms are refined
(``pairs="heavy"``); the others keep the prior. A hydrogen's f² is about
1/36 of a carbon's: the signal hardly constrains its distances, and a fit
that may move them uses them to absorb what the heavy atoms leave (measured
on the quick preset's C2H4 test split, VRNN prior, σ_q = 0.03: refining all
pairs raised the labelled RMSD sum from 436 to 452; the heavy pairs alone
lowered every score).

The minimisation runs over all frames of one series at once, in float64.
On the CPU (the compiled Eq. (1), below) it is Levenberg-Marquardt on the
whole series (``solver="gauss-newton"``, :mod:`._refine_gauss_newton`): the
objective is a sum of squares whose Jacobian the kernel gives in closed form,
and with the reference "first" its Gauss-Newton matrix is block-arrowhead
(each frame, plus frame 0 that every frame's reference depends on), solved
exactly per iteration, after a fit of every frame alone with the reference
held, and followed by a continuation in time (each frame refitted from its
neighbours' answers, kept where its objective falls; ``sweeps=0``: none;
:mod:`._refine_gauss_newton`). On the GPU where PyTorch finds one
(``device="auto"``), with ``kernel="torch"``, with ``solver="lbfgs"`` and for
signals with a time resolution (whose frames all mix), the minimiser is
``torch.optim.LBFGS`` with a strong-Wolfe line search, ``max_iter``
iterations (100 by default), which stops short of the minimum where the
reference is "first". Measured on the quick preset's test splits (nearest
method's prior; ``benchmarks/bench_refine.py --study``, one run): the
objective summed over each split fell from 59,300 to 12,000 on NMM, 5,560 to
440 on CS2 and 173 to 19 on bound CS2 (equal on C2H4 and bound C2H4), the
per-frame symmetry-aware RMSD sums of CS2 and bound CS2 from 26.7 and 13.9 Å
to 2.43 and 1.60 Å, in 10.05 s for the five splits against 100.2 s for PyTorch's
L-BFGS and 6.86 s for L-BFGS on the compiled kernels (one run, docs/benchmarks.md). The L-BFGS variable is
:math:`y = L^\top z`, with :math:`z = (u - \log\hat R)/(\hat\sigma/\hat R)`
the prior-whitened log distances and L the Cholesky factor of each frame's
Gauss-Newton Hessian at the prior mean (below): the data term's curvature
exceeds the prior's by orders of magnitude in some directions, and this
makes the problem nearly isotropic. Series are independent (except through
a shared given reference). L-BFGS takes them one at a time: one L-BFGS over
several series, whose misfit is not convex, reached different minima with
different companions (up to 0.7 Å on single frames), so a series' answer
would have depended on which others were predicted with it.
Levenberg-Marquardt takes a batch of series at once (within ``memory_mb``),
each its own problem with its own damping, steps and stop, so that a
series' answer is the same, bit for bit, alone or in company (tested).

With ``space="geometry"`` the variables are the atoms' coordinates
:math:`X_{mt}` of every frame instead, and :math:`u = \log R(X)`: the same
objective, over distance sets that some geometry has. Distances fitted freely
may break the triangle inequality (measured on a quick-preset CS2 model: a
C–S distance of 11.1 Å beside an S–S of 4.2 Å and the other C–S of 1.8 Å), and
classical MDS then turns them into a distorted molecule. The fit starts from
the geometry nearest the prior (the prior term alone, a weighted stress in log
distances, from classical MDS of the prior means), then adds the signal; every
pair moves with the atoms, so ``pairs`` does not apply. It is slower (no
preconditioner; 300 L-BFGS iterations per stage by default).

The misfit of a distance is not convex: :math:`\sin(qR)/(qR)` has a minimum
every :math:`\pi/q_\mathrm{max}` (0.46 Å at 6.8 Å⁻¹), so a prior that
is off by more than that (a departing atom whose speed the network has
wrong) leaves the fit in a wrong minimum that fits the signal worse. The
geometry fit then continues in time (``sweeps``): frame by frame, forward
and then backward, each frame is fitted again from its neighbour's answer
and keeps the new answer only if its posterior objective is lower, so a
frame the fit got right carries its neighbours along a dissociation. This is
the same MAP under the same prior, searched better (measured on a quick
preset CS2 model, seed 0, test split: symmetry-aware RMSD sum per frame
192 → 84 Å and SSR sum 11.9 → 5.6). Each frame's refit is a small
least-squares problem of 3N coordinates, solved by Levenberg-Marquardt with
the Jacobian in closed form, the same frame of every series at once (each its
own problem, so series stay independent up to the rounding of batched matrix
products). This replaced 10 L-BFGS iterations per frame, one frame at a time,
whose Python overhead made the continuation 35 of 47 s on that test split (8
series); 40 Levenberg-Marquardt iterations took 3-5 s there and gave the same
scores within 0.5 % (10 or 20 of them missed a basin on two series: per-frame
sum 96 instead of 84).

The posterior standard deviation (``posterior="laplace"``) is the diagonal of
the inverse Gauss-Newton Hessian at the MAP (the Laplace approximation),
frame by frame, with the reference held at its MAP value,

.. math::

    H_{mt} = w\,\mathbb{1} + A^\top A, \quad
    A_{qp} = \frac{1}{\sigma_{mq}} \frac{\partial \Delta S_{mtq}}{\partial u_{mtp}} \frac{\hat\sigma_{mtp}}{\hat R_{mtp}},
    \quad \sigma_{R,mtp} = R_{mtp} \frac{\hat\sigma_{mtp}}{\hat R_{mtp}} \sqrt{(H_{mt}^{-1})_{pp}};

the first frame of a ``reference="first"`` series, whose own ΔS is 0 by
construction, keeps the prior's relative width (:math:`\mathbb{1}/w`); for
``space="geometry"``, the same formula at the fitted geometry (the geometric
constraint left out). With
``posterior="prior"`` the prior's relative width is kept on every frame,
which ``"auto"`` does for noise-free signals: there σ_q is a stated floor,
not a noise model, and the Laplace width it implies is too narrow (measured
on the quick preset's CS2 test splits, VRNN prior, σ_q = 0.03: 80 % and 82 %
of true distances inside ±2σ with the Laplace std, 92 % and 90 % with the
prior's width around the refined distances, 89 % and 90 % unrefined).
The MAP and Laplace approximation: MacKay, "Information Theory, Inference,
and Learning Algorithms" (2003), ch. 27; Bishop, "Pattern Recognition and
Machine Learning" (2006), sec. 4.4.

Eq. (1) and its derivatives (``kernel``): on the CPU by the compiled
kernels, :class:`~molmovie.scattering.DebyeCompiled` (numba; the forward
kernel of :func:`~molmovie.scattering.intensity_from_distances` and a
vector-Jacobian product, as a ``torch.autograd.Function``), with the fits'
small steps compiled too: the data term as one autograd node
(:mod:`._refine_misfit`), the held pairs' part of Eq. (1) computed once, and
the continuation's Levenberg-Marquardt fits in numba (:mod:`._refine_lm`); on
a GPU, and with ``kernel="torch"``, by :class:`~molmovie.scattering.DebyeTorch`,
the reference they are tested against (values and gradients to 1e-10). The
fit is the same; its answer is not the same to the last bit, and where the
L-BFGS over a series stops short of its minimum (reference "first", 100
iterations), a difference of rounding moves single frames' answers: measured
on the quick preset's CS2 test split (nearest method's prior), a 1e-15
relative change of ΔS moved PyTorch's own answer by up to 0.13 Å on single
frames and its symmetry-aware RMSD sum from 26.70 to 26.59, the compiled
kernel's rounding to 26.49 (``benchmarks/bench_refine.py --study``).

This module holds the entry point, its checks, the reference and the noise
rule; the fit in log distances, with the Laplace posterior both spaces
report, is in :mod:`._refine_distance_space`, the fit of the coordinates in
:mod:`._refine_geometry_space`, and the continuation in time in
:mod:`._refine_continuation`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._guards import check_allocation
from .._typing import Progress, Symbols
from ..geometry import heavy_pairs, n_atoms_from_pairs
from ..scattering.spec import SignalSpec
from ._base import check_choice, check_number
from ._refine_continuation import _SWEEP_ITER, _continuation, _frame_residuals, _levenberg_marquardt  # noqa: F401
from ._refine_distance_space import _hessians, _lbfgs, _posterior, _refine_batch  # noqa: F401
from ._refine_geometry_space import _TINY_R2, _geometry_start, _log_distances, _pair_offsets, _pairs  # noqa: F401

__all__ = ["refine_distances", "check_refine_settings", "NOISE_FREE_SIGMA", "POSTERIORS", "PAIRS", "SPACES", "KERNELS", "SOLVERS"]

#: σ of ΔS (a fraction, every q) assumed for noise-free signals (``spec.photons`` None).
#: Study revision 7: 0.003, chosen on the paper preset's validation splits (seed-0 VRNNs, geometry fit,
#: ``benchmarks/refine_study.py --split val``) among 0.03, 0.01 and 0.003: 0.003 lowered the per-frame
#: symmetry-aware RMSD sum of all five experiments (by 7 % on C2H4 to 82 % on CS2), the SSR sum of all
#: five (by 5 % on NMM to 92 % on CS2) and every RMSD sum of NMM, CS2 and bound CS2, and raised C2H4's
#: labelled sum by 1 % and bound C2H4's labelled and per-trajectory sums by 3 % and 2 %. At 0.03 (revision
#: 3 to 6, chosen on the quick preset with the distance fit) the prior outweighed the data where the
#: VRNN hedges: on bound CS2 it kept the asymmetric stretch at a quarter of the truth's.
NOISE_FREE_SIGMA = 0.003

#: How the refined standard deviation is taken.
POSTERIORS = ("auto", "laplace", "prior")

#: Which distances are refined.
PAIRS = ("all", "heavy")

#: What the fit varies: the log distances, or the atoms' coordinates.
SPACES = ("distances", "geometry")

#: How Eq. (1) and its derivatives are evaluated.
KERNELS = ("auto", "compiled", "torch")

#: How the fit of distances is minimised.
SOLVERS = ("auto", "gauss-newton", "lbfgs")

#: Most continuation passes (each costs a fit per frame).
_MAX_SWEEPS = 100


def refine_distances(
    mean: ArrayLike,
    std: ArrayLike,
    dS: ArrayLike,
    *,
    symbols: Symbols,
    spec: SignalSpec,
    lengths: ArrayLike | None = None,
    I_ref: ArrayLike | None = None,
    noise: float | ArrayLike | Literal["residual"] | None = None,
    weight: float = 1.0,
    max_iter: int | None = None,
    posterior: str = "auto",
    pairs: str = "heavy",
    space: str = "distances",
    sweeps: int = 1,
    device: str = "auto",
    kernel: str = "auto",
    solver: str = "auto",
    memory_mb: float = 256.0,
    progress: Progress | None = None,
    dt: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """MAP distances given the signal, with predicted distances ± std as a Gaussian prior in log R.

    Parameters
    ----------
    mean : array_like, shape (M, T, P) or (T, P), Angstrom
        Predicted distances (the prior's centre), pairs in ``numpy.triu_indices``
        order; finite and > 0 on valid frames (anything past each length).
    std : array_like, same shape, Angstrom
        Their standard deviations (the prior's width), finite and > 0 on valid frames.
    dS : array_like, shape (M, T, Q) or (T, Q), a fraction
        The signals the prediction was made from, on ``spec.q``.
    symbols : sequence of str
        The molecule's atoms, in the order the pairs follow.
    spec : SignalSpec
        How the signals were made: q grid, inelastic term, reference, photons,
        time resolution. With ``spec.irf_fs`` the fit's ΔS of each series is
        smeared in time as :func:`molmovie.scattering.simulate_signals` smears
        it (a normalised Gaussian over the series' valid frames, ``dt`` apart):
        every frame's data then speak for its neighbours too. The
        preconditioner and the Laplace σ take each frame's block of that
        coupled problem alone (σ conditional on the neighbours: a lower bound),
        and the geometry fit's continuation in time is not run (``sweeps``
        ignored: its per-frame refits assume frames that do not mix).
    lengths : array_like of int, shape (M,), optional
        Valid frames per series (default: every frame).
    I_ref : array_like, shape (Q,) or (M, Q), electron units, optional
        The reference intensity, when known (see the module notes for the default).
    noise : float, array_like of shape (Q,), or "residual", optional
        σ of ΔS per q, a fraction; "residual": per series, the rms misfit of
        the prior means' ΔS (frame 0 left out for reference "first");
        default: the rule in the module notes.
    weight : float, default 1
        w, the prior term's multiplier (> 0).
    max_iter : int, optional
        Most L-BFGS iterations per series (per stage for ``space="geometry"``);
        default 100 for "distances", 300 for "geometry". Levenberg-Marquardt
        stops at its own tolerance or its stages' caps (15 iterations for a
        frame alone, 10 for the whole series per round, 20 at the end), the
        lower of those and ``max_iter``.
    posterior : {"auto", "laplace", "prior"}, default "auto"
        The returned std: the Laplace approximation's, or the prior's relative
        width; "auto": Laplace where the noise is known (``noise`` given, or
        ``spec.photons``), the prior's for noise-free signals (see the module notes).
    pairs : {"heavy", "all"}, default "heavy"
        The distances refined: only those between two non-hydrogen atoms
        (the others keep the prior's mean and std: a hydrogen's f² is about
        1/36 of a carbon's, so the signal hardly constrains them, and fitting
        them moves them to fit what the heavy atoms leave), or all. For
        ``space="geometry"`` every distance follows the atoms and this does not apply.
    space : {"distances", "geometry"}, default "distances"
        What is fitted: the log distances themselves, or the atoms'
        coordinates of every frame, so that the answer is a geometry (see the
        module notes).
    sweeps : int, default 1
        Continuation in time after the joint fit (0: none; see the module
        notes). For ``space="geometry"``: passes, each a forward and a backward
        pass over the frames. For distances with Levenberg-Marquardt: any
        value above 0 runs it, every frame fitted again from its neighbours'
        answers until none moves (``solver="lbfgs"`` has none).
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where the fit runs: "auto" is the GPU where PyTorch finds one, else the CPU.
    kernel : {"auto", "compiled", "torch"}, default "auto"
        How Eq. (1) and its derivatives are evaluated: by the compiled kernels
        (:class:`~molmovie.scattering.DebyeCompiled`, CPU only), or by
        PyTorch (:class:`~molmovie.scattering.DebyeTorch`, the reference, and
        the one that runs on a GPU); "auto": compiled on the CPU, PyTorch on a GPU
        ("compiled" with ``device="auto"`` runs on the CPU).
    solver : {"auto", "gauss-newton", "lbfgs"}, default "auto"
        How the fit of distances is minimised: Levenberg-Marquardt on each
        whole series with the Jacobian in closed form (compiled kernels only;
        converges, in tens of iterations), or L-BFGS (at most ``max_iter``
        iterations). "auto": Levenberg-Marquardt with the compiled kernels
        and signals without a time resolution, else L-BFGS (see the module
        notes). The geometry fit has its own (``space="geometry"``).
    memory_mb : float, default 256
        Rough working memory, MB, of the per-frame Hessians (built in chunks
        of frames of this size, at least one frame) and of the continuation's
        batches (chunks of series, at least one).
    dt : float, optional, fs
        The frames' spacing; needed (only) for signals with ``spec.irf_fs``.
    progress : callable(done, info), optional
        Called after each series' fit as ``progress(series_done, {"total": M, "unit": "series"})``
        (for ``space="geometry"``, its joint fit: the continuation and the
        standard deviations of all series follow the last call).

    Returns
    -------
    mean, std : ndarray, shape of ``mean``, Angstrom
        The MAP distances and their standard deviations; NaN past each length.

    Raises
    ------
    InputError
        For inconsistent shapes, non-finite or non-positive values inside a
        length, a bad setting, or signals with an instrument response and no ``dt``.

    Examples
    --------
    >>> import numpy as np
    >>> from molmovie.scattering import SignalSpec, q_grid, intensity_from_distances
    >>> spec, R = SignalSpec(q_grid(), reference="ground"), np.array([[2.0]])
    >>> I_ref = intensity_from_distances(["I", "I"], np.array([2.1]), spec.q)
    >>> dS = intensity_from_distances(["I", "I"], R, spec.q) / I_ref - 1
    >>> m, s = refine_distances(np.array([[2.05]]), np.array([[0.5]]), dS, symbols=["I", "I"], spec=spec, I_ref=I_ref)
    >>> round(float(m[0, 0]), 4)
    2.0
    """
    import torch

    if not isinstance(spec, SignalSpec):
        raise InputError(f"The 'spec' parameter must be a molmovie.scattering.SignalSpec; got {type(spec).__name__}")
    if spec.irf_fs is not None:
        if dt is None:
            raise InputError(
                f"signals made with a time resolution (irf_fs {spec.irf_fs:g} fs) need the frames' spacing (dt, fs) to be refined"
            )
        check_number("dt", dt, low=0, low_open=True, high=1e6)
    check_number("weight", weight, low=0, low_open=True)
    if max_iter is not None:
        check_number("max_iter", max_iter, low=0, integer=True)
    check_number("memory_mb", memory_mb, low=0, low_open=True)
    check_choice("posterior", posterior, POSTERIORS)
    check_choice("pairs", pairs, PAIRS)
    check_choice("space", space, SPACES)
    check_number("sweeps", sweeps, low=0, high=_MAX_SWEEPS, integer=True)
    if max_iter is None:
        max_iter = 300 if space == "geometry" else 100
    check_choice("device", device, ("auto", "cpu", "cuda"))
    check_choice("kernel", kernel, KERNELS)
    check_choice("solver", solver, SOLVERS)
    mean, std, dS, lengths, squeeze = _check_arrays(mean, std, dS, lengths, len(spec.q))
    if posterior == "auto":
        posterior = "laplace" if noise is not None or spec.photons is not None else "prior"
    M, T, P = mean.shape
    Q = len(spec.q)
    valid = np.arange(T)[None, :] < lengths[:, None]
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but PyTorch finds no CUDA GPU; use device 'cpu' or 'auto'")
    gpu = device == "cuda" or (device == "auto" and kernel != "compiled" and torch.cuda.is_available())
    dev = torch.device("cuda" if gpu else "cpu")

    if kernel == "compiled" and dev.type != "cpu":
        raise InputError("The 'kernel' setting 'compiled' runs on the CPU only; got device 'cuda' (use kernel 'torch' or 'auto')")
    from ..scattering import DebyeCompiled, DebyeTorch

    if kernel == "torch" or dev.type != "cpu" or spec.probe != "xray":
        # the PyTorch reference: on a GPU, and for electrons (the compiled gradient kernel is the X-ray one's)
        debye = DebyeTorch(list(symbols), np.array(spec.q), **spec.forward(), dtype=torch.float64, device=dev)
    else:
        debye = DebyeCompiled(list(symbols), np.array(spec.q), inelastic=spec.inelastic, dtype=torch.float64, device=dev)
    if solver == "gauss-newton" and space == "distances" and not isinstance(debye, DebyeCompiled):
        raise InputError(
            "The 'solver' setting 'gauss-newton' needs the compiled kernels (X-rays, on the CPU); use solver 'lbfgs' or 'auto'"
        )
    if solver == "gauss-newton" and spec.irf_fs is not None and space == "distances":
        # the time mixing couples every frame to its neighbours (JᵀJ banded, not arrowhead): that fit is L-BFGS's
        raise InputError(
            "The 'solver' setting 'gauss-newton' fits signals without a time resolution; "
            f"these have irf_fs {spec.irf_fs:g} fs (use solver 'lbfgs' or 'auto')"
        )
    if debye.n_pairs != P:
        raise InputError(f"{len(symbols)} atoms make {debye.n_pairs} pairs; the predicted distances have {P}")
    # the prior, whitened: u = mu + s z, z ~ N(0, 1/w) a priori; padded frames get harmless values
    mu = np.where(valid[..., None], np.log(np.where(valid[..., None], mean, 1.0)), 0.0)
    s = np.where(valid[..., None], std / np.where(valid[..., None], mean, 1.0), 1.0)
    frozen = (
        np.zeros(P, dtype=bool) if pairs == "all" or space == "geometry" else ~np.isin(np.arange(P), heavy_pairs(list(symbols)))
    )
    s_prior, s = s, np.where(frozen, 0.0, s)  # a frozen pair cannot move: u = log R̂ + 0 z
    data = np.where(valid[..., None], dS, 0.0)
    fixed_ref = _reference(I_ref, spec, mu, valid, debye, M, Q)
    prior_ref = fixed_ref if fixed_ref is not None else _first_intensity(debye, mu)
    mixing = None  # (M, T, T): each series' time resolution
    if spec.irf_fs is not None and dt is not None:
        mixing = _irf_mixing(lengths, T, float(dt), float(spec.irf_fs))
    sigma = _noise(
        noise,
        spec,
        prior_ref,
        M,
        Q,
        lambda: _prior_residual(debye, mu, data, prior_ref, valid, spec.reference == "first" and fixed_ref is None, mixing),
    )
    if mixing is not None:
        sweeps = 0  # the continuation's per-frame refits assume frames that do not mix

    out_mean = np.full((M, T, P), np.nan)
    out_std = np.full((M, T, P), np.nan)
    # per series: the (T, P, Q) temporaries of Eq. (1) and their gradients (forward, backward, line search),
    # and the per-frame (P, P) Hessians with their Cholesky factors
    check_allocation(8 * T * (6 * P * Q + 3 * P * P), f"refining one series of {T} frames x {P} pairs x {Q} q")

    def series(a: int | list[int]):
        """Series a's (or a list's) prior, data, noise, reference and mask as tensors, a batch of series."""
        rows = [a] if isinstance(a, int) else a
        tensors = [torch.as_tensor(np.ascontiguousarray(x[rows]), dtype=torch.float64, device=dev) for x in (mu, s, data, sigma)]
        ref = None if fixed_ref is None else torch.as_tensor(fixed_ref[rows], dtype=torch.float64, device=dev)
        return tensors, ref, torch.as_tensor(valid[rows], dtype=torch.float64, device=dev)

    def mix_of(a: int):
        if mixing is None:
            return None
        return torch.as_tensor(mixing[a : a + 1], dtype=torch.float64, device=dev)

    def keep(a: int | list[int], u, sd_u) -> None:
        rows = [a] if isinstance(a, int) else a
        v = valid[rows]
        out_mean[rows] = np.where(v[..., None], np.exp(u), np.nan)
        out_std[rows] = np.where(v[..., None], np.exp(u) * np.where(frozen, s_prior[rows], sd_u), np.nan)

    fitted = [a for a in range(M) if valid[a].any()]
    if space == "geometry":
        # one series at a time through the joint fit (one L-BFGS couples what it holds), then the
        # continuation in time for all series at once (frame by frame, each series' frame its own problem)
        N = n_atoms_from_pairs(P)
        X = torch.zeros((M, T, N, 3), dtype=torch.float64, device=dev)
        for a in range(M):
            if valid[a].any():
                (mu_a, s_a, data_a, sigma_a), ref, mask = series(a)
                X[a : a + 1] = _geometry_start(
                    debye, mu_a, s_a, data_a, sigma_a, ref, mask, float(weight), int(max_iter), mix_of(a)
                )
            if progress is not None:
                progress(a + 1, {"total": M, "unit": "series"})
        if sweeps and fitted:
            _continuation(
                X, np.array(fitted), debye, mu, s, data, sigma, fixed_ref, lengths, float(weight), int(sweeps), memory_mb
            )
        for a in fitted:
            (_, s_a, _, sigma_a), ref, _ = series(a)
            u_a = _log_distances(X[a : a + 1])
            keep(a, *_posterior(debye, u_a, s_a, sigma_a, ref, float(weight), posterior, memory_mb, mix_of(a)))
    else:
        from threadpoolctl import threadpool_limits

        # one BLAS thread: the fit's linear algebra is per frame, (P, P) and (Q, P), where a pool of threads only waits
        # (measured under load: 9 ms instead of 0.1 ms per Gauss-Newton system of a C2H4 series)
        with threadpool_limits(limits=1, user_api="blas"):
            if solver == "auto":
                solver = "gauss-newton" if isinstance(debye, DebyeCompiled) and mixing is None else "lbfgs"
            # L-BFGS: one series at a time, so no series' answer depends on the others predicted with it. Levenberg-
            # Marquardt keeps each series its own problem (its own damping, steps and stop) and takes a batch of
            # series at once, within memory_mb: the (T, Q, P) Jacobian of a series and the blocks made from it (about six
            # at once while a step is formed: measured 1.5x a three-block estimate, without the kernel's own output)
            size = 8 * T * (6 * Q * P + 4 * P * P + 4 * Q)
            batch = max(1, int(memory_mb * 2**20 // size)) if solver == "gauss-newton" else 1
            for start in range(0, len(fitted), batch):
                rows = fitted[start : start + batch]
                (mu_a, s_a, data_a, sigma_a), ref, mask = series(rows)
                keep(
                    rows,
                    *_refine_batch(
                        debye,
                        mu_a,
                        s_a,
                        data_a,
                        sigma_a,
                        ref,
                        mask,
                        float(weight),
                        int(max_iter),
                        posterior,
                        memory_mb,
                        None if mixing is None else mix_of(rows[0]),
                        solver,
                        bool(sweeps),
                    ),
                )
                if progress is not None:
                    progress(rows[-1] + 1, {"total": M, "unit": "series"})
            if progress is not None and (not fitted or fitted[-1] + 1 < M):
                progress(M, {"total": M, "unit": "series"})  # series with no valid frame have nothing to fit
    if squeeze:
        return out_mean[0], out_std[0]
    return out_mean, out_std


def check_refine_settings(method) -> None:
    """Validate a method's refinement settings: ``refine``, ``refine_weight``, and ``refine_noise``, ``refine_std``, ``refine_space``, ``refine_std_scale`` where it has them."""
    if not isinstance(method.refine, (bool, np.bool_)):
        raise InputError(f"The 'refine' setting must be True or False; got {method.refine!r}")
    check_number("refine_weight", method.refine_weight, low=0, low_open=True)
    if getattr(method, "refine_noise", None) is not None:
        check_number("refine_noise", method.refine_noise, low=0, low_open=True)
    if hasattr(method, "refine_std"):
        check_number("refine_std", method.refine_std, low=0, low_open=True)
    if hasattr(method, "refine_space"):
        check_choice("refine_space", method.refine_space, SPACES)
    scale = getattr(method, "refine_std_scale", None)
    if scale is not None and not (isinstance(scale, str) and scale == "auto"):
        if isinstance(scale, str):
            raise InputError(f"The 'refine_std_scale' setting must be a number > 0, None or 'auto'; got {scale!r}")
        check_number("refine_std_scale", scale, low=0, low_open=True)


def _check_arrays(
    mean: ArrayLike, std: ArrayLike, dS: ArrayLike, lengths: ArrayLike | None, n_q: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    dS = np.asarray(dS, dtype=float)
    squeeze = mean.ndim == 2
    dS_shape = dS.shape
    if squeeze:
        mean, std, dS = mean[None], std[None], dS[None] if dS.ndim == 2 else dS
    if mean.ndim != 3:
        raise InputError(
            f"The 'mean' parameter must have shape (series, frames, pairs) or (frames, pairs); got shape {mean.shape}"
        )
    if std.shape != mean.shape:
        raise InputError(f"The 'std' parameter must have the shape of 'mean' {mean.shape}; got shape {std.shape}")
    M, T, _P = mean.shape
    if dS.shape != (M, T, n_q):
        raise InputError(
            f"The 'dS' parameter must have shape {(M, T, n_q) if not squeeze else (T, n_q)} "
            f"(series, frames, q of the spec); got shape {dS_shape}"
        )
    if lengths is None:
        lengths = np.full(M, T, dtype=np.int64)
    else:
        raw = np.asarray(lengths)
        if raw.shape != (M,) or raw.dtype.kind not in "iuf" or not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
            raise InputError(f"The 'lengths' parameter must be {M} whole numbers, one per series; got shape {raw.shape}")
        if np.any(raw < 0) or np.any(raw > T):
            raise InputError(f"The 'lengths' parameter must lie between 0 and the number of frames {T}")
        lengths = raw.astype(np.int64)
    valid = np.arange(T)[None, :] < lengths[:, None]
    for name, a in (("mean", mean), ("std", std)):
        v = a[valid]
        if not (np.all(np.isfinite(v)) and np.all(v > 0)):
            raise InputError(f"The '{name}' parameter must be finite and > 0 (Angstrom) within each series' length")
    if not np.all(np.isfinite(dS[valid])):
        raise InputError("The 'dS' parameter has NaN or inf within a series' length")
    return mean, std, dS, lengths, squeeze


def _first_intensity(debye, mu: np.ndarray) -> np.ndarray:
    """Eq. (1) at each series' first-frame prior mean, (M, Q)."""
    import torch

    with torch.no_grad():
        R0 = torch.as_tensor(np.exp(mu[:, 0]), dtype=torch.float64, device=debye.q.device)
        return debye(R0).cpu().numpy()


def _reference(I_ref, spec: SignalSpec, mu: np.ndarray, valid: np.ndarray, debye, M: int, Q: int):
    """The fixed reference rows (M, Q), or None when it is each series' refined first frame."""
    if I_ref is not None:
        ref = np.asarray(I_ref, dtype=float)
        if ref.shape == (Q,):
            ref = np.broadcast_to(ref, (M, Q))
        if ref.shape != (M, Q) or not (np.all(np.isfinite(ref)) and np.all(ref > 0)):
            raise InputError(
                f"The 'I_ref' parameter must be finite and > 0 (electron units), of shape ({Q},) or ({M}, {Q}); "
                f"got shape {ref.shape}"
            )
        return np.array(ref)
    if spec.reference == "first":
        return None
    started = valid[:, 0]
    if not started.any():
        return np.ones((M, Q))  # nothing to refine
    return np.broadcast_to(_first_intensity(debye, mu)[started].mean(axis=0), (M, Q)).copy()


def _prior_residual(
    debye, mu: np.ndarray, data: np.ndarray, ref: np.ndarray, valid: np.ndarray, first: bool, mixing=None
) -> np.ndarray:
    """Per series, the rms over valid frames and q of ΔS from the prior means less the signal, (M,); the first frame left out when it is the reference."""
    import torch

    rms = np.empty(len(mu))
    with torch.no_grad():
        for m in range(len(mu)):
            frames = np.flatnonzero(valid[m])[1 if first else 0 :]
            if len(frames) == 0:
                rms[m] = 1.0
                continue
            if mixing is None:
                R = np.exp(mu[m, frames])
                signal = debye(torch.as_tensor(R, dtype=torch.float64, device=debye.q.device)).cpu().numpy() / ref[m] - 1.0
            else:  # every valid frame, mixed, then the frames scored
                n = int(valid[m].sum())
                R = np.exp(mu[m, :n])
                whole = debye(torch.as_tensor(R, dtype=torch.float64, device=debye.q.device)).cpu().numpy() / ref[m] - 1.0
                signal = (mixing[m, :n, :n] @ whole)[frames]
            rms[m] = np.sqrt(np.mean((signal - data[m, frames]) ** 2))
    return np.maximum(rms, 1e-12)


def _irf_mixing(lengths: np.ndarray, T: int, dt: float, fwhm: float) -> np.ndarray:
    """Per series, the (T, T) matrix of :func:`molmovie.scattering.simulate_signals`' time resolution: row i the
    normalised Gaussian weights (FWHM ``fwhm``, truncated at 6σ) of the series' valid frames j, zero elsewhere."""
    check_allocation(8 * len(lengths) * T * T, f"the time resolution's mixing of {len(lengths)} series x {T}² frames")
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    half = int(min(T - 1, np.ceil(6.0 * sigma / dt)))
    offset = np.arange(T)[:, None] - np.arange(T)[None, :]
    with np.errstate(under="ignore", over="ignore"):  # far tails underflow to 0, as in the signals' smoothing
        w = np.where(np.abs(offset) <= half, np.exp(-0.5 * (offset * dt / sigma) ** 2), 0.0)
    out = np.zeros((len(lengths), T, T))
    for m, n in enumerate(lengths):
        block = w[:n, :n]
        out[m, :n, :n] = block / block.sum(axis=1, keepdims=True)
    return out


def _noise(noise, spec: SignalSpec, ref: np.ndarray, M: int, Q: int, residual) -> np.ndarray:
    """σ of ΔS per series and q, (M, Q), by the module's rule unless given."""
    if isinstance(noise, str):
        if noise != "residual":
            raise InputError(f"The 'noise' parameter must be a number, {Q} numbers or 'residual'; got {noise!r}")
        return np.repeat(residual()[:, None], Q, axis=1)
    if noise is not None:
        sigma = np.asarray(noise, dtype=float)
        if sigma.shape not in ((), (Q,)) or not (np.all(np.isfinite(sigma)) and np.all(sigma > 0)):
            raise InputError(
                f"The 'noise' parameter must be one number or {Q} numbers (σ of ΔS per q, a fraction), "
                f"finite and > 0; got shape {sigma.shape}"
            )
        return np.broadcast_to(sigma, (M, Q)).copy()
    if spec.photons is not None:
        return np.sqrt(ref.sum(axis=1, keepdims=True) / (spec.photons * ref))
    return np.full((M, Q), NOISE_FREE_SIGMA)
