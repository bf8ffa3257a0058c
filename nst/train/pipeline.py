"""One training run, config to model.pt, read top to bottom.

    check_training  every setting, before anything starts         (nst/train/checks.py)
    load_data       photos split, style image, held-out photos     (nst/train/data.py)
    build_module    network, criterion, optimizer -> module        (nst/train/module.py, nst/criterion.py)
    fit             Lightning fit, validated, checkpointed         (nst/train/validation.py, nst/callbacks.py)
    write_outputs   model.pt, final.png, figures to the logger     (nst/train/model_file.py)
    record          metrics.json and the logger closed, whatever happened (nst/runs.py)
"""

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch import Tensor
from torch.utils.data import DataLoader

from nst import cluster, environment
from nst.backbones import VGG
from nst.callbacks import Interruption, LossHistory, LossLogging
from nst.checkpoints import RESUME_CHECKPOINT, Interrupted
from nst.checks import image_paths
from nst.configs import build
from nst.criterion import LossWeights, PerceptualLoss
from nst.errors import NSTError, Stopped
from nst.images import load_image, save_image
from nst.layers import config_layers
from nst.loggers import build_logger, log_images, log_summary
from nst.memory import peak_memory_mb, reset_peak_memory
from nst.outputs import RescuedOutputs, rescued, write_json
from nst.processes import first_process
from nst.progress import EvaluationProgress
from nst.run_dir import claim, release
from nst.runs import Job, RunSignals, record
from nst.targets import blend_weights
from nst.train.checks import arbitrary_styles, check_training
from nst.train.data import Split, StepBatches, photo_files, split, validation_photos
from nst.train.decoder import DecoderTraining
from nst.train.model_file import MODEL_FILE, save_model
from nst.train.module import StyleNetTraining
from nst.train.validation import Validation

log = logging.getLogger("nst")


def train(job: Job, resume: Path | None = None) -> dict[str, Any]:
    """The job's training run; its outcome in metrics.json and its logger: finished, failed or interrupted."""
    started = time.perf_counter()
    logger: list[Logger | bool] = [False]  # filled once it opens, for `record`
    claimed: list[Path] = []
    result: dict[str, Any] = {"status": "failed", "error": "stopped"}
    signals = RunSignals()
    with signals.held():
        try:
            result = _train(job, resume, logger, claimed, signals)
        except Stopped as exc:  # before the fit: nothing to resume
            result = {"status": "interrupted", "error": str(exc)}
            raise
        except Exception as exc:
            error = f"{exc}" if isinstance(exc, NSTError) else f"{type(exc).__name__}: {exc}"
            result = {"status": "interrupted" if isinstance(exc, Interrupted) else "failed", "error": error}
            raise
        finally:
            signals.finishing = True  # metrics.json is written whatever happened: a signal waits for it
            if claimed:
                record([job], logger, [{"kind": "training", **result}], started)
                release(job.out_dir)
    signals.raise_waiting()
    moved = {path: target for path, target in rescued().items() if path.parent == job.out_dir}
    if moved:
        raise RescuedOutputs(moved)
    return result


def _train(
    job: Job, resume: Path | None, logger: list[Logger | bool], claimed: list[Path], signals: RunSignals
) -> dict[str, Any]:
    """`train`'s steps; `logger` and `claimed` are filled as they open, for `record` and the lock."""
    check_training(job.cfg, job.overrides)
    first = first_process()  # the other processes of a DDP training train and write nothing (nst/processes.py)
    if first:
        claim(job.out_dir)
        claimed.append(job.out_dir)
        write_json(job.out_dir / "metrics.json", {"status": "running", "kind": "training", "pid": os.getpid()},
                   rescue=False)  # fmt: skip
    cfg = job.cfg
    environment.console(bool(cfg.get("verbose")) and first)
    environment.freeze_imports()
    reset_peak_memory()
    pl.seed_everything(int(cfg.seed), verbose=False)
    encoder = build(cfg.backbone, "backbone")
    data = load_data(cfg, encoder)
    module = build_module(cfg, encoder, data)
    logger[0] = open_logger(job, data) if first else False
    fitted = fit(job, logger[0], module, data, resume)
    signals.finishing = True  # a signal now waits until the outputs are written
    if not first:
        return {"status": "finished", "rank": fitted.trainer.global_rank}
    return write_outputs(job, logger[0], module, data, fitted)


@dataclass
class TrainingData:
    """The photos trained on and held out, and the style: what every step and validation read."""

    split: Split
    styles: list[Tensor]
    blend: list[float]
    val_photos: list[Tensor]
    style_files: list[Path]  # the files of `styles`: the held-out styles of an arbitrary-style decoder
    style_paths: list[Path] = field(default_factory=list)  # the style folder cropped each step (arbitrary styles)


