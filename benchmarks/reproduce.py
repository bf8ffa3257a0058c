"""Run every experiment in experiments/ on the example images with real weights; gallery and table.

Each experiment runs at `--size` px for `--steps` optimizer steps (L-BFGS: 20
evaluations a step; Adam: `--adam-steps` steps) on Tübingen + Starry Night. The
VGG-16 experiments run on the caffe VGG-19 when no VGG-16 weights can be had
offline; the table says which network each row really used. Multirun
experiments run every point of their own sweep, except gatys2016_fig3, which runs
its corners (its smallest and largest α/β, one and five style layers). Writes
docs/gallery/*.png (downsized) and the `reproduce` section of benchmarks/results.md.

    python -m benchmarks.reproduce [--size 256] [--steps 15] [--only gatys2016_fig2 ...]
"""

import argparse
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image

from benchmarks.results_file import RESULTS, machine, train, write_section
from nst import environment
from nst.configs import CONF_DIR, EXPERIMENTS_DIR, experiment_sweep
from nst.errors import NSTError
from nst.images import load_image
from nst.judge import quality

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "docs" / "gallery"
REFERENCE = ROOT.parent / "shared" / "images" / "reference" / "tubingen_starry.png"
CORNERS = {
    "gatys2016_fig3": [
        ["loss.content_weight=1e-10", "layers.style={relu1_1:1.0,relu2_1:0,relu3_1:0,relu4_1:0,relu5_1:0}"],
        ["loss.content_weight=1e-10", "layers.style={relu1_1:0.2,relu2_1:0.2,relu3_1:0.2,relu4_1:0.2,relu5_1:0.2}"],
        ["loss.content_weight=1e-7", "layers.style={relu1_1:1.0,relu2_1:0,relu3_1:0,relu4_1:0,relu5_1:0}"],
        ["loss.content_weight=1e-7", "layers.style={relu1_1:0.2,relu2_1:0.2,relu3_1:0.2,relu4_1:0.2,relu5_1:0.2}"],
    ]
}


def sweep_points(name: str) -> list[list[str]]:
    """The override sets of an experiment's own sweep ([] for a single run), or its corners."""
    return CORNERS.get(name) or experiment_sweep(name)


def _slug(override: str) -> str:
    """`loss.style_weight=1e5` -> `style_weight-1e5`; a layer dict by its active layers (`style-2of5`)."""
    key, value = override.split("=", 1)
    if value.startswith("{"):
        weights = [float(item.split(":")[1]) for item in value.strip("{}").split(",")]
        value = f"{sum(w > 0 for w in weights)}of{len(weights)}"
    return f"{key.split('.')[-1]}-{value}"


def configure(name: str, point: list[str], args: argparse.Namespace) -> tuple[DictConfig, str]:
    """The experiment's config at `args.size` px and at most `args.steps` L-BFGS (or `args.adam_steps` Adam)
    steps, on the caffe VGG-19 where it asks for VGG-16; and what it runs on, for the table."""
    base = [f"experiment={name}", f"image.size={args.size}", "logger=none", "snapshot_every=0"]
    base += ["trainer.enable_progress_bar=false"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*base, *point])
        adam = cfg.optimizer.torch._target_.endswith("Adam")
        steps = min(cfg.optimizer.steps, args.adam_steps if adam else args.steps)
        overrides = [*base, *point, f"optimizer.steps={steps}"]
        network = f"{cfg.backbone.arch} ({cfg.backbone.weights})"
        if cfg.backbone.arch == "vgg16":
            overrides += ["backbone=vgg19", "backbone.weights=caffe"]
            network = "vgg19 (caffe), standing in for vgg16: no VGG-16 weights offline"
        cfg = compose("config", overrides=overrides)
    return cfg, network


def run(name: str, point: list[str], args: argparse.Namespace) -> tuple[dict, str, Path]:
    cfg, network = configure(name, point, args)
    slug = "_".join([name, *(_slug(p) for p in point)])
    out = args.out / slug
    metrics = train(cfg, out)
    return metrics, f"{network}, {evaluations(cfg, metrics)}", out


