"""Distributed training set-up.

Several GPUs (or CPU processes): launch with ``torchrun --nproc_per_node N -m rtbold.cli train
CONFIG``. With ``WORLD_SIZE > 1`` the model is wrapped in DistributedDataParallel (NCCL on CUDA,
gloo on CPU) and the chunk sampler deals each rank an equal share of the shuffled chunks. Rank 0
writes every file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> Dist:
    """Join the torchrun process group when ``WORLD_SIZE > 1`` (gloo on CPU, NCCL on CUDA)."""
    import torch
    import torch.distributed as tdist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_pref != "cpu" and torch.cuda.is_available()
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    return Dist(rank=rank, world_size=world, local_rank=local)


def weights_digest(model) -> str:
    """SHA-256 over the state dict (names and bytes): equal on every DDP rank after training."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
