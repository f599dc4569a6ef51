"""What every atomistic energy model provides, so that one force wrapper, one training task, one calculator and
``sciml eval`` / ``sciml relax`` serve them all (see :mod:`models.registry`).

An energy model maps a batch (``z`` [N], ``pos`` [N, 3] Angstrom, ``batch`` [N], ``cell`` [B, 3, 3], ``pbc`` [B, 3],
plus whatever its featuriser added, e.g. ``edge_index``/``edge_shift``) to per-structure energies [B] in eV
(float64). It must compute every geometric quantity from ``pos`` and ``cell`` so that
:class:`~models.potential.forces.ForceField` can differentiate it (forces, and stress through a strain of both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sciml.errors import ConfigError, DataError

MAX_Z = 118


class UnknownElementError(DataError):
    """An input structure contains an element the model was not trained on."""


def element_names(numbers: Sequence[int]) -> str:
    """'H (Z=1), Cu (Z=29)'; symbols from ASE where installed (GPU nodes may lack it)."""
    try:
        from ase.data import chemical_symbols
    except ImportError:
        return ", ".join(f"Z={z}" for z in numbers)
    return ", ".join(f"{chemical_symbols[z] if 0 < z <= MAX_Z else '?'} (Z={z})" for z in numbers)


class EnergyModel(nn.Module):
    """Base class of the registered energy models.

    Holds the state every model fits from data: the known elements (buffer ``known`` [119] bool) and per-element
    reference energies E0 (parameter ``atomic_energies`` [119], eV, always float64: about -1e3 eV per atom, which
    float32 would round to ~0.1 meV). Subclasses set :attr:`name`, :attr:`config_defaults` (their ``model`` config
    keys and defaults), :attr:`config_choices` (allowed values) and implement :meth:`forward`.
    """

    #: registry name (``model.name`` in a training config)
    name: ClassVar[str]
    #: keys of the ``model`` config section and their defaults (the default's type is the required type)
    config_defaults: ClassVar[dict[str, Any]] = {}
    #: allowed values of ``model`` config keys
    config_choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    #: the model predicts forces itself (a non-conservative head) instead of F = -dE/dpos
    direct_forces: bool = False

    def __init__(self, config: dict[str, Any], elements: Sequence[int] = ()):
        super().__init__()
        #: the constructor arguments (the ``model`` config keys): what :meth:`featurizer` is built from
        self.config = dict(config)
        self.cutoff = float(config["cutoff"])
        self.register_buffer("known", torch.zeros(MAX_Z + 1, dtype=torch.bool))
        self.known[list(elements)] = True
        self.atomic_energies = nn.Parameter(torch.zeros(MAX_Z + 1, dtype=torch.float64))

    @classmethod
    def check_config(cls, cfg: dict[str, Any]) -> None:
        """Raise :class:`~sciml.errors.ConfigError` for a ``model`` section (keys and types already validated) that
        cannot build a model: values outside :attr:`config_choices`, and the subclass's own checks. Called with the
        config, before any data is read."""
        for key, choices in cls.config_choices.items():
            if key in cfg and cfg[key] not in choices:
                raise ConfigError(f"model.{key} must be one of {', '.join(map(str, choices))}, got {cfg[key]!r}")

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> EnergyModel:
        """A fresh model (statistics not yet set) from a ``model`` section without ``name``/``init_from``."""
        return cls(**cfg)

    @torch.no_grad()
    def set_statistics(self, elements: Sequence[int], atomic_energies: dict[int, float], **stats: Any) -> None:
        """Fit-from-data state: known elements and reference energies E0 {Z: eV}; subclasses take their own ``stats``
        (see :func:`sciml.potential.statistics.fit_statistics`)."""
        self.known.zero_()
        self.known[list(elements)] = True
        self.atomic_energies.zero_()
        for z, e0 in atomic_energies.items():
            self.atomic_energies[int(z)] = float(e0)

    def _apply(self, fn: Any, recurse: bool = True) -> EnergyModel:
        # .to(dtype)/.float()/.half() must not round E0: keep it float64, move it only
        e0 = self.atomic_energies.data
        super()._apply(fn, recurse)
        device = fn(torch.zeros(0, device=e0.device)).device
        self.atomic_energies.data = e0.to(device=device, dtype=torch.float64)
        return self

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the network (E0 is always float64)."""
        return next(p.dtype for n, p in self.named_parameters() if n != "atomic_energies")

    def check_elements(self, z: torch.Tensor) -> None:
        """Raise :class:`UnknownElementError` if ``z`` [N] holds an element the model was not trained on."""
        bad = (z < 1) | (z > MAX_Z)
        bad |= ~self.known[z.clamp(0, MAX_Z)]
        if bool(bad.any()):
            unknown = sorted({int(v) for v in z[bad].tolist()})
            known = torch.nonzero(self.known).flatten().tolist()
            raise UnknownElementError(f"the model was never trained on element(s) {element_names(unknown)}; "
                                      f"it knows {element_names(known)}")

    @classmethod
    def featurizer_for(cls, cfg: dict[str, Any], neighbors: str = "auto") -> Callable[[Any], Any]:
        """The per-item input transform of a model built from ``cfg``, applied before collating (training loader,
        ``sciml eval``, the calculator): by default the neighbour list within ``cfg["cutoff"]`` (``neighbors``:
        auto | vesin | torch)."""
        from data_tools.neighbors import NeighborList

        return NeighborList(cfg["cutoff"], neighbors)

    @classmethod
    def prepare_files(cls, files: list[str], cfg: dict[str, Any], cache_dir: str | None, progress: bool) -> list[str]:
        """HDF5 shards the model trains on, made from the ``files`` of a training config (``cfg``: its ``model``
        keys); models that precompute inputs (e.g. an xTB feature cache) return their cached copies."""
        return files

    def baseline(self, frames: Sequence[Any]) -> tuple[np.ndarray, list[np.ndarray]] | None:
        """Energies [frames] (eV) and forces (eV/Angstrom) the model adds from a physical baseline and does not
        learn, for fitting the statistics to what remains (None: no baseline)."""
        return None

    def feature_statistics(self, frames: Sequence[Any]) -> dict[str, Any]:
        """Model-specific statistics of the training frames, passed on to :meth:`set_statistics`."""
        return {}

    def memory_per_edge(self) -> int:
        """Estimated peak bytes per neighbour pair of an energy + force evaluation (for memory budgets)."""
        return 2048 * torch.finfo(self.dtype).bits // 32

    def featurizer(self, neighbors: str = "auto") -> Callable[[Any], Any]:
        """:meth:`featurizer_for` this model's :attr:`config`."""
        return self.featurizer_for(self.config, neighbors)

    def total_energy(self, node_energy: torch.Tensor, data: Any) -> dict[str, torch.Tensor]:
        """``energy`` [B] and ``node_energy`` [N] (float64, eV) from per-atom energies [N] relative to E0: sums in
        float64, since totals of ~1e4 eV in float32 would be rounded to ~1 meV."""
        node_energy = node_energy.double() + self.atomic_energies[data.z]
        energy = node_energy.new_zeros(int(data.num_graphs)).index_add(0, data.batch, node_energy)
        return {"energy": energy, "node_energy": node_energy}

    def forward(self, data: Any) -> dict[str, torch.Tensor]:
        """``energy`` [B] and ``node_energy`` [N] (eV, float64); with :attr:`direct_forces` also ``forces`` [N, 3]
        (eV/Angstrom)."""
        raise NotImplementedError
