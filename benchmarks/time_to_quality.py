"""Time to quality: how many evaluations, and seconds, each start image needs to reach a given quality.

For the example pair at `--size` px, runs the default optimisation (jcjohnson loss,
style weight 1e5, L-BFGS, 300 evaluations) once from each start (content, random,
AdaIN at α = 1 and 0.5), keeps a snapshot every `--every` evaluations and judges each one. L-BFGS
takes the same iterates whether its 300 evaluations come as 15 steps of 20 or 60 of
5 (the same final.png bytes, checked), so a snapshot per step of `--every` shows
the run every `--every` evaluations. Two bars:

- the default run's own final image (content start, all 300 evaluations), by
  `error_sum` = content error + style error;
- jcjohnson/neural-style's reference output (../shared/images/reference, when
  present), dominated on both the content and the style error.

Seconds are the fit's own clock at that snapshot (history.csv) plus, for AdaIN, its
feed-forward pass. Writes the `time-to-quality` section of benchmarks/results.md.

    python -m benchmarks.time_to_quality [--size 256] [--every 5] [--reuse]
"""

import argparse
import csv
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from benchmarks.results_file import machine, train, write_section
from nst import environment
from nst.adain import AdaIN
from nst.configs import CONF_DIR
from nst.images import initial_image, load_image
from nst.judge import quality

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "images" / "reference" / "tubingen_starry.png"
# Each start: its label and the overrides that make it.
STARTS = {
    "content": ["init=content"],
    "random": ["init=random"],
    "adain": ["init=adain"],
    "adain, α = 0.5": ["init=adain", "adain.alpha=0.5"],
}
EVALUATIONS = 300  # the default: 15 L-BFGS steps of 20 evaluations


def judged_snapshots(out: Path, every: int, content, style) -> list[dict]:
    """Each snapshot's evaluations, fit seconds and judge figures, in order; the last point is final.png
    (the last step writes no snapshot)."""
    with open(out / "history.csv", newline="") as f:
        seconds = {int(row["step"]): float(row["time_s"]) for row in csv.DictReader(f)}
    images = {int(path.stem.split("_")[1]): path for path in (out / "snapshots").glob("step_*.png")}
    images[max(seconds)] = out / "final.png"
    points = []
    for step, path in sorted(images.items()):
        figures = quality(load_image(path, max(content.shape[-2:])), content, [style], [1.0])
        figures["error_sum"] = figures["content_error"] + figures["style_error"]
        points.append({"evaluations": step * every, "seconds": seconds[step], **figures})
    return points


def _slug(start: str) -> str:
    """A start's directory name: `adain, α = 0.5` -> `adain_alpha-0.5`."""
    return start.replace(", α = ", "_alpha-")


