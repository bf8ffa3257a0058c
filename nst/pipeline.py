"""An image run's steps, config to image, read top to bottom; the life around them (claim, signals, loggers,
metrics.json) is every branch's (nst/lifecycle.py).

    check_job      every setting, before anything starts          (nst/checks.py)
    load_stage     the stage's images; the first's start images   (nst/images.py, nst/colour.py, nst/adain.py)
    build_module   weights, optimizer, statistic -> module        (nst/module.py, nst/lbfgs.py, nst/statistics.py)
    fit            one Lightning fit of a stage                   (nst/lifecycle.py, nst/callbacks.py)
    write_outputs  final.png, judged, figures to the logger       (nst/judge.py)

`run` takes a list of jobs: one for a single run, several for a batch that the
sweep launcher formed (nst/batching.py): their images share each forward pass,
each job keeps its own outputs. With `image.scales=[256,512]` the stages go coarse
to fine, each starting from the previous result upsampled."""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import Logger
from torch import Tensor
from torch.utils.data import DataLoader

from nst import batching, colour, lifecycle
from nst.backbones import VGG
from nst.callbacks import Snapshots
from nst.checkpoints import RESUME_CHECKPOINT, Interrupted, Stage, stage_of
from nst.checks import check_job
from nst.criterion import LossWeights, PerceptualLoss
from nst.curvature import stuck
from nst.images import initial_image, load_image, save_image
from nst.judge import quality, region_quality
from nst.lbfgs import build_optimizer, curvature_pairs, restarts
from nst.lifecycle import live
from nst.loggers import log_images, log_summary
from nst.memory import check_memory, check_stages, memory_estimate
from nst.module import NonFiniteLoss, StyleTransfer
from nst.plan import ImagePlan, RunPlan
from nst.progress import EvaluationProgress
from nst.regions import Guided, Regions
from nst.runs import Job, RunSignals
from nst.targets import blend_weights

log = logging.getLogger("nst")


def run(jobs: Sequence[Job], resume: Path | None = None) -> list[dict[str, Any]]:
    """The jobs' image runs through the shared life (nst/lifecycle.py); each job's metrics."""
    return live(ImageBranch(), jobs, resume)


@dataclass
class Prepared:
    """The run's plan, loss network and first stage's images (logged at step 0)."""

    plan: ImagePlan
    encoder: VGG
    first: "StageInputs"

    @property
    def logged(self) -> dict[str, Tensor]:
        return {"content": self.first.content, **{f"style_{i}": s for i, s in enumerate(self.first.styles)}}


class ImageBranch:
    """An image optimised against a content and style images: the branch `nst` runs."""

    kind = None

    def check(self, job: Job) -> None:
        check_job(job.cfg, job.overrides)

    def prepare(self, jobs: Sequence[Job], encoder: VGG) -> Prepared:
        plan = ImagePlan.read(jobs, encoder.arch)
        layers = {name for run in plan.runs for name in (*run.content_layers, *run.style_layers)}
        check_stages(encoder.arch, layers, plan.content, plan.styles, plan.sizes, plan.style_scale, len(plan.runs),
                     plan.lbfgs_history, plan.accelerator)  # a batch's need: each job alone was checked (checks.py)
        return Prepared(plan, encoder, load_stage(plan, plan.sizes[0], starts=True))

    def fit(self, jobs: Sequence[Job], loggers: Sequence[Logger | bool], prepared: Prepared, resume: Path | None,
            signals: RunSignals) -> "Fitted":  # fmt: skip
        return fit_stages(prepared.plan, loggers, prepared.encoder, prepared.first, resume, signals)

    def outputs(self, jobs: Sequence[Job], loggers: Sequence[Logger | bool], prepared: Prepared, fitted: "Fitted"
                ) -> list[dict[str, Any]]:  # fmt: skip
        return write_outputs(prepared.plan, loggers, fitted)


@dataclass
class StageInputs:
    """The images of one stage: as given, as the optimisation sees them (`colour`), and each job's start image
    (the first stage's only: later stages start from the last one's result)."""

    size: int
    content: Tensor
    styles: list[Tensor]
    seen_content: Tensor
    seen_styles: list[Tensor]
    regions: Regions | None = None  # spatial control: each region of the content its own style
    starts: list[Tensor] = field(default_factory=list)


