"""Where a training process runs: torchrun's process group (or a single process), its device, and
moving collated batches there."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when RANK/WORLD_SIZE/LOCAL_RANK come from torchrun (or another launcher)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def pick_device(local_rank: int = 0, gpus: Sequence[int] = (), device: Optional[str] = None) -> str:
    """'cuda:<id>' when CUDA is available (id from `gpus[local_rank]` when given), else 'cpu'."""
    if device:
        return device
    if torch.cuda.is_available():
        ids = list(gpus) if gpus else list(range(torch.cuda.device_count()))
        gid = ids[local_rank] if local_rank < len(ids) else local_rank % max(1, torch.cuda.device_count())
        return f"cuda:{gid}"
    return "cpu"


def init_distributed(gpus: Sequence[int] = (), device: Optional[str] = None) -> DistInfo:
    """Join the process group named by the environment (torchrun); single process otherwise.

    Backend: nccl on CUDA, gloo on the CPU.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistInfo(device=pick_device(0, gpus, device))
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ["LOCAL_RANK"])
    dev = pick_device(local, gpus, device)
    backend = "nccl" if dev.startswith("cuda") else "gloo"
    if dev.startswith("cuda"):
        torch.cuda.set_device(torch.device(dev))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    logger.info("rank %d/%d (local %d) on %s, backend %s", rank, world, local, dev, backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def free_port() -> int:
    """A free TCP port on the loopback interface (for spawned process groups)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def all_reduce_mean(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over ranks (identity in a single process)."""
    if not info.distributed:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / info.world_size


def batch_to_device(batch: dict, device: str) -> dict:
    """Move the tensors of a collated sample dict to `device` (other values as they are)."""
    non_blocking = device.startswith("cuda")
    return {k: (v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}


def gather_by_rank(mine: Any, info: DistInfo) -> Dict[str, Any]:
    """Every rank's `mine` by rank ("0", "1", ...), on every rank (all_gather_object); {"0": mine} alone."""
    if not info.distributed:
        return {"0": mine}
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, mine)
    return {str(r): s for r, s in enumerate(out)}
