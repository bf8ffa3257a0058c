"""L-BFGS without a line search, as Gatys et al. and jcjohnson/neural-style run it, in one place.

Two implementations give the same iterates. torch's `LBFGS` (`TorchLBFGS` here, for its
restart) is the reference. `BatchedLBFGS` runs N copies of torch's algorithm in
lockstep, one per image of a batch: every dot product is taken per image, each
image keeps its own curvature pairs, first step length and learning rate, and stops
on its own tolerances (tests/test_lbfgs.py checks it against torch's). Its
directions come from L-BFGS's compact form (`_direction`): a few large kernels per
iteration whatever the history's length, and no host sync unless a tolerance can
stop a step, so a single run on a GPU uses it too (`speed.compact_lbfgs`).

`lbfgs_settings` is the one answer to "is this L-BFGS, and which": memory
estimates, the batching launcher and the module all ask it. Both implementations
restart a stuck run the same way (`optimizer.restart_stuck`): the history is
forgotten inside `step`, `restarted_runs` says which runs, and the module puts back
each such run's lowest-loss image.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from nst.errors import NSTError

OptimizerFactory = Callable[[Iterable[Tensor]], torch.optim.Optimizer]


@dataclass(frozen=True)
class LBFGSSettings:
    """What a run's `optimizer.torch` says about L-BFGS: its history length and line search."""

    history_size: int
    line_search_fn: str | None

    @property
    def compact(self) -> bool:
        """Whether `BatchedLBFGS` can run it: only without a line search (each run would need its own evaluations)."""
        return self.line_search_fn is None


def lbfgs_settings(factory: OptimizerFactory) -> LBFGSSettings | None:
    """The L-BFGS settings of the `functools.partial` Hydra builds from `optimizer.torch`; None for other optimizers."""
    if getattr(factory, "func", None) is not torch.optim.LBFGS:
        return None
    keywords = factory.keywords
    return LBFGSSettings(keywords.get("history_size", 100), keywords.get("line_search_fn"))


def build_optimizer(
    factory: OptimizerFactory, images: Sequence[Tensor], compact: bool = False, restart_stuck: bool = False
) -> torch.optim.Optimizer:
    """The optimizer of one run: `BatchedLBFGS` where `compact` allows it, torch's L-BFGS or `factory`'s otherwise."""
    settings = lbfgs_settings(factory)
    if settings is None:
        return factory(images)
    if compact and settings.compact:
        return BatchedLBFGS(
            [{"params": list(images), "lr": factory.keywords.get("lr", 1.0)}],
            restart_stuck=restart_stuck,
            **{k: v for k, v in factory.keywords.items() if k != "lr"},
        )
    return TorchLBFGS(images, restart_stuck=restart_stuck, **factory.keywords)


class TorchLBFGS(torch.optim.LBFGS):
    """torch's LBFGS, step for step, that forgets its history when a step got it stuck (`restart_stuck`).

    Stuck: the step formed curvature pairs but kept none, so its history stopped
    changing. Read from torch's state lists, no device sync. A direction that does not
    descend ends torch's step where it is; the next step's pair is then null (the image
    has not moved), so that case lands here too, one evaluation later.
    """

    def __init__(self, params: Iterable[Tensor], restart_stuck: bool = False, **settings: object):
        super().__init__(params, **settings)
        self.restart_stuck = restart_stuck
        self.restarted: Tensor | None = None  # [True] on the image's device after a step that restarted

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        state = self.state[self.param_groups[0]["params"][0]]
        iterations, newest = state.get("n_iter", 0), (state.get("old_dirs") or [None])[-1]
        loss = super().step(closure)
        self.restarted = None
        formed = state["n_iter"] - max(iterations, 1)
        if self.restart_stuck and formed > 0 and (state["old_dirs"] or [None])[-1] is newest:
            count = state.get("restarts", 0) + 1
            state.clear()
            state["restarts"] = count
            self.restarted = torch.ones(1, dtype=torch.bool, device=self.param_groups[0]["params"][0].device)
        return loss