def load_stage(plan: ImagePlan, size: int, starts: bool = False, regions: Regions | None = None) -> StageInputs:
    """Content at `size` px, styles at `size * image.style_scale` (each decodes, is large enough for the layers
    and fits the device: checked before, `check_images` and `check_stages`); with `starts`, each job's start
    image too (AdaIN's reads its decoder: before any logger opens). `regions`: the first stage's, which any size
    takes (read from the masks when not given)."""
    style_size = max(1, round(size * plan.style_scale))
    content = load_image(plan.content, size)  # decoded and large enough: checked with the job (nst/checks.py)
    styles = [load_image(path, style_size) for path in plan.styles]
    seen_content, seen_styles = colour.prepare(plan.colour, content, styles)
    if regions is None and plan.regions is not None:
        regions = plan.regions(_size(content), [_size(s) for s in styles])
    inputs = StageInputs(size, content, styles, seen_content, seen_styles, regions)
    if starts:
        blend = blend_weights(len(styles), plan.style_blend)
        inputs.starts = [_start_image(run, inputs, blend) for run in plan.runs]
    return inputs


def _size(image: Tensor) -> tuple[int, int]:
    return image.shape[-1], image.shape[-2]


@dataclass
class Fitted:
    """What the stages leave: the last stage's module and trainer, its inputs, and the totals over all stages."""

    module: StyleTransfer
    trainer: pl.Trainer
    inputs: StageInputs
    evaluations: int
    fit_time: float
    lbfgs_history: int
    failures: dict[int, str] = field(default_factory=dict)


def fit_stages(
    plan: ImagePlan,
    loggers: Sequence[Logger | bool],
    encoder: VGG,
    first: StageInputs,
    resume: Path | None,
    signals: RunSignals,
) -> Fitted:
    """Each stage of a coarse-to-fine run (one, usually), each from the last stage's images upsampled."""
    sizes = plan.sizes
    start = stage_of(resume) if resume is not None else Stage()
    images, fit_time, evaluations, failures = None, start.fit_time_before, start.evaluations_before, {}
    for index, size in enumerate(sizes):
        if index < start.index:  # finished before the interruption: its stage image is on disk
            continue
        inputs = first if index == 0 else load_stage(plan, size, regions=first.regions)
        stage = Stage(index, evaluations, fit_time)
        module = build_module(plan, encoder, inputs, images, stage, failures)
        last = index == len(sizes) - 1
        started = time.perf_counter()
        label = (
            " → ".join(f"[{s} px]" if i == index else f"{s} px" for i, s in enumerate(sizes))
            if not last or index
            else ""
        )
        trainer = fit(
            plan, loggers, module, "" if last else f"_{size}px", resume if index == start.index else None, signals,
            label,
        )
        fit_time += time.perf_counter() - started
        evaluations += module.evaluations
        failures, images = dict(module.failures), module.image.detach()
        if not last:
            for out_dir, image in zip(plan.out_dirs, images, strict=True):
                stage_image = colour.finish(plan.colour, image[None], inputs.content)
                save_image(stage_image, out_dir / f"stage_{size}px.png")
    return Fitted(module, trainer, inputs, evaluations, fit_time, plan.lbfgs_history, failures)


def build_module(
    plan: ImagePlan,
    encoder: VGG,
    inputs: StageInputs,
    previous: Tensor | None,
    stage: Stage,
    failures: dict[int, str],
) -> StyleTransfer:
    """The module of one stage: each job's start image (or the previous stage's result), weights and optimizer."""
    if previous is None:  # the first stage, or a later one resumed: its checkpoint holds the images
        init = inputs.starts or [inputs.seen_content.clone() for _ in plan.runs]
    else:
        shape = inputs.content.shape[-2:]
        init = [F.interpolate(image[None].cpu(), size=shape, mode="bicubic").clamp(0, 1) for image in previous]
    weights = LossWeights.of([(run.loss, run.content_layers, run.style_layers) for run in plan.runs])
    factories = [run.optimizer for run in plan.runs]
    optimizer = (
        partial(build_optimizer, factories[0], restart_stuck=plan.restart_stuck)
        if len(plan.runs) == 1
        else batching.batch_optimizer(factories, plan.restart_stuck)
    )
    statistic = plan.statistic()
    if inputs.regions is not None:  # each region against its own style (nst/regions.py)
        statistic = Guided(statistic, inputs.regions)
    return StyleTransfer(
        criterion=PerceptualLoss(encoder, weights, statistic, plan.convention, plan.tv_beta),
        content=inputs.seen_content,
        styles=inputs.seen_styles,
        init=init,
        optimizer=optimizer,
        blend=blend_weights(len(inputs.styles), plan.style_blend),
        fast=plan.speed,
        stage=stage,
        failed=failures,
    )