def first(points: list[dict], reached) -> dict | None:
    """The first snapshot that meets `reached`, if any."""
    return next((p for p in points if reached(p)), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--every", type=int, default=5, help="evaluations between judged snapshots")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "time_to_quality")
    parser.add_argument("--reuse", action="store_true", help="judge finished runs already in --out again")
    args = parser.parse_args()
    environment.configure()  # the `${example:…}` resolver of the configs, as the CLI sets it

    runs, finals = {}, {}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for start, chosen in STARTS.items():
            overrides = [
                *chosen, f"image.size={args.size}", "logger=none", "snapshot_every=1",
                f"optimizer.torch.max_iter={args.every}", f"optimizer.steps={EVALUATIONS // args.every}",
                "trainer.enable_progress_bar=false",
            ]  # fmt: skip
            cfg, out = compose("config", overrides=overrides), args.out / _slug(start)
            done = out / "metrics.json"
            if args.reuse and done.exists() and json.loads(done.read_text()).get("status") == "finished":
                finals[start] = json.loads(done.read_text())
            else:
                finals[start] = train(cfg, out)
            print(start, {k: finals[start][k] for k in ("content_error", "style_error", "evaluations")}, flush=True)
        content, style = load_image(cfg.content, args.size), load_image(cfg.style, args.size)
    generator = torch.Generator().manual_seed(0)  # the runs' seed: the random start they drew
    started = time.perf_counter()
    adain_start = AdaIN()(content, [style], [1.0])
    adain_s = time.perf_counter() - started  # with the decoder loaded: the pass alone
    images = {
        "content": content,
        "random": initial_image("random", content, style, generator),
        "adain": adain_start,
        "adain, α = 0.5": AdaIN(alpha=0.5)(content, [style], [1.0]),
    }
    starts = {start: quality(image, content, [style], [1.0]) for start, image in images.items()}
    for start in STARTS:
        runs[start] = judged_snapshots(args.out / _slug(start), args.every, content, style)
    bar = finals["content"]["content_error"] + finals["content"]["style_error"]
    reference = quality(load_image(REFERENCE, args.size), content, [style], [1.0]) if REFERENCE.exists() else None
    write_table(args, runs, finals, starts, bar, reference, adain_s)


def write_table(args, runs, finals, starts, bar, reference, adain_s) -> None:
    def cell(point: dict | None, extra: float) -> str:
        return "not within 300" if point is None else f"{point['evaluations']} ({point['seconds'] + extra:.1f} s)"

    lines = [
        f"## Time to quality by start image (cpu, {args.size} px)",
        "",
        f"Measured {machine()} by `python -m benchmarks.time_to_quality`: Tübingen + Starry Night, the default",
        f"config (jcjohnson loss, style weight 1e5, L-BFGS, {EVALUATIONS} evaluations) from each start, a snapshot",
        f"judged every {args.every} evaluations. Bar 1: the default run's final `error_sum` "
        f"({bar:.3f}: the content start after all {EVALUATIONS} evaluations).",
        "Bar 2: both errors below jcjohnson/neural-style's reference output"
        + (
            f" (content {reference['content_error']:.3f}, style {reference['style_error']:.4f}, measured the same way)."
            if reference
            else " (not measured: ../shared/images/reference is not here)."
        ),
        f"Seconds: the fit's clock at that snapshot, plus the AdaIN pass ({adain_s:.2f} s) for the AdaIN start.",
        "",
        "| start | start image: content / style / SWD | evaluations (s) to bar 1 | to bar 2 | error_sum at 20 / 50 / "
        "100 / 300 evaluations | final: content / style / SWD |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for start in STARTS:
        points, extra = runs[start], adain_s if start.startswith("adain") else 0.0
        at = {p["evaluations"]: p["error_sum"] for p in points}
        to_bar = first(points, lambda p: p["error_sum"] <= bar)
        dominated = (
            first(
                points,
                lambda p: (
                    p["content_error"] < reference["content_error"] and p["style_error"] < reference["style_error"]
                ),
            )
            if reference
            else None
        )
        s, f = starts[start], finals[start]
        lines.append(
            f"| {start} | {s['content_error']:.3f} / {s['style_error']:.4f} / {s['style_swd']:.4f} | "
            f"{cell(to_bar, extra)} | {cell(dominated, extra) if reference else 'n/a'} | "
            f"{' / '.join(f'{at[n]:.3f}' if n in at else '–' for n in (20, 50, 100, 300))} | "
            f"{f['content_error']:.3f} / {f['style_error']:.4f} / {f['style_swd']:.4f} |"
        )
    adain = runs["adain"]
    at_100 = next(p["error_sum"] for p in adain if p["evaluations"] == 100)
    reached = first(adain, lambda p: p["error_sum"] <= bar)
    lines += [
        "",
        "Target: the AdaIN start reaches bar 1 within 100 evaluations (a third of the default's): "
        + (
            f"met, at {reached['evaluations']}."
            if reached and reached["evaluations"] <= 100
            else f"not met: its error_sum is {at_100:.3f} at 100 evaluations against {bar:.3f}"
            + (f", and reaches it at {reached['evaluations']}." if reached else ", and stays above it to the end.")
        ),
    ]
    write_section("time-to-quality", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
