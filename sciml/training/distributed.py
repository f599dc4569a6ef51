"""Process-group setup for ``torchrun`` (single- or multi-node, env:// rendezvous) and small collective helpers.

Without ``WORLD_SIZE`` > 1 in the environment everything degrades to a single process and no collective is called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sciml.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process runs: global rank, world size, rank within its node and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, logs and plots."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; ``cuda`` -> ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device is {name!r} but no CUDA device is available (use cpu or auto)")
        return torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device(name)
    return torch.device(name)


def init_distributed(device: str) -> DistContext:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA) or return a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", init_method="env://",
                                **({"device_id": dev} if dev.type == "cuda" else {}))
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def shutdown_distributed() -> None:
    """Leave the process group (no-op when none)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over ranks (in place, returned for chaining)."""
    if ctx.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_gather_ints(value: int, ctx: DistContext) -> list[int]:
    """``value`` from every rank, in rank order."""
    if not ctx.distributed:
        return [value]
    t = torch.tensor([value], dtype=torch.int64, device=ctx.device)
    out = [torch.zeros_like(t) for _ in range(ctx.world_size)]
    dist.all_gather(out, t)
    return [int(x.item()) for x in out]


def union_keys(mapping: dict[str, object], ctx: DistContext) -> list[str]:
    """Sorted union of ``mapping``'s keys over all ranks."""
    if not ctx.distributed:
        return sorted(mapping)
    gathered: list[list[str] | None] = [None] * ctx.world_size
    dist.all_gather_object(gathered, sorted(mapping))
    return sorted({k for keys in gathered for k in keys or []})


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if ctx.distributed:
        dist.barrier()
