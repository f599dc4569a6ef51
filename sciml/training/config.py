"""YAML training configs: loading, ``--set`` overrides and validation against the engine's and the task's defaults.

A config is a mapping with the keys ``task`` (a name in :data:`~sciml.training.task.TASKS` or ``"module:Class"``),
the task sections ``data`` / ``model`` / ``loss`` and the engine sections below. Unknown keys and wrong types are a
:class:`~sciml.errors.ConfigError` that names the section and key (and suggests the closest valid key).
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any

import yaml

from sciml.errors import ConfigError

#: engine sections: key -> default (the default's type is the required type)
ENGINE_DEFAULTS: dict[str, dict[str, Any]] = {
    "optim": {
        "name": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "amsgrad": False,
    },
    "schedule": {
        "name": "cosine",  # cosine | plateau | constant
        "warmup_steps": 0,
        "min_lr_factor": 0.0,  # cosine: final lr = lr * min_lr_factor; plateau: lower bound
        "patience": 10,  # plateau: validations without improvement before the lr is cut
        "factor": 0.5,  # plateau: lr multiplier on a cut
        "threshold": 1e-4,  # plateau: relative improvement that counts
    },
    "train": {
        "max_epochs": 100,
        "max_steps": 0,  # 0 = no step limit (max_epochs decides)
        "grad_clip": 0.0,  # max global gradient norm; 0 = off
        "ema_decay": 0.0,  # 0 = no EMA; e.g. 0.999
        "amp": True,  # bf16 autocast on CUDA; ignored on CPU
        "tf32": True,  # TF32 matmuls/convolutions on CUDA
        "seed": 0,
        "deterministic": False,  # torch.use_deterministic_algorithms (bit-exact resume on GPU)
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "num_workers": 0,
        "val_every": 1,  # validate every N epochs
        "val_every_steps": 0,  # and/or every N optimiser steps (0 = off)
        "checkpoint_every_steps": 0,  # write last.pt every N steps (0 = only at validations and the end)
        "nan_policy": "stop",  # stop | skip
        "max_time_s": 0.0,  # stop cleanly (last.pt at a step boundary) after this much training time; 0 = off
        "log_every": 10,  # steps between progress-bar/TensorBoard updates
        "progress": True,  # tqdm progress bar on rank 0
        "find_unused_parameters": False,  # DDP option
    },
    "output": {
        "dir": "runs/train",
    },
}

_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("optim", "name"): ("adamw",),
    ("schedule", "name"): ("cosine", "plateau", "constant"),
    ("train", "nan_policy"): ("stop", "skip"),
}

TASK_SECTIONS = ("data", "model", "loss")
TOP_LEVEL = ("task", *TASK_SECTIONS, *ENGINE_DEFAULTS)


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"


def _type_ok(value: Any, default: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _yaml_float(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _type_name(default: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            tuple: "a list", dict: "a mapping"}.get(type(default), type(default).__name__)


def validate_section(section: str, given: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with ``given``; unknown keys, wrong types and missing required keys raise ConfigError.

    A default of ``None`` in a task's defaults marks a required key of any type; a non-empty mapping default is
    validated recursively (``section.key``), an empty one accepts any mapping.
    """
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ConfigError(f"config section {section!r} must be a mapping, got {type(given).__name__}")
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        if key not in defaults:
            raise ConfigError(f"unknown key {key!r} in section {section!r}{_suggest(str(key), sorted(defaults))}")
        default = defaults[key]
        if isinstance(default, float) and isinstance(value, str):
            value = _yaml_float(value)  # PyYAML reads 3e-4 (no dot) as a string
        if isinstance(default, dict) and default:
            out[key] = validate_section(f"{section}.{key}", value, default)
            continue
        if value is not None and not _type_ok(value, default):
            raise ConfigError(f"{section}.{key} must be {_type_name(default)} (like the default {default!r}), "
                              f"got {value!r}")
        out[key] = float(value) if isinstance(default, float) and value is not None else value
    return out


def _check_required(section: str, cfg: dict[str, Any], defaults: dict[str, Any]) -> None:
    for key, default in defaults.items():
        if default is None and cfg.get(key) is None:
            raise ConfigError(f"missing required key {section}.{key}")


def _check_engine_values(cfg: dict[str, Any]) -> None:
    for (section, key), choices in _CHOICES.items():
        if cfg[section][key] not in choices:
            raise ConfigError(f"{section}.{key} must be one of {', '.join(choices)}, got {cfg[section][key]!r}")
    train, optim, sched = cfg["train"], cfg["optim"], cfg["schedule"]
    for key in ("max_epochs", "max_steps", "num_workers", "val_every", "val_every_steps", "checkpoint_every_steps",
                "warmup_steps"):
        sec = "schedule" if key == "warmup_steps" else "train"
        if cfg[sec][key] < 0:
            raise ConfigError(f"{sec}.{key} must be >= 0, got {cfg[sec][key]}")
    if train["max_epochs"] == 0 and train["max_steps"] == 0:
        raise ConfigError("train.max_epochs and train.max_steps are both 0: set at least one limit")
    if train["max_time_s"] < 0:
        raise ConfigError(f"train.max_time_s must be >= 0, got {train['max_time_s']}")
    if train["log_every"] < 1:
        raise ConfigError(f"train.log_every must be >= 1, got {train['log_every']}")
    if not 0.0 <= train["ema_decay"] < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {train['ema_decay']}")
    if optim["lr"] <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {optim['lr']}")
    if len(optim["betas"]) != 2 or not all(0.0 <= float(b) < 1.0 for b in optim["betas"]):
        raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {optim['betas']}")
    if not 0.0 < sched["factor"] < 1.0:
        raise ConfigError(f"schedule.factor must be in (0, 1), got {sched['factor']}")
    dev = train["device"]
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {dev!r}")


def validate_config(raw: Any) -> dict[str, Any]:
    """A complete, validated config (defaults filled in) from a parsed YAML mapping."""
    from sciml.training.task import get_task_class

    if not isinstance(raw, dict):
        raise ConfigError(f"a training config must be a mapping of sections, got {type(raw).__name__}")
    for key in raw:
        if key not in TOP_LEVEL:
            raise ConfigError(f"unknown top-level section {key!r}{_suggest(str(key), list(TOP_LEVEL))}")
    if not isinstance(raw.get("task"), str):
        raise ConfigError("missing top-level key 'task' (the model family to train, e.g. task: potential)")
    task_cls = get_task_class(raw["task"])
    cfg: dict[str, Any] = {"task": raw["task"]}
    for section in TASK_SECTIONS:
        defaults = task_cls.section_defaults(section, raw.get(section) if isinstance(raw.get(section), dict) else None)
        cfg[section] = validate_section(section, raw.get(section), defaults)
        _check_required(section, cfg[section], defaults)
    for section, defaults in ENGINE_DEFAULTS.items():
        cfg[section] = validate_section(section, raw.get(section), defaults)
    _check_engine_values(cfg)
    task_cls.check_config(cfg)
    return cfg


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``section.key=value`` (value parsed as YAML) to a raw config in place."""
    path, sep, text = assignment.partition("=")
    keys = path.strip().split(".")
    if not sep or len(keys) < 2 or not all(keys):
        raise ConfigError(f"--set expects section.key=value, got {assignment!r}")
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {assignment!r}: {key!r} is not a section")
    node[keys[-1]] = yaml.safe_load(text)


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a YAML config, apply ``section.key=value`` overrides and validate it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if isinstance(raw, dict):
        for assignment in overrides:
            apply_override(raw, assignment)
    try:
        return validate_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