def _start_image(run: RunPlan, inputs: StageInputs, blend: Sequence[float]) -> Tensor:
    """A job's start image (`init`), drawn from its own seed; `adain` is Huang & Belongie's feed-forward result,
    `network` a trained style network's image of the content (nst train)."""
    if run.init == "adain":
        return run.start()(inputs.seen_content, inputs.seen_styles, blend, inputs.regions)
    if run.init == "network":
        return run.start()(inputs.seen_content)
    generator = torch.Generator().manual_seed(run.seed)
    return initial_image(run.init, inputs.seen_content, inputs.seen_styles[0], generator, run.init_noise)


def fit(
    plan: ImagePlan,
    loggers: Sequence[Logger | bool],
    module: StyleTransfer,
    suffix: str,
    resume: Path | None,
    signals: RunSignals,
    label: str = "",
) -> pl.Trainer:
    """Fit one stage (`label` names it in the progress display); a NaN keeps the lowest-loss image, a signal leaves
    a checkpoint to resume from."""
    out_dirs, steps = plan.out_dirs, plan.steps
    planned = steps * plan.evaluations_per_step
    progress = EvaluationProgress(planned, label, runs=len(out_dirs)) if plan.progress else None
    callbacks = [
        Snapshots([d / f"snapshots{suffix}" for d in out_dirs], [run.snapshot_every for run in plan.runs], loggers),
        *lifecycle.recorders(loggers, [d / f"history{suffix}.csv" for d in out_dirs], out_dirs[0] / RESUME_CHECKPOINT,
                             signals, progress),
    ]  # fmt: skip
    trainer = lifecycle.trainer(plan.trainer, out_dirs[0], callbacks, plan.log_every, max_steps=steps,
                                enable_checkpointing=False)  # fmt: skip
    check_memory(module, trainer.strategy.root_device, plan.lbfgs_history)
    height, width = module.image.shape[-2:]
    what = f"a batch of {len(out_dirs)} runs" if len(out_dirs) > 1 else str(out_dirs[0])
    log.info(
        "%s: %dx%d px, %s, %d steps of %d evaluations, on %s",
        what, width, height, plan.optimizer_name, steps, plan.evaluations_per_step, trainer.strategy.root_device,
    )  # fmt: skip
    try:
        lifecycle.fit(trainer, module, DataLoader(range(steps), batch_size=None), resume, signals)
    except NonFiniteLoss:
        for image, out_dir in zip(module.images, out_dirs, strict=True):
            save_image(image, out_dir / "last_good.png")
        raise
    if signals.received is not None:
        stopped(module, trainer, signals.received, out_dirs, suffix)
    return trainer


def stopped(module: StyleTransfer, trainer: pl.Trainer, signum: int, out_dirs: Sequence[Path], suffix: str) -> None:
    """After a signal: each going run's image and its own checkpoint kept, then `Interrupted` raised."""
    going = {index: d for index, d in enumerate(out_dirs) if index not in module.failures}
    if len(out_dirs) > 1:
        checkpoint = out_dirs[0] / RESUME_CHECKPOINT
        batching.split_checkpoint(checkpoint, {index: d / RESUME_CHECKPOINT for index, d in going.items()})
    for index, out_dir in enumerate(out_dirs):
        save_image(module.images[index], out_dir / ("interrupted.png" if index in going else "last_good.png"))
    height, width = module.images[0].shape[-2:]
    where = f" of the {width}x{height} px stage" if suffix else ""
    raise Interrupted(signum, trainer.global_step, trainer.max_steps, list(going.values()), where,
                      dict(module.failures))  # fmt: skip


