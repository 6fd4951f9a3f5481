"""Inference latency and training throughput of the rtbold models.

For every model (unebolt, neurobolt) and size (tiny, small, base):

- single-window inference latency (B = 1, eval mode, ``torch.inference_mode``), p50 and p99, on
  CPU with 1 and 2 intra-op threads, and on CUDA when available;
- training throughput in windows/s: forward + UnEBOLT loss + backward + AdamW step at batch 16.

Usage::

    python benchmarks/bench_inference.py            # full run
    python benchmarks/bench_inference.py --quick    # few repetitions (a few minutes on 2 busy cores)
    python benchmarks/bench_inference.py --sizes small --models unebolt --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch

from rtbold.models import create_model, param_groups, unebolt_loss

VU = ["FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7",
      "P8", "FPZ", "FZ", "CZ", "PZ", "POZ", "OZ", "FT9", "FT10", "TP9", "TP10"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_latency(model: torch.nn.Module, device: torch.device, repeats: int, warmup: int
                  ) -> tuple[float, float]:
    """p50 and p99 (ms) of one-window inference, input copied from host memory each time."""
    model = model.to(device).eval()
    x_host = torch.randn(1, len(model.ch_names), model.n_samples)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            y = model(x_host.to(device))
            y = y.cpu()                         # the live path needs the values on the host
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def bench_training(model: torch.nn.Module, device: torch.device, batch: int, steps: int,
                   warmup: int) -> float:
    """Training windows per second (forward, loss, backward, AdamW step)."""
    model = model.to(device).train()
    opt = torch.optim.AdamW(param_groups(model), lr=1e-4)
    x = torch.randn(batch, len(model.ch_names), model.n_samples, device=device)
    y = torch.randn(batch, model.n_rois, device=device)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = unebolt_loss(model(x), y)
        loss.backward()
        opt.step()
    _sync(device)
    return batch * steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions")
    parser.add_argument("--models", nargs="+", default=["unebolt", "neurobolt"])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--n-rois", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="training batch")
    parser.add_argument("--no-train", action="store_true", help="skip the training benchmark")
    parser.add_argument("--no-cuda", action="store_true", help="skip CUDA even if available")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    repeats, warmup = (10, 2) if args.quick else (200, 10)
    train_steps, train_warmup = (2, 1) if args.quick else (10, 2)
    use_cuda = torch.cuda.is_available() and not args.no_cuda
    cuda = torch.device("cuda") if use_cuda else None
    cpu = torch.device("cpu")
    rows = []
    for size in args.sizes:
        for name in args.models:
            torch.manual_seed(0)
            model = create_model(name, size=size, n_rois=args.n_rois, ch_names=VU)
            row = {"model": name, "size": size,
                   "params": sum(p.numel() for p in model.parameters())}
            for n in args.threads:
                torch.set_num_threads(n)
                row[f"cpu{n}_p50_ms"], row[f"cpu{n}_p99_ms"] = bench_latency(
                    model, cpu, repeats, warmup)
            if not args.no_train:
                torch.set_num_threads(max(args.threads))
                row["cpu_train_win_s"] = bench_training(model, cpu, args.batch, train_steps,
                                                        train_warmup)
            if cuda is not None:
                row["cuda_p50_ms"], row["cuda_p99_ms"] = bench_latency(
                    model, cuda, repeats * 2, warmup * 3)
                if not args.no_train:
                    row["cuda_train_win_s"] = bench_training(model, cuda, args.batch,
                                                             train_steps * 5, train_warmup * 3)
                model.to(cpu)
            rows.append(row)
            print(_format_row(row, args.threads, cuda is not None, not args.no_train,
                              header=len(rows) == 1), flush=True)
    env = {"torch": torch.__version__, "python": platform.python_version(),
           "cpu": platform.processor() or platform.machine(),
           "cuda_device": torch.cuda.get_device_name(0) if use_cuda else None,
           "quick": args.quick, "n_rois": args.n_rois, "train_batch": args.batch}
    print(f"\n# {json.dumps(env)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "results": rows}, f, indent=2)
    return 0


def _format_row(row: dict, threads: list[int], cuda: bool, train: bool, header: bool) -> str:
    cols = [("model", 10, row["model"]), ("size", 6, row["size"]),
            ("params", 11, f"{row['params']:,}")]
    for n in threads:
        cols.append((f"cpu{n} p50/p99 ms", 18,
                     f"{row[f'cpu{n}_p50_ms']:.1f} / {row[f'cpu{n}_p99_ms']:.1f}"))
    if train:
        cols.append((f"cpu{max(threads)} train win/s", 18, f"{row['cpu_train_win_s']:.1f}"))
    if cuda:
        cols.append(("cuda p50/p99 ms", 16, f"{row['cuda_p50_ms']:.2f} / {row['cuda_p99_ms']:.2f}"))
        if train:
            cols.append(("cuda train win/s", 16, f"{row['cuda_train_win_s']:.0f}"))
    line = " | ".join(str(v).rjust(w) for _, w, v in cols)
    if header:
        head = " | ".join(h.rjust(w) for h, w, _ in cols)
        return head + "\n" + "-" * len(head) + "\n" + line
    return line


if __name__ == "__main__":
    sys.exit(main())
