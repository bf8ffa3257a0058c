"""A Hydra launcher that optimises the jobs of a sweep in batches: N images, one forward pass.

`nst -m hydra/launcher=batched loss.style_weight=1e4,1e5,1e6 seed=0,1` groups the
jobs that may share a batch (same everything except the settings in
nst.batching.PER_RUN) into batches of `hydra.launcher.batch_size` and runs each batch as one optimisation on
one device. Each job stays its own run: Hydra makes its directory and saves its
config as usual, and nst gives it its own final.png, history.csv, metrics.json and
W&B run. A job whose own settings are bad fails alone, with its one-line error; a
batch that cannot start (too little memory for N images) runs its jobs one by one.
"""

import logging
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from nst.batching import batches, unbatchable
from nst.checkpoints import Interrupted
from nst.checks import check_job
from nst.configs import task_overrides
from nst.errors import NSTError
from nst.lifecycle import refused
from nst.module import NonFiniteLoss
from nst.outputs import RescuedOutputs
from nst.pipeline import Job, run
from nst.sweeps import done_line, objective, run_identity

log = logging.getLogger(__name__)


class BatchedLauncher(Launcher):
    """Runs the jobs of a multirun in this process, `batch_size` compatible jobs at a time."""

    def __init__(self, batch_size: int = 8) -> None:
        if isinstance(batch_size, bool) or not str(batch_size).isdigit() or int(batch_size) < 1:
            raise NSTError(f"hydra.launcher.batch_size={batch_size!r} must be an integer >= 1")
        self.batch_size = int(batch_size)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context

    def _prepare(self, overrides: Sequence[str], index: int) -> tuple[JobReturn, Job]:
        """Hydra's own job set-up (directory, saved config, callbacks), collecting the job instead of running it."""
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = sweep_config.hydra.job.num = index
        collected: list[Job] = []

        def collect(cfg: DictConfig) -> None:
            hydra_cfg = HydraConfig.get()
            out_dir, overrides = Path(hydra_cfg.runtime.output_dir), task_overrides(hydra_cfg)
            collected.append(Job(cfg, out_dir, run_identity(hydra_cfg), overrides))

        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=collect,
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        return ret, collected[0]

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info("Launching %d jobs in batches of up to %d", len(job_overrides), self.batch_size)
        prepared = []
        for offset, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + offset, " ".join(filter_overrides(overrides)))
            prepared.append(self._prepare(overrides, initial_job_idx + offset))
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        returns = [ret for ret, _ in prepared]
        jobs = [job for _, job in prepared]
        with _logged_as_nst():
            for index, outcome in self._run_all(jobs):
                _settle(returns[index], jobs[index], outcome)
        return returns

    def _run_all(self, jobs: list[Job]) -> list[tuple[int, dict[str, Any] | Exception]]:
        """Jobs with bad settings of their own alone (they fail at once, with their message), the rest batched."""
        outcomes = []
        valid = []
        for index, job in enumerate(jobs):
            try:
                check_job(job.cfg, job.overrides)
                valid.append(index)
            except NSTError as exc:  # its own line, and a failed metrics.json for the sweep's verdict
                refused(job.out_dir, exc)
                outcomes.append((index, exc))
        for job in (jobs[i] for i in valid):
            if reason := unbatchable(job.cfg):
                log.info("job %s runs alone: %s", job.out_dir.name, reason)
        for indices in batches([jobs[i].cfg for i in valid], self.batch_size):
            chosen = [valid[i] for i in indices]
            outcomes += zip(chosen, self._run([jobs[i] for i in chosen]), strict=True)
            stop = next((o for _, o in outcomes if isinstance(o, Interrupted)), None)
            if stop is not None:  # Ctrl-C or SIGTERM stops the sweep, not only the batch it came in
                print(f"nst: {stop}", file=sys.stderr)
                sys.exit(128 + stop.signum)
        return outcomes

    def _run(self, jobs: list[Job]) -> list[dict[str, Any] | Exception]:
        """Each job's metrics, or the exception that stopped it."""
        if len(jobs) > 1:
            log.info("batch of %d runs: %s", len(jobs), ", ".join(job.out_dir.name for job in jobs))
        earlier = {job.out_dir: set(_offline_wandb_runs(job)) for job in jobs}
        try:
            return list(run(jobs))
        except (NonFiniteLoss, Interrupted, RescuedOutputs) as exc:  # the batch ran: no point in running it again
            return [exc] * len(jobs)
        except NSTError as exc:
            if len(jobs) == 1:
                return [exc]
            log.warning("the batch of %d runs could not start (%s); running them one by one", len(jobs), exc)
            for job in jobs:  # that attempt ran no step: its offline W&B runs would only show up as failed runs
                for attempt in set(_offline_wandb_runs(job)) - earlier[job.out_dir]:
                    shutil.rmtree(attempt)
            return [outcome for job in jobs for outcome in self._run([job])]
        except Exception as exc:
            log.exception("the batch of %d runs failed", len(jobs))
            return [exc] * len(jobs)


@contextmanager
def _logged_as_nst() -> Iterator[None]:
    """nst's own lines (each run's size, its `done:` line) under nst's name as a single run shows them, not [HYDRA]."""
    nst_log = logging.getLogger("nst")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    nst_log.addHandler(handler)
    propagate, nst_log.propagate = nst_log.propagate, False
    level, nst_log.level = nst_log.level, logging.INFO
    try:
        yield
    finally:
        nst_log.removeHandler(handler)
        nst_log.propagate, nst_log.level = propagate, level


def _offline_wandb_runs(job: Job) -> list[Path]:
    return list((job.out_dir / "wandb").glob("offline-run-*"))


def _settle(ret: JobReturn, job: Job, outcome: dict[str, Any] | Exception) -> None:
    """The job's return, as a sweeper reads it: its objective, penalised where it failed."""
    if isinstance(outcome, Exception) or outcome.get("status") != "finished":
        error = outcome if isinstance(outcome, Exception) else outcome["error"]
        print(f"nst: error: {error}", file=sys.stderr)
        log.error("job failed; the sweep goes on (see %s/metrics.json)", job.out_dir)
        ret.return_value = objective(job.cfg.objective, None)
    else:
        log.info(done_line(job.out_dir, outcome))
        ret.return_value = objective(job.cfg.objective, outcome)
    ret.status = JobStatus.COMPLETED