def load_data(cfg: DictConfig, encoder: VGG) -> TrainingData:
    """The photo folder split into training and held-out photos; the style images at `data.style_size` (for an
    arbitrary-style decoder, the style folder split the same way: its held-out styles are judged)."""
    paths = photo_files(cfg.data.content)
    photos = split(paths, int(cfg.data.val_count), int(cfg.seed))
    if int(cfg.data.batch_size) > len(photos.train):
        raise NSTError(
            f"data.batch_size={cfg.data.batch_size} is larger than the {len(photos.train)} photos left to train on "
            f"in {cfg.data.content}: lower data.batch_size or give more photos"
        )
    style_paths: list[Path] = []
    if arbitrary_styles(cfg):
        style_split = split(photo_files(cfg.data.style, "data.style"), int(cfg.data.val_count), int(cfg.seed))
        style_paths, held_out = style_split.train, style_split.val
    else:
        held_out = image_paths(cfg.style, "style")
    styles = [load_image(path, int(cfg.data.style_size)) for path in held_out]
    minimum = encoder.min_input_size_for(_layers(cfg, encoder))
    for what, side in (("data.size", int(cfg.data.size)), ("data.style_size", min(styles[0].shape[-2:]))):
        if side < minimum:
            raise NSTError(f"{what} gives {side} px, smaller than the {minimum} px the deepest layer needs: raise it")
    blend = [1.0] * len(styles) if arbitrary_styles(cfg) else blend_weights(len(styles), cfg.style_blend)
    val_photos = validation_photos(photos.val, int(cfg.data.val_size))
    return TrainingData(photos, styles, blend, val_photos, list(held_out), style_paths)


def _layers(cfg: DictConfig, encoder: VGG) -> set[str]:
    content, style = config_layers(cfg.layers, encoder.arch)
    return set(content) | set(style)


def build_module(cfg: DictConfig, encoder: VGG, data: TrainingData) -> StyleNetTraining:
    """The network (its weights drawn from the seed), the shared criterion and Adam with its schedule."""
    torch.manual_seed(int(cfg.seed))
    conditional = cfg.network.get("norm") == "conditional_instance"  # one scale and shift per style image
    network = build(cfg.network, "network", **({"styles": len(data.styles)} if conditional else {}))
    weights = LossWeights.of([(cfg.loss, *config_layers(cfg.layers, encoder.arch))])
    statistic = build(cfg.style_loss, "style_loss")
    criterion = PerceptualLoss(encoder, weights, statistic, cfg.loss.convention, cfg.loss.tv_beta)
    schedule = build(cfg.schedule, "schedule") if cfg.get("schedule") else None
    optimizer = build(cfg.optimizer, "optimizer")
    kind = DecoderTraining if arbitrary_styles(cfg) else StyleNetTraining
    return kind(network, criterion, data.styles, data.blend, optimizer, schedule, build(cfg.speed, "speed"))


def open_logger(job: Job, data: TrainingData) -> Logger | bool:
    """The job's experiment logger, its config logged and the style images at step 0."""
    logger = build_logger(job.cfg.logger, job.out_dir, job.identity, False, bool(job.cfg.get("verbose")))
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(job.cfg, resolve=True))
    log_images(logger, {f"style_{i}": s for i, s in enumerate(data.styles)}, step=0)
    return logger


@dataclass
class Fitted:
    """What a fit leaves: its trainer, the last validation, its time and the step it started from."""

    trainer: pl.Trainer
    validation: Validation
    fit_time: float
    first_step: int


