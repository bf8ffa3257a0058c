"""Batching the jobs of a sweep: N runs optimised as N images of one module, each still its own run.

Everything that exists only because runs share a batch lives here: which jobs may
share one (`batch_key`, `PER_RUN`), the one optimizer over all their images, and
splitting a batch's checkpoint so that each run resumes alone. The module itself
only knows that it optimises B images with B sets of weights (nst/module.py); the
launcher that hands Hydra's jobs to the pipeline in batches is nst/launcher.py.
"""

import io
import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from nst.configs import build
from nst.errors import NSTError
from nst.lbfgs import BatchedLBFGS, OptimizerFactory, build_optimizer, lbfgs_settings, written_by_batched_lbfgs
from nst.module import OptimizerBuilder
from nst.outputs import atomic_write

# What the runs of one batch may set for themselves; everything else must be equal.
PER_RUN = (
    "loss.content_weight",
    "loss.style_weight",
    "loss.tv_weight",
    "layers",
    "init",
    "init_noise",
    "adain",
    "seed",
    "optimizer.torch.lr",
    "snapshot_every",
    "judge",
    "objective",
    "logger",
)


def batch_key(cfg: DictConfig) -> str:
    """Jobs with equal keys can be optimised as one batch."""
    shared = OmegaConf.to_container(cfg, resolve=True)
    for dotted in PER_RUN:
        if dotted == "seed" and cfg.backbone.weights == "random":
            continue  # random weights are drawn from the seed: another seed is another network
        *parents, leaf = dotted.split(".")
        node = shared
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return json.dumps(shared, sort_keys=True, default=str)


def unbatchable(cfg: DictConfig) -> str | None:
    """Why a job must run alone, if it must."""
    settings = lbfgs_settings(build(cfg.optimizer.torch, "optimizer.torch"))
    if settings is not None and not settings.compact:
        return f"L-BFGS with line_search_fn={settings.line_search_fn} cannot be batched"
    if cfg.get("resume"):
        return "a resumed run continues alone"
    return None


def batches(cfgs: Sequence[DictConfig], size: int) -> list[list[int]]:
    """Indices of `cfgs` grouped by batch key, in order of first appearance, at most `size` a batch.

    A job that must run alone (`unbatchable`) gets a batch of its own.
    """
    groups: dict[str, list[int]] = {}
    for index, cfg in enumerate(cfgs):
        groups.setdefault(f"alone {index}" if unbatchable(cfg) else batch_key(cfg), []).append(index)
    return [indices[i : i + size] for indices in groups.values() for i in range(0, len(indices), size)]


def batch_optimizer(factories: Sequence[OptimizerFactory], restart_stuck: bool = False) -> OptimizerBuilder:
    """The module's optimizer for a batch: one over every run's image, one parameter group per run.

    Runs may differ in any setting a torch optimizer keeps per group (lr, betas,
    weight decay for Adam; lr for L-BFGS); L-BFGS becomes `BatchedLBFGS`, a history
    per run. A batch of one builds that run's own optimizer.
    """
    if len(factories) == 1:
        return partial(build_optimizer, factories[0], restart_stuck=restart_stuck)
    kinds = {getattr(f, "func", f) for f in factories}
    if len(kinds) != 1 or not all(isinstance(f, partial) for f in factories):
        raise NSTError("the runs of a batch use different optimizers: batch only runs with one optimizer._target_")
    kind = kinds.pop()
    if kind is torch.optim.LBFGS:
        settings = [dict(f.keywords) for f in factories]
        shared = {k: v for k, v in settings[0].items() if k != "lr"}
        if any({k: v for k, v in s.items() if k != "lr"} != shared for s in settings):
            raise NSTError("the runs of a batch differ in an L-BFGS setting other than lr: batch runs that share them")

        def lbfgs(images: Sequence[Tensor], compact: bool) -> torch.optim.Optimizer:
            groups = [{"params": [image], "lr": s.get("lr", 1.0)} for image, s in zip(images, settings, strict=True)]
            return BatchedLBFGS(groups, restart_stuck=restart_stuck, **shared)

        return lbfgs

    def grouped(images: Sequence[Tensor], compact: bool) -> torch.optim.Optimizer:
        return kind([{"params": [image], **f.keywords} for image, f in zip(images, factories, strict=True)])

    return grouped


def state_of_run(state_dict: dict, run: int) -> dict:
    """One run's share of a batch optimizer's `state_dict`, as that run's own optimizer would save it.

    Torch optimizers keep their state per parameter, and run `run`'s image is parameter
    `run`; `BatchedLBFGS` keeps one state, whose tensors hold the runs along dim 0 and
    whose numbers (ring position, counters) all runs share. Either way the run's own
    parameter group comes along, and its tensors are copies, not views of the batch's.
    """
    state = state_dict["state"]
    batched = written_by_batched_lbfgs(state)
    source = state[0] if batched else state.get(run, {})
    own = {k: (v[run : run + 1] if batched else v).clone() if isinstance(v, Tensor) else v for k, v in source.items()}
    return {"state": {0: own} if own else {}, "param_groups": [{**state_dict["param_groups"][run], "params": [0]}]}


def split_checkpoint(path: Path, targets: dict[int, Path]) -> None:
    """A batch's checkpoint as one checkpoint per run named in `targets`, in the form its own checkpoint would have.

    `path` is removed unless it is one of the targets: a run that failed gets no checkpoint.
    """
    batch = torch.load(path, map_location="cpu", weights_only=True)
    images = {k: v for k, v in batch["state_dict"].items() if k.startswith("images.")}
    shared = {k: v for k, v in batch["state_dict"].items() if k not in images}
    if path not in targets.values():
        path.unlink()
    for run, target in targets.items():
        own = {
            **batch,
            "state_dict": {**shared, "images.0": images[f"images.{run}"]},
            "optimizer_states": [state_of_run(batch["optimizer_states"][0], run)],
        }
        buffer = io.BytesIO()
        torch.save(own, buffer)
        atomic_write(target, buffer.getvalue())
