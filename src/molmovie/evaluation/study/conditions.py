r"""The test conditions of the study: noise levels and forward models that are not the fit's.

Every method is trained as the preset says and then answers the test split
under each condition the preset names (:attr:`Preset.conditions`): the
test signals as simulated (``clean``), with Gaussian noise of a stated σ of
ΔS per q bin and frame (the noise ladder), or made by a forward model that
differs from the one every signal fit inverts (one effect at a time, noise
free). Scores are always against the truth: the true distances, and for the
SSR the clean signals of the true geometries.

Noise: :math:`\Delta S + \sigma\,\varepsilon`, ε standard normal, on every
valid frame and q (the first frame, which is 0 for ``reference="first"``,
too: its reference is measured as well). It is drawn once per condition,
experiment and draw seed (``SeedSequence(seed, spawn_key=(condition,
experiment))``), so every method answers the same noisy signals; a study of
K seeds draws K times (seeds s, ..., s+K-1), and a method without a training
seed answers every draw.

What a σ means in photons: for the counting noise of
:func:`molmovie.scattering.simulate` (N photons per pattern, Poisson), ΔS's
standard deviation at q is :math:`\sqrt{\sum_{q'} I(q') / (N I(q))}`
(:func:`photons_for`), so a σ flat in q is N(q) = Σ I / (σ² I(q)) photons per
pattern; :func:`photons_for` gives N at the median q of the grid.

Mismatches (noise free; each the only difference from the fit's model):

* ``q-scale``: the detector's q calibration off by +0.5 %: the data are
  Eq. (1) at 1.005 q, labelled q;
* ``background``: a smooth additive background in ΔS, constant in time,
  :math:`b(q) = A\,(1 - (q - q_0)/(q_1 - q_0))` on the grid q_0..q_1, with A
  one tenth of the test split's rms |ΔS| (an imperfect laser-off
  subtraction);
* ``form-factors``: the data's f(q) from Waasmaier and Kirfel's
  parametrisation (*Acta Cryst.* A51, 416 (1995), the coefficients ASE
  ships in ``ase.utils.xrdebye``) and hydrogen's exact 1s form factor
  :math:`f_H = (1 + (q a_0/2)^2)^{-2}`, where the fit uses xraylib's
  (Hubbell et al.); the incoherent term stays xraylib's (X-rays only);
* ``no-inelastic``: the data without the inelastic (Compton) term, the fit
  with it (X-rays only).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from ..._errors import InputError
from ...datasets import Dataset
from ...scattering import intensity_from_distances
from ...scattering.tables import incoherent

#: The noise ladder: σ of ΔS per q bin and frame, a fraction like ΔS.
NOISE_LEVELS = (0.001, 0.003, 0.01, 0.03)

#: The q calibration error of the ``q-scale`` condition (relative).
Q_SCALE = 0.005

#: The ``background`` condition's amplitude, relative to the test split's rms |ΔS|.
BACKGROUND = 0.1

#: The Bohr radius, Angstrom (CODATA 2018): hydrogen's 1s form factor.
_BOHR = 0.529177210903


@dataclass(frozen=True)
class Condition:
    """One test condition: noise of σ ``noise`` (0: none) or one forward-model ``mismatch`` (None: none)."""

    key: str
    label: str
    noise: float = 0.0
    mismatch: str | None = None

    @property
    def drawn(self) -> bool:
        """Whether its signals depend on a draw seed (noise)."""
        return self.noise > 0

    def applies(self, probe: str) -> bool:
        """Whether it applies to signals of a probe (the form-factor and inelastic mismatches are X-ray effects)."""
        return self.mismatch not in ("form-factors", "no-inelastic") or probe == "xray"


#: Every condition a preset may name, by key, in the tables' order.
CONDITIONS: dict[str, Condition] = {
    c.key: c
    for c in (
        Condition("clean", "noise-free"),
        *(Condition(f"noise-{s:g}", f"σ = {s:g}", noise=s) for s in NOISE_LEVELS),
        Condition("q-scale", f"q calibration +{100 * Q_SCALE:g} %", mismatch="q-scale"),
        Condition("background", "smooth background", mismatch="background"),
        Condition("form-factors", "other form factors", mismatch="form-factors"),
        Condition("no-inelastic", "no inelastic term in the data", mismatch="no-inelastic"),
    )
}


def check_conditions(keys: tuple[str, ...]) -> None:
    """Refuse unknown condition keys, naming the known ones."""
    unknown = [k for k in keys if k not in CONDITIONS]
    if unknown:
        raise InputError(f"unknown test conditions {', '.join(map(repr, unknown))}; conditions are {', '.join(CONDITIONS)}")


def condition_fingerprint(cond: Condition) -> dict:
    """What defines a condition's signals (stored with every score made under it)."""
    return {**asdict(cond), "q_scale": Q_SCALE, "background": BACKGROUND}


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def condition_signals(test: Dataset, cond: Condition, *, seed: int, experiment: str) -> np.ndarray:
    """The test split's signals under a condition, shape (M, T, Q), NaN past each length.

    Parameters
    ----------
    test : Dataset
        With positions and signals (the clean ones).
    cond : Condition
    seed : int
        The draw seed (noise conditions).
    experiment : str
        The experiment's key: a part of the draw's seed, so experiments sharing a split draw apart.
    """
    spec, dS = test.spec, test.dS
    if spec is None or dS is None:
        raise InputError("the test split has no signals")
    if not cond.applies(spec.probe):
        raise InputError(f"the condition {cond.key!r} applies to X-ray signals only; these are {spec.probe}")
    mask = test.mask
    if cond.mismatch is None:
        out = np.array(dS, dtype=float)
    elif cond.mismatch == "background":
        q = spec.q
        amplitude = BACKGROUND * float(np.sqrt(np.mean(np.asarray(dS)[mask] ** 2)))
        out = np.asarray(dS, dtype=float) + amplitude * (1.0 - (q - q[0]) / (q[-1] - q[0]))
    else:
        out = _mismatched(test, cond.mismatch)
    if cond.noise > 0:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_stable(cond.key), _stable(experiment))))
        out = out + cond.noise * rng.standard_normal(out.shape)
    out[~mask] = np.nan
    return out


