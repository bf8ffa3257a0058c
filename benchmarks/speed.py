"""Speed: the harness against a bare PyTorch loop, side by side in one process; peak memory by size.

(a) `nst` as a user runs it (W&B offline logging every step, snapshots, history)
and (b) a bare loop written below (no Lightning, no Hydra, no logger) run the
same optimisation: caffe VGG-19, Gatys layers, jcjohnson losses, L-BFGS in
steps of 20 evaluations, content start. They alternate, `--rounds` times each,
and the fastest round of each is compared; each side then runs once more in a
fresh process, for its peak memory. Then each `--memory-sizes` size runs
one short harness job in a fresh process, for its peak memory. With `--batch N`,
N runs that differ in style weight run one after the other and then as one batch
(the `batched` launcher's path), for the throughput of batched sweeps.

    python -m benchmarks.speed [--size 256] [--steps 5] [--rounds 2] [--memory-sizes 512 1024]
    python -m benchmarks.speed --rounds 0 --memory-sizes --batch 8 --batch-px 512
"""

import argparse
import csv
import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from benchmarks.bare import STYLE, optimise
from benchmarks.results_file import bench_device, machine, train, write_section
from nst import environment
from nst.backbones import VGG
from nst.configs import CONF_DIR, example
from nst.images import load_image
from nst.memory import peak_memory_mb
from nst.pipeline import Job, run


def bare_loop(size: int, steps: int, style_weight: float, device: torch.device) -> dict:
    """The whole Gatys optimisation in plain PyTorch (benchmarks/bare.py) on nst's example images at `size`."""
    content = load_image(example("tubingen.jpg"), size)
    style = load_image(example("starry_night.jpg"), size)
    result = optimise(content, style, steps, style_weight, device)
    return {k: v for k, v in result.items() if k != "image"}


def config(size: int, steps: int, extra: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[f"image.size={size}", f"optimizer.steps={steps}", *extra])


def harness(size: int, steps: int, out: Path, extra: list[str]) -> dict:
    metrics = train(config(size, steps, extra), out)
    figures = {k: metrics[k] for k in ("content_error", "style_error") if k in metrics}
    return {
        "loop_s": metrics["fit_time_s"],
        "evaluations": metrics["evaluations"],
        "loss": metrics["loss/total"],
        "image_size": metrics["image_size"],
        **figures,
    }


# Dense tensor-core peaks from NVIDIA's datasheets (TFLOP/s), for the fraction of peak; SXM parts.
PEAK_TFLOPS = {
    "H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
}


@functools.cache
def evaluation_flops(height: int, width: int) -> float:
    """FLOPs of one evaluation of the default config: convolutions forward and back to the image, and Grams.

    The weights are frozen, so the backward pass computes input gradients only, as
    many FLOPs as the forward convolutions; each style Gram (C x C over H W) costs
    2 C² H W forward and twice that backward, C, H and W read off the style features
    of a pass on the meta device (shapes without compute). Pooling, ReLUs and losses
    are ignored.
    """
    encoder = VGG("vgg19", weights="random").trim(["conv4_2", *STYLE]).to("meta")
    styles = encoder(torch.empty(1, 3, height, width, device="meta"), STYLE).values()
    return float(2 * encoder.conv_flops(height, width) + sum(3 * 2 * f[0, 0].numel() * f.shape[1] ** 2 for f in styles))


def flops_line(run: dict, device: torch.device, precision: str) -> str:
    """The achieved FLOP rate of a run and, on a GPU with a known peak, its fraction of that peak."""
    height, width = run["image_size"]
    flops = evaluation_flops(height, width)
    rate = flops * run["evaluations"] / run["loop_s"]
    line = f"One evaluation at {width}x{height} px ≈ {flops / 1e9:.1f} GFLOP; "
    line += f"achieved {rate / 1e12:.3f} TFLOP/s"
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((p for key, p in PEAK_TFLOPS.items() if key in name), None)
        if peak:
            line += f", {100 * rate / 1e12 / peak[precision]:.1f} % of the {name}'s dense {precision} peak"
    return line + "."


