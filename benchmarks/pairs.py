"""Every image experiment on six content–style pairs, each beside jcjohnson/neural-style's own output.

An experiment tuned on one pair can mislead on the next: this runs each experiment
in experiments/ (its own config, the size and steps as `benchmarks/reproduce.py`
sets them) on the pairs of benchmarks/pairs/ (README there: provenance), judges
every result and every reference the same way, and writes the `pairs` section of
benchmarks/results.md: per pair, the figures and whether the result beats the
reference on content error and on style SWD, then each experiment's range across
pairs. Results are cached in `--out`/pairs.json, so a run interrupted or extended
with `--only` measures only what is missing. `--gallery NAME` writes
docs/gallery/pairs_NAME.png: that experiment on three pairs, above the references.
`--tune KEY=V1,V2,…` runs the `--only` experiment at each value on every pair and
writes its own section: how a setting is chosen across pairs, not on one.

    python -m benchmarks.pairs [--size 128] [--steps 10] [--only li2016_mrf ...] [--gallery li2017_mean_std]
    python -m benchmarks.pairs --only li2016_mrf --tune loss.style_weight=0.1,1,10
"""

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from benchmarks.reproduce import EXPERIMENTS_DIR, GALLERY, ROOT, configure, evaluations
from benchmarks.results_file import machine, train, write_section
from nst import environment
from nst.images import load_image
from nst.judge import quality

PAIRS_DIR = ROOT / "benchmarks" / "pairs"
EXAMPLES, STYLES = ROOT / "nst" / "examples", ROOT / "nst" / "styles"
PAIRS = {
    "tubingen_starry": (EXAMPLES / "tubingen.jpg", EXAMPLES / "starry_night.jpg"),
    "tubingen_shipwreck": (EXAMPLES / "tubingen.jpg", STYLES / "shipwreck.jpg"),
    "tubingen_scream": (EXAMPLES / "tubingen.jpg", STYLES / "the_scream.jpg"),
    "golden_gate_starry": (PAIRS_DIR / "golden_gate.jpg", PAIRS_DIR / "starry_night_crop.png"),
    "golden_gate_scream": (PAIRS_DIR / "golden_gate.jpg", STYLES / "the_scream.jpg"),
    "golden_gate_matisse": (PAIRS_DIR / "golden_gate.jpg", STYLES / "woman_with_hat.jpg"),
}
FIGURES = ("content_error", "style_error", "style_swd")


def image_experiments() -> list[str]:
    """The experiments an image run reproduces (training experiments say `nst train`)."""
    names = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))
    return [n for n in names if "nst train" not in (EXPERIMENTS_DIR / f"{n}.yaml").read_text()]


def reference(pair: str, size: int) -> dict[str, float]:
    """jcjohnson/neural-style's output for `pair`, judged at `size` px like every result."""
    content, style = (load_image(path, size) for path in PAIRS[pair])
    output = load_image(PAIRS_DIR / f"reference_{pair}.png", size)
    output = torch.nn.functional.interpolate(output, size=content.shape[-2:], mode="bilinear", antialias=True)
    return {k: v for k, v in quality(output, content, [style], [1.0]).items() if k in FIGURES}


def measure(name: str, pair: str, args: argparse.Namespace) -> dict:
    """One experiment on one pair: its judged figures, what it ran, where its image is."""
    content, style = PAIRS[pair]
    cfg, network = configure(name, [f"content={content}", f"style={style}", *args.set], args)
    out = args.out / name / pair
    metrics = train(cfg, out)
    return {**{k: metrics[k] for k in FIGURES}, "what": f"{network}, {evaluations(cfg, metrics)}",
            "image": str(out / "final.png")}  # fmt: skip


def relative_to_reference(result: dict, ref: dict) -> float:
    """content error / the reference's + style SWD / the reference's: 2 is the reference's own balance."""
    return result["content_error"] / ref["content_error"] + result["style_swd"] / ref["style_swd"]


