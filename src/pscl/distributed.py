"""Gathering across processes for contrastive losses (identity in a single process)."""
from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0, keeping gradients (SimCLR negatives).

    The backward pass sums every process's gradient for this process's slice, so with DDP's
    gradient averaging the update equals the single-process update on the global batch.
    """
    rank, size = world()
    if size == 1:
        return x
    from torch.distributed.nn.functional import all_gather
    return torch.cat(all_gather(x), 0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0, without gradients (queue keys)."""
    rank, size = world()
    if size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, 0)


def local_rows(n_local: int) -> slice:
    """This process's rows in a tensor gathered from equal-sized per-process batches."""
    rank, _ = world()
    return slice(rank * n_local, (rank + 1) * n_local)
