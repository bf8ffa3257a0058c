"""A training run's steps, config to model.pt, read top to bottom; the life around them (claim, signals, loggers,
metrics.json) is every branch's (nst/lifecycle.py).

    check_training  every setting, before anything starts         (nst/train/checks.py)
    read            the config, once, into a frozen plan          (nst/train/plan.py)
    load_data       photos split, style image, held-out photos     (nst/train/data.py)
    build_module    network, criterion, optimizer -> module        (nst/train/kinds.py, nst/criterion.py)
    fit             style_balance's probe, then Lightning fit,      (nst/train/balance.py,
                    validated, checkpointed                        nst/train/validation.py, nst/lifecycle.py)
    write_outputs   model.pt, final.png, figures to the logger     (nst/train/model_file.py)

Nothing below this module receives the config: each step takes the plan.
"""

import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger
from pytorch_lightning.plugins.environments import SLURMEnvironment
from torch import Tensor
from torch.utils.data import DataLoader

from nst import cluster, lifecycle
from nst.backbones import VGG
from nst.callbacks import KeptCheckpoints
from nst.checkpoints import RESUME_CHECKPOINT, Interrupted
from nst.criterion import PerceptualLoss
from nst.errors import NSTError
from nst.images import load_image, save_image
from nst.lifecycle import live
from nst.loggers import log_images, log_summary
from nst.processes import first_process
from nst.progress import EvaluationProgress
from nst.runs import Job, RunSignals
from nst.targets import blend_weights
from nst.train.balance import balanced_style_weight
from nst.train.checks import check_training
from nst.train.data import Split, StepBatches, photo_files, photo_split, split, validation_photos
from nst.train.model_file import LAST_MODEL_FILE, MODEL_FILE, save_model
from nst.train.module import NonFiniteNetwork, StyleNetTraining
from nst.train.plan import TrainingPlan
from nst.train.validation import Validation

log = logging.getLogger("nst")


def train(job: Job, resume: Path | None = None) -> dict[str, Any]:
    """The job's training run through the shared life (nst/lifecycle.py); its metrics."""
    (metrics,) = live(TrainingBranch(), [job], resume)
    return metrics


@dataclass
class TrainingData:
    """The photos trained on and held out, and the style: what every step and validation read."""

    split: Split
    styles: list[Tensor]
    blend: list[float]
    val_photos: dict[Path, Tensor]  # the held-out photos that decode
    style_files: list[Path]  # the files of `styles`: the held-out styles of an any-style network
    style_paths: list[Path] = field(default_factory=list)  # the style folder cropped each step (any-style networks)


@dataclass
class Prepared:
    """The plan, the data and the module built from them; the style images are logged at step 0."""

    plan: TrainingPlan
    data: TrainingData
    module: StyleNetTraining

    @property
    def logged(self) -> dict[str, Tensor]:
        return {f"style_{i}": s for i, s in enumerate(self.data.styles)}


class TrainingBranch:
    """A feed-forward network trained on a photo folder: the branch `nst train` runs."""

    kind = "training"

    def check(self, job: Job) -> None:
        check_training(job.cfg, job.overrides)

    def prepare(self, jobs: Sequence[Job], encoder: VGG) -> Prepared:
        plan = TrainingPlan.read(jobs[0], encoder.arch)
        data = load_data(plan, encoder)
        return Prepared(plan, data, build_module(plan, encoder, data))

    def fit(self, jobs: Sequence[Job], loggers: Sequence[Logger | bool], prepared: Prepared, resume: Path | None,
            signals: RunSignals) -> "Fitted":  # fmt: skip
        return fit(prepared.plan, loggers[0], prepared.module, prepared.data, resume, signals)

    def outputs(self, jobs: Sequence[Job], loggers: Sequence[Logger | bool], prepared: Prepared, fitted: "Fitted"
                ) -> list[dict[str, Any]]:  # fmt: skip
        return [write_outputs(prepared.plan, loggers[0], prepared.module, prepared.data, fitted)]


def load_data(plan: TrainingPlan, encoder: VGG) -> TrainingData:
    """The photo folder split into training and held-out photos; the style images at `data.style_size` (for an
    any-style network, the style folder split the same way: its held-out styles are judged)."""
    data = plan.data
    photos = photo_split(data.content, data.val, data.val_count, plan.seed)  # checked in nst/train/checks.py
    style_paths: list[Path] = []
    if data.style_folder is not None:
        style_split = split(photo_files(data.style_folder, "data.style"), data.val_count, plan.seed)
        style_paths, held_out = style_split.train, style_split.val
    else:
        held_out = list(plan.style_paths)
    styles = [load_image(path, data.style_size) for path in held_out]
    minimum = encoder.min_input_size_for(plan.layers)
    for what, side in (("data.size", data.size), ("data.style_size", min(styles[0].shape[-2:]))):
        if side < minimum:
            raise NSTError(f"{what} gives {side} px, smaller than the {minimum} px the deepest layer needs: raise it")
    blend = [1.0] * len(styles) if plan.kind.any_style else blend_weights(len(styles), plan.style_blend)
    val_photos = validation_photos(photos.val, data.val_size)
    return TrainingData(photos, styles, blend, val_photos, list(held_out), style_paths)