def beats(result: dict, ref: dict) -> str:
    """Whether a result keeps more of the photo and matches the style's distribution better than the reference."""
    content, swd = result["content_error"] < ref["content_error"], result["style_swd"] < ref["style_swd"]
    return {(True, True): "both", (True, False): "content", (False, True): "style SWD"}.get((content, swd), "neither")


def section(results: dict, refs: dict, args: argparse.Namespace) -> str:
    """The `pairs` section: the references, each experiment's per-pair table, then the ranges."""
    settings = f" --set {' '.join(args.set)}" if args.set else ""
    lines = [
        f"## Every experiment on {len(PAIRS)} content–style pairs ({args.size} px)",
        "",
        f"{machine()}. `python -m benchmarks.pairs --size {args.size} --steps {args.steps}{settings}`: each image",
        "experiment's own config (size and steps as above, L-BFGS steps of 20 evaluations, Adam at most",
        f'{args.adam_steps} steps) on the pairs of benchmarks/pairs/, judged by nst/judge.py. "Beats" says on which',
        "of content error and style SWD a result is below jcjohnson/neural-style's own output for that pair.",
        "",
        "| reference (jcjohnson/neural-style) | content error | style error | style SWD |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {pair} | " + " | ".join(f"{refs[pair][k]:.3f}" for k in FIGURES) + " |" for pair in PAIRS),
        "",
        "| experiment | pair | content error | style error | style SWD | beats the reference on |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    summary = []
    for name in sorted({key.split("/")[0] for key in results}):
        measured = {pair: results[f"{name}/{pair}"] for pair in PAIRS if f"{name}/{pair}" in results}
        for pair, r in measured.items():
            figures = " | ".join(f"{r[k]:.3f}" for k in FIGURES)
            lines.append(f"| {name} | {pair} | {figures} | {beats(r, refs[pair])} |")
        spans = [f"{min(r[k] for r in measured.values()):.3f}–{max(r[k] for r in measured.values()):.3f}"
                 for k in FIGURES]  # fmt: skip
        both = sum(beats(r, refs[pair]) == "both" for pair, r in measured.items())
        relative = [relative_to_reference(r, refs[pair]) for pair, r in measured.items()]
        worse = sum(x > 2 for x in relative)
        summary.append(f"| {name} | {' | '.join(spans)} | {both} of {len(measured)} | "
                       f"{sum(relative) / len(relative):.2f} ({worse} of {len(measured)} above 2) |")  # fmt: skip
    lines += [
        "",
        'Across the pairs (min–max). "vs reference": the mean over pairs of content error / the reference\'s +',
        "style SWD / the reference's; 2.00 is the reference's own balance, lower is better.",
        "",
        "| experiment | content error | style error | style SWD | beats the reference on both | vs reference |",
        "| --- | --- | --- | --- | --- | --- |",
        *summary,
    ]
    return "\n".join(lines)


GALLERY_PAIRS = ("tubingen_shipwreck", "golden_gate_starry", "golden_gate_matisse")


