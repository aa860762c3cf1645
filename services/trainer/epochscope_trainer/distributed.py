"""The few torch.distributed facts the trainer needs, safe to call in a single process."""

from typing import Any

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_to_all(local: list[Any]) -> list[list[Any]]:
    """Every rank's list, indexed by rank (all_gather_object; works on gloo and nccl)."""
    rank, size = world()
    if size == 1:
        return [local]
    gathered: list[Any] = [None] * size
    dist.all_gather_object(gathered, local)
    return gathered


def any_rank(flag: bool) -> bool:
    """True on every rank if it is True on any rank: stop decisions must agree, or DDP hangs."""
    _, size = world()
    if size == 1:
        return flag
    tensor = torch.tensor([int(flag)])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())