def build_module(plan: TrainingPlan, encoder: VGG, data: TrainingData) -> StyleNetTraining:
    """The network (its weights drawn from the seed), the shared criterion and Adam with its schedule, in the module
    the network's kind trains with."""
    torch.manual_seed(plan.seed)
    network = plan.network(**({"styles": len(data.styles)} if plan.kind.takes_styles else {}))
    criterion = PerceptualLoss(encoder, plan.weights, plan.statistic, plan.convention, plan.tv_beta)
    stability = {"stability": plan.stability} if plan.stability.weight else {}
    return plan.kind.training(network, criterion, data.styles, data.blend, plan.optimizer, plan.schedule, plan.speed,
                              **stability)  # fmt: skip


@dataclass
class Fitted:
    """What a fit leaves: its trainer, the last validation, its time and the step it started from."""

    trainer: pl.Trainer
    validation: Validation
    fit_time: float
    first_step: int


def fit(
    plan: TrainingPlan,
    logger: Logger | bool,
    module: StyleNetTraining,
    data: TrainingData,
    resume: Path | None,
    signals: RunSignals,
) -> Fitted:
    """Train to `trainer.max_steps`; a signal leaves resume.ckpt (and checkpoints/last.ckpt every N steps)."""
    out_dir, steps, every = plan.out_dir, plan.steps, plan.checkpoint_every
    validation = Validation(list(data.val_photos.values()), plan.val_every, out_dir, logger, plan.judge, plan.best,
                            plan.patience)  # fmt: skip
    progress = EvaluationProgress(steps, unit="steps") if plan.progress else None
    callbacks = [
        validation,
        *lifecycle.recorders([logger], [out_dir / "history.csv"], out_dir / RESUME_CHECKPOINT, signals, progress),
    ]
    if every:
        callbacks.append(KeptCheckpoints(out_dir / "checkpoints", save_last=True, every_n_train_steps=every,
                                         save_top_k=0, save_on_train_epoch_end=False))  # fmt: skip
    # Under SLURM, submitit requeues at the time limit (nst/cluster.py): Lightning's own requeue stays off.
    plugins = [SLURMEnvironment(auto_requeue=False)] if cluster.on_slurm() else None
    trainer = lifecycle.trainer(
        plan.trainer, out_dir, callbacks, plan.log_every, enable_checkpointing=bool(every), limit_val_batches=0,
        use_distributed_sampler=False, plugins=plugins,
    )  # fmt: skip
    first_step = _step_of(resume) if resume is not None else 0
    if plan.style_balance is not None and resume is None:  # a resumed run reads its weight from the checkpoint
        probe = step_batches(plan, data, module)  # the whole batches, whatever share this process trains on
        module.set_style_weight(balanced_style_weight(module, probe, plan.style_balance))
    loader = batch_loader(plan, data, module, trainer, first_step)
    (log.info if first_process() else log.debug)(
        "%s: %s, %d training photos (%d held out), %d px crops, batch %d, %d steps, on %s%s",
        out_dir, type(module.network).__name__, len(data.split.train), len(data.split.val), plan.data.size,
        plan.data.batch_size, steps, trainer.strategy.root_device,
        f" and {trainer.world_size - 1} more processes" if trainer.world_size > 1 else "",
    )  # fmt: skip
    try:
        fit_time = lifecycle.fit(trainer, module, loader, resume, signals)
    except NonFiniteNetwork:
        if module.good is not None and first_process():  # as an image run keeps its last_good.png
            step, weights = module.good
            module.network.load_state_dict(weights)
            save_model(module.network, out_dir / "last_good.pt", {"steps": step, "seed": plan.seed})
        raise
    if signals.received is not None:
        raise Interrupted(signals.received, trainer.global_step, steps, [out_dir], training=True)
    return Fitted(trainer, validation, fit_time, first_step)


