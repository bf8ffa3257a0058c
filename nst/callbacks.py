"""What a run records while it runs: snapshots of the image, its losses in its logger and history.csv.

Each callback follows one run of the module (`run`, 0 unless runs are batched), so
the runs of a batch each keep their own files and their own experiment logger.
"""

import csv
import signal
import threading
from pathlib import Path
from types import FrameType

import pytorch_lightning as pl
from pytorch_lightning.loggers import Logger

from nst.images import save_image
from nst.loggers import log_images
from nst.outputs import atomic_write


class Snapshots(pl.Callback):
    """Every `every_n_steps` training steps, write `snapshots/step_NNNNN.png` and log it."""

    def __init__(self, directory: Path, every_n_steps: int, logger: Logger | bool = False, run: int = 0):
        self.directory, self.every, self.logger, self.run = Path(directory), every_n_steps, logger, run

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        step = trainer.global_step
        if self.every > 0 and step % self.every == 0 and step < trainer.max_steps:
            image = module.images[self.run]
            save_image(image, self.directory / f"step_{step:05d}.png")
            log_images(self.logger, {"snapshot": image}, step)


class LossLogging(pl.Callback):
    """Every `log_every_n_steps` steps, the run's loss terms (per layer too) and evaluations to its logger."""

    def __init__(self, logger: Logger | bool, run: int = 0):
        self.logger, self.run = logger, run

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        step = trainer.global_step
        if self.logger and (step % trainer.log_every_n_steps == 0 or step == trainer.max_steps):
            metrics = {f"loss/{k}": v for k, v in module.terms_of(self.run).items()}
            self.logger.log_metrics({**metrics, "evaluations": float(module.evaluations)}, step=step)


class LossHistory(pl.Callback):
    """Every logged loss term per step, written to `history.csv` when fitting ends (for `nst compare`)."""

    def __init__(self, path: Path, run: int = 0):
        self.path, self.run, self.rows = Path(path), run, []

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """A resumed run keeps the rows written before its interruption."""
        if self.path.is_file() and trainer.global_step > 0:
            with open(self.path, newline="") as f:
                self.rows = [row for row in csv.DictReader(f) if int(row["step"]) <= trainer.global_step]

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        step = trainer.global_step
        if step % trainer.log_every_n_steps == 0 or step == trainer.max_steps:
            self.rows.append({"step": step, "evaluations": module.evaluations, **module.terms_of(self.run)})

    def teardown(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        """Written however fitting ended: finished, failed or interrupted."""
        if not self.rows:
            return
        columns = list(self.rows[0])
        lines = [",".join(columns)] + [",".join(str(row[c]) for c in columns) for row in self.rows]
        atomic_write(self.path, ("\n".join(lines) + "\n").encode())


class Interruption(pl.Callback):
    """Ctrl-C or SIGTERM (SLURM preemption): finish the step, save a resumable checkpoint, stop cleanly.

    A second Ctrl-C during that step stops at once, as usual.
    """

    def __init__(self, checkpoint: Path):
        self.checkpoint, self.received = Path(checkpoint), None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        if self.received is not None:
            trainer.save_checkpoint(self.checkpoint)
            trainer.should_stop = True

    def teardown(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
