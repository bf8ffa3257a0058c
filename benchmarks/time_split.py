"""Where one L-BFGS evaluation's time goes at 512x384 px: the network against the optimiser.

A random VGG-19 cut at conv5_1 (forward + backward, batch 1 and 8, with and without
the fast path), then torch's LBFGS and BatchedLBFGS on a cheap quadratic closure with
a full 100-pair history, so the optimiser's own cost shows. Prints ms per evaluation.

    python -m benchmarks.time_split
"""

import time
from collections.abc import Callable

import torch

from nst.backbones import VGG
from nst.losses import gram
from nst.optimizers import BatchedLBFGS

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
NAMES = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1"]
HEIGHT, WIDTH = 384, 512


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def ms_per_call(fn: Callable[[], object], calls: int) -> float:
    """Mean milliseconds of `calls` calls after three warm-ups, the device synchronised around them."""
    for _ in range(3):
        fn()
    sync()
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - started) / calls * 1e3


def network_ms(batch: int, fast: bool) -> float:
    """Forward and backward to the image through the Gatys layers; `fast`: TF32 + channels_last."""
    torch.backends.cudnn.allow_tf32 = fast
    layout = torch.channels_last if fast else torch.contiguous_format
    net = VGG("vgg19", weights="random").trim(NAMES).to(DEVICE, memory_format=layout)
    image = torch.rand(batch, 3, HEIGHT, WIDTH, device=DEVICE, requires_grad=True)

    def evaluation() -> None:
        features = net(image.contiguous(memory_format=layout), NAMES)
        loss = sum(gram(features[n]).square().sum() for n in NAMES if n != "conv4_2")
        (loss + features["conv4_2"].square().mean()).backward()

    return ms_per_call(evaluation, 30)


def optimiser_ms(runs: int, batched: bool) -> float:
    """One L-BFGS evaluation with a full history on a quadratic as cheap as a closure can be."""
    images = [torch.randn(1, 3, HEIGHT, WIDTH, device=DEVICE, requires_grad=True) for _ in range(runs)]
    settings = {"max_iter": 20, "history_size": 100, "tolerance_grad": -1, "tolerance_change": -1}
    if batched:
        optimizer = BatchedLBFGS([{"params": [image]} for image in images], **settings)
    else:
        optimizer = torch.optim.LBFGS(images, **settings)
    curvature = torch.linspace(1, 50, images[0].numel(), device=DEVICE).view_as(images[0])
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        optimizer.zero_grad()
        loss = torch.stack([(image.square() * curvature).sum() for image in images])
        loss.sum().backward()
        evaluations += 1
        return loss if batched else loss.sum()

    for _ in range(6):  # fill the history
        optimizer.step(closure)
    sync()
    evaluations, started = 0, time.perf_counter()
    for _ in range(3):
        optimizer.step(closure)
    sync()
    return (time.perf_counter() - started) / evaluations * 1e3


def main() -> None:
    for batch in (1, 8):
        for fast in (False, True):
            label = "TF32 channels_last" if fast else "fp32 NCHW"
            print(f"network forward+backward, batch {batch}, {label}: {network_ms(batch, fast):.2f} ms/evaluation")
    print(f"torch.optim.LBFGS, 1 run: {optimiser_ms(1, batched=False):.2f} ms/evaluation")
    for runs in (1, 8):
        print(f"BatchedLBFGS, {runs} run(s): {optimiser_ms(runs, batched=True):.2f} ms/evaluation")


if __name__ == "__main__":
    main()
