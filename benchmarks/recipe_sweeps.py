"""The recipe search's sweeps, read back from their run directories into one table of benchmarks/results.md.

Each sweep is `nst train -m …` (the search itself is nst's own sweeps); this reads
every job's metrics.json and overrides, groups the jobs by their settings apart from
the style, and puts the held-out figures beside AdaIN's one pass on the same photos
(an `nst -m experiment=huang2017_adain optimizer.steps=0 content=…,… style=…,…`
sweep): mean over the held-out photos, per style, and whether both the content
error and the style SWD are below AdaIN's. With `--per-step`, a row for each
validated step of each job (its val.csv) rather than for the network it kept.

    python -m benchmarks.recipe_sweeps --adain DIR --sweep "label=DIR" ["label=DIR" …] [--section NAME] [--per-step]
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from benchmarks.results_file import machine, write_section
from nst.train.validation import read_validations

FIGURES = ("content_error", "style_swd")
# not the recipe: what a row's settings leave out (the judged photos are named above the table)
PLUMBING = {"style", "logger", "trainer.enable_progress_bar", "val_every", "trainer.max_steps", "data.val"}


def jobs(sweep: Path) -> list[tuple[dict[str, str], dict[str, Any], Path]]:
    """Each finished job of a sweep: its overrides as a dict, its metrics and its directory."""
    found = []
    for metrics_file in sorted(sweep.glob("*/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        overrides = yaml.safe_load((metrics_file.parent / ".hydra" / "overrides.yaml").read_text()) or []
        if metrics.get("status") == "finished":
            found.append((dict(o.split("=", 1) for o in overrides), metrics, metrics_file.parent))
    return found


def adain_bar(sweep: Path) -> dict[str, dict[str, float]]:
    """AdaIN's figures per style: the mean over the photos of the sweep."""
    per_style: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for overrides, metrics, _ in jobs(sweep):
        per_style[Path(overrides["style"]).name].append(metrics)
    return {style: {f: sum(m[f] for m in runs) / len(runs) for f in FIGURES} for style, runs in per_style.items()}


def validations(run_dir: Path, metrics: dict[str, Any], per_step: bool) -> list[dict[str, Any]]:
    """The figures a row reports: the kept network's (metrics.json), or with `per_step` every validation after
    step 0 (val.csv), each with its step."""
    if not per_step:
        return [metrics]
    return [row for row in read_validations(run_dir) if row["step"] > 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adain", type=Path, required=True, help="the AdaIN sweep over the held-out photos")
    parser.add_argument("--sweep", nargs="+", required=True, help="label=DIR of each `nst train -m` sweep")
    parser.add_argument("--section", default="recipe-search", help="the section of results.md to write")
    parser.add_argument("--title", default="Finding the training recipe with nst's own sweeps")
    parser.add_argument("--note", default="", help="what the sweeps showed, appended under the table")
    parser.add_argument("--judged", default="the two held-out photos", help="the photos the runs judged, in words")
    parser.add_argument("--per-step", action="store_true", help="a row per validated step, not per kept network")
    args = parser.parse_args()
    bar = adain_bar(args.adain)
    rows = []
    for given in args.sweep:
        label, _, directory = given.partition("=")
        for overrides, metrics, run_dir in jobs(Path(directory)):
            style = Path(overrides["style"]).name
            adain = bar.get(style, {})
            changed = " ".join(f"{k}={v}" for k, v in overrides.items() if k not in PLUMBING) or "defaults"
            for figures in validations(run_dir, metrics, args.per_step):
                beats = adain and all(figures[f] < adain[f] for f in FIGURES)
                rows.append(
                    f"| {label} | {changed} | {style} | {figures['step' if args.per_step else 'steps']:.0f} | "
                    f"{figures['content_error']:.3f} | {figures['style_swd']:.4f} | "
                    f"{adain.get('content_error', float('nan')):.3f} | {adain.get('style_swd', float('nan')):.4f} | "
                    f"{'yes' if beats else 'no'} | {metrics['images_per_s']:.2f} |"
                )
    each = ", each validated step" if args.per_step else ""
    body = f"""## {args.title}

{machine()}. `python -m benchmarks.recipe_sweeps --adain … --sweep {" ".join(args.sweep)}`: each row one job of an
`nst train -m` sweep (its settings: what it changed from the defaults of its time){each},
judged on {args.judged} at 256 px (mean), beside AdaIN's one pass on the same photos and size. "beats" = lower content
error and lower style SWD than AdaIN.

| sweep | settings | style | steps | content error | style SWD | AdaIN content | AdaIN SWD | beats | images/s |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

{args.note}
"""
    write_section(args.section, body)
    print(body)


if __name__ == "__main__":
    main()
