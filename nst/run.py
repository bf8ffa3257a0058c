"""The `nst` command: config -> images -> backbone -> Lightning module -> final image and metrics.

Read top to bottom, `train` is the whole run. `main` is the Hydra entry point that
gives each run its own output directory and turns user errors into one line.
"""

import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from nst import colour
from nst.callbacks import Interruption, LossHistory, LossLogging, Snapshots
from nst.checkpoints import RESUME_CHECKPOINT, Interrupted, resumable, split_checkpoint, stage_of
from nst.configs import CONF_DIR, build
from nst.errors import NSTError
from nst.images import check_init, initial_image, load_image, save_image
from nst.judge import quality
from nst.loggers import build_logger, finish_logger, log_images, log_summary
from nst.memory import check_memory, memory_estimate, peak_memory_mb, reset_peak_memory, resident_memory_mb
from nst.module import NonFiniteLoss, RunSettings, Stage, StyleTransfer, check_run
from nst.optimizers import curvature_pairs, restarts, stuck
from nst.outputs import write_json
from nst.sweeps import RunIdentity, objective, run_identity

log = logging.getLogger("nst")

# Lightning's noise at every fit: a one-item dataloader needs no workers, and its use of a pytree check
# that newer torch deprecates.
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


def _not_lightning_advice(record: logging.LogRecord) -> bool:
    """Drop Lightning's advert for its logging service and its advice, on CUDA, to run matmuls in TF32.

    That advice is wrong here: the matmuls are the Gram matrices, kept in fp32 on purpose;
    nst gives TF32 to the convolutions only (`speed.tf32`).
    """
    message = str(record.msg)
    return not (message.startswith("💡 Tip") or "that has Tensor Cores" in message)


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_not_lightning_advice)


def _paths(value: object, key: str) -> list[str]:
    """One path or a list of paths from the config, resolved against the directory nst was started in."""
    items = list(value) if isinstance(value, ListConfig) else [value]
    if not items:
        raise NSTError(f"{key} is an empty list: give at least one image")
    return [to_absolute_path(str(p)) for p in items]


def _number(node: DictConfig, key: str, prefix: str, kind: type, minimum: float) -> Any:
    """A numeric setting, or one line saying which key is wrong and what it must be."""
    value = node.get(key)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise NSTError(f"{prefix}{key}={value!r} is not a number") from None
    if number != float(value) or not number >= minimum:
        raise NSTError(f"{prefix}{key}={value!r} must be {'an integer ' if kind is int else 'a number '}>= {minimum:g}")
    return number


def _check_size(image: torch.Tensor, minimum: int, what: str) -> None:
    if min(image.shape[-2:]) < minimum:
        raise NSTError(
            f"{what} is {image.shape[-1]}x{image.shape[-2]} px, smaller than the {minimum} px the deepest "
            f"layer needs: raise image.size (or image.style_scale), or use shallower layers"
        )


@dataclass
class Job:
    """One run: its config, its output directory and the identity of its W&B run."""

    cfg: DictConfig
    out_dir: Path
    identity: RunIdentity | None = None


