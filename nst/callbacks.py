"""What a run records while it runs: snapshots of the image, its losses in its logger and history.csv.

Each callback keeps one output per image of the module (one for a single run), so
that every image of a batch has its own files and its own experiment logger.
"""

import csv
import io
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger

from nst.images import save_image
from nst.loggers import log_images
from nst.outputs import DiskFault, atomic_write, is_disk_fault

if TYPE_CHECKING:
    from nst.runs import RunSignals

log = logging.getLogger(__name__)


class Recorded(Protocol):
    """What the recording callbacks and the progress display read of a module, image run or training alike."""

    evaluations: int  # what history.csv and the progress display count in: evaluations, or training steps

    def terms_of(self, index: int) -> dict[str, float]:
        """The last step's loss terms of run `index` (0 for a training run), as numbers."""

    def start_terms_of(self, index: int) -> dict[str, float] | None:
        """Run `index`'s loss at its start image, where a first step of several evaluations hides it; else None."""


class Snapshots(pl.Callback):
    """Every `every_n_steps[i]` training steps, image i's `snapshots/step_NNNNN.png`, also sent to its logger.

    Snapshots are the first thing a full disk stops: the run goes on without them.
    """

    def __init__(self, directories: Sequence[Path], every_n_steps: Sequence[int], loggers: Sequence[Logger | bool]):
        self.directories, self.every, self.loggers = [Path(d) for d in directories], every_n_steps, loggers
        self.stopped = False

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        step = trainer.global_step
        for image, directory, every, logger in zip(
            module.images, self.directories, self.every, self.loggers, strict=True
        ):
            if every > 0 and step % every == 0 and step < trainer.max_steps and not self.stopped:
                try:
                    save_image(image, directory / f"step_{step:05d}.png", rescue=False)
                except DiskFault as fault:
                    self.stopped = True
                    log.warning("%s; no more snapshots, the run goes on", fault)
                log_images(logger, {"snapshot": image}, step)


def loss_rows(trainer: pl.Trainer, module: Recorded, index: int) -> list[dict[str, float]]:
    """Image `index`'s rows of loss terms to record after this step: every `log_every_n_steps` steps and the last.

    A step's row holds its last evaluation's loss. After a first step of several
    evaluations (L-BFGS), a row for step 0 comes first: the start image's loss (the
    first evaluation), so that the loss curve shows L-BFGS's large early drop. (After
    one evaluation, Adam's, step 1's row already is the start image's loss.)
    """
    step, rows = trainer.global_step, []
    start = module.start_terms_of(index) if step == 1 else None
    if start is not None:
        rows.append({"step": 0, "evaluations": 1, **start})
    if step % trainer.log_every_n_steps == 0 or step == trainer.max_steps:
        rows.append({"step": step, "evaluations": module.evaluations, **module.terms_of(index)})
    return rows


class LossLogging(pl.Callback):
    """Every `log_every_n_steps` steps, each image's loss terms (per layer too) and evaluations to its logger."""

    def __init__(self, loggers: Sequence[Logger | bool]):
        self.loggers = loggers

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        for index, logger in enumerate(self.loggers):
            for row in loss_rows(trainer, module, index) if logger else []:
                step, evaluations = row.pop("step"), row.pop("evaluations")
                metrics = {f"loss/{k}": v for k, v in row.items()}
                logger.log_metrics({**metrics, "evaluations": float(evaluations)}, step=step)


