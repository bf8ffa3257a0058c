"""What every run shares, optimising an image or training a network: its job, its signals, its outcome recorded.

Both pipelines (nst/pipeline.py, nst/train/pipeline.py) claim the job's directory
(nst/run_dir.py) and write metrics.json as "running" before anything else, hold
the signals that stop a run for its whole life (`RunSignals`), and `record` the
outcome however the run ends.
"""

import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, WandbLogger

from nst import cluster
from nst.errors import Stopped
from nst.loggers import finish_logger
from nst.memory import resident_memory_mb
from nst.outputs import write_json
from nst.run_dir import holder
from nst.sweeps import RunIdentity


@dataclass
class Job:
    """One run: its config, its output directory, the identity of its W&B run and its command-line overrides."""

    cfg: DictConfig
    out_dir: Path
    identity: RunIdentity | None = None
    overrides: Sequence[str] = ()


def record(jobs: Sequence[Job], loggers: Sequence[Logger | bool], results: Sequence[dict], started: float) -> None:
    """Each job's metrics.json and its logger closed, its W&B run marked failed where the job failed.

    Not in a directory another run holds: its metrics.json is that run's.
    """
    for index, (job, result) in enumerate(zip(jobs, results, strict=True)):
        if holder(job.out_dir):
            continue
        result = {**result, "wall_time_s": round(time.perf_counter() - started, 3)}
        result["resident_memory_mb"] = resident_memory_mb()
        logger = loggers[index] if index < len(loggers) else None
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            result["wandb_id"] = logger.experiment.id  # a resumed run continues this W&B run
        write_json(job.out_dir / "metrics.json", result)
        finish_logger(logger, result.get("error"))


class RunSignals:
    """Ctrl-C, SIGTERM and SLURM's SIGUSR2 from a run's first line to its last write, one handler for all three.

    Before a fit a signal stops the run at once (`Stopped`); during a fit (`fitting`) it is
    noted, the step finishes and the fit leaves a checkpoint (nst/callbacks.py `Interruption`),
    and a second Ctrl-C stops at once; once `finishing`, it waits until the outputs and
    metrics.json are written, then stops the process.
    """

    def __init__(self) -> None:
        self.finishing, self.in_fit, self.received = False, False, None

    @staticmethod
    def caught() -> tuple[int, ...]:
        return signal.SIGINT, signal.SIGTERM, cluster.requeue_signal()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.in_fit and not self.finishing:
            if self.received is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.received = signum
            return
        if not self.finishing:
            raise Stopped(signum, finished=False)
        self.received = self.received or signum

    def install(self) -> None:
        """This handler for the caught signals again (Lightning puts its own SIGTERM handler in front at a fit's
        start); in the main thread only, where Python delivers signals."""
        if threading.current_thread() is threading.main_thread():
            for sig in self.caught():
                signal.signal(sig, self.handle)

    @contextmanager
    def held(self) -> Iterator["RunSignals"]:
        """The handler for the block, the previous ones back after it; then a signal that waited is raised."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self.handle) for sig in self.caught()}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextmanager
    def fitting(self) -> Iterator[None]:
        """A signal during the block is noted for the fit to stop at its step's end, not raised."""
        self.in_fit = True
        try:
            yield
        finally:
            self.in_fit = False
            self.install()  # after an exception Lightning may leave its own handlers in place

    def raise_waiting(self) -> None:
        """A signal that came while the outputs were written, once they are."""
        if self.received is not None and self.finishing:
            raise Stopped(self.received, finished=True)
