"""Collectives for losses that compare samples across the ranks of a distributed run.

Every function falls back to the single-process result when torch.distributed is not initialised, so the same
loss code runs with and without DDP. Gradient convention (shared by all SSP losses here): each rank computes
the loss of the whole global batch, and gradients flow only into the samples this rank produced. The gradient
a rank gets for its own samples is then exactly what one process on the joined batch would get for them, and
the parameter gradients of the ranks add up to the single-process gradient; DDP averages them, so under DDP
the effective parameter gradient is the single-process gradient divided by the world size.
"""

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def gathered_batch_sizes(local_batch_size: int) -> list[int]:
    """The batch size of every rank, in rank order (identical on all ranks)."""
    if not is_distributed():
        return [local_batch_size]
    local = torch.tensor([local_batch_size], dtype=torch.int64, device=_collective_device())
    sizes = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, local)
    return [int(size.item()) for size in sizes]


def global_sample_offset(local_batch_size: int) -> int:
    """Index of this rank's first sample in the batch joined over all ranks."""
    if not is_distributed():
        return 0
    return sum(gathered_batch_sizes(local_batch_size)[: dist.get_rank()])


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` of every rank along dim 0 in rank order; only this rank's slice carries gradient.

    Ranks may hold different batch sizes. Returns `x` itself when torch.distributed is not initialised.
    """
    if not is_distributed():
        return x
    sizes = gathered_batch_sizes(x.shape[0])
    # all_gather needs equal shapes, so every rank sends a zero-padded block of the largest batch size.
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[: x.shape[0]] = x.detach()
    blocks = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(blocks, padded)
    parts = [block[:size] for block, size in zip(blocks, sizes)]
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Element-wise mean of `t` over all ranks, without gradient; `t` itself is not modified."""
    if not is_distributed():
        return t.detach()
    total = t.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()


def _collective_device() -> torch.device:
    """The device the default backend communicates on (NCCL needs CUDA tensors)."""
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
