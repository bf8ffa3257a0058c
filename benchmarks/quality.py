"""Quality against jcjohnson/neural-style: a style-weight sweep on Tübingen + Starry Night.

Runs `nst` on the default config (caffe VGG-19, Gatys layers, L-BFGS) at 256 px
for each style weight, measures every final image and the reference output
`../shared/images/reference/tubingen_starry.png` (resized to the same size) under
the judge network, and writes the table to benchmarks/results.md.

    python benchmarks/quality.py [--weights 1e4 3e4 1e5 3e5] [--size 256] [--steps 15]
"""

import argparse
from pathlib import Path

from hydra import compose, initialize_config_dir

from benchmarks.results_file import machine, train, write_section
from nst import environment
from nst.configs import CONF_DIR
from nst.images import load_image
from nst.judge import quality

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "images" / "reference" / "tubingen_starry.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", type=float, default=[1e4, 3e4, 1e5, 3e5])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=15, help="L-BFGS steps of 20 evaluations")
    parser.add_argument("--init", default="content")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "quality")
    args = parser.parse_args()
    environment.configure()  # the `${example:…}` resolver of the configs, as the CLI sets it

    rows = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for weight in args.weights:
            overrides = [
                f"loss.style_weight={weight:g}",
                f"image.size={args.size}",
                f"optimizer.steps={args.steps}",
                f"init={args.init}",
                "logger=none",
                "snapshot_every=0",
            ]
            cfg = compose("config", overrides=overrides)
            metrics = train(cfg, args.out / f"style_weight_{weight:g}")
            rows.append((f"nst, style_weight={weight:g}", metrics))
            print(rows[-1], flush=True)
        content = load_image(cfg.content, args.size)
        style = load_image(cfg.style, args.size)

    reference = quality(load_image(REFERENCE, args.size), content, [style], [1.0])
    lines = [
        f"## Quality: nst vs jcjohnson/neural-style ({args.size} px)",
        "",
        f"Measured {machine()} by `python benchmarks/quality.py`: Tübingen + Starry Night, caffe VGG-19,",
        f"Gatys layers, `loss=jcjohnson`, L-BFGS {args.steps} steps x 20 evaluations, init={args.init}.",
        "Errors under the judge network (caffe VGG-19, max pooling; lower is better). A run *beats* the",
        "reference when both of its errors are lower.",
        "",
        "| run | content error | style error | beats reference | wall time (s) |",
        "| --- | ---: | ---: | :---: | ---: |",
        f"| jcjohnson/neural-style reference | {reference['content_error']:.3f} | {reference['style_error']:.4f} | | |",
    ]
    for name, m in rows:
        beats = m["content_error"] < reference["content_error"] and m["style_error"] < reference["style_error"]
        lines.append(
            f"| {name} | {m['content_error']:.3f} | {m['style_error']:.4f} | {'yes' if beats else 'no'} | "
            f"{m['wall_time_s']:.0f} |"
        )
    write_section("quality", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