def _fit(
    cfg: DictConfig,
    module: StyleTransfer,
    jobs: Sequence[Job],
    loggers: Sequence[Logger | bool],
    suffix: str,
    resume: Path | None,
) -> pl.Trainer:
    """Fit one stage; a NaN keeps the lowest-loss image, a signal leaves a checkpoint to resume from."""
    steps = int(cfg.optimizer.steps)
    callbacks: list[pl.Callback] = []
    for run, (job, logger) in enumerate(zip(jobs, loggers, strict=True)):
        callbacks += [
            Snapshots(job.out_dir / f"snapshots{suffix}", job.cfg.snapshot_every, logger, run),
            LossLogging(logger, run),
            LossHistory(job.out_dir / f"history{suffix}.csv", run),
        ]
    interruption = Interruption(jobs[0].out_dir / RESUME_CHECKPOINT)
    trainer: pl.Trainer = build(
        cfg.trainer,
        "trainer",
        max_steps=steps,
        logger=False,
        callbacks=[*callbacks, interruption],
        default_root_dir=str(jobs[0].out_dir),
        log_every_n_steps=cfg.log_every,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    check_memory(module, trainer.strategy.root_device)
    try:
        with interruption.catching_signals():
            trainer.fit(module, DataLoader(range(steps), batch_size=None), ckpt_path=resume)
    except NonFiniteLoss:
        for run, job in enumerate(jobs):
            save_image(module.images[run], job.out_dir / "last_good.png")
        raise
    except SIGTERMException:  # Lightning's own SIGTERM handler stops the fit after our checkpoint
        if interruption.received is None:
            raise
    if interruption.received is not None:
        going = {run: job.out_dir for run, job in enumerate(jobs) if run not in module.failures}
        if len(jobs) > 1:
            split_checkpoint(interruption.checkpoint, {run: d / RESUME_CHECKPOINT for run, d in going.items()})
        for run, job in enumerate(jobs):
            save_image(module.images[run], job.out_dir / ("interrupted.png" if run in going else "last_good.png"))
        height, width = module.images[0].shape[-2:]
        where = f" of the {width}x{height} px stage" if suffix else ""
        signum, step = interruption.received, trainer.global_step
        raise Interrupted(signum, step, steps, list(going.values()), where, dict(module.failures))
    if resume is not None:
        resume.unlink()
    return trainer


def run_settings(cfg: DictConfig) -> RunSettings:
    """What this run sets for itself in a batch: loss and layer weights, optimizer (its start image comes later)."""
    return RunSettings(
        content_layers=cfg.layers.get("content") or {},
        style_layers=cfg.layers.get("style") or {},
        optimizer=build(cfg.optimizer.torch, "optimizer.torch"),
        content_weight=cfg.loss.content_weight,
        style_weight=cfg.loss.style_weight,
        tv_weight=cfg.loss.tv_weight,
    )


def check_job(cfg: DictConfig) -> None:
    """Refuse a run's own bad settings (not those it shares with a batch) before anything is loaded."""
    _number(cfg, "seed", "", int, minimum=0)
    check_init(cfg.init)
    check_run(run_settings(cfg), cfg.backbone.arch, cfg.loss.tv_beta, cfg.loss.convention)


def optimise(jobs: Sequence[Job], loggers: Sequence[Logger | bool], resume: Path | None = None) -> list[dict[str, Any]]:
    """Images -> backbone -> module -> Trainer -> final.png, once per scale; returns each run's figures.

    With `image.scales=[256,512]` the images are optimised coarse to fine, each stage
    starting from the previous result upsampled (`stage_256px.png` is kept). Several
    jobs are optimised as one batch: everything but their `RunSettings` comes from the first.
    """
    cfg = jobs[0].cfg
    _number(cfg.optimizer, "steps", "optimizer.", int, minimum=1)
    seed = _number(cfg, "seed", "", int, minimum=0)
    size = _number(cfg.image, "size", "image.", int, minimum=1)
    style_scale = _number(cfg.image, "style_scale", "image.", float, minimum=1e-6)
    scales = [
        _number({f"scales[{i}]": s}, f"scales[{i}]", "image.", int, minimum=1)
        for i, s in enumerate(cfg.image.get("scales") or [])
    ]
    pl.seed_everything(seed, verbose=False)

    start = stage_of(resume) if resume is not None else Stage()
    images, fit_time, evaluations, sizes = None, start.fit_time_before, start.evaluations_before, scales or [size]
    failures: dict[int, str] = {}  # runs of a batch whose loss became NaN, in any stage
    encoder = build(cfg.backbone, "backbone")  # one network for every stage: weights load once
    for stage, stage_size in enumerate(sizes):
        if stage < start.index:  # finished before the interruption: its stage image is on disk
            continue
        content = load_image(_paths(cfg.content, "content")[0], stage_size)
        styles = [load_image(path, max(1, round(stage_size * style_scale))) for path in _paths(cfg.style, "style")]
        seen_content, seen_styles = colour.prepare(cfg.colour, content, styles)
        runs = [run_settings(job.cfg) for job in jobs]
        for run, job in zip(runs, jobs, strict=True):
            generator = torch.Generator().manual_seed(_number(job.cfg, "seed", "", int, minimum=0))
            run.init = initial_image(job.cfg.init, seen_content, seen_styles[0], generator, job.cfg.init_noise)
        if images is None:
            for logger in loggers:
                log_images(logger, {"content": content, **{f"style_{i}": s for i, s in enumerate(styles)}}, step=0)
        else:
            for run, image in zip(runs, images, strict=True):
                run.init = F.interpolate(image[None].cpu(), size=content.shape[-2:], mode="bicubic").clamp(0, 1)
        module = StyleTransfer(
            encoder=encoder,
            content=seen_content,
            styles=seen_styles,
            runs=runs,
            tv_beta=cfg.loss.tv_beta,
            convention=cfg.loss.convention,
            style_blend=cfg.style_blend,
            fast=build(cfg.speed, "speed"),
            restart_stuck_lbfgs=bool(cfg.optimizer.get("restart_stuck", False)),
        )
        module.failures = dict(failures)  # a run that failed at a coarser scale stays at its lowest-loss image
        module.frozen[sorted(failures)] = True
        for what, picture in [("the content image", content)] + [
            (f"style image {i + 1}", s) for i, s in enumerate(styles)
        ]:
            _check_size(picture, module.encoder.min_input_size, what)
        last = stage == len(sizes) - 1
        module.stage = Stage(stage, evaluations, fit_time)
        checkpoint = resume if stage == start.index else None
        started = time.perf_counter()
        trainer = _fit(cfg, module, jobs, loggers, "" if last else f"_{stage_size}px", checkpoint)
        fit_time += time.perf_counter() - started
        evaluations += module.evaluations
        failures = dict(module.failures)
        images = module.image.detach()
        if not last:
            for job, image in zip(jobs, images, strict=True):
                save_image(colour.finish(cfg.colour, image[None], content), job.out_dir / f"stage_{stage_size}px.png")

    pairs = curvature_pairs(trainer.optimizers[0])  # L-BFGS only: (kept, could keep) per run
    restarted = restarts(trainer.optimizers[0])
    device = trainer.strategy.root_device
    peak, peak_kind = peak_memory_mb(device)
    shared = {
        "steps": trainer.global_step,
        "evaluations": evaluations,
        "fit_time_s": round(fit_time, 3),
        "device": str(device),
        "peak_memory_mb": round(peak, 1),
        "peak_memory_kind": peak_kind,
        "memory_estimate_mb": round(memory_estimate(module) / 2**20, 1),
        **({"batch_size": len(jobs)} if len(jobs) > 1 else {}),
    }
    results = []
    for run, (job, logger, image) in enumerate(zip(jobs, loggers, images, strict=True)):
        if run in failures:
            save_image(image[None], job.out_dir / "last_good.png")
            results.append({"status": "failed", "error": failures[run], **shared})
            continue
        final = colour.finish(cfg.colour, image[None], content)
        save_image(final, job.out_dir / "final.png")
        log_images(logger, {"final": final}, step=trainer.global_step)
        figures = quality(final, content, styles, module.blend) if job.cfg.judge else {}
        if figures:
            figures["error_sum"] = figures["content_error"] + figures["style_error"]
            if logger:
                logger.log_metrics({f"quality/{k}": v for k, v in figures.items()}, step=trainer.global_step)
        losses = {f"loss/{k}": v for k, v in module.terms_of(run).items()}  # final.png's (on_train_end)
        log_summary(logger, losses)
        history = _lbfgs_history(job.out_dir, logger, *pairs[run], restarted[run], trainer.global_step) if pairs else {}
        results.append(
            {"status": "finished", **losses, **history, **figures, **shared, "image_size": list(final.shape[-2:])}
        )
    return results


def _lbfgs_history(
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


def train_batch(jobs: Sequence[Job], resume: Path | None = None) -> list[dict[str, Any]]:
    """Runs optimised together, each with its outcome in its own metrics.json and its own W&B run.

    Returns each run's metrics (status finished, or failed where only that run's loss
    became NaN); an error that stops the whole batch is written to every run, then raised.
    """
    started = time.perf_counter()
    reset_peak_memory()
    loggers: list[Logger | bool] = []
    failure = {"status": "failed", "error": "stopped"}
    results: list[dict[str, Any]] = [dict(failure) for _ in jobs]
    try:
        for job in jobs:
            loggers.append(build_logger(job.cfg.logger, job.out_dir, job.identity, alongside_others=len(jobs) > 1))
            if loggers[-1]:
                loggers[-1].log_hyperparams(OmegaConf.to_container(job.cfg, resolve=True))
        results = optimise(jobs, loggers, resume)
    except Exception as exc:
        error = f"{exc}" if isinstance(exc, NSTError) else f"{type(exc).__name__}: {exc}"
        results = [{"status": "interrupted" if isinstance(exc, Interrupted) else "failed", "error": error}] * len(jobs)
        for run, failure in getattr(exc, "failures", {}).items():
            results[run] = {"status": "failed", "error": failure}
        raise
    finally:
        for run, (job, result) in enumerate(zip(jobs, results, strict=True)):
            result = {**result, "wall_time_s": round(time.perf_counter() - started, 3)}
            result["resident_memory_mb"] = resident_memory_mb()
            write_json(job.out_dir / "metrics.json", result)
            finish_logger(loggers[run] if run < len(loggers) else None, result.get("error"))
    return results


def train(
    cfg: DictConfig, out_dir: Path, identity: RunIdentity | None = None, resume: Path | None = None
) -> dict[str, Any]:
    """One run as `cfg` says, its outcome in `out_dir`/metrics.json and its W&B run, finished or failed."""
    return train_batch([Job(cfg, Path(out_dir), identity)], resume)[0]


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | list[float] | None:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        resume = None
        if cfg.resume:
            out_dir, cfg = resumable(Path(to_absolute_path(cfg.resume)))
            resume = out_dir / RESUME_CHECKPOINT
        metrics = train(cfg, out_dir, run_identity(hydra_cfg), resume)
    except Exception as exc:
        if not (sweeping or isinstance(exc, NSTError)) or os.environ.get("NST_DEBUG") or hydra_cfg.verbose:
            raise  # a bug, not bad input, or asked for: keep the traceback
        print(f"nst: error: {exc}", file=sys.stderr)
        if isinstance(exc, Interrupted):
            sys.exit(128 + exc.signum)  # a sweep stops too: the next job would not start
        if not sweeping:
            sys.exit(2)
        log.exception("job failed; the sweep goes on (see %s/metrics.json)", out_dir)
        return objective(cfg.objective, None)
    if "content_error" in metrics:
        log.info(
            "done: %s/final.png (content error %.3f, style error %.3f)",
            out_dir,
            metrics["content_error"],
            metrics["style_error"],
        )
    else:  # judge=false
        log.info("done: %s/final.png (loss %.4g)", out_dir, metrics["loss/total"])
    return objective(cfg.objective, metrics)


def main() -> None:
    """Console-script entry point: `nst compare …` compares runs, anything else is a Hydra run."""
    if sys.argv[1:2] == ["compare"]:
        from nst.compare import main as compare

        sys.exit(compare(sys.argv[2:]))
    register_launcher()
    _hydra_main()


def register_launcher() -> None:
    """Make `hydra/launcher=batched` known to Hydra also where its plugin scan cannot see it (editable installs)."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.nst_launcher import BatchedLauncher

    Plugins.instance().register(BatchedLauncher)