def _mismatched(test: Dataset, mismatch: str) -> np.ndarray:
    """ΔS of the test split made by a forward model with one difference from the fit's."""
    spec = test.spec
    assert spec is not None
    R = test.distances
    mask = test.mask
    kw = spec.forward()
    I = np.full(R.shape[:2] + (spec.q.size,), np.nan)
    if mismatch == "q-scale":
        I[mask] = intensity_from_distances(test.symbols, R[mask], spec.q * (1.0 + Q_SCALE), **kw)
    elif mismatch == "no-inelastic":
        I[mask] = intensity_from_distances(test.symbols, R[mask], spec.q, **{**kw, "inelastic": False})
    elif mismatch == "form-factors":
        I[mask] = _other_table_intensity(test.symbols, R[mask], spec.q, inelastic=spec.inelastic)
    else:
        raise InputError(f"unknown mismatch {mismatch!r}")
    if spec.reference == "first":
        I_ref = I[:, :1]
    elif spec.reference == "ground":  # the split's mean first-frame intensity under the same model
        I_ref = np.mean(I[:, 0], axis=0)[None, None]
    else:
        raise InputError(f"a mismatch needs reference 'first' or 'ground'; the signals use {spec.reference!r}")
    return I / I_ref - 1.0


def waasmaier_form_factors(symbols: tuple[str, ...] | list[str], q: np.ndarray) -> np.ndarray:
    r"""Form factors from another table than the fit's: Waasmaier-Kirfel, and hydrogen's exact 1s.

    .. math::

        f(s) = c + \sum_{i=1}^5 a_i e^{-b_i s^2}, \quad s = q / 4\pi;
        \qquad f_H(q) = \big(1 + (q a_0 / 2)^2\big)^{-2}

    (Waasmaier and Kirfel, *Acta Cryst.* A51, 416 (1995), as ASE ships the
    coefficients; hydrogen 1s: e.g. Als-Nielsen and McMorrow, *Elements of
    Modern X-ray Physics*, 2nd ed., sec. 6.2).

    Returns
    -------
    ndarray, shape (n_atoms, Q), electron units
    """
    from ase.utils.xrdebye import waasmaier

    s2 = (np.asarray(q, dtype=float) / (4.0 * np.pi)) ** 2
    rows: list[np.ndarray] = []
    for sym in symbols:
        if sym == "H":
            rows.append((1.0 + (np.asarray(q, dtype=float) * _BOHR / 2.0) ** 2) ** -2)
        elif sym in waasmaier:
            c = waasmaier[sym]
            rows.append(c[10] + np.sum([c[2 * i] * np.exp(-c[2 * i + 1] * s2) for i in range(5)], axis=0))
        else:
            raise InputError(
                f"no second form-factor table for {sym}: ASE's Waasmaier-Kirfel coefficients cover {', '.join(sorted(waasmaier))} (and H, exact)"
            )
    return np.array(rows)


def _other_table_intensity(symbols: tuple[str, ...], R: np.ndarray, q: np.ndarray, *, inelastic: bool) -> np.ndarray:
    """Eq. (1) of distances R (F, P) with :func:`waasmaier_form_factors` (and xraylib's S(q) when ``inelastic``), shape (F, Q)."""
    f = waasmaier_form_factors(symbols, q)
    i, j = np.triu_indices(len(symbols), 1)
    x = R[..., None] * q  # (F, P, Q)
    sinc = np.sinc(x / np.pi)
    I = np.sum(f**2, axis=0) + 2.0 * np.einsum("pq,fpq->fq", f[i] * f[j], sinc)
    if inelastic:
        I = I + np.sum(incoherent(symbols, q), axis=0)
    return I


def photons_for(sigma: float, I_ref: np.ndarray) -> float:
    r"""Photons per pattern whose counting noise gives ΔS a standard deviation ``sigma`` at the grid's median q.

    :math:`N = \sum_q I_\mathrm{ref}(q) / (\sigma^2 I_\mathrm{ref}(q_\mathrm{median}))`, from the
    noise model of :func:`molmovie.scattering.simulate` (Poisson counts of N·I(q)/ΣI per q bin).

    Parameters
    ----------
    sigma : float
        σ of ΔS, a fraction.
    I_ref : ndarray, shape (Q,) or (M, Q)
        The reference intensity on the grid (a mean over rows is taken).
    """
    I = np.asarray(I_ref, dtype=float).reshape(-1, np.shape(I_ref)[-1]).mean(axis=0)
    return float(I.sum() / (sigma**2 * I[I.size // 2]))
