"""Per-style networks trained with `nst train`'s defaults, judged on photos they never saw, beside AdaIN's one pass.

For each painting (default: the four of nst/styles/): `nst train style=PAINTING`
with the defaults (plus any `--set KEY=VALUE`), then its held-out photos judged as
validation judges them (256 px, caffe VGG-19), next to AdaIN's one pass with the
shipped decoder (`experiment=huang2017_adain optimizer.steps=0`) on the same photos
at the same size and, with `--optimise`, the default optimisation of each photo.
A network "beats AdaIN" when its content error and its style SWD are both lower.
A gallery (`docs/gallery/networks_held_out.png`) shows each style's held-out
photos: network above, AdaIN below.

    python -m benchmarks.networks [--steps N] [--styles a.jpg b.jpg] [--set loss.style_weight=20] [--optimise]
    python -m benchmarks.networks --runs SWEEP_DIR [--optimise]   # judge an `nst train -m style=…` sweep's runs

With `--runs`, the networks are those an `nst train -m style=a,b,…` sweep already
trained (one job per painting, found by its `style=` override): its minutes are
its fit time, its images/s its own.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir

from benchmarks.recipe_sweeps import jobs
from benchmarks.results_file import machine, write_section
from nst import environment
from nst.adain import AdaIN
from nst.configs import CONF_DIR, STYLES
from nst.images import load_image, save_image
from nst.judge import quality
from nst.lifecycle import live
from nst.pipeline import ImageBranch
from nst.runs import Job
from nst.train.model_file import load_model, stylize
from nst.train.pipeline import TrainingBranch
from nst.train.validation import FIGURES, sample_grid

GALLERY = Path(__file__).parents[1] / "docs" / "gallery" / "networks_held_out.png"


def compose_config(name: str, overrides: list[str]) -> Any:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: sum(r[name] for r in rows) / len(rows) for name in FIGURES}


def trained_runs(sweep: Path) -> dict[str, Path]:
    """The finished jobs of an `nst train -m style=…` sweep, by the file name of their painting."""
    return {Path(overrides["style"]).name: run for overrides, _, run in jobs(sweep) if "style" in overrides}


def one_style(style: Path, args: argparse.Namespace, out: Path, run_dir: Path | None = None) -> dict[str, Any]:
    """Train the network for `style` (or read `run_dir`'s), then judge it, AdaIN (and the optimisation) on its
    held-out photos."""
    steps = [f"trainer.max_steps={args.steps}"] if args.steps else []
    overrides = ["logger=none", "trainer.enable_progress_bar=false", f"style={style}", *steps, *args.set]
    if run_dir is None:
        run_dir = out / style.stem
        started = time.perf_counter()
        (trained,) = live(TrainingBranch(), [Job(compose_config("train", overrides), run_dir)])
        minutes = (time.perf_counter() - started) / 60
    else:
        trained = json.loads((run_dir / "metrics.json").read_text())
        minutes = trained["fit_time_s"] / 60
    network, _ = load_model(run_dir)
    adain = AdaIN()
    size = compose_config("train", overrides).data.val_size
    painting = load_image(style, compose_config("train", overrides).data.style_size)
    photos = [load_image(p, size) for p in trained["validated_on"]]
    rows: dict[str, list[dict[str, float]]] = {"network": [], "AdaIN": [], "optimisation": []}
    images: dict[str, list[torch.Tensor]] = {"network": [], "AdaIN": []}
    for path, photo in zip(trained["validated_on"], photos, strict=True):
        for name, image in (("network", stylize(network, photo)), ("AdaIN", adain(photo, [painting], [1.0]))):
            images[name].append(image)
            rows[name].append(quality(image, photo, [painting], [1.0]))
        if args.optimise:
            cfg = compose_config("config", ["logger=none", "trainer.enable_progress_bar=false", f"content={path}",
                                            f"style={style}", f"image.size={size}"])  # fmt: skip
            (optimised,) = live(ImageBranch(), [Job(cfg, run_dir / "optimised" / Path(path).stem)])
            rows["optimisation"].append(optimised)
    return {
        "style": style.name,
        "minutes": minutes,
        "images_per_s": trained["images_per_s"],
        "steps": trained["steps"],
        "figures": {name: mean(r) for name, r in rows.items() if r},
        "grid": sample_grid(photos, list(zip(images["network"], images["AdaIN"], strict=True))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", nargs="*", type=Path, default=None, help="paintings (default: nst/styles/)")
    parser.add_argument("--steps", type=int, default=None, help="trainer.max_steps (default: the config's)")
    parser.add_argument("--set", nargs="*", default=[], help="more `nst train` overrides, KEY=VALUE")
    parser.add_argument("--optimise", action="store_true", help="also the default optimisation of each photo")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--runs", type=Path, default=None, help="an `nst train -m style=…` sweep to judge instead")
    parser.add_argument("--section", default="networks-held-out", help="the section of results.md to write")
    parser.add_argument("--gallery", type=Path, default=GALLERY, help="the held-out samples' image")
    parser.add_argument("--title", default="Per-style networks vs AdaIN on held-out photos", help="the section's title")
    args = parser.parse_args()
    environment.configure()
    out = args.out or Path(tempfile.mkdtemp(prefix="nst-networks-"))
    out.mkdir(parents=True, exist_ok=True)
    styles = args.styles or sorted(Path(str(p)) for p in STYLES.iterdir() if p.name.endswith(".jpg"))
    runs = trained_runs(args.runs) if args.runs else {}
    if args.runs:
        styles = [style for style in styles if style.name in runs]
    results = [one_style(style, args, out, runs.get(style.name)) for style in styles]
    save_image(torch.cat([r.pop("grid") for r in results], dim=2), args.gallery)
    lines = []
    for r in results:
        for name, f in r["figures"].items():
            lines.append(f"| {r['style']} | {name} | {f['content_error']:.3f} | {f['style_error']:.3f} | "
                         f"{f['style_swd']:.3f} |")  # fmt: skip
    beats = [r["style"] for r in results if all(r["figures"]["network"][k] < r["figures"]["AdaIN"][k]
                                                 for k in ("content_error", "style_swd"))]  # fmt: skip
    options = " ".join([*(["--steps", str(args.steps)] if args.steps else []), *(["--set", *args.set] if args.set
                       else []), *(["--runs", "SWEEP"] if args.runs else []),
                        *(["--optimise"] if args.optimise else [])])  # fmt: skip
    timing = ", ".join(f"{r['style']} {r['minutes']:.1f} min ({r['images_per_s']:.2f} images/s, {r['steps']} steps)"
                       for r in results)  # fmt: skip
    body = f"""## {args.title}

{machine()}. `python -m benchmarks.networks {options}`: `nst train style=PAINTING` with the defaults
for each painting, then the photos held out of its training judged at 256 px (mean over them) beside AdaIN's
one pass (shipped decoder){" and the default optimisation" if args.optimise else ""} on the same photos.
Training: {timing}.

| style | method | content error | style error | style SWD |
| --- | --- | --- | --- | --- |
{chr(10).join(lines)}

The network beats AdaIN on both content error and style SWD for {len(beats)} of {len(results)} styles
({", ".join(beats) or "none"}). Samples (network above AdaIN, each style's held-out photos):
`{args.gallery.relative_to(GALLERY.parents[2]) if args.gallery.is_absolute() else args.gallery}`.
"""
    write_section(args.section, body)
    (out / "summary.json").write_text(json.dumps(results, indent=2, default=str))
    print(body)


if __name__ == "__main__":
    main()
