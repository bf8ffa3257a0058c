"""Where one L-BFGS evaluation's time goes: the network against the optimiser, side by side.

A random VGG-19 cut at conv5_1 (forward + backward, one image and a batch, with and
without the fast path), then torch's LBFGS and nst's BatchedLBFGS (compact form) on a
cheap quadratic closure with a full 100-pair history, so the optimiser's own cost
shows. Writes the section `time-split-<device>-<size>` of results.md.

    python -m benchmarks.time_split [--size 512] [--runs 8]
"""

import argparse
import time
from collections.abc import Callable

import torch

from benchmarks.results_file import bench_device, machine, write_section
from nst.backbones import VGG
from nst.lbfgs import BatchedLBFGS, curvature_pairs
from nst.losses import gram

DEVICE = bench_device()
NAMES = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1"]


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


def network_ms(shape: tuple[int, int, int, int], fast: bool, calls: int) -> float:
    """Forward and backward to the image through the Gatys layers; `fast`: TF32 + channels_last."""
    torch.backends.cudnn.allow_tf32 = fast
    layout = torch.channels_last if fast else torch.contiguous_format
    net = VGG("vgg19", weights="random").trim(NAMES).to(DEVICE, memory_format=layout)
    image = torch.rand(*shape, device=DEVICE, requires_grad=True)

    def evaluation() -> None:
        features = net(image.contiguous(memory_format=layout), NAMES)
        loss = sum(gram(features[n]).square().sum() for n in NAMES if n != "conv4_2")
        (loss + features["conv4_2"].square().mean()).backward()

    return ms_per_call(evaluation, calls)


def quadratic_lbfgs(
    shape: tuple[int, int, int, int], runs: int, batched: bool
) -> tuple[torch.optim.Optimizer, Callable[[], torch.Tensor]]:
    """An L-BFGS with a full 100-pair history on a quadratic as cheap as a closure can be, and that closure.

    Curvatures from 1 to 1e4: with a narrower range (1 to 50, as this script had
    before 2026-11-24) L-BFGS converges within the 120 filling iterations, and then
    rejects most pairs (sᵀy ≤ 1e-10), so torch's two-loop recursion ran on a partial
    history. The history's fill is checked here.
    """
    torch.manual_seed(0)
    images = [torch.randn(*shape, device=DEVICE, requires_grad=True) for _ in range(runs)]
    settings = {"max_iter": 20, "history_size": 100, "tolerance_grad": -1, "tolerance_change": -1}
    if batched:
        optimizer = BatchedLBFGS([{"params": [image]} for image in images], **settings)
    else:
        optimizer = torch.optim.LBFGS(images, **settings)
    curvature = torch.logspace(0, 4, images[0].numel(), device=DEVICE).view_as(images[0])

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.stack([(image.square() * curvature).sum() for image in images])
        loss.sum().backward()
        return loss if batched else loss.sum()

    for _ in range(6):  # 120 iterations: a full history
        optimizer.step(closure)
    kept = curvature_pairs(optimizer)
    if any(pairs != 100 for pairs, _ in kept):
        raise RuntimeError(f"the L-BFGS history is not full ({kept}): the timings would flatter the two-loop recursion")
    return optimizer, closure


def optimiser_ms(shape: tuple[int, int, int, int], runs: int, batched: bool) -> float:
    """One L-BFGS evaluation with a full history, the closure as cheap as can be: the optimiser's own cost."""
    optimizer, closure = quadratic_lbfgs(shape, runs, batched)
    steps = 3
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.step(closure)
    sync()
    return (time.perf_counter() - started) / (steps * 20) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="long side; the image is 4:3 landscape")
    parser.add_argument("--runs", type=int, default=8, help="images in the batched rows")
    parser.add_argument("--calls", type=int, default=30, help="timed network evaluations per row")
    args = parser.parse_args()
    one = (1, 3, args.size * 3 // 4, args.size)
    rows = [
        ("VGG-19 to conv5_1 forward + backward, 1 image, fp32 NCHW", network_ms(one, False, args.calls)),
        ("the same, channels_last + TF32 on CUDA (the default fast path there)", network_ms(one, True, args.calls)),
    ]
    batch = network_ms((args.runs, *one[1:]), True, args.calls)
    rows.append((f"the same, a batch of {args.runs}", batch))
    rows.append(("torch.optim.LBFGS (two-loop recursion), 1 run", optimiser_ms(one, 1, batched=False)))
    rows.append(("BatchedLBFGS (compact form), 1 run", optimiser_ms(one, 1, batched=True)))
    rows.append((f"BatchedLBFGS (compact form), {args.runs} runs", optimiser_ms(one, args.runs, batched=True)))
    lines = [
        f"## Where an evaluation's time goes ({DEVICE.type}, {one[3]}x{one[2]} px)",
        "",
        f"Measured {machine()} by `python -m benchmarks.time_split --size {args.size} --runs {args.runs} "
        f"--calls {args.calls}`:",
        f"the network rows are the mean of {args.calls} evaluations after 3 warm-ups (random weights); the",
        "L-BFGS rows time 60 evaluations with a full 100-pair history on a cheap quadratic closure, so they",
        "show the optimiser's own cost per evaluation. Batched rows: time for the whole batch.",
        "",
        "| | ms per evaluation |",
        "| --- | ---: |",
        *(f"| {label} | {ms:.2f} |" for label, ms in rows),
    ]
    for line in lines[-len(rows) :]:
        print(line)
    write_section(f"time-split-{DEVICE.type}-{args.size}", "\n".join(lines))


if __name__ == "__main__":
    main()
