"""Batch sampling for training.

UnEBOLT's loss has a temporal-correlation term computed over the batch axis, so a UnEBOLT batch must
be a run of consecutive TRs of one scan: :class:`ChunkBatchSampler` cuts each scan's training
windows into chunks of ``batch_size`` consecutive windows, shuffles the *order of the chunks* every
epoch and never mixes scans inside a chunk (MODEL.md 4.3). The same sampler serves NeuroBOLT (its MSE
loss does not care), which keeps one code path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class ChunkBatchSampler:
    """Batches of consecutive windows of one scan, chunk order shuffled every epoch.

    Parameters
    ----------
    runs : list of sequences of int
        Dataset indices of each scan's training windows in time order. A scan whose windows have
        holes (e.g. invalid volumes) may be given as several runs; a chunk never spans two runs.
    batch_size : int
        Windows per chunk (= per batch). Remainders shorter than a chunk are dropped.
    shuffle : bool
        Shuffle chunk order each epoch (seeded by ``seed + epoch``: identical on every rank).
    jitter : bool
        Start each run's chunking at a random offset in ``[0, len(run) % batch_size]`` every
        epoch (the windows left over by the chunking move around; no chunk is lost).
    rank, world_size : int
        For distributed training: every rank takes the same number of chunks from a shared
        permutation (surplus chunks are dropped so the ranks step together).
    """

    def __init__(self, runs: Sequence[Sequence[int]], batch_size: int, *, shuffle: bool = True,
                 jitter: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}.")
        self.runs = [list(r) for r in runs]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.jitter = jitter
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _chunks(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        chunks = []
        for run in self.runs:
            # the offset moves chunk boundaries within the run's leftover (len % batch_size), so
            # jitter varies the batches without ever costing a chunk
            off = int(rng.integers(0, len(run) % self.batch_size + 1)) if self.jitter else 0
            for s in range(off, len(run) - self.batch_size + 1, self.batch_size):
                chunks.append(run[s: s + self.batch_size])
        if self.shuffle:
            order = rng.permutation(len(chunks))
            chunks = [chunks[i] for i in order]
        n = (len(chunks) // self.world_size) * self.world_size
        return chunks[self.rank:n:self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._chunks())

    def __len__(self) -> int:
        return len(self._chunks())


def contiguous_runs(volume_indices: Sequence[int]) -> list[list[int]]:
    """Split sorted volume indices into runs of consecutive values: [1,2,3,7,8] -> [[1,2,3],[7,8]]."""
    runs: list[list[int]] = []
    for k in volume_indices:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(int(k))
        else:
            runs.append([int(k)])
    return runs


def runs_by_scan(items: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Dataset positions of ``items`` grouped into per-scan runs of consecutive volumes."""
    by_scan: dict[int, list[tuple[int, int]]] = {}
    for pos, (s, k) in enumerate(items):
        by_scan.setdefault(s, []).append((k, pos))
    runs = []
    for s in sorted(by_scan):
        pairs = sorted(by_scan[s])
        vols = [k for k, _ in pairs]
        pos_of = dict(pairs)
        runs.extend([[pos_of[k] for k in run] for run in contiguous_runs(vols)])
    return runs
