"""A training run's config, read once into frozen values: what every step of nst/train/pipeline.py receives.

Objects a researcher configures (the network, the style statistic, the optimizer, the
schedule, the fast path, the Trainer) are built from their config nodes with Hydra's
`instantiate` (nst/configs.py `build`), as factories where they are built later (the
network from the seed, the optimizer over the network's parameters).
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import to_absolute_path
from omegaconf import DictConfig
from torch import nn

from nst.checks import image_paths
from nst.configs import build
from nst.criterion import LossWeights
from nst.fastpath import FastPath
from nst.layers import config_layers
from nst.losses import Convention
from nst.runs import Job
from nst.statistics import StyleStatistic
from nst.train.data import Augment
from nst.train.kinds import NetworkKind, kind_of_config
from nst.train.module import Stability


@dataclass(frozen=True)
class DataPlan:
    """The photos and crops: `data.*`."""

    content: Path  # the photo folder
    val: Path | None  # the folder of judged photos; None: `val_count` held out of `content`
    style_folder: Path | None  # an any-style network's style folder
    size: int
    resize: int
    batch_size: int
    val_count: int
    val_size: int
    style_size: int
    workers: int
    augment: Augment | None  # how each training crop is altered (None: as cut)


@dataclass(frozen=True)
class TrainingPlan:
    """Everything a training run reads from its config."""

    out_dir: Path
    seed: int
    steps: int
    data: DataPlan
    style_paths: tuple[Path, ...]  # the fixed styles (none for an any-style network: its folder's held-out ones)
    style_blend: tuple[float, ...] | None  # one weight per style image, normalised by nst/targets.py
    kind: NetworkKind
    network: Callable[..., nn.Module]  # the network class with its config's settings: called after seeding
    weights: LossWeights
    style_balance: float | None  # chooses the style weight from a probe before step 0 (nst/train/balance.py)
    layers: frozenset[str]  # content and style layers: the deepest sets the smallest crop
    statistic: StyleStatistic
    convention: Convention
    tv_beta: float
    optimizer: Callable[..., Any]
    schedule: Callable[..., Any] | None
    speed: FastPath
    stability: Stability
    trainer: Callable[..., pl.Trainer]  # the `trainer` node, built with nst's own arguments
    val_every: int
    log_every: int
    checkpoint_every: int
    judge: bool
    best: str  # the judged figure model.pt is the lowest of
    patience: int  # validations without improvement before stopping (0: never)
    progress: bool

    @classmethod
    def read(cls, job: Job, arch: str) -> "TrainingPlan":
        """The job's config (already checked: nst/train/checks.py) as a plan; `arch` names the loss network's layers."""
        cfg: DictConfig = job.cfg
        data = cfg.data
        kind = kind_of_config(cfg.network)
        content, style = config_layers(cfg.layers, arch)
        return cls(
            out_dir=job.out_dir,
            seed=int(cfg.seed),
            steps=int(cfg.trainer.max_steps),
            data=DataPlan(
                content=Path(to_absolute_path(str(data.content))),
                val=None if data.get("val") is None else Path(to_absolute_path(str(data.val))),
                style_folder=Path(to_absolute_path(str(data.style))) if kind.any_style else None,
                size=int(data.size),
                resize=int(data.get("resize") or data.size),
                batch_size=int(data.batch_size),
                val_count=int(data.val_count),
                val_size=int(data.val_size),
                style_size=int(data.style_size),
                workers=int(data.workers),
                augment=build(data.augment, "data.augment") if data.get("augment") else None,
            ),
            style_paths=() if kind.any_style else tuple(Path(p) for p in image_paths(cfg.style, "style")),
            style_blend=None if cfg.style_blend is None else tuple(float(w) for w in cfg.style_blend),
            kind=kind,
            network=build(cfg.network, "network", _partial_=True),
            weights=LossWeights.of([(cfg.loss, content, style)]),
            style_balance=None if cfg.style_balance is None else float(cfg.style_balance),
            layers=frozenset(content) | frozenset(style),
            statistic=build(cfg.style_loss, "style_loss"),
            convention=cfg.loss.convention,
            tv_beta=float(cfg.loss.tv_beta),
            optimizer=build(cfg.optimizer, "optimizer"),
            schedule=build(cfg.schedule, "schedule") if cfg.get("schedule") else None,
            speed=build(cfg.speed, "speed"),
            stability=Stability(float(cfg.stability.weight), float(cfg.stability.noise), int(cfg.seed)),
            trainer=partial(build, cfg.trainer, "trainer"),
            val_every=int(cfg.val_every),
            log_every=int(cfg.log_every),
            checkpoint_every=int(cfg.checkpoint_every),
            judge=bool(cfg.judge),
            best=str(cfg.best),
            patience=int(cfg.patience),
            progress=bool(cfg.trainer.get("enable_progress_bar", True)),
        )
