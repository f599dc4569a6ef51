"""The training loop behind ``sciml train``: one engine for every :class:`~sciml.training.task.Task`.

Owns devices and DDP, AMP/TF32, AdamW, the lr schedule, EMA, gradient clipping, NaN handling, checkpoints and exact
resume, progress bar and metric logging. Only rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from sciml.errors import ConfigError, SciMLError
from sciml.training import distributed as D
from sciml.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state, to_plain
from sciml.training.ema import EMA
from sciml.training.loaders import SkippingBatchSampler, make_loader
from sciml.training.schedules import LRSchedule
from sciml.training.task import Task, get_task_class
from sciml.utils.atomic import atomic_write_text

#: config sections that must not change when a run is resumed (they define the model and its data)
FROZEN_SECTIONS = ("task", "data", "model", "loss")
_LOSS, _STEPS = "_loss_sum", "_steps"


class NonFiniteLossError(SciMLError):
    """A non-finite loss or gradient with ``nan_policy: stop``."""


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _add_sums(sums: dict[str, torch.Tensor], metrics: dict[str, torch.Tensor]) -> None:
    for key, value in metrics.items():
        v = torch.as_tensor(value).detach().to(torch.float64).sum()
        sums[key] = sums[key] + v if key in sums else v


def _json_safe(obj: Any) -> Any:
    """Non-finite floats as ``null`` (strict JSON has no NaN/Infinity)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class Trainer:
    """Train ``config`` (a validated config dict) in ``config["output"]["dir"]``.

    Args:
        config: from :func:`sciml.training.config.load_config`.
        resume: continue from ``<output.dir>/last.pt`` exactly where it stopped.
    """

    def __init__(self, config: dict[str, Any], resume: bool = False):
        self.cfg = config
        self.tcfg = config["train"]
        self.outdir = Path(config["output"]["dir"])
        self.resume = resume
        self.ctx = D.init_distributed(self.tcfg["device"])
        self._configure_backends()
        _seed_everything(self.tcfg["seed"])
        task_cls = get_task_class(config["task"])
        self.task: Task = task_cls(config["data"], config["model"], config["loss"])
        self._check_output_dir()

        self.train_ds, self.val_ds = self.task.datasets()
        self.model: nn.Module = self.task.build_model(None if resume else self.train_ds).to(self.ctx.device)
        ocfg = config["optim"]
        self.optimizer = torch.optim.AdamW(self.task.param_groups(self.model), lr=ocfg["lr"],
                                           betas=tuple(ocfg["betas"]),
                                           eps=ocfg["eps"], weight_decay=ocfg["weight_decay"],
                                           amsgrad=ocfg["amsgrad"])
        seed, rank, world = self.tcfg["seed"], self.ctx.rank, self.ctx.world_size
        self.train_sampler = self.task.batch_sampler(self.train_ds, train=True, seed=seed, rank=rank,
                                                     world_size=world)
        self.batches = SkippingBatchSampler(self.train_sampler)
        self.train_sampler.set_epoch(0)
        self.steps_per_epoch = len(self.train_sampler)  # of epoch 0: samplers may vary it a little per epoch
        if self.steps_per_epoch == 0:
            raise ConfigError("the training set yields no batch on this rank (data too small for the batch size "
                              "and world size?)")
        self.total_steps = self._total_steps()
        self.schedule = LRSchedule(self.optimizer, config["schedule"], self.total_steps)
        self.ema = EMA(self.model, self.tcfg["ema_decay"]) if self.tcfg["ema_decay"] > 0 else None

        pin = self.ctx.device.type == "cuda"
        self.loader_gen = torch.Generator()
        self.train_loader = make_loader(self.train_ds, self.batches, self.task.collate,
                                        num_workers=self.tcfg["num_workers"], pin_memory=pin,
                                        generator=self.loader_gen)
        self.val_loader = None
        if self.val_ds is not None:
            val_sampler = self.task.batch_sampler(self.val_ds, train=False, seed=seed, rank=rank, world_size=world)
            self.val_loader = make_loader(self.val_ds, val_sampler, self.task.collate,
                                          num_workers=self.tcfg["num_workers"], pin_memory=pin,
                                          generator=torch.Generator().manual_seed(seed))

        self.step = 0
        self.epoch = 0
        self.consumed = 0  # batches of the current epoch already trained on
        self.best_score = math.inf
        self.nan_skipped = 0
        self.history: list[dict[str, Any]] = []
        self.step_log: list[list[float]] = []  # [step, mean training loss over the interval, lr] every log_every
        self.interval: list[float] = [0.0, 0]  # loss sum and steps since the last step_log row
        self.train_sums: dict[str, torch.Tensor] = {}
        self.stop_reason = ""  # set on all ranks when a stop was requested (signal or train.max_time_s)
        self._signalled = ""
        self._t_start = time.perf_counter()
        if resume:
            self._load_state(load_checkpoint(self.outdir / "last.pt"))

        self.ddp_model: nn.Module = self.model
        if self.ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=[self.ctx.device.index] if self.ctx.device.type == "cuda" else None,
                find_unused_parameters=self.tcfg["find_unused_parameters"])
        self.log = None
        if self.ctx.is_main:
            from sciml.training.metrics_log import MetricsLog

            self.log = MetricsLog(self.outdir)
            atomic_write_text(self.outdir / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    # -- setup --------------------------------------------------------------------------------------------
    def _configure_backends(self) -> None:
        if self.tcfg["deterministic"]:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
            torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(self.tcfg["deterministic"])
        if self.ctx.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.tcfg["tf32"]
            torch.backends.cudnn.allow_tf32 = self.tcfg["tf32"]
        if not self.tcfg["deterministic"] and self.ctx.is_main and (self.ctx.device.type == "cuda"
                                                                   or torch.get_num_threads() > 1):
            where = "on CUDA" if self.ctx.device.type == "cuda" else f"with {torch.get_num_threads()} CPU threads"
            print(f"note: {where} without train.deterministic, parallel sums make two runs of the same seed (and a "
                  "resumed run) differ in the last bits; set train.deterministic: true for bit-identical runs",
                  flush=True)

    def _check_output_dir(self) -> None:
        last = self.outdir / "last.pt"
        if self.resume and not last.is_file():
            raise ConfigError(f"--resume: no checkpoint {last} to resume from (output.dir = {self.outdir})")
        if not self.resume and last.is_file():
            raise ConfigError(f"{self.outdir} already holds a run ({last}); pass --resume to continue it or set "
                              "another output.dir")

    def _total_steps(self) -> int:
        limits = [self.tcfg["max_epochs"] * self.steps_per_epoch] if self.tcfg["max_epochs"] else []
        if self.tcfg["max_steps"]:
            limits.append(self.tcfg["max_steps"])
        return min(limits)

    def _amp(self) -> Any:
        if self.tcfg["amp"] and self.ctx.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    # -- checkpoints --------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "config": self.cfg, "task": self.cfg["task"], "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None, "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "sampler": {"epoch": self.epoch, "batches_consumed": self.consumed,
                        "state": to_plain(self.train_sampler.state_dict())},
            "rng": rng_state(), "step": self.step, "epoch": self.epoch, "best_score": self.best_score,
            "nan_skipped": self.nan_skipped, "train_sums": {k: float(v) for k, v in self.train_sums.items()},
            "history": self.history, "step_log": self.step_log, "interval": self.interval,
            "world_size": self.ctx.world_size,
        }

    def _save(self, best: bool = False) -> None:
        """Write ``last.pt`` (and ``best.pt``) on rank 0; all ranks first pool their running metric sums."""
        self._pool_train_sums()
        if self.ctx.is_main:
            state = self._state()
            save_checkpoint(self.outdir / "last.pt", state)
            if best:
                save_checkpoint(self.outdir / "best.pt", state)
        D.barrier(self.ctx)

    def _pool_train_sums(self) -> None:
        """Sum the running training metrics onto rank 0 (others restart at 0) so a checkpoint holds all of them."""
        if self.ctx.distributed:
            self.train_sums = {k: v if self.ctx.is_main else torch.zeros_like(v)
                               for k, v in self._pool(self.train_sums).items()}

    def _load_state(self, ckpt: dict[str, Any]) -> None:
        changed = [s for s in FROZEN_SECTIONS if ckpt["config"].get(s) != self.cfg[s]]
        if changed:
            raise ConfigError(f"--resume: section(s) {', '.join(changed)} differ from the checkpoint's config; "
                              "they define the model and data and cannot change mid-run")
        others = [s for s in self.cfg if s not in FROZEN_SECTIONS and ckpt["config"].get(s) != self.cfg[s]]
        if others and self.ctx.is_main:
            print(f"resume: using the new values of section(s) {', '.join(others)}", flush=True)
        if ckpt.get("world_size", 1) != self.ctx.world_size and self.ctx.is_main:
            print(f"resume: world size changed {ckpt.get('world_size')} -> {self.ctx.world_size}; the data order "
                  "differs from an uninterrupted run", flush=True)
        if ckpt["config"]["optim"]["amsgrad"] != self.cfg["optim"]["amsgrad"]:
            raise ConfigError("--resume: optim.amsgrad cannot change mid-run (the optimiser state differs)")
        self.model.load_state_dict(ckpt["model"])
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except ValueError as exc:  # e.g. another number of parameter groups (a checkpoint of an older sciml)
            raise ConfigError(f"--resume: the optimiser state in {self.outdir / 'last.pt'} does not fit this task's "
                              f"parameter groups ({exc}); start a new run with model.init_from pointing at it") from None
        ocfg = self.cfg["optim"]
        for group in self.optimizer.param_groups:  # the config's hyper-parameters win over the checkpoint's
            group.update(betas=tuple(ocfg["betas"]), eps=ocfg["eps"],
                         weight_decay=0.0 if group.get("no_decay") else ocfg["weight_decay"])
        self.schedule.load_state_dict(ckpt["scheduler"])
        if self.ema is not None and ckpt["ema"] is not None:
            self.ema.load_state_dict(ckpt["ema"])
            self.ema.decay = self.tcfg["ema_decay"]
        elif self.ema is not None:
            self.ema.module.load_state_dict(ckpt["model"])
        self.step, self.epoch = int(ckpt["step"]), int(ckpt["epoch"])
        self.consumed = int(ckpt["sampler"]["batches_consumed"])
        self.best_score, self.nan_skipped = float(ckpt["best_score"]), int(ckpt["nan_skipped"])
        self.history = list(ckpt["history"])
        self.step_log = [list(row) for row in ckpt.get("step_log", [])]  # absent before version 1 had them
        self.interval = list(ckpt.get("interval", [0.0, 0]))
        if self.ctx.is_main:
            self.train_sums = {k: torch.tensor(v, dtype=torch.float64, device=self.ctx.device)
                               for k, v in ckpt["train_sums"].items()}
        set_rng_state(ckpt["rng"])

    # -- loop ---------------------------------------------------------------------------------------------
    def _done(self) -> bool:
        t = self.tcfg
        return bool((t["max_steps"] and self.step >= t["max_steps"]) or (t["max_epochs"] and
                                                                          self.epoch >= t["max_epochs"]))

    def run(self) -> dict[str, Any]:
        """Train until ``max_steps`` / ``max_epochs`` (or a graceful stop: SIGTERM/SIGINT/SIGUSR1 or
        ``train.max_time_s``, after which ``last.pt`` is written at the step boundary); returns a summary."""
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True, mininterval=1.0,
                   disable=not (self.ctx.is_main and self.tcfg["progress"]))
        batches_this_run = 0
        self._t_start = time.perf_counter()
        previous = self._install_stop_handlers()
        try:
            while not self._done() and not self.stop_reason:
                batches_this_run += self._train_epoch(bar)
                if self._epoch_val_due() and not self._validated_now():
                    self._validate_and_save(bar)
            if self._validated_now() or self.stop_reason:
                self._save()  # the state after the last step (epoch counter included)
            else:
                self._validate_and_save(bar)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            bar.close()
            if self.log is not None:
                self.log.close()
        summary = {"steps": self.step, "epochs": self.epoch, "best_score": self.best_score,
                   "nan_skipped": self.nan_skipped, "last": self.history[-1] if self.history else {},
                   "stopped": self.stop_reason, "output_dir": str(self.outdir)}
        print(f"rank {self.ctx.rank}/{self.ctx.world_size}: {'stopped' if self.stop_reason else 'done'} at step "
              f"{self.step} (epoch {self.epoch}); {batches_this_run} batches in this run; {self.nan_skipped} "
              "non-finite batches skipped", flush=True)
        if self.ctx.is_main:
            atomic_write_text(self.outdir / "summary.json", json.dumps(_json_safe(summary), indent=1) + "\n")
            if self.stop_reason:
                print(f"stopped early ({self.stop_reason}); {self.outdir / 'last.pt'} written: continue with "
                      "--resume", flush=True)
            print(f"best score {self.best_score:.6g}; last.pt, best.pt, metrics.csv and learning_curve.png in "
                  f"{self.outdir}", flush=True)
        D.barrier(self.ctx)
        return summary

    def _install_stop_handlers(self) -> dict[int, Any]:
        """SIGTERM / SIGUSR1 / a first SIGINT request a stop at the next step boundary (a second SIGINT aborts)."""
        def request(signum: int, frame: Any) -> None:
            if self._signalled and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._signalled = signal.Signals(signum).name

        previous: dict[int, Any] = {}
        for name in ("SIGTERM", "SIGINT", "SIGUSR1"):
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                previous[sig] = signal.signal(sig, request)
            except ValueError:  # not the main thread: leave signals alone
                break
        return previous

    def _local_stop_request(self) -> str:
        if self._signalled:
            return f"{self._signalled} received"
        limit = self.tcfg["max_time_s"]
        if limit and time.perf_counter() - self._t_start > limit:
            return f"train.max_time_s = {limit:g} s reached"
        return ""

    def _validated_now(self) -> bool:
        return bool(self.history) and self.history[-1]["step"] == self.step

    def _epoch_val_due(self) -> bool:
        every = self.tcfg["val_every"]
        return bool(self.consumed == 0 and every and self.epoch % every == 0)

    def _epoch_length(self) -> int:
        """Batches of the current epoch, checked equal on all ranks (DDP would hang otherwise)."""
        self.train_sampler.set_epoch(self.epoch)
        counts = D.all_gather_ints(len(self.train_sampler), self.ctx)
        if len(set(counts)) != 1:
            raise SciMLError(f"epoch {self.epoch}: the task's training batch sampler gives the ranks different "
                             f"batch counts {counts}; under DDP every rank must yield the same number of batches")
        return counts[0]

    def _train_epoch(self, bar: Any) -> int:
        """Train on the rest of the current epoch (or until a limit); returns the number of batches seen."""
        epoch_length = self._epoch_length()
        self.batches.skip = self.consumed
        self.loader_gen.manual_seed(self.tcfg["seed"] * 1_000_003 + self.epoch)
        self.model.train()
        seen = 0
        t0, samples = time.perf_counter(), 0
        for indices, batch in self.train_loader:
            loss = self._train_step(indices, batch)
            seen += 1
            self.consumed += 1
            samples += len(indices)
            if loss is not None:
                self.interval[0] += loss
                self.interval[1] += 1
                bar.update(1)
            if self.step % self.tcfg["log_every"] == 0 and self.interval[1]:
                rate = samples * self.ctx.world_size / max(time.perf_counter() - t0, 1e-9)
                scalars = {"loss": self.interval[0] / self.interval[1], "lr": self.schedule.lr,
                           "samples_per_s": rate}
                bar.set_postfix(loss=f"{scalars['loss']:.4g}", lr=f"{scalars['lr']:.3g}", sps=f"{rate:.1f}",
                                refresh=False)
                self.step_log.append([self.step, scalars["loss"], scalars["lr"]])
                if self.log is not None:
                    self.log.log_step(self.step, scalars)
                t0, samples, self.interval = time.perf_counter(), 0, [0.0, 0]
            ves = self.tcfg["val_every_steps"]
            if ves and self.step % ves == 0 and not self._validated_now():
                self._validate_and_save(bar)
            elif self.tcfg["checkpoint_every_steps"] and self.step % self.tcfg["checkpoint_every_steps"] == 0:
                self._save()
            if self.stop_reason or (self.tcfg["max_steps"] and self.step >= self.tcfg["max_steps"]):
                break
        if self.consumed >= epoch_length:
            self.epoch += 1
            self.consumed = 0
        return seen

    def _train_step(self, indices: list[int], batch: Any) -> float | None:
        """One optimiser step; returns the loss (mean over ranks) or None for a skipped non-finite batch."""
        batch = self.task.to_device(batch, self.ctx.device)
        with self._amp():
            loss, metrics = self.task.loss(self.ddp_model, batch)
        local = loss.detach().float().reshape(1)
        request = self._local_stop_request()
        pooled = D.all_reduce_sum(torch.cat([local, local.new_tensor([1.0 if request else 0.0])]), self.ctx)
        loss_sum, stop_votes = pooled.tolist()
        global_loss = loss_sum / self.ctx.world_size
        if stop_votes and not self.stop_reason:  # every rank stops after this same step
            self.stop_reason = request or "stop requested on another rank"
        if not math.isfinite(global_loss):
            return self._non_finite("loss", float(local.item()), indices)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.tcfg["grad_clip"] or math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip))
        if not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            return self._non_finite("gradient norm", grad_norm, indices)
        self.optimizer.step()
        self.step += 1
        self.schedule.step()
        if self.ema is not None:
            self.ema.update(self.model)
        _add_sums(self.train_sums, metrics)
        _add_sums(self.train_sums, {_LOSS: local.to(torch.float64), _STEPS: torch.ones((), device=local.device)})
        return global_loss

    def _non_finite(self, what: str, value: float, indices: list[int]) -> None:
        where = (f"at step {self.step + 1}, epoch {self.epoch}, batch {self.consumed} of the epoch "
                 f"(rank {self.ctx.rank}, dataset indices {indices})")
        if math.isfinite(value):
            where += f": {what} is finite on this rank ({value:.6g}) but not on another rank"
        else:
            where += f": {what} = {value}"
        if self.tcfg["nan_policy"] == "stop":
            self._save()  # the state before this batch (no update was applied)
            raise NonFiniteLossError(f"non-finite {what} {where}. Check these inputs, lower optim.lr or set "
                                     f"train.grad_clip; {self.outdir / 'last.pt'} holds the state before this "
                                     "batch: --resume --set train.nan_policy=skip continues without it")
        self.nan_skipped += 1
        if self.ctx.is_main:
            from tqdm.auto import tqdm

            tqdm.write(f"skipped non-finite {what} {where} ({self.nan_skipped} skipped so far)")
        return None

    # -- validation ---------------------------------------------------------------------------------------
    def _pool(self, sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Metric sums added over ranks; a rank that saw no batch (or not every key) contributes zeros."""
        keys = D.union_keys(sums, self.ctx)
        if not keys:
            return {}
        zero = torch.zeros((), dtype=torch.float64, device=self.ctx.device)
        stacked = torch.stack([sums[k].to(self.ctx.device) if k in sums else zero for k in keys])
        pooled = D.all_reduce_sum(stacked, self.ctx)
        return {k: pooled[i] for i, k in enumerate(keys)}

    def _reduce(self, sums: dict[str, torch.Tensor], prefix: str) -> dict[str, float]:
        totals = {k: float(v) for k, v in self._pool(sums).items()}
        loss_sum, steps = totals.pop(_LOSS, math.nan), totals.pop(_STEPS, 0.0)
        if not steps:
            return {}
        out = {f"{prefix}_loss": loss_sum / steps}
        for key, value in self.task.reduce_metrics(totals).items():
            out[f"{prefix}_score" if key == "val_score" else f"{prefix}_{key}"] = float(value)
        return out

    def _evaluate(self) -> dict[str, float]:
        model = self.ema.module if self.ema is not None else self.model
        model.eval()
        sums: dict[str, torch.Tensor] = {}
        grad = torch.enable_grad() if self.task.eval_requires_grad else torch.no_grad()
        with grad:
            for _, batch in self.val_loader:
                batch = self.task.to_device(batch, self.ctx.device)
                loss, metrics = self.task.loss(model, batch)  # full precision (no autocast), as at inference
                _add_sums(sums, metrics)
                _add_sums(sums, {_LOSS: loss.detach().to(torch.float64),
                                 _STEPS: torch.ones((), device=self.ctx.device)})
        self.model.train()
        return self._reduce(sums, "val")

    def _validate_and_save(self, bar: Any) -> None:
        row: dict[str, Any] = {"step": self.step, "epoch": self.epoch, "lr": self.schedule.lr}
        row.update(self._reduce(self.train_sums, "train"))
        self.train_sums = {}
        if self.val_loader is not None:
            row.update(self._evaluate())
        row["nan_skipped"] = self.nan_skipped
        score = row.get("val_score", row.get("train_score", math.nan))
        self.schedule.observe(score)
        improved = math.isfinite(score) and score < self.best_score
        if improved:
            self.best_score = score
        self.history.append(row)
        if self.log is not None:
            self.log.log_validation(self.history, self.step_log)
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                              if not k.startswith("train_") or k == "train_loss")
            bar.write(shown + ("  (best)" if improved else "") + f"  [all metrics: {self.outdir / 'metrics.csv'}]")
        self._save(best=improved)