class BatchedLBFGS(torch.optim.Optimizer):
    """One parameter group per run, each holding one tensor of the same size (its image).

    The closure returns the loss of each run, shape (N,), after calling backward on
    their sum; the images do not interact, so each gradient is that run's own.
    Groups may differ in `lr`; the other settings are shared, as torch's LBFGS has them.
    """

    def __init__(
        self,
        params: Iterable[dict],
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
        restart_stuck: bool = False,
    ):
        if line_search_fn is not None:
            raise NSTError(
                f"L-BFGS with line_search_fn={line_search_fn} cannot be batched (each run would need its own "
                "number of evaluations): set optimizer.torch.line_search_fn=null, or run the jobs one by one"
            )
        defaults = {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_eval if max_eval is not None else max_iter * 5 // 4,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
        }
        super().__init__(params, defaults)
        self.restart_stuck = restart_stuck
        sizes = {p.numel() for group in self.param_groups for p in group["params"]}
        if any(len(group["params"]) != 1 for group in self.param_groups) or len(sizes) != 1:
            raise ValueError("BatchedLBFGS needs one parameter per group, all of the same size")

    @property
    def _params(self) -> list[Tensor]:
        return [group["params"][0] for group in self.param_groups]

    def _flat_grad(self) -> Tensor:
        return torch.stack([p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in self._params])

    @torch.no_grad()
    def _add_step(self, step: Tensor) -> None:
        for param, row in zip(self._params, step, strict=True):
            param.add_(row.view_as(param))

    def _state(self, flat_grad: Tensor) -> dict:
        """Per-run tensors in one ring of `history_size` slots whose position all runs share.

        `pairs` holds each run's steps s (rows 0..m-1) above its gradient changes y
        (rows m..2m-1), slot by slot; `gram` holds their inner products, updated one
        row and column per new pair, so that a direction needs no product of two pairs.
        """
        state = self.state[self._params[0]]
        n, size = flat_grad.shape
        if not state:
            slots = self.defaults["history_size"]
            counter = partial(torch.zeros, n, dtype=torch.long, device=flat_grad.device)
            state.update(
                func_evals=0,
                n_iter=0,
                pairs=flat_grad.new_zeros(n, 2 * slots, size),
                gram=flat_grad.new_zeros(n, 2 * slots, 2 * slots),
                ro=flat_grad.new_zeros(n, slots),
                head=0,
                formed=counter(),  # per run: pairs formed since its last restart
                restarts=counter(),
                restarted=counter().bool(),
            )
        for name in ("formed", "restarts"):  # `load_state_dict` casts them to the images' dtype
            state[name] = state[name].long()
        state["restarted"] = state["restarted"].bool()
        return state

    def _direction(self, state: dict, flat_grad: Tensor) -> Tensor:
        """−H g from the compact form of L-BFGS (Byrd, Nocedal & Schnabel 1994, eq. 3.1).

        H g = γ g + S p − γ Y u, with u = R⁻¹ Sᵀg and p = R⁻ᵀ((D + γ YᵀY) u − γ Yᵀg),
        where R is the upper triangle of SᵀY with pairs oldest first and D its diagonal:
        the same H as torch's two-loop recursion, in two passes over the history (Sᵀg
        and Yᵀg in one batched product, then S p − γ Y u in another) and two small
        triangular solves, instead of several small kernels per pair. A null pair (empty
        slot, or ro = 0, see `_remember`) gets R_ii = 1 in an otherwise zero row and
        column, so its u_i = p_i = 0: it adds nothing, as if it were not there.
        """
        pairs, gram, head = state["pairs"], state["gram"], state["head"]
        slots = pairs.shape[1] // 2
        gamma = state["H_diag"][:, None, None]
        products = torch.bmm(flat_grad[:, None, :], pairs.mT).mT  # gᵀ[S Y], a row: the fast gemv on CPUs too
        oldest_first = partial(torch.roll, shifts=-head, dims=1)
        s_g, y_g = oldest_first(products[:, :slots]), oldest_first(products[:, slots:])
        s_y = torch.roll(gram[:, :slots, slots:], shifts=(-head, -head), dims=(1, 2))
        y_y = torch.roll(gram[:, slots:, slots:], shifts=(-head, -head), dims=(1, 2))
        null = oldest_first(state["ro"]) == 0
        diagonal = torch.where(null, 0.0, s_y.diagonal(dim1=1, dim2=2))
        upper = s_y.triu(1) + torch.diag_embed(torch.where(null, 1.0, diagonal))
        u = torch.linalg.solve_triangular(upper, s_g, upper=True)
        inner = diagonal[:, :, None] * u + gamma * (y_y @ u) - gamma * y_g
        p = torch.linalg.solve_triangular(upper.mT, inner, upper=False)
        by_slot = partial(torch.roll, shifts=head, dims=1)
        weights = torch.cat([by_slot(p), by_slot(-gamma * u)], dim=1)
        return -(gamma[:, :, 0] * flat_grad + torch.bmm(weights.mT, pairs).squeeze(1))

    def _remember(self, state: dict, y: Tensor, s: Tensor, active: Tensor) -> Tensor:
        """Write (y, s) into every run's next slot; a run whose curvature condition fails gets a null pair.

        torch's LBFGS skips such a pair; here it takes the slot as zeros with ro = 0 (no
        effect on the direction), so that all runs keep one ring position on the host and
        no step gathers per-run slots. The run then holds one older pair fewer until the
        null pair leaves the ring: the only way a run can differ from torch's iterates,
        and only after a pair torch rejects (ys ≤ 1e-10, rare on images) or, with
        tolerances set, while a run that stopped early in a step waits for the others.
        Returns which runs kept their pair, for `restart_stuck`.
        """
        ys = (y * s).sum(1)
        accept = active & (ys > 1e-10)
        state["formed"] += active
        head, pairs, gram = state["head"], state["pairs"], state["gram"]
        slots = pairs.shape[1] // 2
        keep = accept[:, None]
        pairs[:, head] = torch.where(keep, s, 0.0)
        pairs[:, slots + head] = torch.where(keep, y, 0.0)
        with_new = torch.bmm(pairs, pairs[:, [head, slots + head]].mT)
        for column, slot in enumerate((head, slots + head)):
            gram[:, :, slot] = with_new[:, :, column]
            gram[:, slot, :] = with_new[:, :, column]
        state["ro"][:, head] = torch.where(accept, 1.0 / ys, 0.0)
        state["head"] = (head + 1) % slots
        state["H_diag"] = torch.where(accept, ys / (y * y).sum(1), state["H_diag"])
        return accept

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        """Up to `max_iter` iterations of every run; returns the runs' losses at the start."""
        settings = self.defaults
        tol_grad, tol_change = settings["tolerance_grad"], settings["tolerance_change"]
        can_stop = tol_grad >= 0 or tol_change >= 0  # only then is a host sync worth it
        with torch.enable_grad():
            orig_loss = closure()
        loss = orig_loss.detach().reshape(-1).float()
        flat_grad = self._flat_grad()
        state = self._state(flat_grad)
        lr = torch.tensor([g["lr"] for g in self.param_groups], dtype=flat_grad.dtype, device=flat_grad.device)
        state["func_evals"] += 1
        active = flat_grad.abs().amax(1) > tol_grad
        if can_stop and not bool(active.any()):
            return orig_loss

        current_evals, n_iter = 1, 0
        kept_in_step = torch.zeros_like(state["formed"])  # a run that forms pairs in a step but keeps none is stuck
        formed_before = state["formed"].clone()  # once a step: cheaper than counting formed pairs per iteration
        uphill = torch.zeros_like(active)  # so is one whose history gave a direction that does not descend
        while n_iter < settings["max_iter"]:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, t = -flat_grad, torch.zeros_like(lr)
                state["H_diag"] = torch.ones_like(lr)
            else:
                d, t = state["d"], state["t"]
                fresh = state["restarted"]  # a restarted run starts its history anew: no pair from before
                y = flat_grad - state["prev_flat_grad"]
                kept_in_step += self._remember(state, y, d * t[:, None], active & ~fresh)
                d = torch.where(active[:, None], self._direction(state, flat_grad), d)
            state["prev_flat_grad"] = torch.where(active[:, None], flat_grad, state.get("prev_flat_grad", flat_grad))
            prev_loss = loss
            first_t = (1.0 / flat_grad.abs().sum(1)).clamp_max(1.0) * lr  # torch's cautious first step
            new_t = first_t if state["n_iter"] == 1 else torch.where(state["restarted"], first_t, lr)
            state["restarted"] = torch.zeros_like(state["restarted"])
            t = torch.where(active, new_t, t)
            state["d"], state["t"] = d, t
            slope = (flat_grad * d).sum(1)
            uphill |= active & (slope > 0)
            active = active & (slope <= -tol_change)

            self._add_step(torch.where(active[:, None], d * t[:, None], 0.0))
            if n_iter != settings["max_iter"]:
                with torch.enable_grad():
                    loss = torch.where(active, closure().detach().reshape(-1).float(), loss)
                flat_grad = torch.where(active[:, None], self._flat_grad(), flat_grad)
                current_evals += 1
                state["func_evals"] += 1
            if n_iter == settings["max_iter"] or current_evals >= settings["max_eval"]:
                break
            if can_stop:
                active = active & (flat_grad.abs().amax(1) > tol_grad)
                active = active & ((d * t[:, None]).abs().amax(1) > tol_change)
                active = active & ((loss - prev_loss).abs() >= tol_change)
                if not bool(active.any()):
                    break
        if self.restart_stuck:
            self._restart(state, ((kept_in_step == 0) & (state["formed"] > formed_before)) | uphill)
        return orig_loss

    def _restart(self, state: dict, stuck: Tensor) -> None:
        """Forget the history of each stuck run, on the device (no sync).

        A run is stuck when it formed pairs in this step but kept none (its step scale
        has collapsed, see `curvature_pairs`), or when its history gave a direction that
        does not descend: after a step that blew the loss up by twenty orders of
        magnitude, the compact form's products lose the descent property to rounding
        (measured in benchmarks/results.md), and such a run stops moving. Either starts
        again as L-BFGS starts, with a cautious first step, from the image the module
        puts back (`restarted_runs`).
        """
        keep = ~stuck
        state["pairs"].mul_(keep[:, None, None])
        state["gram"].mul_(keep[:, None, None])
        state["ro"].mul_(keep[:, None])
        state["H_diag"] = torch.where(stuck, 1.0, state["H_diag"])
        state["formed"].mul_(keep)
        state["restarts"] += stuck
        state["restarted"] = stuck