def evaluations(cfg: DictConfig, metrics: dict) -> str:
    """What a run did, for a table: its evaluations and optimizer, and the AdaIN start."""
    adam = cfg.optimizer.torch._target_.endswith("Adam")
    done = f"{metrics['evaluations']} {'Adam' if adam else 'L-BFGS'}" if cfg.optimizer.steps else "no optimisation"
    return f"AdaIN start, {done}" if cfg.init == "adain" else done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=15, help="L-BFGS steps (20 evaluations each), at most")
    parser.add_argument("--adam-steps", type=int, default=200)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every run, shown in the table")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "reproduce")
    args = parser.parse_args()
    environment.configure()  # the `${example:…}` resolver of the configs, as the CLI sets it
    GALLERY.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))

    rows, reference = measured_rows(), reference_figures()
    for name in names:
        for point in [[*p, *args.set] for p in sweep_points(name) or [[]]]:
            try:
                metrics, what, out = run(name, point, args)
            except NSTError as exc:
                rows[(name, " ".join(point))] = f"| {name} | {' '.join(point)} | failed: {exc} | | | | |"
                continue
            picture = GALLERY / f"{out.name}.png"
            with Image.open(out / "final.png") as final:
                final.thumbnail((384, 384))
                final.save(picture)
            rows[(name, " ".join(point))] = (
                f"| {name} | {' '.join(point)} | {what}, {args.size} px, {machine().split(',')[0]} | "
                f"{metrics['content_error']:.3f} | {metrics['style_error']:.4f} | {metrics['style_swd']:.4f} | "
                f"![{out.name}](../docs/gallery/{picture.name}) |"
            )
            print(rows[(name, " ".join(point))], flush=True)
            write_table(rows, reference)
    write_table(rows, reference)


def measured_rows() -> dict[tuple[str, str], str]:
    """The rows already in results.md, by (experiment, sweep point): a new run replaces only its own row.

    Rows measured before the judge had its SWD figure get an empty cell for it.
    """
    text = RESULTS.read_text() if RESULTS.exists() else ""
    section = text.split("<!-- reproduce:start -->")[-1].split("<!-- reproduce:end -->")[0] if text else ""
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) in (6, 7) and cells[0] not in ("experiment", "---") and cells[2]:
            if not cells[0].startswith("jcjohnson/neural-style reference"):
                if len(cells) == 6:
                    cells.insert(5, "")
                rows[(cells[0], cells[1])] = "| " + " | ".join(cells) + " |"
    return rows


def reference_figures() -> dict[str, float] | None:
    """jcjohnson/neural-style's output under the judge at 256 px (None where ../shared is not there)."""
    if not REFERENCE.exists():
        return None
    content = load_image(ROOT / "nst/examples/tubingen.jpg", 256)
    style = load_image(ROOT / "nst/examples/starry_night.jpg", 256)
    return quality(load_image(REFERENCE, 256), content, [style], [1.0])


def write_table(rows: dict[tuple[str, str], str], reference: dict[str, float] | None) -> None:
    """The `reproduce` section of results.md: the reference, then every measured row."""
    lines = [
        "## Reproductions of the experiments",
        "",
        f"Measured by `python -m benchmarks.reproduce` on {machine().split(', ', 1)[1]}, each row on its date",
        "(rows without one: 2026-11-24, before the judge had its style SWD). Tübingen + Starry Night, each",
        "experiment's own config except the size and the number of steps (L-BFGS steps are 20 evaluations each).",
        "Errors under the judge (nst/judge.py).",
        "",
        "| experiment | sweep point | network, evaluations | content error | style error | style SWD | result |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    if reference:
        lines.append(
            f"| jcjohnson/neural-style reference output | | its own run at 512 px, resized to 256 px | "
            f"{reference['content_error']:.3f} | {reference['style_error']:.4f} | {reference['style_swd']:.4f} | |"
        )
    table = lines + [rows[key] for key in sorted(rows)]
    write_section("reproduce", "\n".join(table))


if __name__ == "__main__":
    main()