def tune(args: argparse.Namespace, refs: dict) -> str:
    """The `--only` experiment at each value of `--tune` on every pair: the means and how often it beats the
    reference, one row per value."""
    (name,) = args.only
    key, values = args.tune.split("=", 1)
    rows = []
    for value in [None, *values.split(",")]:  # None: as the experiment is configured
        args.set = [f"{key}={value}"] if value is not None else []
        results = measure_all([name], args, refs)
        measured = [(pair, results[f"{name}/{pair}"]) for pair in PAIRS]
        means = [sum(r[k] for _, r in measured) / len(measured) for k in FIGURES]
        wins = {what: sum(beats(r, refs[pair]) in (what, "both") for pair, r in measured) for what in ("content",
                "style SWD")}  # fmt: skip
        both = sum(beats(r, refs[pair]) == "both" for pair, r in measured)
        relative = sum(relative_to_reference(r, refs[pair]) for pair, r in measured) / len(measured)
        rows.append(f"| {value or 'as configured'} | {' | '.join(f'{m:.3f}' for m in means)} | {wins['content']} | "
                    f"{wins['style SWD']} | {both} | {relative:.2f} |")  # fmt: skip
    return "\n".join([
        f"## Choosing {name}'s {key} across the {len(PAIRS)} pairs ({args.size} px)",
        "",
        f"{machine()}. `python -m benchmarks.pairs --size {args.size} --steps {args.steps} --only {name} "
        f"--tune {args.tune}`: means over the pairs, and on how many pairs the result is below",
        "jcjohnson/neural-style's output on content error, on style SWD, and on both; the last column is the mean",
        "over pairs of content error / the reference's + style SWD / the reference's (2.00: the reference's",
        "balance; lower is better), the figure the value is chosen by.",
        "",
        f"| {key} | content error | style error | style SWD | pairs: content | pairs: SWD | both | vs reference |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ])  # fmt: skip


def measure_all(names: list[str], args: argparse.Namespace, refs: dict) -> dict:
    """Every experiment of `names` on every pair, from the cache of these settings where it was measured."""
    suffix = "_" + "_".join(args.set) if args.set else ""
    cache = args.out / f"pairs_{args.size}px_{args.steps}steps{suffix}.json"
    results = json.loads(cache.read_text()) if cache.exists() else {}
    for name in names:
        for pair in PAIRS:
            if f"{name}/{pair}" not in results:
                results[f"{name}/{pair}"] = measure(name, pair, args)
                cache.write_text(json.dumps(results, indent=1))
                r = results[f"{name}/{pair}"]
                print(name, *args.set, pair, *(f"{r[k]:.3f}" for k in FIGURES), beats(r, refs[pair]), flush=True)
    return results


def gallery(name: str, results: dict) -> Path:
    """docs/gallery/pairs_NAME.png: the experiment on three pairs (top), jcjohnson/neural-style's outputs below."""
    chosen = [pair for pair in GALLERY_PAIRS if f"{name}/{pair}" in results]
    tiles = []
    for pair in chosen:
        ours = Image.open(results[f"{name}/{pair}"]["image"]).convert("RGB")
        theirs = Image.open(PAIRS_DIR / f"reference_{pair}.png").convert("RGB").resize(ours.size, Image.LANCZOS)
        tiles.append((ours, theirs))
    width, height = sum(o.width for o, _ in tiles), max(o.height for o, _ in tiles)
    sheet = Image.new("RGB", (width, 2 * height), "white")
    left = 0
    for ours, theirs in tiles:
        sheet.paste(ours, (left, 0))
        sheet.paste(theirs, (left, height))
        left += ours.width
    path = GALLERY / f"pairs_{name}.png"
    sheet.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="L-BFGS steps (20 evaluations each), at most")
    parser.add_argument("--adam-steps", type=int, default=100)
    parser.add_argument("--only", nargs="*", default=None, help="experiments (default: every image experiment)")
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every run (a retuning trial)")
    parser.add_argument("--gallery", default=None, help="an experiment to show on three pairs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "pairs")
    parser.add_argument("--no-write", action="store_true", help="print, leave results.md as it is (trials)")
    parser.add_argument("--tune", default=None, help="KEY=V1,V2,…: the one --only experiment at each value")
    args = parser.parse_args()
    environment.configure()
    args.out.mkdir(parents=True, exist_ok=True)
    refs = {pair: reference(pair, args.size) for pair in PAIRS}
    if args.tune:
        body = tune(args, refs)
        name = f"pairs-tune-{args.only[0]}-{args.size}"
    else:
        results = measure_all(args.only or image_experiments(), args, refs)
        body, name = section(results, refs, args), f"pairs-{args.size}"
        if args.gallery:
            print(f"gallery: {gallery(args.gallery, results)}")
    if not args.no_write:
        write_section(name, body)
    print(body)


if __name__ == "__main__":
    main()
