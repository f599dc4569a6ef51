"""``task: potential``: train the TDN interatomic potential with ``sciml train CONFIG.yaml`` (see docs/potential.md)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from sciml.potential.data import as_hdf5
from sciml.potential.metrics import metric_sums, reduce_metric_sums
from sciml.training.task import ResumableBatchSampler, Task

#: keys of the ``model`` section that are not the energy model's own
_TASK_MODEL_KEYS = ("name", "init_from")


def model_kwargs(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The energy model's own keys of a ``model`` section."""
    return {k: v for k, v in model_cfg.items() if k not in _TASK_MODEL_KEYS}


def build_potential(model_cfg: dict[str, Any]) -> nn.Module:
    """A :class:`~models.potential.forces.ForceField` around the registered energy model ``model_cfg["name"]``
    (statistics not yet set)."""
    from models.potential.forces import ForceField
    from models.registry import energy_model_class

    return ForceField(energy_model_class(model_cfg["name"]).from_config(model_kwargs(model_cfg)))


def init_weights(model: nn.Module, path: str) -> None:
    """Load the EMA (else raw) weights of checkpoint ``path`` into ``model``; the architectures must match."""
    from sciml.errors import ConfigError
    from sciml.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    weights = ckpt["ema"]["weights"] if ckpt.get("ema") else ckpt["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ConfigError(f"model.init_from={path}: its weights do not fit this model section: {exc}") from None


class PotentialTask(Task):
    """Energies (eV) and forces (eV/Angstrom) of atomistic structures with any registered energy model
    (``model.name``, see :mod:`models.registry`); E/F loss with per-atom energy normalisation."""

    name = "potential"
    data_defaults: ClassVar[dict[str, Any]] = {
        "train": None,  # file(s): extxyz / any ASE-readable (converted once into cache_dir) or HDF5 shards/dirs/globs
        "val": [],  # explicit validation file(s); empty: split n_val from `train`
        "n_train": 0,  # training frames (or groups) drawn from `train`; 0 = all that are not validation
        "n_val": 0,  # validation frames (or groups) split off `train` when `val` is empty
        "split_by": "frame",  # frame | group (whole trajectories/systems on one side); as `sciml data split`
        "split_seed": 0,
        "max_atoms": 256,  # atom budget per batch
        "max_frames": 0,  # frame limit per batch (0 = none)
        "block_frames": 256,
        "buffer_blocks": 16,
        "neighbors": "auto",  # auto | vesin (CPU, in the loader) | torch (in the model, any device)
        "cache_dir": "",  # where converted HDF5 files go ("" = $SCIML_CACHE_DIR/h5 or ~/.cache/sciml/h5)
        "stats_frames": 10000,  # frames used to fit reference energies, scale and neighbour count
    }
    #: the task's own model keys; the named model's ``config_defaults`` are added (see :meth:`section_defaults`)
    model_defaults: ClassVar[dict[str, Any]] = {
        "name": "tdn",  # registered energy model (models/registry.py)
        "init_from": "",  # checkpoint whose (EMA) weights and statistics start a new run (fine-tuning, stage 2)
    }
    loss_defaults: ClassVar[dict[str, Any]] = {
        "energy_weight": 1.0,  # on (energy error per atom)^2, eV^2
        "force_weight": 10.0,  # on (force component error)^2, (eV/Angstrom)^2
        "forces_on_fixed": False,  # count forces on fixed atoms (OC20 slabs: usually not)
    }
    config_choices: ClassVar[dict[str, dict[str, tuple[Any, ...]]]] = {
        "data": {"split_by": ("frame", "group"), "neighbors": ("auto", "vesin", "torch")}}
    eval_requires_grad = True

    def __init__(self, data: dict[str, Any], model: dict[str, Any], loss: dict[str, Any]):
        from models.registry import energy_model_class
        from sciml.potential.inputs import ModelInputs

        super().__init__(data, model, loss)
        #: items -> featurised batches for this model (the training collate; also what eval and the calculator use)
        self.inputs = ModelInputs(energy_model_class(model["name"]).featurizer_for(model_kwargs(model),
                                                                                  data["neighbors"]))

    @classmethod
    def section_defaults(cls, section: str, given: dict[str, Any] | None) -> dict[str, Any]:
        if section != "model":
            return super().section_defaults(section, given)
        from models.registry import energy_model_class

        name = (given or {}).get("name", cls.model_defaults["name"])
        return {**cls.model_defaults, **energy_model_class(name).config_defaults}

    @classmethod
    def check_config(cls, cfg: dict[str, Any]) -> None:
        from models.registry import energy_model_class

        super().check_config(cfg)
        energy_model_class(cfg["model"]["name"]).check_config(model_kwargs(cfg["model"]))

    def datasets(self) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset | None]:
        from data_tools.dataset import AtomsDataset
        from data_tools.splits import split_frames
        from models.registry import energy_model_class

        d = self.data_cfg
        prepare = energy_model_class(self.model_cfg["name"]).prepare_files

        def files(paths: Any) -> list[str]:
            return prepare(as_hdf5(paths, d["cache_dir"]), model_kwargs(self.model_cfg), d["cache_dir"] or None, True)

        train_files = files(d["train"])
        full = AtomsDataset(train_files)
        n_val = 0 if d["val"] else d["n_val"]
        split = split_frames(full.groups, {"train": d["n_train"], "val": n_val}, d["split_seed"], d["split_by"])
        train_idx, val_idx = split["train"], split["val"]
        train = AtomsDataset(train_files, indices=train_idx)
        if d["val"]:
            return train, AtomsDataset(files(d["val"]))
        return train, AtomsDataset(train_files, indices=val_idx) if len(val_idx) else None

    def batch_sampler(self, dataset: torch.utils.data.Dataset, *, train: bool, seed: int, rank: int,
                      world_size: int) -> ResumableBatchSampler:
        from data_tools.sampler import BlockShuffleBatchSampler

        d = self.data_cfg
        return BlockShuffleBatchSampler(dataset.natoms, d["max_atoms"], shuffle=train, seed=seed, rank=rank,
                                        world_size=world_size, block_frames=d["block_frames"],
                                        buffer_blocks=d["buffer_blocks"], max_frames=d["max_frames"] or None)

    def collate(self, items: list[Any]) -> Any:
        return self.inputs(items)

    def build_model(self, train_dataset: torch.utils.data.Dataset | None) -> nn.Module:
        from sciml.potential.statistics import fit_statistics, sample_frames

        model = build_potential(self.model_cfg)
        if train_dataset is None:  # weights come from a checkpoint
            return model
        if self.model_cfg["init_from"]:
            init_weights(model, self.model_cfg["init_from"])
        else:
            net = model.model
            frames = sample_frames(train_dataset, self.data_cfg["stats_frames"], self.data_cfg["split_seed"])
            net.set_statistics(**fit_statistics(frames, net.cutoff, net.baseline(frames)),
                               **net.feature_statistics(frames))
        return model

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Weight decay only on weight matrices: per-element reference energies (~ -1e3 eV per atom), biases and any
        scale/shift parameters are in a no-decay group (decay would pull E0 towards 0 eV)."""
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            leaf = name.rsplit(".", 1)[-1]
            (no_decay if leaf in ("bias", "atomic_energies", "scale", "shift") else decay).append(p)
        groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0, "no_decay": True}]
        return [g for g in groups if g["params"]]

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        has_forces = getattr(batch, "forces", None) is not None
        # always fp32/fp64: under bf16 autocast (train.amp) autograd forces lose too many digits
        with torch.autocast(batch.pos.device.type, enabled=False):
            out = model(batch, compute_forces=has_forces)
        natoms = batch.natoms.reshape(-1)
        # float64 for the energy difference (totals ~1e4 eV), then back to the model's precision
        e_err = (out["energy"] - batch.energy.reshape(-1).double()) / natoms
        loss = self.loss_cfg["energy_weight"] * e_err.square().mean().to(batch.pos.dtype)
        mask = None
        if has_forces:
            mask = None if self.loss_cfg["forces_on_fixed"] or getattr(batch, "fixed", None) is None else ~batch.fixed
            f_err = out["forces"] - batch.forces
            f_err = f_err if mask is None else f_err[mask]
            if f_err.numel():
                loss = loss + self.loss_cfg["force_weight"] * f_err.square().mean()
        metrics = metric_sums(out["energy"], batch.energy, natoms, out.get("forces"),
                              batch.forces if has_forces else None, mask)
        return loss, metrics

    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        out = reduce_metric_sums(sums)
        n = max(sums.get("n_frames", 0.0), 1.0)
        score = self.loss_cfg["energy_weight"] * sums["epa_sq"] / n
        if sums.get("n_fcomp"):
            score += self.loss_cfg["force_weight"] * sums["f_sq"] / sums["n_fcomp"]
        out["val_score"] = score
        return out
