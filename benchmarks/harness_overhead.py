"""Which part of the harness costs its extra time over the bare loop (benchmarks/speed.py).

One warmed-up process, two rounds: the bare loop, then `nst` with logging and snapshots,
without them, without the fast-path settings, and with cuDNN's algorithm search
(Lightning's `benchmark`; the bare loop leaves it off, as torch does). Writes the section
`harness-overhead-<device>-<size>` of results.md (loop seconds per case and round).

    python -m benchmarks.harness_overhead [--size 1024] [--steps 10]
"""

import argparse
import tempfile
from pathlib import Path

from benchmarks.results_file import bench_device, machine, write_section
from benchmarks.speed import bare_loop, harness

BASE = ["loss.style_weight=1e5", "trainer.enable_progress_bar=false", "judge=false"]
QUIET = ["logger=none", "snapshot_every=0"]
CASES = {
    "nst as a user runs it (W&B, snapshots every 5)": ["logger=wandb"],
    "nst, no logger, no snapshots": QUIET,
    "nst, no logger, no snapshots, NCHW": [*QUIET, "speed.channels_last=false"],
    "nst, no logger, no snapshots, NCHW, TF32 off": [*QUIET, "speed.channels_last=false", "speed.tf32=false"],
    "nst, no logger, no snapshots, cudnn.benchmark on": [*QUIET, "+trainer.benchmark=true"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10, help="L-BFGS steps of 20 evaluations")
    args = parser.parse_args()
    dev = bench_device()
    seconds: dict[str, list[float]] = {"bare PyTorch loop (benchmarks/speed.py)": []}
    seconds.update({label: [] for label in CASES})
    bare_loop(args.size, 2, 1e5, dev)
    with tempfile.TemporaryDirectory() as tmp:
        harness(args.size, 2, Path(tmp) / "warm", [*BASE, *QUIET])
        for rnd in range(2):
            bare = bare_loop(args.size, args.steps, 1e5, dev)
            seconds["bare PyTorch loop (benchmarks/speed.py)"].append(bare["loop_s"])
            for i, (label, extra) in enumerate(CASES.items()):
                run = harness(args.size, args.steps, Path(tmp) / f"{rnd}-{i}", [*BASE, *extra])
                seconds[label].append(run["loop_s"])
                print(f"{label}: {run['loop_s']:.2f} s for {run['evaluations']} evaluations", flush=True)
    lines = [
        f"## Where the harness's extra time goes ({dev.type}, {args.size} px)",
        "",
        f"Measured {machine()} by `python -m benchmarks.harness_overhead --size {args.size} --steps {args.steps}`:",
        f"the default run (caffe VGG-19, Gatys layers, L-BFGS {args.steps} steps x 20 evaluations) in one",
        "warmed-up process, two rounds of every case; optimisation loop time only (`fit_time_s`).",
        "",
        "| case | round 1 (s) | round 2 (s) |",
        "| --- | ---: | ---: |",
        *(f"| {label} | {first:.2f} | {second:.2f} |" for label, (first, second) in seconds.items()),
    ]
    write_section(f"harness-overhead-{dev.type}-{args.size}", "\n".join(lines))


if __name__ == "__main__":
    main()
