"""What a style network learns on this machine, and when training pays for itself.

A training run on the bundled photos with the real caffe VGG-19 (its validation
figures at the start, middle and end), then the trained network on the example pair
(Tübingen, The Starry Night) beside the default optimisation and AdaIN's one pass:
content error, style error, style SWD and seconds per image under the one judge. The
break-even is the number of images from which training plus inference costs less
than optimising each image.

    python -m benchmarks.training_quality [--size 128] [--steps 2000] [--style-weight 5]
"""

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from benchmarks.results_file import machine, write_section
from nst import environment
from nst.adain import AdaIN
from nst.configs import CONF_DIR, example
from nst.images import load_image, save_image
from nst.judge import quality
from nst.pipeline import run
from nst.runs import Job
from nst.train.model_file import load_model, stylize
from nst.train.pipeline import train

PAIR_PX = 256  # the example pair at the default image run's size


def compose_config(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--style-weight", type=float, default=None, help="loss.style_weight (default: the config's)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--trained", action="store_true", help="reuse the training run already in --out/train")
    args = parser.parse_args()
    environment.configure()
    out = args.out or Path(tempfile.mkdtemp(prefix="nst-training-quality-"))
    weight = [f"loss.style_weight={args.style_weight}"] if args.style_weight is not None else []
    overrides = ["network=johnson", "logger=none", f"data.size={args.size}", f"trainer.max_steps={args.steps}",
                 f"val_every={args.steps // 2}", "trainer.enable_progress_bar=false", *weight]  # fmt: skip
    if args.trained:
        trained = json.loads((out / "train" / "metrics.json").read_text())
        train_s = trained["wall_time_s"]
    else:
        started = time.perf_counter()
        trained = train(Job(compose_config("train", overrides), out / "train"))
        train_s = time.perf_counter() - started
    with open(out / "train" / "val.csv", newline="") as f:
        validations = list(csv.DictReader(f))

    content, style = load_image(example("tubingen.jpg"), PAIR_PX), load_image(example("starry_night.jpg"), PAIR_PX)
    network, _ = load_model(out / "train")
    stylize(network, content)  # warm-up
    begun = time.perf_counter()
    styled = stylize(network, content)
    network_s = time.perf_counter() - begun
    save_image(styled, out / "network_tubingen.png")
    rows = {"trained network (one pass)": (quality(styled, content, [style], [1.0]), network_s)}

    cfg = compose_config("config", ["logger=none", "trainer.enable_progress_bar=false"])
    (metrics,) = run([Job(cfg, out / "optimised")])
    rows["default optimisation (300 evaluations)"] = (metrics, metrics["fit_time_s"])
    adain = AdaIN()
    adain(content, [style], [1.0])  # warm-up: the decoder and encoder loaded
    begun = time.perf_counter()
    adain_image = adain(content, [style], [1.0])
    rows["AdaIN (one pass)"] = (quality(adain_image, content, [style], [1.0]), time.perf_counter() - begun)

    optimise_s = rows["default optimisation (300 evaluations)"][1]
    break_even = train_s / (optimise_s - network_s) if optimise_s > network_s else float("inf")
    val_table = "\n".join(
        f"| {v['step']} | " + " | ".join(f"{float(v[k]):.3f}" for k in ("content_error", "style_error", "style_swd"))
        + " |"
        for v in validations
    )
    pair_table = "\n".join(
        f"| {label} | {m['content_error']:.3f} | {m['style_error']:.3f} | {m['style_swd']:.3f} | {s:.2f} |"
        for label, (m, s) in rows.items()
    )
    body = f"""## Learning a style on this CPU ({args.size} px crops, {args.steps} steps)

{machine()}. `python -m benchmarks.training_quality --size {args.size} --steps {args.steps}{
        f" --style-weight {args.style_weight:g}" if args.style_weight is not None else ""}`: `nst train` on the 7
bundled photos (2 held out), The Starry Night, caffe VGG-19, Johnson's layers and loss
(style weight {args.style_weight if args.style_weight is not None else "as configured"}), batch 4, Adam 1e-3.
Training took {train_s / 60:.1f} min ({trained["images_per_s"]:.2f} images/s).

Validation (the held-out photos at 256 px, judged):

| step | content error | style error | style SWD |
| --- | --- | --- | --- |
{val_table}

The example pair at {PAIR_PX} px (seconds per image: each method's own pass or fit, networks already loaded):

| | content error | style error | style SWD | s / image |
| --- | --- | --- | --- | --- |
{pair_table}

Break-even: training pays for itself from about {break_even:.0f} images
({train_s:.0f} s of training / ({optimise_s:.1f} − {network_s:.2f}) s saved per image).
"""
    write_section(f"training-quality-{args.size}", body)
    (out / "summary.json").write_text(json.dumps({"train_s": train_s, "break_even": break_even}, indent=2))
    print(body)


if __name__ == "__main__":
    main()
