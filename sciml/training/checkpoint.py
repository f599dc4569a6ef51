"""Checkpoints: atomic writes, safe loading (``torch.load(weights_only=True)``), RNG capture and :func:`load_model`.

A checkpoint is a dict of tensors and primitives only (no pickled classes):

``format``/``version``, ``config`` (the full validated config), ``task`` (its name), ``model`` (state dict),
``ema`` (``{"decay", "updates", "weights"}`` or ``None``), ``optimizer``, ``scheduler``, ``sampler``
(``{"epoch", "batches_consumed", "state"}``), ``rng`` (python, numpy, torch CPU and CUDA states), ``step``,
``epoch``, ``best_score``, ``nan_skipped``, ``train_sums`` (metric sums since the last validation), ``history``
(one dict of metrics per validation), ``step_log`` (``[step, training loss, lr]`` every ``log_every`` steps),
``interval`` (loss sum and steps since the last ``step_log`` row) and ``world_size``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sciml.errors import DataError
from sciml.utils.atomic import atomic_path

FORMAT = "sciml-checkpoint"
#: 2: potential weights sit under the force wrapper (``model.<key>``) and ``config.model.name`` names the model
VERSION = 2


def rng_state() -> dict[str, Any]:
    """Every RNG state the training loop draws from (python, numpy, torch CPU, all CUDA devices)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only where the device count matches)."""
    random.setstate(state["python"])
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_plain(obj: Any) -> Any:
    """NumPy scalars/arrays in task-provided state (a sampler's ``state_dict``, metric rows) as Python numbers and
    tensors, so the checkpoint stays loadable with ``weights_only=True``."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    return obj


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temp file + fsync + rename)."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with ``weights_only=True``; unreadable or foreign files raise DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/foreign files
        raise DataError(f"checkpoint {path} cannot be read safely (weights_only=True): {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DataError(f"{path} is not a sciml training checkpoint (no format={FORMAT!r} marker)")
    if ckpt.get("version", 0) > VERSION:
        raise DataError(f"checkpoint {path} has format version {ckpt['version']}; this sciml reads <= {VERSION}")
    return _upgrade(ckpt)


def _upgrade(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Bring a checkpoint of an older format version to :data:`VERSION`, in place."""
    if ckpt.get("version", 1) < 2 and ckpt.get("task") == "potential":  # the TDN network was the whole model
        def wrapped(weights: dict[str, Any]) -> dict[str, Any]:
            return {f"model.{k}": v for k, v in weights.items()}

        ckpt["model"] = wrapped(ckpt["model"])
        if ckpt.get("ema"):
            ckpt["ema"]["weights"] = wrapped(ckpt["ema"]["weights"])
        ckpt["config"]["model"].setdefault("name", "tdn")
    ckpt["version"] = VERSION
    return ckpt


def load_model(checkpoint_path: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None, use_ema: bool = True,
               task: str | None = None, allow_tasks: Sequence[str] = ()) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Rebuild a trained model for inference: ``(model in eval mode, task, config)``.

    Args:
        checkpoint_path: a checkpoint written by ``sciml train`` (``best.pt``, ``last.pt``, ...).
        device: where the model goes.
        dtype: floating dtype of the parameters (e.g. ``torch.float64`` for relaxations); ``None`` keeps float32.
        use_ema: take the EMA weights when the run kept them (as validation and ``best.pt`` selection did).
        task: the task the checkpoint must have been trained with (a name in :data:`~sciml.training.task.TASKS`
            or ``"module:Class"``; a subclass counts); a checkpoint of another task raises DataError before any
            model is built. ``None`` accepts any task.
        allow_tasks: ``"module:Class"`` task names outside :data:`~sciml.training.task.TASKS` that the caller
            trusts. A checkpoint only names its task; importing an unregistered one would run that module's code, so
            any other name is refused before anything is imported.
    """
    from sciml.training.config import validate_config
    from sciml.training.task import TASKS, get_task_class

    ckpt = load_checkpoint(checkpoint_path)
    name = ckpt.get("config", {}).get("task")
    if name not in TASKS and name not in allow_tasks:
        raise DataError(f"checkpoint {checkpoint_path}: task {name!r} is not a registered task "
                        f"({', '.join(sorted(TASKS))}); if you trust that code, pass allow_tasks=[{name!r}]")
    config = validate_config(ckpt["config"])
    task_cls = get_task_class(config["task"])
    if task is not None and not issubclass(task_cls, get_task_class(task)):
        raise DataError(f"checkpoint {checkpoint_path} was trained with task {config['task']!r}, not {task!r}")
    trained = task_cls(config["data"], config["model"], config["loss"])
    model = trained.build_model(None)
    weights = ckpt["ema"]["weights"] if use_ema and ckpt.get("ema") else ckpt["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise DataError(f"checkpoint {checkpoint_path}: weights do not fit the model its config builds: "
                        f"{exc}") from None
    model.to(device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    return model.eval(), trained, config
