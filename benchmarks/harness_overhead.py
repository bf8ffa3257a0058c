"""Which part of the harness costs its extra time over the bare loop (benchmarks/speed.py) at 1024 px.

One warmed-up process, two rounds: the bare loop, then `nst` with logging and snapshots,
without them, and without the fast-path settings. Prints loop seconds per case (a GPU run).

    python -m benchmarks.harness_overhead
"""

import tempfile
from pathlib import Path

import torch

from benchmarks.speed import bare_loop, harness

BASE = ["loss.style_weight=1e5", "trainer.enable_progress_bar=false", "judge=false"]
QUIET = ["logger=none", "snapshot_every=0"]
CASES = {
    "as a user runs it (W&B, snapshots every 5)": ["logger=wandb"],
    "no logger, no snapshots": QUIET,
    "no logger, no snapshots, NCHW": [*QUIET, "speed.channels_last=false"],
    "no logger, no snapshots, NCHW, TF32 off": [*QUIET, "speed.channels_last=false", "speed.tf32=false"],
}


def main() -> None:
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bare_loop(1024, 2, 1e5, dev)
    with tempfile.TemporaryDirectory() as tmp:
        harness(1024, 2, Path(tmp) / "warm", [*BASE, *QUIET])
        for rnd in range(2):
            print(f"bare loop: {bare_loop(1024, 10, 1e5, dev)['loop_s']:.2f} s", flush=True)
            for i, (label, extra) in enumerate(CASES.items()):
                run = harness(1024, 10, Path(tmp) / f"{rnd}-{i}", [*BASE, *extra])
                print(f"{label}: {run['loop_s']:.2f} s for {run['evaluations']} evaluations", flush=True)


if __name__ == "__main__":
    main()
