"""GFN1-xTB single points: dxtb (torch, differentiable S, H0, P, Fock and energy) and tblite (numpy, an independent
implementation used to check every structure). Units in and out: positions Angstrom, energies eV, gradients eV/Angstrom
(converted here from Bohr and Hartree with ASE's constants).
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase.units import Bohr, Hartree

from data_tools.geometry import MIN_DISTANCE
from sciml.errors import DataError

METHODS = ("GFN1-xTB",)
#: heaviest element both libraries parametrise
MAX_Z = 86
#: largest |E_dxtb - E_tblite| (Hartree) accepted; dxtb is known to be wrong for some ionic halides
AGREEMENT_HARTREE = 1e-5
#: SCF convergence of dxtb (tight: features and forces are compared with finite differences at 1e-6)
SCF_TOLERANCE = 1e-8


class XTBError(DataError):
    """A structure the xTB back end cannot treat (element, geometry, SCF failure, back ends disagreeing)."""


@dataclass
class GFN1Result:
    """One dxtb GFN1-xTB single point. Matrices in the atomic-orbital basis (Hartree for H0 and F, dimensionless S
    and P), torch float64, differentiable with respect to the positions they were computed from.

    ``ao_shell`` [nao]: shell of each orbital; ``shell_atom`` [nsh]: atom of each shell; ``shell_l`` [nsh]: angular
    momentum of each shell; ``energy``: eV (0-d tensor)."""

    energy: torch.Tensor
    overlap: torch.Tensor
    hcore: torch.Tensor
    density: torch.Tensor
    fock: torch.Tensor
    ao_shell: torch.Tensor
    shell_atom: torch.Tensor
    shell_l: torch.Tensor


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the enclosed torch code on ``n`` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_structure(numbers: Sequence[int], positions: np.ndarray, where: str) -> None:
    """Refuse elements outside 1..86 and atoms closer than :data:`~data_tools.geometry.MIN_DISTANCE` (xTB returns
    huge but finite energies for them, with no error)."""
    numbers = np.asarray(numbers)
    bad = sorted({int(z) for z in numbers if not 1 <= z <= MAX_Z})
    if bad:
        raise XTBError(f"{where}: GFN1-xTB has no parameters for atomic number(s) {bad} (it covers Z = 1..{MAX_Z})")
    pos = np.asarray(positions, float)
    if len(pos) > 1:
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(len(pos)) * 1e9
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] < MIN_DISTANCE:
            raise XTBError(f"{where}: atoms {min(i, j)} and {max(i, j)} are {d[i, j]:.3g} Angstrom apart (closer than "
                           f"{MIN_DISTANCE} Angstrom)")


#: dxtb's integral drivers: its own torch code (differentiable to any order; needed for force training and the
#: feature cache) or libcint (tad-libcint, about 2x faster for a single point with forces; first derivatives)
INTEGRAL_DRIVERS = ("dxtb", "libcint")


@functools.cache
def fastest_integrals() -> str:
    """``"libcint"`` where tad-libcint is installed (the orbnet extra installs it), else ``"dxtb"`` (looked up once:
    the uncached model path asks for every structure)."""
    import importlib.util

    return "libcint" if importlib.util.find_spec("tad_libcint") else "dxtb"


class DxtbGFN1:
    """dxtb GFN1-xTB calculators, one per composition (kept in a small LRU cache: setting one up costs ~0.1 s).

    ``integrals``: one of :data:`INTEGRAL_DRIVERS`. Both give the same features and gradients (measured on
    n-hexadecane: energies 4e-9 eV, features 2e-10, gradients 2e-9 eV/Angstrom apart, the SCF tolerance); shell
    blocks are compared by traces, so libcint's different p-orbital order does not matter."""

    def __init__(self, cache_size: int = 16, integrals: str = "dxtb"):
        if integrals not in INTEGRAL_DRIVERS:
            raise ValueError(f"integrals must be one of {INTEGRAL_DRIVERS}, got {integrals!r}")
        self._calculators: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self.cache_size = cache_size
        self.integrals = integrals

    def _calculator(self, numbers: torch.Tensor) -> object:
        import dxtb

        key = tuple(int(z) for z in numbers)
        calc = self._calculators.get(key)
        if calc is None:
            opts = {"verbosity": 0, "int_driver": self.integrals, "f_atol": SCF_TOLERANCE, "x_atol": SCF_TOLERANCE,
                    "force_convergence": True, "maxiter": 300}
            calc = self._calculators[key] = dxtb.Calculator(numbers.cpu(), dxtb.GFN1_XTB, opts=opts,
                                                            dtype=torch.float64)
            if len(self._calculators) > self.cache_size:
                self._calculators.popitem(last=False)
        else:
            self._calculators.move_to_end(key)
        return calc

    def singlepoint(self, numbers: torch.Tensor, positions: torch.Tensor, charge: int = 0, uhf: int = 0,
                    where: str = "structure") -> GFN1Result:
        """GFN1-xTB of one structure: ``numbers`` [n], ``positions`` [n, 3] Angstrom (float64; keep
        ``requires_grad`` for forces), ``charge`` (e), ``uhf`` unpaired electrons (multiplicity - 1)."""
        check_structure(numbers.tolist(), positions.detach().cpu().numpy(), where)
        calc = self._calculator(numbers)
        try:
            with torch_threads(1):
                res = calc.singlepoint(positions.to(torch.float64) / Bohr, chrg=int(charge), spin=int(uhf))
        except Exception as exc:  # noqa: BLE001 - dxtb raises RuntimeError/ValueError subclasses for SCF failures
            raise XTBError(f"{where}: dxtb GFN1-xTB failed (charge {charge}, {uhf} unpaired electrons): "
                           f"{type(exc).__name__}: {exc}") from None
        finally:
            calc.reset()  # drop results cached from this geometry: a later call must not reuse their autograd graph
        ih = calc.ihelp
        return GFN1Result(energy=res.total.sum() * Hartree, overlap=res.integrals.overlap,
                          hcore=res.integrals.hcore, density=res.density, fock=res.hamiltonian,
                          ao_shell=ih.orbitals_to_shell.long(), shell_atom=ih.shells_to_atom.long(),
                          shell_l=ih.angular.long())


