"""What Gupta et al.'s stability term (`stability.weight`) does to flicker and to the judged figures.

One `nst train` per weight (same seed, photos, steps), then each network on a clip
whose motion is known: the Tübingen photo panned by 2 px a frame, with a little
Gaussian noise on each frame (σ = 0.01, as a camera adds; the photo is not among the
training photos). The clip's warping error (nst/train/video.py: the optical flow of
the input frames warps each stylised frame onto the next) is the flicker; the judged
figures are the network's last validation on its held-out photos.

    python -m benchmarks.stability [--steps 300] [--weights 0 1000 10000] [--style PAINTING]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from benchmarks.results_file import machine, write_section
from nst import environment
from nst.configs import CONF_DIR, example, styles
from nst.images import load_image
from nst.lifecycle import live
from nst.runs import Job
from nst.train.model_file import load_model, stylize
from nst.train.pipeline import TrainingBranch
from nst.train.video import warping_errors

FRAMES, SHIFT, NOISE = 12, 2, 0.01


def clip() -> list[torch.Tensor]:
    """The panned, noisy frames (1, 3, 96, 128) in [0, 1]: the same every run (seeded)."""
    photo = load_image(example("tubingen.jpg"), 192)[..., 20:116, :]
    generator = torch.Generator().manual_seed(0)
    frames = []
    for t in range(FRAMES):
        frame = photo[..., SHIFT * t : SHIFT * t + 128]
        frames.append((frame + NOISE * torch.randn(frame.shape, generator=generator)).clamp(0, 1))
    return frames


def as_array(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).numpy().astype(np.float32)


def one_weight(weight: float, args: argparse.Namespace, out: Path, frames: list[torch.Tensor]) -> dict:
    overrides = ["network=johnson", "logger=none", "trainer.enable_progress_bar=false", f"style={args.style}",
                 f"trainer.max_steps={args.steps}", f"stability.weight={weight}"]  # fmt: skip
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    run_dir = out / f"weight_{weight:g}"
    started = time.perf_counter()
    (trained,) = live(TrainingBranch(), [Job(cfg, run_dir)])
    minutes = (time.perf_counter() - started) / 60
    network, _ = load_model(run_dir)
    outputs = [as_array(stylize(network, frame).cpu()) for frame in frames]
    warping, own = warping_errors([as_array(f) for f in frames], outputs)
    return {"weight": weight, "minutes": minutes, "warping": warping, "own": own,
            **{k: trained[k] for k in ("content_error", "style_error", "style_swd")}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="trainer.max_steps of each training")
    parser.add_argument("--weights", nargs="*", type=float, default=[0.0, 1000.0, 10000.0], help="stability.weight")
    parser.add_argument("--style", default=styles("starry_night.jpg"), help="the painting")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    environment.configure()
    out = args.out or Path(tempfile.mkdtemp(prefix="nst-stability-"))
    frames = clip()
    rows = [one_weight(weight, args, out, frames) for weight in args.weights]
    lines = [f"| {r['weight']:g} | {r['warping']:.4f} | {r['content_error']:.3f} | {r['style_error']:.3f} | "
             f"{r['style_swd']:.3f} | {r['minutes']:.1f} |" for r in rows]  # fmt: skip
    body = f"""## The stability term against flicker (Gupta et al. 2017)

{machine()}. `python -m benchmarks.stability --steps {args.steps} --weights {" ".join(f"{w:g}" for w in args.weights)}`:
`nst train style={Path(args.style).name} stability.weight=W trainer.max_steps={args.steps}` per weight (seed 0),
then each network on a clip of {FRAMES} frames, the Tübingen photo panned {SHIFT} px a frame with Gaussian noise
σ = {NOISE} on each (the input's own warping error {rows[0]['own']:.4f}). Warping error: mean |styled frame − the
previous styled frame warped by the input's flow| (lower: less flicker). Judged figures: the last validation on
the held-out photos (256 px).

| stability.weight | warping error | content error | style error | style SWD | minutes |
| --- | --- | --- | --- | --- | --- |
{chr(10).join(lines)}
"""
    write_section("stability", body)
    print(body)


if __name__ == "__main__":
    main()
