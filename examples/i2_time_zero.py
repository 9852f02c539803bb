"""Time zero of the LCLS I2 run: an error function fitted to the rise of the signal.

ΔS of every delay against the 2.30 and 2.33 ps delays (q 1.5-3.5 1/Å) is projected
(1/σ² weights) on the pattern after the rise (2.44-2.80 ps); the amplitudes per delay
are fitted by A/2 (1 + erf((t - t0)/(√2 w))). The half-rise is the t0 given to
`molmovie ingest --t0` in the README.

    python examples/i2_time_zero.py [../shared/data/i2-lcls/phil-trans-data.h5]
"""

import sys

import numpy as np
from scipy.optimize import curve_fit
from scipy.special import erf

from molmovie.io.beamline import ingest

m = ingest(
    sys.argv[1] if len(sys.argv) > 1 else "../shared/data/i2-lcls/phil-trans-data.h5",
    q_units="1/A",
    delay_units="ps",
    t0=0.0,
    reference_before=2.35,
    qmin=1.5,
    qmax=3.5,
)
t, dS, s2 = m.delays, m.dS, m.sigma**2  # t: stage time in fs
P = dS[(t > 2440) & (t < 2800)].mean(0)  # the pattern after the rise
a = (dS * P / s2).sum(1) / (P * P / s2).sum(1)  # its amplitude per delay
sa = 1 / np.sqrt((P * P / s2).sum(1))


def step(t, A, t0, w):
    return A * 0.5 * (1 + erf((t - t0) / (w / 2.3548 * np.sqrt(2))))


k = t < 2800
p, c = curve_fit(step, t[k], a[k], p0=[1, 2370, 50], sigma=sa[k], absolute_sigma=True)
print(
    f"t0 = {p[1]:.1f} ± {np.sqrt(c[1, 1]):.1f} fs on the stage, rise FWHM {p[2]:.1f} ± {np.sqrt(c[2, 2]):.1f} fs, plateau {p[0]:.3f}"
)
# measured: t0 = 2375.9 ± 0.4 fs, FWHM 47.1 ± 1.3 fs, plateau 1.006
