"""A run's life, whichever branch makes it: an image optimised (nst/pipeline.py), a network trained
(nst/train/pipeline.py), or a branch registered later (nst/branches.py).

    check     the branch's checks of every job, before anything is written      (the branch)
    claim     each job's directory locked, its metrics.json "running"           (nst/run_dir.py)
    start     console, imports frozen, peak memory reset, seed, the loss network
    prepare   the branch's inputs and what it logs at step 0                    (the branch)
    loggers   each job's logger: its config and those images                    (nst/loggers.py)
    fit       the branch's fits, each through `fit` below                       (the branch)
    outputs   the branch's files and figures; a signal now waits for them       (the branch)
    record    metrics.json and the logger closed, whatever happened             (nst/runs.py)

Signals are held from the first line to the last write (`RunSignals`): the branch never
installs a handler, claims a directory, writes metrics.json or opens a logger itself.
Only the first process of a DDP training claims, logs and writes (nst/processes.py).
"""

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytorch_lightning as pl
from omegaconf import OmegaConf
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch import Tensor

from nst import environment, refusal
from nst.backbones import VGG
from nst.callbacks import Interruption, LossHistory, LossLogging
from nst.checkpoints import RESUME_CHECKPOINT, Interrupted
from nst.configs import build
from nst.errors import NSTError, Stopped
from nst.loggers import build_logger, log_images
from nst.memory import peak_memory_mb, reset_peak_memory
from nst.outputs import RescuedOutputs, rescued, write_json
from nst.processes import first_process
from nst.progress import EvaluationProgress
from nst.run_dir import claim, release
from nst.runs import Job, RunSignals, record


class Prepared(Protocol):
    """What a branch's `prepare` returns: whatever its fit needs, and the images logged at step 0."""

    logged: dict[str, Tensor]


class Branch(Protocol):
    """A kind of run: its own steps, and nothing of the life around them.

    `kind` goes into metrics.json (None: an image run, whose record has never named one).
    """

    kind: str | None

    def check(self, job: Job) -> None:
        """Every setting of the job, with the files it names: `NSTError` with one line, before anything is written."""

    def prepare(self, jobs: Sequence[Job], encoder: VGG) -> Prepared:
        """Inputs read, module built: what `fit` needs."""

    def fit(self, jobs: Sequence[Job], loggers: Sequence[Logger | bool], prepared: Any, resume: Path | None,
            signals: RunSignals) -> Any:  # fmt: skip
        """The fits (each through `lifecycle.fit`); raises `Interrupted` after a signal."""

    def outputs(self, jobs: Sequence[Job], loggers: Sequence[Logger | bool], prepared: Any, fitted: Any
                ) -> list[dict[str, Any]]:  # fmt: skip
        """Each job's files and figures, its metrics returned (status finished or failed)."""


def live(branch: Branch, jobs: Sequence[Job], resume: Path | None = None) -> list[dict[str, Any]]:
    """The jobs' runs through `branch`, each outcome in its own metrics.json and logger.

    Returns each job's metrics; an error that stops them all is written to every claimed
    job's metrics.json, then raised (a bad setting is raised before anything is claimed).
    Outputs that their disk could not take end the run with `RescuedOutputs`.
    """
    started = time.perf_counter()
    loggers: list[Logger | bool] = []
    claimed: list[Path] = []
    tagged = _tagged(branch)
    results: list[dict[str, Any]] = [{"status": "failed", "error": "stopped"} for _ in jobs]
    signals = RunSignals()
    with signals.held():
        try:
            results = _steps(branch, jobs, resume, loggers, claimed, signals)
        except Stopped as exc:  # before a fit: nothing to resume (after the outputs, `raise_waiting` below)
            results = [{"status": "interrupted", "error": str(exc)}] * len(jobs)
            raise
        except Exception as exc:
            error = f"{exc}" if isinstance(exc, NSTError) else f"{type(exc).__name__}: {exc}"
            status = "interrupted" if isinstance(exc, Interrupted) else "failed"
            results = [{"status": status, "error": error}] * len(jobs)
            for index, failure in getattr(exc, "failures", {}).items():
                results[index] = {"status": "failed", "error": failure}
            raise
        finally:
            signals.finishing = True  # metrics.json is written whatever happened: a signal waits for it
            results = [{**tagged, **result} for result in results]
            if claimed:
                record(jobs, loggers, results, started)
            for directory in claimed:
                release(directory)
    signals.raise_waiting()
    moved = {path: target for path, target in rescued().items() if path.parent in {job.out_dir for job in jobs}}
    if moved:
        raise RescuedOutputs(moved)
    return results


def _tagged(branch: Branch) -> dict[str, str]:
    """What every metrics.json of the branch says of its kind."""
    return {"kind": branch.kind} if branch.kind else {}


