"""Benchmarks of the training engine: ``make bench`` or ``python bench/run.py [--help]``.

(a) engine against a plain PyTorch loop, samples/s per architecture, fc12 and a
    10-net sample of cnn100 (every tenth), on one mix;
(b) the fc12 x 11 mixes sweep through the queue (``ffqueue sweep run``) against the
    plain loop training the same 132 runs;
(c) fused against separate training of each architecture on the 11 mixes.
Also the machine's measured fp32/bf16 matmul rate, to compare the achieved training
FLOP rate with. Prints markdown; the figures in docs/benchmarks.md come from here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/run.py`

import torch

from bench.common import load_splits, machine, markdown, matmul_rate, mixes_dir
from bench.engine import fused_vs_separate, throughput, throughput_table
from bench.sweep import compare, engine_sweep, plain_sweep, queue_sweep, worker_sweep
from ffqueue.settings import available_cores
from ffqueue.specs import cnn100, fc12
from ffqueue.sweeps import TrainConfig
from worker.device import configure, pick_device, resolve_precision


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="a,b,c", help="sections to run [a,b,c]")
    parser.add_argument("--per-class", type=int, default=1000,
                        help="drawings per class in each synthetic mix [1000: 7000 training]")
    parser.add_argument("--epochs", type=int, default=2, help="epochs for (a) fc12 and (b) [2]")
    parser.add_argument("--cnn-epochs", type=int, default=1, help="epochs for the CNNs [1]")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed repeats per architecture in (a); the best counts [1]")
    parser.add_argument("--threads", type=int, default=0, help="torch threads [all cores]")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda [auto]")
    args = parser.parse_args(argv)
    sections = set(args.only.split(","))
    threads = args.threads or available_cores()
    torch.set_num_threads(threads)
    device = pick_device(args.device)
    precision = resolve_precision("auto", device)
    mixes = mixes_dir(args.per_class)
    one_mix = load_splits(mixes, [0])[0]
    print(f"# ffqueue benchmarks ({time.strftime('%Y-%m-%d %H:%M')})\n")
    print(f"machine: {machine()}; device {device}; engine precision (auto): {precision}")
    print(f"data: synthetic doodles, {args.per_class} a class: {one_mix.sizes[0]} training, "
          f"{one_mix.sizes[1]} validation, {one_mix.sizes[2]} test drawings a mix")
    configure(device)  # as a worker does (TF32, cuDNN autotuning on CUDA): for both sides
    size = 1024 if device.type == "cpu" else 8192
    where = f"{threads} threads" if device.type == "cpu" else "fp32 with TF32"
    print(f"measured matmul rate ({size}², {where}): "
          f"fp32 {matmul_rate(size=size, device=device) / 1e9:.0f} GFLOP/s, "
          f"bf16 {matmul_rate(torch.bfloat16, size, device=device) / 1e9:.0f} GFLOP/s\n")
    precisions = ["fp32", "bf16"] if precision == "bf16" else ["fp32"]
    if "a" in sections:
        _section_a(one_mix, args, precisions, device)
    if "b" in sections:
        _section_b(mixes, args, threads, precision, device)
    if "c" in sections:
        _section_c(mixes, args, precision, device)


def _section_a(one_mix: object, args: argparse.Namespace, precisions: list[str],
               device: torch.device) -> None:
    for title, archs, epochs in [("fc12", fc12(), args.epochs),
                                 ("cnn100 sample (every tenth net)", cnn100()[::10],
                                  args.cnn_epochs)]:
        print(f"## (a) engine vs plain loop on {device}: {title}, mix_00, {epochs} epoch(s)\n")
        rows, summary = throughput(archs, one_mix, TrainConfig(epochs=epochs),  # type: ignore[arg-type]
                                   precisions=precisions, repeats=args.repeats, device=device)
        print(throughput_table(rows, summary, precisions) + "\n", flush=True)


def _section_b(mixes: Path, args: argparse.Namespace, threads: int, precision: str,
               device: torch.device) -> None:
    print(f"## (b) fc12 x 11 mixes through the queue on {device}, {args.epochs} epoch(s)\n")
    plain = plain_sweep(mixes, args.epochs, device)
    queued = queue_sweep(mixes, args.epochs, device=str(device))
    threads = threads if device.type == "cpu" else 1  # one worker process feeds a GPU
    workers = worker_sweep(mixes, args.epochs, processes=threads, device=str(device))
    engine = engine_sweep(mixes, args.epochs, precision, device)
    rows = [{"how": "plain loop, one run at a time", "runs": plain["done"],
             "seconds": plain["seconds"], "CPU seconds": plain["cpu"], "speed-up": 1.0},
            {"how": "`ffqueue sweep run` (embedded queue, defaults)",
             "runs": queued["done"], "seconds": queued["seconds"], "CPU seconds": queued["cpu"],
             **compare(plain, queued)},
            {"how": f"`ffqueue sweep submit` + `ffqueue worker --concurrency {threads}`",
             "runs": workers["done"], "seconds": workers["seconds"],
             "CPU seconds": workers["cpu"], **compare(plain, workers)},
            {"how": f"engine alone, in this process ({precision}, no queue)",
             "runs": engine["done"], "seconds": engine["seconds"], "CPU seconds": engine["cpu"],
             **compare(plain, engine)}]
    print(markdown(rows, ["how", "runs", "seconds", "CPU seconds", "speed-up",
                          "speed-up (CPU time)", "mean acc gap (points)",
                          "worst arch mean gap"]) + "\n", flush=True)


def _section_c(mixes: Path, args: argparse.Namespace, precision: str,
               device: torch.device) -> None:
    splits = load_splits(mixes, range(11))
    print(f"## (c) fused vs separate on {device}, 11 mixes, 1 epoch, {precision}\n")
    archs = fc12() + [a for a in cnn100()[::10] if a.macs < 1_000_000][:3]
    rows = fused_vs_separate(archs, splits, TrainConfig(epochs=1), precision=precision,
                             device=device)
    print(markdown(rows, ["architecture", "runs", "separate samples/s", "fused samples/s",
                          "fused speed-up", "max accuracy gap"]) + "\n", flush=True)


if __name__ == "__main__":
    main()