def write_outputs(plan: ImagePlan, loggers: Sequence[Logger | bool], fitted: Fitted) -> list[dict[str, Any]]:
    """Each job's final.png (or last_good.png), judged; its figures to its logger; its metrics returned."""
    optimizer = fitted.trainer.optimizers[0]
    pairs, restarted = curvature_pairs(optimizer), restarts(optimizer)  # L-BFGS only: one entry per image
    shared = shared_figures(fitted, len(plan.runs))
    results = []
    for index, (run, logger) in enumerate(zip(plan.runs, loggers, strict=True)):
        if index in fitted.failures:
            save_image(fitted.module.images[index].detach(), run.out_dir / "last_good.png")
            results.append({"status": "failed", "error": fitted.failures[index], **shared})
            continue
        figures = write_final(plan, run, logger, index, fitted)
        step = fitted.trainer.global_step
        lbfgs = lbfgs_report(run.out_dir, logger, *pairs[index], restarted[index], step) if pairs else {}
        results.append({"status": "finished", **figures, **lbfgs, **shared})
    return results


def write_final(plan: ImagePlan, run: RunPlan, logger: Logger | bool, index: int, fitted: Fitted) -> dict[str, Any]:
    """Image `index` as final.png, logged and judged; its losses (measured by `on_train_end`) and quality figures."""
    inputs, step = fitted.inputs, fitted.trainer.global_step
    final = colour.finish(plan.colour, fitted.module.images[index].detach(), inputs.content)
    save_image(final, run.out_dir / "final.png")
    log_images(logger, {"final": final}, step=step)
    figures = quality(final, inputs.content, inputs.styles, fitted.module.blend) if run.judge else {}
    if figures and inputs.regions is not None:
        figures.update(region_quality(final, inputs.styles, inputs.regions))
    if figures:
        figures["error_sum"] = figures["content_error"] + figures["style_error"]
        if logger:
            logger.log_metrics({f"quality/{k}": v for k, v in figures.items()}, step=step)
    losses = {f"loss/{k}": v for k, v in fitted.module.terms_of(index).items()}
    log_summary(logger, losses)
    return {**losses, **figures, "image_size": list(final.shape[-2:])}


def shared_figures(fitted: Fitted, runs: int) -> dict[str, Any]:
    """What every job of the fit shares in its metrics.json: steps, evaluations, time, device, memory."""
    return {
        "steps": fitted.trainer.global_step,
        "evaluations": fitted.evaluations,
        "fit_time_s": round(fitted.fit_time, 3),
        **lifecycle.device_figures(fitted.trainer),
        "memory_estimate_mb": round(memory_estimate(fitted.module, fitted.lbfgs_history) / 2**20, 1),
        **({"batch_size": runs} if runs > 1 else {}),
    }


def lbfgs_report(
    out_dir: Path, logger: Logger | bool, kept: int, possible: int, restart_count: int, step: int
) -> dict[str, Any]:
    """An L-BFGS run's curvature pairs and restarts, for metrics.json and its logger (to filter a sweep's stuck runs).

    A run that kept few has stopped learning: the log says so, and what usually fixes it.
    """
    if logger:
        figures = {"lbfgs/pairs_kept": kept, "lbfgs/pairs_possible": possible, "lbfgs/restarts": restart_count}
        logger.log_metrics(figures, step=step)
    if restart_count:
        log.info(
            "%s: L-BFGS got stuck and restarted %d time(s) from the run's lowest-loss image (a step kept no "
            "curvature pair, or its history pointed uphill)",
            out_dir,
            restart_count,
        )
    if stuck(kept, possible):
        log.warning(
            "%s: L-BFGS kept only %d of its last %d curvature pairs: its steps became too small to update "
            "its history, so the run stopped improving early. Unless the loss had converged, one step blew it up "
            "(see history.csv): set optimizer.torch.line_search_fn=strong_wolfe or lower optimizer.torch.lr",
            out_dir,
            kept,
            possible,
        )
    return {"lbfgs_pairs": [kept, possible], "lbfgs_restarts": restart_count}
