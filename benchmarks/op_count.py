"""Operations launched per evaluation: the harness against the bare loop, and each L-BFGS per iteration.

On a GPU every operation is at least one kernel launch, whose cost does not shrink
with the image: at a few milliseconds an evaluation, the count sets the harness's
overhead as much as the arithmetic does. Counted with torch's profiler: top-level aten
operations (those Python launches, not the ones they call inside), the autograd
backward pass included, and host syncs (`aten::_local_scalar_dense`, what `.item()`
and `float()` of a tensor run). A GPU launches the same operations for the same code
path; which L-BFGS `nst` runs depends on the device (`speed.compact_lbfgs: auto`), so
the CUDA path is also counted explicitly. The script runs where `bench_device()` points.

(a) One L-BFGS step of 20 evaluations (caffe VGG-19, Gatys layers, `--size` px):
benchmarks/speed.py's bare loop against `nst`, quiet, as a user runs it, and with
`speed.compact_lbfgs=true`, each the difference between a 2-step and a 1-step run, so
that set-up drops out.
(b) One iteration of torch.optim.LBFGS and of nst's BatchedLBFGS at a full 100-pair
history (benchmarks/time_split.py's quadratic), the closure's own operations taken out.

    python -m benchmarks.op_count [--size 32]
"""

import argparse
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

from benchmarks.harness_overhead import BASE
from benchmarks.harness_overhead import QUIET as NO_LOGGING
from benchmarks.results_file import bench_device, machine, write_section
from benchmarks.speed import bare_loop, harness
from benchmarks.time_split import quadratic_lbfgs

QUIET = [*BASE, *NO_LOGGING]
AS_A_USER = [*BASE, "snapshot_every=5"]  # the default logger: W&B offline
SYNC = "aten::_local_scalar_dense"
# Operations that start no kernel: views, and casts and copies that are no-ops here (fp32 in, fp32 out).
VIEWS = {
    f"aten::{name}"
    for name in "detach to unsqueeze squeeze expand expand_as slice select view view_as reshape flatten t transpose "
    "permute as_strided alias _reshape_alias narrow diagonal unbind split chunk lift_fresh resolve_conj "
    "resolve_neg contiguous numpy_T result_type".split()
}
OPTIMISERS = (
    "torch's LBFGS in both",
    "nst's BatchedLBFGS by `speed.compact_lbfgs: auto`, torch's LBFGS in the bare loop",
)


def operations(fn: Callable[[], object]) -> Counter:
    """Top-level aten operations `fn` launches, by name, plus its host syncs under SYNC."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.events()
    top = Counter(
        e.name
        for e in events
        if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))
    )
    top[SYNC] = sum(e.name == SYNC for e in events)
    return top


def per_one_of_20(more: Counter, less: Counter) -> Counter:
    """What `more` launched beyond `less`, divided among the 20 evaluations of an L-BFGS step."""
    return Counter({name: (more[name] - less[name]) / 20 for name in more | less})


def per_evaluation(run: Callable[[int], object]) -> Counter:
    """Operations of one 20-evaluation step of `run(steps)`, per evaluation: 2 steps minus 1 step."""
    run(1)  # warm-up: first calls load and cache
    one, two = operations(lambda: run(1)), operations(lambda: run(2))
    return per_one_of_20(two, one)


def optimiser_iteration(batched: bool) -> Counter:
    """Operations of one L-BFGS iteration at a full history, without its closure's."""
    optimizer, closure = quadratic_lbfgs((1, 3, 24, 32), 1, batched)
    step = operations(lambda: optimizer.step(closure))
    return per_one_of_20(step, operations(lambda: [closure() for _ in range(20)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32, help="image size of the evaluation counts")
    args = parser.parse_args()
    device = bench_device()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "bare PyTorch loop (benchmarks/speed.py)": lambda steps: bare_loop(args.size, steps, 1e5, device),
            "nst, no logger, no snapshots, no judge": lambda steps: harness(
                args.size, steps, Path(tmp) / f"quiet{steps}", QUIET
            ),
            "nst as a user runs it (W&B offline, snapshots every 5), no judge": lambda steps: harness(
                args.size, steps, Path(tmp) / f"user{steps}", AS_A_USER
            ),
            "the same with `speed.compact_lbfgs=true` (BatchedLBFGS: the CUDA default)": lambda steps: harness(
                args.size, steps, Path(tmp) / f"compact{steps}", [*AS_A_USER, "speed.compact_lbfgs=true"]
            ),
        }
        counts = {label: per_evaluation(run) for label, run in runs.items()}
    bare = counts["bare PyTorch loop (benchmarks/speed.py)"]
    quiet = counts["nst, no logger, no snapshots, no judge"]
    extra = sorted(((quiet[n] - bare[n], n) for n in quiet | bare if n != SYNC and n not in VIEWS), reverse=True)
    optimisers = {
        "torch.optim.LBFGS (two-loop recursion)": optimiser_iteration(batched=False),
        "nst's BatchedLBFGS (compact form)": optimiser_iteration(batched=True),
    }

    def total(counter: Counter, views: bool = True) -> float:
        return sum(v for k, v in counter.items() if k != SYNC and (views or k not in VIEWS))

    def row(label: str, counter: Counter) -> str:
        return f"| {label} | {total(counter):.1f} | {total(counter, views=False):.1f} | {counter[SYNC]:.1f} |"

    lines = [
        "## Operations per evaluation (what a GPU launches)",
        "",
        f"Measured {machine()} by `python -m benchmarks.op_count --size {args.size}`: top-level aten operations",
        "(the backward pass included) counted with torch's profiler; a GPU launches the same. Evaluations: one",
        f"L-BFGS step of 20 at {args.size} px (caffe VGG-19, Gatys layers), 2 steps minus 1 step, per evaluation;",
        f"the optimiser's share is in these counts too ({OPTIMISERS[device.type == 'cuda']}). Iterations: a full",
        "100-pair history on a quadratic, the closure's own operations taken out.",
        "",
        "| per evaluation | operations | of them not views | host syncs |",
        "| --- | ---: | ---: | ---: |",
        *(row(label, c) for label, c in counts.items()),
        "",
        "Views (reshapes, slices, expands) and no-op casts start no kernel and cost only their Python call.",
        "What `nst` launches beyond the bare loop, per evaluation, views left out (the eight largest"
        " differences): " + ", ".join(f"{name.removeprefix('aten::')} {diff:+.1f}" for diff, name in extra[:8]) + ".",
        "",
        "| per L-BFGS iteration, 100 pairs | operations | of them not views | host syncs |",
        "| --- | ---: | ---: | ---: |",
        *(row(label, c) for label, c in optimisers.items()),
    ]
    print("\n".join(lines))
    write_section(f"op-count-{device.type}", "\n".join(lines))


if __name__ == "__main__":
    main()
