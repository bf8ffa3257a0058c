"""Batched L-BFGS: each run of the batch follows exactly the path torch's L-BFGS gives it alone."""

import pytest
import torch

from nst.batching import state_of_run
from nst.errors import NSTError
from nst.lbfgs import BatchedLBFGS, TorchLBFGS, curvature_pairs, restarted_runs, restarts

SIZE = 12


def problem(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth non-quadratic function of one run's vector: a random quadratic plus a quartic term."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(SIZE, SIZE, generator=generator, dtype=torch.float64)
    target = torch.randn(SIZE, generator=generator, dtype=torch.float64)
    return a @ a.T / SIZE + torch.eye(SIZE, dtype=torch.float64), target


def loss(x: torch.Tensor, matrix: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    diff = x - target
    return 0.5 * diff @ matrix @ diff + 0.1 * (diff**4).sum()


def alone(seed: int, steps: int, **settings) -> torch.Tensor:
    matrix, target = problem(seed)
    x = torch.zeros(SIZE, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([x], **settings)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss(x, matrix, target)
        value.backward()
        return value

    for _ in range(steps):
        optimizer.step(closure)
    return x.detach()


def batched(seeds: list[int], lrs: list[float], steps: int, resume_after: int = 0, **settings) -> torch.Tensor:
    """The runs as one batch; `resume_after` steps in, the optimizer is rebuilt from its state_dict."""
    problems = [problem(seed) for seed in seeds]
    xs = [torch.zeros(SIZE, dtype=torch.float64, requires_grad=True) for _ in seeds]
    groups = [{"params": [x], "lr": lr} for x, lr in zip(xs, lrs, strict=True)]
    optimizer = BatchedLBFGS(groups, **settings)
    calls = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        values = torch.stack([loss(x, m, t) for x, (m, t) in zip(xs, problems, strict=True)])
        values.sum().backward()
        calls.append(1)
        return values

    for step in range(steps):
        if step == resume_after > 0:
            saved, optimizer = optimizer.state_dict(), BatchedLBFGS(groups, **settings)
            optimizer.load_state_dict(saved)
        optimizer.step(closure)
    return torch.stack([x.detach() for x in xs]), len(calls)


WRAPS = {"max_iter": 7, "history_size": 3, "tolerance_grad": -1, "tolerance_change": -1}


@pytest.mark.parametrize(
    ("settings", "steps"),
    [
        ({"max_iter": 5, "history_size": 100, "tolerance_grad": -1, "tolerance_change": -1}, 6),
        (WRAPS, 2),  # 14 iterations through a ring of 3, before the first pair torch would reject
        ({"max_iter": 20, "history_size": 10, "tolerance_grad": 1e-6, "tolerance_change": 1e-9}, 6),
    ],
    ids=["nst-defaults", "history-wraps-around", "runs-stop-on-their-own-tolerances"],
)
def test_each_run_of_the_batch_matches_torch_lbfgs_alone(settings, steps):
    seeds, lrs = [0, 1, 2], [1.0, 0.5, 0.8]
    together, _ = batched(seeds, lrs, steps=steps, **settings)
    for row, seed, lr in zip(together, seeds, lrs, strict=True):
        expected = alone(seed, steps=steps, lr=lr, **settings)
        assert torch.allclose(row, expected, rtol=1e-9, atol=1e-9), (seed, row - expected)


def test_after_pairs_torch_rejects_a_run_stays_at_torchs_solution():
    """Near convergence ys falls under 1e-10 and torch skips the pair; the batch stores a null pair instead."""
    seeds, lrs = [0, 1, 2], [1.0, 0.5, 0.8]
    together, _ = batched(seeds, lrs, steps=6, **WRAPS)  # pairs rejected from the 15th iteration on
    for row, seed, lr in zip(together, seeds, lrs, strict=True):
        expected = alone(seed, steps=6, lr=lr, **WRAPS)
        assert torch.allclose(row, expected, rtol=0, atol=1e-6), (seed, row - expected)


def test_a_run_resumed_from_the_optimizers_state_dict_continues_on_the_same_path():
    settings = {"max_iter": 5, "history_size": 8, "tolerance_grad": -1, "tolerance_change": -1}
    straight, _ = batched([0, 1], [1.0, 0.5], steps=4, **settings)
    resumed, _ = batched([0, 1], [1.0, 0.5], steps=4, resume_after=2, **settings)
    assert torch.equal(resumed, straight)


@pytest.mark.parametrize(
    "make",
    [
        lambda groups: BatchedLBFGS(groups, max_iter=5, history_size=8, tolerance_grad=-1, tolerance_change=-1),
        lambda groups: torch.optim.Adam(groups, lr=0.1),
    ],
    ids=["lbfgs", "adam"],
)
def test_a_run_of_a_batch_goes_on_alone_from_its_share_of_the_optimizer_state(make):
    """What an interrupted batch leaves each run: `state_of_run` continues the run's path with no other run."""
    problems = [problem(seed) for seed in (0, 1, 2)]
    xs = [torch.zeros(SIZE, dtype=torch.float64, requires_grad=True) for _ in problems]
    optimizer = make([{"params": [x], "lr": lr} for x, lr in zip(xs, [1.0, 0.5, 0.8], strict=True)])

    def step(opt: torch.optim.Optimizer, runs: list[int]) -> None:
        def closure() -> torch.Tensor:
            opt.zero_grad()
            values = torch.stack([loss(xs[r], *problems[r]) for r in runs])
            values.sum().backward()
            return values

        opt.step(closure)

    for _ in range(2):
        step(optimizer, [0, 1, 2])
    alone_x = xs[1].detach().clone().requires_grad_(True)
    alone = make([{"params": [alone_x]}])
    alone.load_state_dict(state_of_run(optimizer.state_dict(), 1))
    for _ in range(2):
        step(optimizer, [0, 1, 2])
    xs[1], together = alone_x, xs[1].detach()
    for _ in range(2):
        step(alone, [1])
    assert torch.allclose(alone_x.detach(), together, rtol=0, atol=1e-12)


def test_without_tolerances_every_step_takes_max_iter_evaluations():
    _, calls = batched([0, 1], [1.0, 1.0], steps=3, max_iter=4, tolerance_grad=-1, tolerance_change=-1)
    assert calls == 3 * 4


def test_a_line_search_is_refused_with_the_fix():
    with pytest.raises(NSTError, match="line_search_fn=strong_wolfe cannot be batched"):
        BatchedLBFGS([{"params": [torch.zeros(2, requires_grad=True)]}], line_search_fn="strong_wolfe")


def test_curvature_pairs_tell_a_run_that_learns_curvature_from_one_whose_history_stopped_changing():
    """A pair is kept only if sᵀy > 1e-10: on a linear loss the gradient never changes (y = 0), so none is."""
    matrix, target = problem(0)
    settings = {"max_iter": 5, "history_size": 100, "tolerance_grad": -1, "tolerance_change": -1}

    def fit(make: type[torch.optim.Optimizer], losses: list) -> torch.optim.Optimizer:
        xs = [torch.zeros(SIZE, dtype=torch.float64, requires_grad=True) for _ in losses]
        optimizer = make([{"params": [x]} for x in xs], **settings)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            values = torch.stack([f(x) for f, x in zip(losses, xs, strict=True)])
            values.sum().backward()
            return values if make is BatchedLBFGS else values.sum()

        for _ in range(2):  # 10 iterations: 9 pairs formed
            optimizer.step(closure)
        return optimizer

    def curved(x: torch.Tensor) -> torch.Tensor:
        return loss(x, matrix, target)

    def linear(x: torch.Tensor) -> torch.Tensor:
        return 1e-3 * x.sum()

    assert curvature_pairs(fit(BatchedLBFGS, [curved, linear])) == [(9, 9), (0, 9)]
    assert curvature_pairs(fit(torch.optim.LBFGS, [curved])) == [(9, 9)]
    assert curvature_pairs(fit(torch.optim.LBFGS, [linear])) == [(0, 9)]
    assert curvature_pairs(torch.optim.Adam([torch.zeros(1, requires_grad=True)])) == []


def test_a_run_whose_step_kept_no_pair_restarts_and_the_others_keep_torchs_path():
    """`restart_stuck`: a run whose history stopped changing starts anew; a healthy run is not touched."""
    matrix, target = problem(0)
    settings = {"max_iter": 5, "history_size": 100, "tolerance_grad": -1, "tolerance_change": -1}
    curved, flat = (torch.zeros(SIZE, dtype=torch.float64, requires_grad=True) for _ in range(2))
    batch = BatchedLBFGS([{"params": [curved]}, {"params": [flat]}], restart_stuck=True, **settings)

    def closure() -> torch.Tensor:
        batch.zero_grad()
        values = torch.stack([loss(curved, matrix, target), 1e-3 * flat.sum()])
        values.sum().backward()
        return values

    for _ in range(2):
        batch.step(closure)
    assert restarts(batch) == [0, 2]  # the linear run kept no pair in either step
    assert torch.allclose(curved.detach(), alone(0, steps=2, **settings), rtol=0, atol=1e-12)


@pytest.mark.parametrize("restart_stuck", [False, True])
def test_a_run_whose_history_points_uphill_restarts(restart_stuck):
    """After a blow-up, rounding in the compact form can give an ascent direction (benchmarks/results.md).

    Here run 1's stored gradient changes y are scaled tenfold behind their inner
    products' back: the same kind of broken history, vectors that disagree with their
    Gram matrix. Its pairs still pass sᵀy > 0, so only the uphill direction can tell
    that the run must start again. Run 0 keeps torch's path.
    """
    matrix, target = problem(0)
    settings = {"max_iter": 5, "history_size": 100, "tolerance_grad": -1, "tolerance_change": -1}
    xs = [torch.zeros(SIZE, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    batch = BatchedLBFGS([{"params": [x]} for x in xs], restart_stuck=restart_stuck, **settings)

    def closure() -> torch.Tensor:
        batch.zero_grad()
        value = torch.stack([loss(x, matrix, target) for x in xs])
        value.sum().backward()
        return value.detach()

    batch.step(closure)
    pairs = batch.state[xs[0]]["pairs"]
    pairs[1, pairs.shape[1] // 2 :] *= 10
    batch.step(closure)
    assert restarts(batch) == [0, int(restart_stuck)]
    restarted = restarted_runs(batch)
    assert (restarted.tolist() if restart_stuck else restarted) == ([False, True] if restart_stuck else None)
    assert torch.allclose(xs[0].detach(), alone(0, steps=2, **settings), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind, stuck", [("curved", False), ("linear", True)])
def test_torchs_lbfgs_restarts_only_after_a_step_that_kept_no_pair(kind, stuck):
    matrix, target = problem(0)
    x = torch.zeros(SIZE, dtype=torch.float64, requires_grad=True)
    single = TorchLBFGS([x], restart_stuck=True, max_iter=5, tolerance_grad=-1, tolerance_change=-1)

    def closure() -> torch.Tensor:
        single.zero_grad()
        value = loss(x, matrix, target) if kind == "curved" else 1e-3 * x.sum()
        value.backward()
        return value

    single.step(closure)
    assert (restarted_runs(single) is not None) == stuck and restarts(single) == [int(stuck)]
    assert ("old_dirs" in single.state[x]) != stuck  # a restarted one starts again as L-BFGS starts
