"""Molecules: element data, built-in molecules, and molecules from XYZ or SMILES.

A :class:`Molecule` is a list of element symbols with a reference geometry (the
ground-state minimum for the built-in molecules, GFN2-xTB as shipped in
``molmovie/data``; I2 at its measured r_e). Element data (masses, covalent radii, atomic numbers) come
from ASE's tables, so there is one source of truth for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import ArrayLike

from ._errors import InputError
from ._guards import check_allocation
from ._typing import PathLike, Symbols

if TYPE_CHECKING:
    from ase import Atoms

__all__ = [
    "Molecule",
    "BUILTIN",
    "builtin",
    "get_molecule",
    "atomic_numbers",
    "atomic_masses",
    "covalent_radii",
    "bond_graph",
    "fragments",
    "formula",
]

#: Built-in molecules: name -> (SMILES, description, paper's timing (t_max fs, frames)).
BUILTIN: dict[str, tuple[str, str]] = {
    "nmm": ("CN1CCOCC1", "N-methylmorpholine"),
    "c2h4": ("C=C", "ethylene"),
    "cs2": ("S=C=S", "carbon disulfide"),
    "i2": ("II", "molecular iodine"),
}

#: Scale factor on the sum of covalent radii below which two atoms are bonded.
#: 1.3 is the usual choice (e.g. ASE's ``natural_cutoffs`` with ``mult=1.3``,
#: Jmol/OpenBabel use +0.4-0.45 A): it keeps stretched but intact bonds of a
#: vibrationally hot molecule and cuts fragments that have separated.
BOND_SCALE = 1.3


def atomic_numbers(symbols: Iterable[str]) -> np.ndarray:
    """Atomic numbers of element symbols; an unknown symbol is an :class:`InputError`."""
    from ase.data import atomic_numbers as table

    out = []
    for s in symbols:
        key = str(s).strip()
        key = key[:1].upper() + key[1:].lower()
        if key not in table or table[key] == 0:
            raise InputError(f"unknown element symbol {s!r}")
        out.append(table[key])
    return np.asarray(out, dtype=np.int64)


def normalise_symbols(symbols: Iterable[str]) -> tuple[str, ...]:
    """Element symbols in canonical case ("cl" -> "Cl"), validated."""
    from ase.data import chemical_symbols

    return tuple(chemical_symbols[z] for z in atomic_numbers(symbols))


def atomic_masses(symbols: Iterable[str]) -> np.ndarray:
    """Standard atomic masses in u (ASE's IUPAC table), shape (n_atoms,)."""
    from ase.data import atomic_masses as table

    return np.asarray(table[atomic_numbers(symbols)], dtype=float)


def covalent_radii(symbols: Iterable[str]) -> np.ndarray:
    """Covalent radii in Angstrom (Cordero et al. 2008, via ASE), shape (n_atoms,)."""
    from ase.data import covalent_radii as table

    return np.asarray(table[atomic_numbers(symbols)], dtype=float)


def bond_graph(symbols: Symbols, positions: ArrayLike, scale: float = BOND_SCALE) -> np.ndarray:
    """Adjacency matrix of the covalent bond graph.

    Atoms A and B are bonded when ``R_AB < scale * (r_A + r_B)`` with covalent
    radii r.

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
    positions : ndarray, shape (n_atoms, 3), Angstrom
    scale : float
        Tolerance on the sum of covalent radii.

    Returns
    -------
    ndarray of bool, shape (n_atoms, n_atoms), symmetric, False on the diagonal.
    """
    pos = np.asarray(positions, dtype=float)
    r = covalent_radii(symbols)
    check_allocation((len(pos), len(pos), 3), f"the bond graph of {len(pos)} atoms")  # an XYZ file decides N
    d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    adj = d < scale * (r[:, None] + r[None, :])
    np.fill_diagonal(adj, False)
    return adj


def fragments(adjacency: np.ndarray) -> list[frozenset[int]]:
    """Connected components of a bond graph, as sets of atom indices."""
    from scipy.sparse.csgraph import connected_components

    n, labels = connected_components(np.asarray(adjacency, dtype=bool), directed=False)
    return [frozenset(np.flatnonzero(labels == k).tolist()) for k in range(n)]


def formula(symbols: Iterable[str]) -> str:
    """Hill formula (C first, then H, then alphabetical): ``C5H11NO``."""
    from collections import Counter

    counts = Counter(normalise_symbols(symbols))
    order = [e for e in ("C", "H") if e in counts] if "C" in counts else []
    order += sorted(e for e in counts if e not in order)
    return "".join(f"{e}{counts[e] if counts[e] > 1 else ''}" for e in order)


@dataclass(frozen=True)
class Molecule:
    """A molecule: element symbols and a reference geometry.

    Attributes
    ----------
    name : str
        Short name ("cs2", or the formula for a user molecule).
    symbols : tuple of str, length n_atoms
    positions : ndarray, shape (n_atoms, 3), Angstrom
        Reference (ground-state) geometry, centred on the centre of mass.
    description : str
    smiles : str or None
    """

    name: str
    symbols: tuple[str, ...]
    positions: np.ndarray
    description: str = ""
    smiles: str | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    @property
    def masses(self) -> np.ndarray:
        """Atomic masses in u, shape (n_atoms,)."""
        return atomic_masses(self.symbols)

    @property
    def formula(self) -> str:
        return formula(self.symbols)

    def to_ase(self) -> Atoms:
        """This molecule as an :class:`ase.Atoms` object."""
        from ase import Atoms

        return Atoms(list(self.symbols), positions=np.array(self.positions))

    @classmethod
    def from_xyz(cls, path: PathLike, name: str | None = None) -> Molecule:
        """Read the first frame of an XYZ file (through ASE)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        from ase import Atoms
        from ase.io import read

        try:
            atoms = cast(Atoms, read(str(path), index=0, format="xyz"))  # index=0 gives one Atoms
        except Exception as exc:  # noqa: BLE001 -- ASE raises many types for malformed files
            raise InputError(f"{path}: not a readable XYZ file ({exc})") from None
        symbols = normalise_symbols(atoms.get_chemical_symbols())
        return cls(name or formula(symbols), symbols, atoms.get_positions(), description=str(path))

    @classmethod
    def from_smiles(cls, smiles: str, seed: int = 0) -> Molecule:
        """Embed a SMILES string in 3D with RDKit (ETKDG, then MMFF94)."""
        # from the modules that define them (AllChem and RDLogger re-export them; RDKit's stubs miss that)
        from rdkit import Chem, rdBase
        from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

        if not isinstance(smiles, str) or not smiles.strip():
            raise InputError(f"empty SMILES {smiles!r}: give a molecule after 'smiles:', e.g. smiles:CN1CCOCC1")
        rdBase.DisableLog("rdApp.*")
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or mol.GetNumAtoms() == 0:
            raise InputError(f"cannot parse SMILES {smiles!r}")
        mol = Chem.AddHs(mol)
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = int(seed)  # type: ignore[assignment]  # the stubs give the property the class as type
        if rdDistGeom.EmbedMolecule(mol, params) != 0:
            raise InputError(f"RDKit could not embed SMILES {smiles!r} in 3D")
        if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
            rdForceFieldHelpers.MMFFOptimizeMolecule(mol)
        symbols = tuple(a.GetSymbol() for a in mol.GetAtoms())
        pos = mol.GetConformer().GetPositions()
        return cls(formula(symbols), symbols, pos - pos.mean(axis=0), description=f"from SMILES {smiles}", smiles=smiles)


def builtin(name: str) -> Molecule:
    """One of the built-in molecules: ``"nmm"``, ``"c2h4"``, ``"cs2"`` or ``"i2"``."""
    key = name.lower()
    if key not in BUILTIN:
        raise InputError(f"unknown molecule {name!r}; built-in molecules are {', '.join(BUILTIN)}")
    smiles, description = BUILTIN[key]
    text = resources.files("molmovie").joinpath("data", f"{key}.xyz").read_text()
    lines = text.splitlines()
    n = int(lines[0])
    rows = [line.split() for line in lines[2 : 2 + n]]
    symbols = tuple(r[0] for r in rows)
    positions = np.array([[float(x) for x in r[1:4]] for r in rows])
    return Molecule(key, symbols, positions, description=description, smiles=smiles)


def get_molecule(spec: str, seed: int = 0) -> Molecule:
    """A molecule from a name (``nmm``), an XYZ path, or ``smiles:CN1CCOCC1``."""
    if spec.lower() in BUILTIN:
        return builtin(spec)
    if spec.lower().startswith("smiles:"):
        return Molecule.from_smiles(spec.split(":", 1)[1], seed=seed)
    path = Path(spec)
    if path.suffix.lower() == ".xyz" or path.exists():
        return Molecule.from_xyz(path)
    raise InputError(f"unknown molecule {spec!r}: give one of {', '.join(BUILTIN)}, an XYZ file, or smiles:SMILES")