def tblite_gfn1(numbers: Sequence[int], positions: np.ndarray, charge: int = 0, uhf: int = 0,
                where: str = "structure") -> tuple[float, np.ndarray]:
    """(energy eV, gradient [n, 3] eV/Angstrom) from tblite's GFN1-xTB."""
    from tblite.interface import Calculator

    check_structure(numbers, positions, where)
    try:
        calc = Calculator("GFN1-xTB", np.asarray(numbers), np.asarray(positions, float) / Bohr, int(charge), int(uhf))
        calc.set("verbosity", 0)
        res = calc.singlepoint()
    except Exception as exc:  # noqa: BLE001 - tblite raises its own runtime error type
        raise XTBError(f"{where}: tblite GFN1-xTB failed (charge {charge}, {uhf} unpaired electrons): {exc}") from None
    return float(res.get("energy")) * Hartree, np.asarray(res.get("gradient")) * (Hartree / Bohr)


def check_agreement(e_dxtb_ev: float, e_tblite_ev: float, where: str) -> None:
    """Refuse a structure on which dxtb and tblite disagree by more than :data:`AGREEMENT_HARTREE`."""
    diff = abs(e_dxtb_ev - e_tblite_ev) / Hartree
    if diff > AGREEMENT_HARTREE:
        raise XTBError(f"{where}: dxtb and tblite GFN1-xTB energies differ by {diff:.2e} Hartree (> "
                       f"{AGREEMENT_HARTREE:g}); dxtb is known to be wrong for some alkali / alkaline-earth halides")