def fit(job: Job, logger: Logger | bool, module: StyleNetTraining, data: TrainingData, resume: Path | None) -> Fitted:
    """Train to `trainer.max_steps`; a signal leaves resume.ckpt (and checkpoints/last.ckpt every N steps)."""
    cfg, out_dir = job.cfg, job.out_dir
    steps = int(cfg.trainer.max_steps)
    interruption = Interruption(out_dir / RESUME_CHECKPOINT)
    first = first_process()
    validation = Validation(data.val_photos, int(cfg.val_every), out_dir, logger, cfg.judge)
    callbacks: list[pl.Callback] = [validation]
    if first:
        callbacks += [LossLogging([logger]), LossHistory([out_dir / "history.csv"])]
    callbacks.append(interruption)
    every = int(cfg.checkpoint_every)
    if every:
        callbacks.append(ModelCheckpoint(out_dir / "checkpoints", save_last=True, every_n_train_steps=every,
                                         save_top_k=0, save_on_train_epoch_end=False))  # fmt: skip
    if cfg.trainer.get("enable_progress_bar", True) and first:
        callbacks.append(EvaluationProgress(steps, unit="steps"))
    # Under SLURM, submitit requeues at the time limit (nst/cluster.py): Lightning's own requeue stays off.
    plugins = [SLURMEnvironment(auto_requeue=False)] if cluster.on_slurm() else None
    trainer: pl.Trainer = build(
        cfg.trainer, "trainer", logger=False, callbacks=callbacks, default_root_dir=str(out_dir),
        log_every_n_steps=int(cfg.log_every), enable_checkpointing=bool(every), num_sanity_val_steps=0,
        limit_val_batches=0, use_distributed_sampler=False, plugins=plugins,
    )  # fmt: skip
    first_step = _step_of(resume) if resume is not None else 0
    batches = StepBatches(
        data.split.train, int(cfg.data.size), int(cfg.data.get("resize") or cfg.data.size), int(cfg.data.batch_size),
        int(cfg.seed), steps, styles=module.conditional or 1, style_paths=data.style_paths,
        rank=trainer.global_rank, world=trainer.world_size,
    )  # fmt: skip
    workers = int(cfg.data.workers)
    loader = DataLoader(batches, batch_size=None, sampler=StepSampler(first_step, steps), num_workers=workers)
    (log.info if first else log.debug)(
        "%s: %s, %d training photos (%d held out), %d px crops, batch %d, %d steps, on %s%s",
        out_dir, type(module.network).__name__, len(data.split.train), len(data.split.val), cfg.data.size,
        cfg.data.batch_size, steps, trainer.strategy.root_device,
        f" and {trainer.world_size - 1} more processes" if trainer.world_size > 1 else "",
    )  # fmt: skip
    started = time.perf_counter()
    try:
        with interruption.catching_signals():
            trainer.fit(module, loader, ckpt_path=resume, weights_only=True)
    except SIGTERMException:  # Lightning's own SIGTERM handler stops the fit after our checkpoint
        if interruption.received is None:
            raise
    fit_time = time.perf_counter() - started
    if interruption.received is not None:
        raise Interrupted(interruption.received, trainer.global_step, steps, [out_dir], training=True)
    if resume is not None and resume.name == RESUME_CHECKPOINT and first:
        resume.unlink()
    return Fitted(trainer, validation, fit_time, first_step)


class StepSampler(torch.utils.data.Sampler):
    """The steps still to train, in order: a resumed run's loader starts at its checkpoint's step.

    Its length is the whole run's, as Lightning counts a resumed epoch's batches from its start.
    """

    def __init__(self, first: int, steps: int):
        self.first, self.steps = first, steps

    def __iter__(self):
        return iter(range(self.first, self.steps))

    def __len__(self) -> int:
        return self.steps


def _step_of(checkpoint: Path) -> int:
    """The step a checkpoint was written at, read without its tensors (memory-mapped)."""
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["global_step"])


def write_outputs(
    job: Job, logger: Logger | bool, module: StyleNetTraining, data: TrainingData, fitted: Fitted
) -> dict[str, Any]:
    """model.pt, final.png (the first held-out photo stylised) and the run's figures, to metrics.json and the logger."""
    cfg, out_dir = job.cfg, job.out_dir
    trainer, validation, fit_time = fitted.trainer, fitted.validation, fitted.fit_time
    style = [str(p) for p in data.style_files]
    trained_on = {"style": style} if not data.style_paths else {"style_folder": str(cfg.data.style)}
    save_model(module.network, out_dir / MODEL_FILE, {**trained_on, "steps": trainer.global_step, "seed": cfg.seed})
    final = validation.outputs[0][0]  # the first held-out photo (in the first style)
    save_image(final, out_dir / "final.png")
    log_images(logger, {"final": final}, step=trainer.global_step)
    losses = {f"loss/{k}": v for k, v in module.terms_of(0).items()} if module.last_terms else {}
    figures: dict[str, Any] = dict(validation.latest)
    if figures:
        figures["error_sum"] = figures["content_error"] + figures["style_error"]
    if validation.per_style:
        figures["per_style"] = [{"style": name, **f} for name, f in zip(style, validation.per_style, strict=True)]
    log_summary(logger, {**losses, **{f"val/{k}": v for k, v in figures.items() if k != "per_style"}})
    device = trainer.strategy.root_device
    peak, peak_kind = peak_memory_mb(device)
    trained = trainer.global_step - fitted.first_step
    return {
        "status": "finished",
        **losses,
        **figures,
        "steps": trainer.global_step,
        "images_per_s": round(trained * int(cfg.data.batch_size) / fit_time, 3) if fit_time > 0 else None,
        "fit_time_s": round(fit_time, 3),
        "device": str(device),
        "processes": trainer.world_size,
        "peak_memory_mb": round(peak, 1),
        "peak_memory_kind": peak_kind,
        "model": str(out_dir / MODEL_FILE),
        "parameters": sum(p.numel() for p in module.network.parameters()),
        "validated_on": [str(p) for p in data.split.val],
    }