def _steps(
    branch: Branch,
    jobs: Sequence[Job],
    resume: Path | None,
    loggers: list[Logger | bool],
    claimed: list[Path],
    signals: RunSignals,
) -> list[dict[str, Any]]:
    """`live`'s steps; `loggers` and `claimed` are filled as they open, for `record` and the locks."""
    for job in jobs:
        if not refusal.passed(job.cfg):  # a single run's config was checked before Hydra wrote anything
            branch.check(job)
    first = first_process()
    for job in jobs if first else ():
        claim(job.out_dir)
        claimed.append(job.out_dir)
        running = {"status": "running", **_tagged(branch), "pid": os.getpid()}
        write_json(job.out_dir / "metrics.json", running, rescue=False)
    cfg = jobs[0].cfg
    environment.console(bool(cfg.get("verbose")) and first)
    environment.freeze_imports()
    reset_peak_memory()
    pl.seed_everything(int(cfg.seed), verbose=False)
    encoder = build(cfg.backbone, "backbone")  # one loss network for the whole run: its weights load once
    prepared = branch.prepare(jobs, encoder)
    loggers.extend(open_loggers(jobs, prepared.logged) if first else [False] * len(jobs))
    fitted = branch.fit(jobs, loggers, prepared, resume, signals)
    signals.finishing = True  # a signal now waits until the outputs are written
    if not first:  # the other processes of a DDP training write nothing: the first's outputs are the run's
        return [{"status": "finished"}]
    return branch.outputs(jobs, loggers, prepared, fitted)


def refused(out_dir: Path, problem: NSTError) -> None:
    """A sweep's job refused before its run began: a failed metrics.json, so that the sweep's verdict lists it
    (nst/sweeps.py); never over the record of a run that did begin."""
    if first_process() and not (out_dir / "metrics.json").exists():
        write_json(out_dir / "metrics.json", {"status": "failed", "error": str(problem)}, rescue=False)


def open_loggers(jobs: Sequence[Job], images: dict[str, Tensor]) -> list[Logger | bool]:
    """Each job's experiment logger, its resolved config logged and `images` at step 0."""
    loggers = []
    for job in jobs:
        verbose = bool(job.cfg.get("verbose"))
        logger = build_logger(job.cfg.logger, job.out_dir, job.identity, len(jobs) > 1, verbose)
        loggers.append(logger)
        if logger:
            logger.log_hyperparams(OmegaConf.to_container(job.cfg, resolve=True))
        log_images(logger, images, step=0)
    return loggers


def trainer(
    make: Callable[..., pl.Trainer], out_dir: Path, callbacks: list[pl.Callback], log_every: int, **settings: Any
) -> pl.Trainer:
    """A branch's Trainer from its `trainer` config node (`make` builds it with these arguments): nst's callbacks,
    no logger of Lightning's own (nst's loggers are its callbacks'), no sanity validation; `settings`, what the
    branch sets itself."""
    return make(logger=False, callbacks=callbacks, default_root_dir=str(out_dir), log_every_n_steps=log_every,
                num_sanity_val_steps=0, **settings)  # fmt: skip


def recorders(
    loggers: Sequence[Logger | bool],
    histories: Sequence[Path],
    checkpoint: Path,
    signals: RunSignals,
    progress: EvaluationProgress | None,
) -> list[pl.Callback]:
    """The callbacks every fit has: loss terms to the loggers and history.csv (the first process only), the
    signal's checkpoint, and the progress display."""
    first = first_process()
    kept = [LossLogging(loggers), LossHistory(histories)] if first else []
    return [*kept, Interruption(checkpoint, signals), *([progress] if progress and first else [])]


def fit(trainer: pl.Trainer, module: pl.LightningModule, data: Any, resume: Path | None, signals: RunSignals
        ) -> float:  # fmt: skip
    """One Lightning fit, from `resume` when given; a signal ends it after its step with a checkpoint
    (`signals.received` then says which). Returns its seconds; a resume.ckpt it used is removed once it is done."""
    started = time.perf_counter()
    try:
        with signals.fitting():
            trainer.fit(module, data, ckpt_path=resume, weights_only=True)  # no code from a file
    except SIGTERMException:  # Lightning's own SIGTERM handler stopped the fit after our checkpoint
        if signals.received is None:
            raise
    seconds = time.perf_counter() - started
    if signals.received is None and resume is not None and resume.name == RESUME_CHECKPOINT and first_process():
        resume.unlink()
    return seconds


def device_figures(trainer: pl.Trainer) -> dict[str, Any]:
    """Where the run ran and the memory it took at its peak, for metrics.json."""
    device = trainer.strategy.root_device
    peak, peak_kind = peak_memory_mb(device)
    return {"device": str(device), "peak_memory_mb": round(peak, 1), "peak_memory_kind": peak_kind}