def _lbfgs_state(optimizer: torch.optim.Optimizer) -> dict:
    """The state of an L-BFGS optimizer (kept with its first parameter), empty for others or before a step."""
    if not isinstance(optimizer, torch.optim.LBFGS | BatchedLBFGS):
        return {}
    return optimizer.state.get(optimizer.param_groups[0]["params"][0], {})


def curvature_pairs(optimizer: torch.optim.Optimizer) -> list[tuple[int, int]]:
    """For each image of an L-BFGS optimizer, (pairs in its history, pairs it could hold since a restart); [] else.

    L-BFGS keeps a pair (s, y) only if sᵀy > 1e-10. Without a line search, one step
    that blows the loss up can leave the step scale (H_diag, from the last kept pair)
    so small that no later pair passes: the history stops changing and the run crawls
    for the rest of its evaluations (docs/lbfgs.md). A healthy run keeps nearly every
    pair; such a run keeps a handful.
    """
    state = _lbfgs_state(optimizer)
    if not state:
        return []
    if isinstance(optimizer, BatchedLBFGS):
        slots = state["ro"].shape[1]
        kept, formed = (state["ro"] != 0).sum(1).tolist(), state["formed"].tolist()
        return [(k, min(f, slots)) for k, f in zip(kept, formed, strict=True)]
    formed = max(state.get("n_iter", 0) - 1, 0)  # a pair comes from two consecutive iterations, since a restart
    return [(len(state.get("old_dirs", [])), min(formed, optimizer.defaults["history_size"]))]


def restarts(optimizer: torch.optim.Optimizer) -> list[int]:
    """For each image of an L-BFGS optimizer, how often its history was forgotten because it had got stuck."""
    state = _lbfgs_state(optimizer)
    if not state:
        return []
    if isinstance(optimizer, BatchedLBFGS):
        return state["restarts"].tolist()
    return [state.get("restarts", 0)]


def restarted_runs(optimizer: torch.optim.Optimizer) -> Tensor | None:
    """Which images the last step restarted, a bool per image on the device; None where none can have."""
    if isinstance(optimizer, BatchedLBFGS):
        return _lbfgs_state(optimizer).get("restarted") if optimizer.restart_stuck else None
    return getattr(optimizer, "restarted", None)


def written_by_batched_lbfgs(state: dict) -> bool:
    """Whether an optimizer `state_dict()["state"]` is BatchedLBFGS's (its `pairs`) rather than a torch optimizer's."""
    return any("pairs" in value for value in state.values())
