"""``task: mskf`` for ``sciml train``: the MSKF surrogate (``model.architecture``: bilstm | mlp) trained on a
``sciml wrf extract`` column file.

Loss = ``trigger_weight`` * BCE(trigger) + ``regression_weight`` * (MSE or MAE) of the normalised tendencies,
PRATEC and NCA on columns where convection is truly active (teacher forcing: the regression is not gated by the
predicted trigger). Validation holds out the last ``val_frames`` output times (a split by time); ``test_frames``
more at the end can be left out entirely, to choose settings on the validation times without touching them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models.mskf_bilstm import ARCHITECTURES, COLUMN_OUTPUTS, TENDENCIES, MSKFNet, build_model
from sciml.errors import ConfigError
from sciml.mskf.data import ColumnArrays, load_columns, split_by_time
from sciml.training.samplers import IndexBatchSampler
from sciml.training.task import ResumableBatchSampler, Task

Batch = dict[str, torch.Tensor]
_FIELDS = ("profiles", "surface", "tendencies", "column", "deep", "shallow")


class ColumnDataset(torch.utils.data.Dataset):
    """Map-style dataset over :class:`ColumnArrays` rows; an item is a tuple of per-row tensors."""

    def __init__(self, arrays: ColumnArrays):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self.arrays, f)[i] for f in _FIELDS)


class MSKFTask(Task):
    """MSKF convection surrogate (see the module docstring)."""

    name: ClassVar[str] = "mskf"
    data_defaults: ClassVar[dict[str, Any]] = {
        "path": None,        # column file from `sciml wrf extract`
        "val_frames": 1,     # validate on the last N output times (before any test frames)
        "test_frames": 0,    # leave the last N output times out entirely (a final test, e.g. for model selection)
        "batch_size": 256,
    }
    model_defaults: ClassVar[dict[str, Any]] = {
        "architecture": "bilstm",  # bilstm (the paper's) | mlp (column MLP: the fast CPU option)
        "hidden": 32,        # LSTM units per direction, or MLP width
        "layers": 3,         # LSTM layers, or MLP hidden layers
        "n_levels": 0,       # 0 = from the data
    }
    loss_defaults: ClassVar[dict[str, Any]] = {
        "trigger_weight": 1.0,
        "regression_weight": 1.0,
        "regression": "mse",  # mse | mae
    }

    config_choices: ClassVar[dict[str, dict[str, tuple[Any, ...]]]] = {
        "model": {"architecture": ARCHITECTURES}, "loss": {"regression": ("mse", "mae")}}

    @classmethod
    def check_config(cls, cfg: dict[str, Any]) -> None:
        super().check_config(cfg)
        for section, key, low in (("model", "hidden", 1), ("model", "layers", 1), ("model", "n_levels", 0),
                                  ("data", "batch_size", 1), ("data", "val_frames", 0), ("data", "test_frames", 0)):
            if cfg[section][key] < low:
                raise ConfigError(f"{section}.{key} must be >= {low}, got {cfg[section][key]}")

    def __init__(self, data: dict[str, Any], model: dict[str, Any], loss: dict[str, Any]):
        super().__init__(data, {**self.model_defaults, **model}, loss)  # configs written before `architecture`
        self._grid: dict[str, Any] | None = None

    # -- data ---------------------------------------------------------------------------------------------
    def datasets(self) -> tuple[ColumnDataset, ColumnDataset | None]:
        arrays, frame, self._grid = load_columns(self.data_cfg["path"])
        train, val = split_by_time(frame, int(self.data_cfg["val_frames"]), int(self.data_cfg["test_frames"]))
        return ColumnDataset(arrays.select(train)), (ColumnDataset(arrays.select(val)) if len(val) else None)

    def batch_sampler(self, dataset: torch.utils.data.Dataset, *, train: bool, seed: int, rank: int,
                      world_size: int) -> ResumableBatchSampler:
        return IndexBatchSampler(len(dataset), int(self.data_cfg["batch_size"]), train=train, seed=seed,
                                 rank=rank, world_size=world_size)

    def collate(self, items: list[tuple[torch.Tensor, ...]]) -> Batch:
        return {f: torch.stack([it[n] for it in items]) for n, f in enumerate(_FIELDS)}

    def to_device(self, batch: Batch, device: torch.device) -> Batch:
        return {k: v.to(device) for k, v in batch.items()}

    # -- model --------------------------------------------------------------------------------------------
    def build_model(self, train_dataset: torch.utils.data.Dataset | None) -> nn.Module:
        n_levels = int(self.model_cfg["n_levels"]) or 1  # without data: adopted from the loaded weights
        if isinstance(train_dataset, ColumnDataset):
            n_levels = int(train_dataset.arrays.profiles.shape[1])
        model = build_model(self.model_cfg["architecture"], n_levels, hidden=int(self.model_cfg["hidden"]),
                            layers=int(self.model_cfg["layers"]))
        if isinstance(train_dataset, ColumnDataset):
            a = train_dataset.arrays
            model.fit_normalisation(a.profiles, a.surface, a.tendencies, a.column, a.active)
            if self._grid is not None:
                model.grid_p_top.fill_(self._grid["P_TOP"])
                if self._grid["ZNW"] is not None and len(self._grid["ZNW"]) == n_levels + 1:
                    model.grid_eta.copy_(torch.as_tensor(self._grid["ZNW"], dtype=torch.float64))
        return model

    # -- objective ----------------------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        base: MSKFNet = getattr(model, "module", model)
        logit, tend_n, col_n = model(batch["profiles"], batch["surface"])
        active = batch["deep"] | batch["shallow"]
        bce = F.binary_cross_entropy_with_logits(logit.float(), active.float())
        true_tend_n, true_col_n = base.normalise_targets(batch["tendencies"], batch["column"])
        err = torch.cat([(tend_n - true_tend_n)[active].flatten(1), (col_n - true_col_n)[active]], dim=1).float()
        per_elem = err.pow(2) if self.loss_cfg["regression"] == "mse" else err.abs()
        reg = per_elem.mean() if bool(active.any()) else err.sum() * 0.0
        loss = self.loss_cfg["trigger_weight"] * bce + self.loss_cfg["regression_weight"] * reg
        with torch.no_grad():
            metrics = self._metric_sums(base, logit, tend_n, col_n, batch, active)
            metrics["loss_sum"] = loss.detach() * len(active)
            metrics["bce_sum"] = bce.detach() * len(active)
            metrics["reg_sum"] = per_elem.sum().detach()
            metrics["reg_count"] = torch.tensor(float(per_elem.numel()), device=logit.device)
        return loss, metrics

    @staticmethod
    def _metric_sums(base: MSKFNet, logit: torch.Tensor, tend_n: torch.Tensor, col_n: torch.Tensor,
                     batch: Batch, active: torch.Tensor) -> dict[str, torch.Tensor]:
        pred_on = logit > 0
        out = {
            "rows": torch.tensor(float(len(active)), device=logit.device),
            "tp": (pred_on & active).sum().float(), "fp": (pred_on & ~active).sum().float(),
            "fn": (~pred_on & active).sum().float(),
        }
        tend, col = base.denormalise(tend_n, col_n)
        names = list(TENDENCIES) + list(COLUMN_OUTPUTS)
        for c, name in enumerate(names):
            if c < len(TENDENCIES):
                y, p = batch["tendencies"][..., c][active], tend[..., c][active]
            else:
                y, p = batch["column"][:, c - len(TENDENCIES)][active], col[:, c - len(TENDENCIES)][active]
            y, p = y.double(), p.double()
            out[f"{name}_n"] = torch.tensor(float(y.numel()), device=logit.device)
            out[f"{name}_sy"], out[f"{name}_syy"] = y.sum(), y.pow(2).sum()
            out[f"{name}_sse"] = (p - y).pow(2).sum()
        return out

    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        rows = max(sums.get("rows", 0.0), 1.0)
        tp, fp, fn = sums.get("tp", 0.0), sums.get("fp", 0.0), sums.get("fn", 0.0)
        precision = tp / max(tp + fp, 1.0)
        recall = tp / max(tp + fn, 1.0)
        out = {
            "loss": sums.get("loss_sum", 0.0) / rows,
            "bce": sums.get("bce_sum", 0.0) / rows,
            "regression": sums.get("reg_sum", 0.0) / max(sums.get("reg_count", 0.0), 1.0),
            "trigger_precision": precision, "trigger_recall": recall,
            "trigger_f1": 2 * precision * recall / max(precision + recall, 1e-12),
        }
        for name in list(TENDENCIES) + list(COLUMN_OUTPUTS):
            n = sums.get(f"{name}_n", 0.0)
            if n > 0:
                sst = sums[f"{name}_syy"] - sums[f"{name}_sy"] ** 2 / n
                out[f"r2_{name}"] = 1.0 - sums[f"{name}_sse"] / sst if sst > 0 else float("nan")
                out[f"rmse_{name}"] = (sums[f"{name}_sse"] / n) ** 0.5
        out["val_score"] = out["loss"]
        return out
