"""Training throughput on this machine, side by side in one run: float32, bf16 autocast and
``torch.compile``, and the data loader on its own.

One training step = forward + UnEBOLT loss + backward + AdamW step on a batch of consecutive
windows (batch 32, the demo recipe). bf16 runs where it is native (CUDA, or a CPU with AVX-512
BF16 / AMX, detected at run time); elsewhere it is emulated and reported as such. The loader
figure is ``WindowDataset`` slicing of a prepared 200-Hz scan through a ``DataLoader``, the path
training uses, so "the model never starves" can be read off: loader windows/s must be far above
the model's.

Examples::

    python benchmarks/bench_training.py                       # unebolt_bp tiny, 2 threads
    python benchmarks/bench_training.py --model unebolt --size small --steps 6
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _step_rate(model, x, y, *, bf16: bool, steps: int, warmup: int) -> float:
    import torch

    from rtbold.models import unebolt_loss
    from rtbold.training import autocast

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    dev = torch.device("cpu")

    def step():
        with autocast(dev, bf16):
            pred = model(x)
        loss = unebolt_loss(pred.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(x) / (time.perf_counter() - t0)


def _loader_rate(n_windows: int = 2048, batch: int = 32) -> float:
    """Windows/s of WindowDataset + DataLoader over a synthetic 20-min prepared scan."""
    from types import SimpleNamespace

    from torch.utils.data import DataLoader

    from rtbold.datasets import WindowDataset
    from rtbold.preprocessing import extract_window

    rng = np.random.default_rng(0)
    sfreq, n_vol, tr = 200.0, 575, 2.1
    eeg = rng.standard_normal((26, int((20 + n_vol * tr) * sfreq))).astype(np.float32)
    times = np.arange(eeg.shape[1]) / sfreq
    vt = 20 + np.arange(n_vol) * tr

    class _Scan(SimpleNamespace):
        def window(self, k):
            return extract_window(self.eeg, self.times, self.vt[k])

    scan = _Scan(eeg=eeg, times=times, vt=vt, valid=np.ones(n_vol, bool),
                 targets=rng.standard_normal((n_vol, 64)).astype(np.float32),
                 spec=SimpleNamespace(name="synthetic"))
    items = [(0, k % n_vol) for k in range(n_windows)]
    loader = DataLoader(WindowDataset([scan], items), batch_size=batch)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return n_windows / (time.perf_counter() - t0)


def main(argv=None) -> int:
    import torch

    from rtbold.models import create_model
    from rtbold.montage import load_montage
    from rtbold.training import cpu_supports_bf16

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="unebolt_bp")
    p.add_argument("--size", default="tiny", choices=("tiny", "small", "base"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ch = list(load_montage().ch_names)
    torch.manual_seed(0)
    x = torch.randn(args.batch, len(ch), 3200) * 0.3
    y = torch.randn(args.batch, 64)
    native = cpu_supports_bf16()
    rows = []

    def fresh():
        torch.manual_seed(0)
        return create_model(args.model, size=args.size, n_rois=64, ch_names=ch)

    rows.append(("float32 (eager)", _step_rate(fresh(), x, y, bf16=False, steps=args.steps,
                                               warmup=2)))
    rows.append((f"bf16 autocast ({'native' if native else 'emulated: no AVX-512 BF16/AMX'})",
                 _step_rate(fresh(), x, y, bf16=True, steps=args.steps, warmup=2)))
    if not args.no_compile:
        try:
            compiled = torch.compile(fresh())
            rows.append(("float32, torch.compile", _step_rate(compiled, x, y, bf16=False,
                                                              steps=args.steps, warmup=3)))
        except Exception as err:  # no C++ toolchain, unsupported op...
            rows.append((f"torch.compile failed: {type(err).__name__}", float("nan")))
    loader = _loader_rate(batch=args.batch)
    print(f"{args.model} {args.size}, batch {args.batch}, {args.threads} threads, "
          f"torch {torch.__version__}")
    print("| setting | training windows/s | vs float32 |\n| --- | --- | --- |")
    base = rows[0][1]
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}x |")
    print(f"| data loader alone (WindowDataset + DataLoader) | {loader:.0f} | "
          f"{loader / base:.0f}x the model |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