def peak_memory(size: int) -> dict:
    """One short harness run at `size` in a fresh process: its peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"image.size={size}", "optimizer.steps=1", "optimizer.torch.max_iter=2", "logger=none"]
        overrides += ["judge=false", "snapshot_every=0", "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp}"]
        subprocess.run([sys.executable, "-m", "nst", *overrides], check=True, capture_output=True)
        return json.loads((Path(tmp) / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="L-BFGS steps of 20 evaluations")
    parser.add_argument("--rounds", type=int, default=2, help="0: memory table only")
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[512, 1024])
    parser.add_argument("--batch", type=int, default=0, help="runs in the batched-sweep comparison (0: none)")
    parser.add_argument("--batch-px", type=int, default=512, help="image size of the batched-sweep comparison")
    parser.add_argument("--fastpath-px", type=int, default=0, help="compare the fast-path settings at this size")
    parser.add_argument("--peak-of", choices=["nst", "bare"], help="run one side once, print its peak memory (MiB)")
    args = parser.parse_args()
    environment.configure()  # the `${example:…}` resolver of the configs, as the CLI sets it
    device = bench_device()
    if args.peak_of:
        with tempfile.TemporaryDirectory() as tmp:
            one_side(args.peak_of, args.size, args.steps, device, Path(tmp))
        print(peak_memory_mb(device)[0])
        return

    if args.rounds:
        write_section(f"speed-{device.type}-{args.size}", speed_table(args, device))
    if args.memory_sizes:
        write_section(f"memory-{device.type}", memory_table(args.memory_sizes, device))
    if args.batch:
        write_section(f"batched-{device.type}", batched_table(args.batch, args.batch_px, args.steps, device))
    if args.fastpath_px:
        write_section(f"fastpath-{device.type}", fastpath_table(args.fastpath_px, args.steps, device))


FAST_PATHS = {
    "all off (fp32, NCHW, torch's LBFGS)": [
        "speed.channels_last=false",
        "speed.tf32=false",
        "speed.bf16=false",
        "speed.compact_lbfgs=false",
    ],
    "default (channels_last, TF32, compact L-BFGS on CUDA)": [],
    "default, torch's LBFGS": ["speed.compact_lbfgs=false"],
    "default, compact L-BFGS": ["speed.compact_lbfgs=true"],
    "+ bf16 autocast": ["speed.bf16=true"],
    "+ bf16 + torch.compile": ["speed.bf16=true", "speed.compile=true"],
}


def after_first_step(history: Path) -> tuple[float, float]:
    """From a run's history.csv: its first step's seconds, and its evaluations per second after that step.

    The first step holds every one-off cost (torch.compile's compilation, cuDNN's first
    calls), which a longer run spreads over more evaluations.
    """
    with open(history, newline="") as f:
        rows = [row for row in csv.DictReader(f) if int(row["step"]) > 0]
    first, last = rows[0], rows[-1]
    later = (int(last["evaluations"]) - int(first["evaluations"])) / (float(last["time_s"]) - float(first["time_s"]))
    return float(first["time_s"]), later


def fastpath_table(size: int, steps: int, device: torch.device) -> str:
    """Each fast-path setting's speed and quality on the default run: faster must not mean worse."""
    lines = [
        f"## Fast path ({device.type}, {size} px)",
        "",
        f"Measured {machine()} by `python -m benchmarks.speed --fastpath-px {size} --steps {steps}`: the default run",
        f"(caffe VGG-19, Gatys layers, L-BFGS {steps} steps x 20 evaluations, no logger) with each `speed.*` setting.",
        "Evaluations/s over the whole loop, and after its first step (from `history.csv`'s `time_s`): the first",
        "step holds the one-off costs, torch.compile's compilation above all.",
        "",
        "| settings | evaluations/s | first step (s) | evaluations/s after it | TFLOP/s after it "
        "| content error | style error |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    quiet = ["logger=none", "snapshot_every=0", "trainer.enable_progress_bar=false"]
    with tempfile.TemporaryDirectory() as tmp:
        for index, (label, overrides) in enumerate(FAST_PATHS.items()):
            run = harness(size, steps, Path(tmp) / str(index), [*quiet, *overrides])
            first_s, later = after_first_step(Path(tmp) / str(index) / "history.csv")
            tflops = later * evaluation_flops(*run["image_size"]) / 1e12
            rates = f"{run['evaluations'] / run['loop_s']:.2f} | {first_s:.1f} | {later:.2f} | {tflops:.2f}"
            lines.append(f"| {label} | {rates} | {run['content_error']:.3f} | {run['style_error']:.4f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def batched_table(runs: int, size: int, steps: int, device: torch.device) -> str:
    """N runs one after the other, then the same N as one batch: throughput and agreement."""
    weights = [10 ** (3 + 3 * i / max(runs - 1, 1)) for i in range(runs)]
    quiet = ["logger=none", "judge=false", "snapshot_every=0", "trainer.enable_progress_bar=false"]
    cfgs = [config(size, steps, [*quiet, f"loss.style_weight={w:.4g}"]) for w in weights]
    with tempfile.TemporaryDirectory() as tmp:
        alone = [train(cfg, Path(tmp) / f"alone{i}") for i, cfg in enumerate(cfgs)]
        together = run([Job(cfg, Path(tmp) / f"together{i}") for i, cfg in enumerate(cfgs)])
    sequential_s = sum(m["fit_time_s"] for m in alone)
    batched_s = together[0]["fit_time_s"]
    images = sum(m["evaluations"] for m in alone)
    pairs = zip(alone, together, strict=True)
    agreement = max(abs(a["loss/total"] - b["loss/total"]) / abs(a["loss/total"]) for a, b in pairs)
    side = f"{alone[0]['image_size'][1]}x{alone[0]['image_size'][0]}"
    return "\n".join(
        [
            f"## Batched sweeps ({device.type}, {runs} runs at {side} px)",
            "",
            f"Measured {machine()} by `python -m benchmarks.speed --batch {runs} --batch-px {size}`: {runs} runs",
            f"(caffe VGG-19, Gatys layers, L-BFGS {steps} steps x 20 evaluations, style weights 1e3 … 1e6)",
            "one after the other, then as one batch, through `nst.pipeline.run`",
            "(what `hydra/launcher=batched` runs). Loop time only (`fit_time_s`), no logger.",
            "",
            "| | loop time (s) | image evaluations | image evaluations/s |",
            "| --- | ---: | ---: | ---: |",
            f"| one after the other | {sequential_s:.2f} | {images} | {images / sequential_s:.2f} |",
            f"| one batch of {runs} | {batched_s:.2f} | {images} | {images / batched_s:.2f} |",
            "",
            f"**Speed-up of the batch: {sequential_s / batched_s:.2f}x.** Largest relative difference between a run's",
            f"final loss alone and in the batch: {agreement:.1e}.",
        ]
    )


STYLE_WEIGHT = 1e5
LOGGING_ON = ["logger=wandb", f"loss.style_weight={STYLE_WEIGHT}", "trainer.enable_progress_bar=false"]


def one_side(side: str, size: int, steps: int, device: torch.device, out: Path) -> dict:
    """One run of the speed comparison: `nst` as a user runs it, or the bare loop."""
    if side == "nst":
        return harness(size, steps, out, LOGGING_ON)
    return bare_loop(size, steps, STYLE_WEIGHT, device)


def peak_of(side: str, size: int, steps: int) -> float:
    """Peak memory (MiB) of one run of `side` in a fresh process: a process's peak cannot be reset on the CPU.

    Both processes import the same libraries (this module imports nst), so on the CPU,
    where the peak is the whole process's resident memory, their difference is the runs'.
    """
    command = [sys.executable, "-m", "benchmarks.speed", "--peak-of", side, "--size", str(size), "--steps", str(steps)]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])