class LossHistory(pl.Callback):
    """Every logged loss term per step, each image's appended to its `history.csv` as the run goes.

    Flushed every step, so that a run killed outright (SIGKILL, the OOM killer) still
    shows its curve in `nst compare`. Each row also holds `time_s`, the seconds of
    optimisation when its step ended (0 for the start image's row), so that runs
    compare by wall-clock time as well as by evaluations. If the disk stops taking
    the rows, they are kept and written whole when fitting ends (or rescued).
    """

    def __init__(self, paths: Sequence[Path]):
        self.paths = [Path(p) for p in paths]
        self.rows: list[list[dict]] = [[] for _ in self.paths]
        self.written = [0 for _ in self.paths]  # rows of each file already on disk
        self.appending = True
        self.started = 0.0  # perf_counter at the fit's start, less the time of the rows a resumed run kept

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """A resumed run keeps the rows written before its interruption, and counts its time on from theirs."""
        self.started = time.perf_counter()
        path = self.paths[0]
        if len(self.paths) == 1 and path.is_file() and trainer.global_step > 0:  # a resumed run continues alone
            with open(path, newline="") as f:
                kept = [row for row in csv.DictReader(f) if row.get("step") and int(row["step"]) <= trainer.global_step]
            self.rows[0] = kept
            self.started -= float(kept[-1].get("time_s") or 0) if kept else 0.0
            self._write_whole()

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        elapsed = round(time.perf_counter() - self.started, 3)
        for index, rows in enumerate(self.rows):
            for row in loss_rows(trainer, module, index):
                step, evaluations = row.pop("step"), row.pop("evaluations")
                rows.append({"step": step, "evaluations": evaluations, "time_s": elapsed if step else 0.0, **row})
        if self.appending:
            self._append()

    def teardown(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        """What the disk did not take is written when fitting ends (Lightning skips this after an exception)."""
        self._write_whole()

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        """Also when fitting failed (a NaN loss) or Lightning's SIGTERM handler stopped it."""
        self._write_whole()

    def _append(self) -> None:
        try:
            for index, (path, rows) in enumerate(zip(self.paths, self.rows, strict=True)):
                new = rows[self.written[index] :]
                if not new:
                    continue
                columns = list(rows[0])
                lines = [",".join(str(row[c]) for c in columns) for row in new]
                if self.written[index] == 0:
                    lines.insert(0, ",".join(columns))
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "w" if self.written[index] == 0 else "a") as f:
                    f.write("\n".join(lines) + "\n")
                self.written[index] = len(rows)
        except OSError as exc:
            if not is_disk_fault(exc):
                raise
            self.appending = False
            log.warning("%s; the loss history is kept and written when the run ends", DiskFault(path, exc))

    def _write_whole(self) -> None:
        """Each history as one file, atomically, where appending did not get it all onto the disk."""
        for index, (path, rows) in enumerate(zip(self.paths, self.rows, strict=True)):
            if rows and (self.written[index] != len(rows) or not self.appending):
                columns = list(rows[0])
                lines = [",".join(columns)] + [",".join(str(row[c]) for c in columns) for row in rows]
                atomic_write(path, ("\n".join(lines) + "\n").encode())
                self.written[index] = len(rows)


class KeptCheckpoints(ModelCheckpoint):
    """Lightning's periodic checkpoints (a training's checkpoints/last.ckpt), which a full disk stops rather than
    the run: the training goes on, and its model.pt is written (or rescued) at the end."""

    stopped = False

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        if self.stopped:
            return
        try:
            super()._save_checkpoint(trainer, filepath)
        except OSError as exc:
            if not is_disk_fault(exc):
                raise
            self.stopped = True
            log.warning("%s; no more periodic checkpoints, the run goes on", DiskFault(Path(filepath), exc))


class Interruption(pl.Callback):
    """Ctrl-C, SIGTERM or SLURM's time-limit warning (SIGUSR2) during a fit: finish the step, save a resumable
    checkpoint, stop.

    The run's one handler (nst/runs.py `RunSignals`) notes the signal; this callback puts
    that handler back in front of Lightning's at the fit's start (under DDP Lightning's
    broadcasts from inside the handler and stops each process on its own; with ours every
    process stops after the same step) and acts on the signal at the step's end.
    """

    def __init__(self, checkpoint: Path, signals: "RunSignals"):
        self.checkpoint, self.signals = Path(checkpoint), signals

    def save(self, trainer: pl.Trainer) -> None:
        """The checkpoint with the optimizer state, written whole or not at all: one process writes it atomically
        (rescued elsewhere when its disk is full); under DDP, Lightning's collective save."""
        if trainer.world_size > 1:
            trainer.save_checkpoint(self.checkpoint, weights_only=False)
            return
        buffer = io.BytesIO()
        torch.save(trainer._checkpoint_connector.dump_checkpoint(weights_only=False), buffer)
        atomic_write(self.checkpoint, buffer.getvalue())

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.signals.install()
        if trainer.global_step > 0 and trainer.is_global_zero:
            log.info("%s: resumed at step %d of %d", self.checkpoint.parent, trainer.global_step, trainer.max_steps)

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        if trainer.world_size > 1:  # DDP: every process stops after the same step, whichever got the signal
            received = torch.tensor(self.signals.received or 0, device=module.device)
            torch.distributed.all_reduce(received, op=torch.distributed.ReduceOp.MAX)
            self.signals.received = int(received) or None
        if self.signals.received is not None:
            self.save(trainer)
            trainer.should_stop = True
            log.info(
                "%s: interrupted by %s at step %d of %d; %s written (or rescued)",
                self.checkpoint.parent, signal.Signals(self.signals.received).name, trainer.global_step,
                trainer.max_steps, self.checkpoint.name,
            )  # fmt: skip
