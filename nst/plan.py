"""An image run's config, read once into frozen values: what every step of nst/pipeline.py receives.

A batch of runs (nst/batching.py) shares everything but the settings of
`batching.PER_RUN`: those are each run's own (`RunPlan`), the rest the batch's
(`ImagePlan`). Objects a researcher configures (the style statistic, the optimizer,
the fast path, the Trainer, the start image's network) are built from their config
nodes with Hydra's `instantiate` (nst/configs.py `build`), as factories where they
are built later.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig

from nst.checks import image_paths
from nst.configs import build
from nst.fastpath import FastPath
from nst.layers import config_layers
from nst.lbfgs import lbfgs_settings
from nst.losses import Convention
from nst.regions import Regions, regions_of
from nst.runs import Job
from nst.statistics import StyleStatistic


@dataclass(frozen=True)
class RunPlan:
    """One run's own settings: its weights, layers, start image, optimizer and outputs."""

    out_dir: Path
    seed: int
    loss: Mapping[str, float]  # content_weight, style_weight, tv_weight
    content_layers: Mapping[str, float]
    style_layers: Mapping[str, float]
    init: str
    init_noise: float
    start: Callable[..., Any] | None  # init=adain's or init=network's start, built when the images are read
    optimizer: Callable[..., Any]  # the torch optimizer over the images
    snapshot_every: int
    judge: bool


@dataclass(frozen=True)
class ImagePlan:
    """What a run (or a batch of runs) shares: images, sizes, statistic, optimizer schedule, device, display."""

    runs: tuple[RunPlan, ...]
    content: Path
    styles: tuple[Path, ...]
    sizes: tuple[int, ...]  # one stage, or coarse to fine
    style_scale: float
    style_blend: tuple[float, ...] | None
    regions: Callable[..., Regions] | None  # spatial control: `read_regions` given the images' sizes
    colour: str | None
    statistic: Callable[[], StyleStatistic]  # a fresh statistic per stage, as each module holds its own
    convention: Convention
    tv_beta: float
    restart_stuck: bool
    speed: FastPath
    trainer: Callable[..., pl.Trainer]
    accelerator: str
    progress: bool
    log_every: int
    steps: int
    evaluations_per_step: int  # L-BFGS's max_iter (capped by max_eval), Adam's one
    lbfgs_history: int  # curvature pairs kept per image (0 for other optimizers), for the memory estimate
    optimizer_name: str

    @property
    def out_dirs(self) -> list[Path]:
        return [run.out_dir for run in self.runs]

    @classmethod
    def read(cls, jobs: Sequence[Job], arch: str) -> "ImagePlan":
        """The jobs' configs (already checked: nst/checks.py) as a plan; `arch` names the loss network's layers."""
        cfg: DictConfig = jobs[0].cfg
        torch_optimizer = cfg.optimizer.torch
        lbfgs = lbfgs_settings(build(torch_optimizer, "optimizer.torch"))
        max_iter = int(torch_optimizer.get("max_iter") or 20)
        per_step = max_iter if torch_optimizer.get("max_eval") is None else min(max_iter, int(torch_optimizer.max_eval))
        return cls(
            runs=tuple(_run_plan(job, arch) for job in jobs),
            content=Path(image_paths(cfg.content, "content")[0]),
            styles=tuple(Path(p) for p in image_paths(cfg.style, "style")),
            sizes=tuple(int(s) for s in cfg.image.get("scales") or [cfg.image.size]),
            style_scale=float(cfg.image.style_scale),
            style_blend=None if cfg.style_blend is None else tuple(float(w) for w in cfg.style_blend),
            regions=regions_of(cfg),
            colour=cfg.colour,
            statistic=partial(build, cfg.style_loss, "style_loss"),
            convention=cfg.loss.convention,
            tv_beta=cfg.loss.tv_beta,
            restart_stuck=bool(cfg.optimizer.get("restart_stuck", False)),
            speed=build(cfg.speed, "speed"),
            trainer=partial(build, cfg.trainer, "trainer"),
            accelerator=str(cfg.trainer.get("accelerator", "auto")),
            progress=bool(cfg.trainer.get("enable_progress_bar", True)),
            log_every=cfg.log_every,
            steps=int(cfg.optimizer.steps),
            evaluations_per_step=per_step if lbfgs is not None else 1,
            lbfgs_history=lbfgs.history_size if lbfgs else 0,
            optimizer_name=torch_optimizer._target_.rsplit(".", 1)[-1],
        )


def _run_plan(job: Job, arch: str) -> RunPlan:
    cfg = job.cfg
    content, style = config_layers(cfg.layers, arch)
    starts = {"adain": partial(build, cfg.adain, "adain"), "network": partial(build, cfg.network, "network")}
    return RunPlan(
        out_dir=job.out_dir,
        seed=int(cfg.seed),
        loss={key: cfg.loss[key] for key in ("content_weight", "style_weight", "tv_weight")},
        content_layers=content,
        style_layers=style,
        init=cfg.init,
        init_noise=cfg.init_noise,
        start=starts.get(cfg.init),
        optimizer=build(cfg.optimizer.torch, "optimizer.torch"),
        snapshot_every=cfg.snapshot_every,
        judge=bool(cfg.judge),
    )