def speed_table(args: argparse.Namespace, device: torch.device) -> str:
    runs: dict[str, list[dict]] = {"nst": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side in runs:
                runs[side].append(one_side(side, args.size, args.steps, device, Path(tmp) / f"{side}{r}"))
            print(r, runs["nst"][-1], runs["bare"][-1], flush=True)
    peak = {side: peak_of(side, args.size, args.steps) for side in runs}
    best = {k: min(v, key=lambda run: run["loop_s"]) for k, v in runs.items()}
    rate = {k: run["evaluations"] / run["loop_s"] for k, run in best.items()}
    ratio = best["nst"]["loop_s"] / best["bare"]["loop_s"]
    lines = [
        f"## Speed: harness vs bare PyTorch loop ({device.type}, {args.size} px)",
        "",
        f"Measured {machine()} by `python -m benchmarks.speed`: caffe VGG-19, Gatys layers,",
        f"L-BFGS {args.steps} steps x 20 evaluations, fastest of {args.rounds} alternating rounds each.",
        "`nst` runs as a user runs it (W&B offline, losses logged every step, snapshots every 5 steps);",
        "the time is the optimisation loop (`fit_time_s`), not start-up or the judge. The bare loop uses",
        "`torch.optim.LBFGS`; `nst` does too on the CPU, and its own `BatchedLBFGS` (same iterates) on CUDA.",
        "The final loss is that of the image each leaves, measured by one more pass after L-BFGS's",
        "unevaluated last move: inside `nst`'s loop time, after the bare loop's. Peak memory: each side",
        f"run once more in a fresh process, as {peak_memory_mb(device)[1]} (on the CPU the whole process's,",
        "the same libraries imported in both).",
        "",
        "| | evaluations | loop time (s) | evaluations/s | final loss | peak memory (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ("nst", "bare"):
        run = best[name]
        label = "nst (Lightning + Hydra + W&B)" if name == "nst" else "bare PyTorch loop"
        figures = (
            f"{run['evaluations']} | {run['loop_s']:.2f} | {rate[name]:.2f} | {run['loss']:.4g} | {peak[name]:.0f}"
        )
        lines.append(f"| {label} | {figures} |")
    lines += ["", f"**Time ratio harness / bare loop: {ratio:.3f}** (target ≤ 1.03)."]
    lines.append(flops_line(best["nst"], device, "tf32" if device.type == "cuda" else "fp32"))
    times = {name: ", ".join(f"{run['loop_s']:.2f}" for run in runs[name]) for name in runs}
    spread = {name: max(r["loop_s"] for r in runs[name]) / best[name]["loop_s"] - 1 for name in runs}
    lines.append(
        f"All rounds: nst {times['nst']} s; bare {times['bare']} s (slowest round above the fastest: "
        f"nst {spread['nst']:.0%}, bare {spread['bare']:.0%})."
    )
    return "\n".join(lines)


def memory_table(sizes: list[int], device: torch.device) -> str:
    lines = [
        f"## Peak memory by image size ({device.type})",
        "",
        f"Measured {machine()} by `python -m benchmarks.speed --memory-sizes …`: one short harness run",
        "(1 step of 2 L-BFGS evaluations, default config) per size, each in a fresh process.",
        "",
        "| size (long side) | image | peak memory (MiB) | measured as | nst's estimate for a full run (MiB) |",
        "| ---: | --- | ---: | --- | ---: |",
    ]
    for size in sizes:
        m = peak_memory(size)
        lines.append(
            f"| {size} | {m['image_size'][1]}x{m['image_size'][0]} | {m['peak_memory_mb']:.0f} | "
            f"{m['peak_memory_kind']} | {m['memory_estimate_mb']:.0f} |"
        )
        print(lines[-1], flush=True)
    if device.type == "cpu":
        baseline = peak_memory(32)["peak_memory_mb"]
        lines += [
            "",
            "On the CPU the peak is the process's peak resident memory, Python, torch and the libraries",
            f"(a 32 px run peaks at {baseline:.0f} MiB, measured the same way) included. The estimate is what",
            "`nst` checks against free memory before the first step: the run's own tensors with a full L-BFGS",
            "history (100 pairs, about 2 x 100 image-sized vectors), which a 2-evaluation run never fills, so",
            "it lies above these short-run peaks by about that history.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