def batch_loader(
    plan: TrainingPlan, data: TrainingData, module: StyleNetTraining, trainer: pl.Trainer, first_step: int
) -> DataLoader:
    """The steps' batches from `first_step` on, this process's share of each (nst/train/data.py)."""
    batches = step_batches(plan, data, module, trainer.global_rank, trainer.world_size)
    return DataLoader(batches, batch_size=None, sampler=StepSampler(first_step, plan.steps),
                      num_workers=plan.data.workers, worker_init_fn=_signals_to_the_trainer)  # fmt: skip


def step_batches(plan: TrainingPlan, data: TrainingData, module: StyleNetTraining, rank: int = 0, world: int = 1
                 ) -> StepBatches:  # fmt: skip
    """Step k's batch drawn from the seed and k alone; process `rank` of `world` takes its share of it."""
    d = plan.data
    return StepBatches(data.split.train, d.size, d.resize, d.batch_size, plan.seed, plan.steps,
                       styles=module.conditional or 1, style_paths=data.style_paths, rank=rank,
                       world=world, augment=d.augment)  # fmt: skip


def _signals_to_the_trainer(worker: int) -> None:
    """A loader process ignores Ctrl-C, SIGTERM and SLURM's signal. They reach every process of the group (a
    terminal's Ctrl-C, `kill -- -PGID`, scancel); the training process stops after its step with a checkpoint, for
    which its loader must live until then (killed, it would fail the run, and a sweep would go on)."""
    for signum in RunSignals.caught():
        signal.signal(signum, signal.SIG_IGN)


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


def keep_best(
    module: StyleNetTraining, validation: Validation, out_dir: Path, info: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """model.pt: the best validated network (the last one as last.pt beside it, where an earlier one was better).
    Returns the kept validation (figures, per style, images) and what metrics.json says of the choice."""
    trainer = module.trainer
    if not validation.outputs:  # resumed at its last step: no step ran here, so no validation either
        validation.validate(trainer, module)
    best = validation.best
    kept: dict[str, Any] = {}
    if best and best["step"] != trainer.global_step:  # the best network is an earlier one: the last stays beside it
        save_model(module.network, out_dir / LAST_MODEL_FILE, info)
        module.network.load_state_dict(best["weights"])
        kept = {"best_step": best["step"], "last": {**validation.latest, "model": str(out_dir / LAST_MODEL_FILE)}}
    chosen = best or {"figures": validation.latest, "per_style": validation.per_style, "outputs": validation.outputs}
    save_model(module.network, out_dir / MODEL_FILE, {**info, **({"best_step": best["step"]} if best else {})})
    return chosen, kept


def write_outputs(
    plan: TrainingPlan, logger: Logger | bool, module: StyleNetTraining, data: TrainingData, fitted: Fitted
) -> dict[str, Any]:
    """model.pt, final.png (the first held-out photo stylised) and the run's figures, to metrics.json and the logger."""
    out_dir, trainer, validation, fit_time = plan.out_dir, fitted.trainer, fitted.validation, fitted.fit_time
    style = [str(p) for p in data.style_files]
    trained_on = {"style": style} if plan.data.style_folder is None else {"style_folder": str(plan.data.style_folder)}
    info = {**trained_on, "steps": trainer.global_step, "seed": plan.seed, "style_weight": module.style_weight}
    chosen, kept = keep_best(module, validation, out_dir, info)
    final = chosen["outputs"][0][0]  # the first held-out photo (in the first style)
    save_image(final, out_dir / "final.png")
    log_images(logger, {"final": final}, step=trainer.global_step)
    losses = {f"loss/{k}": v for k, v in module.terms_of(0).items()} if module.last_terms else {}
    figures: dict[str, Any] = dict(chosen["figures"])
    if figures:
        figures["error_sum"] = figures["content_error"] + figures["style_error"]
    if chosen["per_style"]:
        figures["per_style"] = [{"style": name, **f} for name, f in zip(style, chosen["per_style"], strict=True)]
    log_summary(logger, {**losses, **{f"val/{k}": v for k, v in figures.items() if k != "per_style"}})
    trained = trainer.global_step - fitted.first_step
    device = lifecycle.device_figures(trainer)
    return {
        "status": "finished",
        **losses,
        **figures,
        "steps": trainer.global_step,
        "images_per_s": round(trained * plan.data.batch_size / fit_time, 3) if fit_time > 0 else None,
        "fit_time_s": round(fit_time, 3),
        "device": device.pop("device"),
        "processes": trainer.world_size,
        **device,
        "model": str(out_dir / MODEL_FILE),
        "parameters": sum(p.numel() for p in module.network.parameters()),
        "style_weight": module.style_weight,
        "training_photos": len(data.split.train),
        "validated_on": [str(p) for p in data.val_photos],
        **kept,
    }
