"""Reference numbers of IAM-XED for ``tests/test_scattering_electrons.py``: UED of H2 and cyclobutanone at 3.7 MeV.

Runs IAM-XED (PyPI ``iamxed``, MIT; Suchan and Janoš, github.com/blevine37/IAM-XED)
at the settings of its own test cases (``test/test_cases.py`` there): H2 static,
s from 0 to 10 1/bohr in 1000 points; cyclobutanone ΔI/I of its dissociated
geometry ``c2.xyz`` against ``cycbut.xyz``, 0 to 6 1/bohr in 600 points. The
geometries are those of IAM-XED's test folder, written out below. Prints, every
``STEP``-th point, s in 1/Å, I(s) of H2 in Å² and ΔI/I of cyclobutanone (a
fraction), as Python literals to paste into the test.

iamxed 1.1.0 calls ``numpy.trapz`` (for its PDF), gone in NumPy 2.4; the script
puts ``numpy.trapezoid`` in its place, which leaves the signals untouched. That
is why the test holds these numbers rather than importing iamxed.

Usage (iamxed is not a molmovie dependency: install it beside, or unpack its wheel)::

    pip download --no-deps iamxed==1.1.0 && unzip iamxed-1.1.0-py3-none-any.whl -d iamxed_wheel
    PYTHONPATH=iamxed_wheel python tools/iamxed_reference.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

H2 = """2

H 0.0 0.0 0.0
H 0.7439 0.0 0.0
"""

CYCBUT = """11

O  1.875860  0.000000 -0.037051
C -0.384718 -1.109610  0.038134
C -1.476860  0.000000 -0.060005
C -0.384719  1.109610  0.038104
C  0.680976  0.000006  0.014932
H -0.318733  1.819790 -0.789568
H -0.380749  1.673260  0.975355
H -2.009580 -0.000036 -1.011066
H -2.206442  0.000033  0.749254
H -0.318681 -1.819541 -0.789759
H -0.380778 -1.673539  0.975203
"""

C2 = """11

C     0.049030    -0.002092     0.032503
H     0.086612     0.018273     1.114554
H     0.963708    -0.008372    -0.546374
C    -1.113525    -0.019061    -0.581301
O    -2.149314    -0.034264    -1.128531
C    -0.087150   910.038005     0.018490
C     0.121673   910.254510     1.314914
H     0.709549   909.70879     -0.644438
H    -1.065541   910.175269    -0.436016
H     1.099578   910.115564     1.770360
H    -0.675975   910.581512     1.977798
"""

#: Every STEP-th point of IAM-XED's grid goes into the test.
STEP = 25
#: IAM-XED's bohr in Å (its ANG_TO_BH = 1.8897259886).
BOHR = 1.0 / 1.8897259886


def main() -> None:
    if not hasattr(np, "trapz"):  # iamxed 1.1.0 calls numpy.trapz (its PDF), which NumPy 2.4 removed
        np.trapz = np.trapezoid  # type: ignore[attr-defined]  # noqa: NPY201
    from iamxed.physics import UEDDiffractionCalculator

    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, text in (("h2", H2), ("cycbut", CYCBUT), ("c2", C2)):
            files[name] = Path(tmp) / f"{name}.xyz"
            files[name].write_text(text)
        h2 = UEDDiffractionCalculator(0.0, 10.0, 1000, ["H"], ued_energy_ev=3.7e6)
        q, I, _, _ = h2.calc_single(str(files["h2"]))
        cb = UEDDiffractionCalculator(0.0, 6.0, 600, ["C", "H", "O"], ued_energy_ev=3.7e6)
        q2, dI, _, _ = cb.calc_difference(str(files["c2"]), str(files["cycbut"]))
    np.set_printoptions(precision=17, floatmode="unique", linewidth=120)
    print("H2_S =", repr(q[::STEP] / BOHR))
    print("H2_I =", repr(I[::STEP] * BOHR**2))
    print("CB_S =", repr(q2[::STEP] / BOHR))
    print("CB_DI =", repr(dI[::STEP] / 100.0))


if __name__ == "__main__":
    main()
