"""What a person sees while a run works: its progress counted in function evaluations, with the loss.

Evaluations are the unit of the README, history.csv and `nst compare`: an L-BFGS step
is up to 20 of them, an Adam step one, so a bar in steps would mislead. On a terminal
the display is one rich progress line (the stage's size for a coarse-to-fine run, the
evaluations done and planned, the total loss, the rate and the time left); elsewhere
(a SLURM log, a pipe) it is one log line every tenth of the run. A batch gets one line,
with the range of its runs' losses.
"""

import logging
import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks.progress.progress_bar import ProgressBar
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

log = logging.getLogger("nst")


def _duration(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on."""
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


class EvaluationProgress(ProgressBar):
    """Lightning's progress bar, counted in function evaluations (`planned` for the fit), with the total loss."""

    def __init__(
        self, planned: int, label: str = "", terminal: bool | None = None, unit: str = "evaluations", runs: int = 1
    ):
        """`unit`: what `module.evaluations` counts (a training run counts steps); `runs`: the loss curves (a batch
        of image runs has one per image)."""
        super().__init__()
        self.planned, self.label, self.unit, self.runs = planned, label, unit, runs
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.enabled = True
        self.progress: Progress | None = None
        self.task: Any = None
        self.started, self.evaluations_at_start = 0.0, 0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Counts from where a resumed run stands, and its rate from this fit's own evaluations."""
        self.started, self.evaluations_at_start = time.perf_counter(), module.evaluations
        if not (self.enabled and self.terminal):
            return
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(f"{self.unit}  {{task.fields[status]}}"),
            console=Console(stderr=True),
        )
        self.progress.start()
        self.task = self.progress.add_task(
            self.label or "nst", total=self.planned, completed=module.evaluations, status=""
        )

    def status(self, trainer: pl.Trainer, module: pl.LightningModule) -> str:
        """Loss (a batch: its runs' range), evaluations per second and the time left, as one line reads them."""
        losses = [module.terms_of(i)["total"] for i in range(self.runs)]
        loss = f"loss {losses[0]:.4g}" if len(losses) == 1 else f"loss {min(losses):.4g} … {max(losses):.4g}"
        elapsed = time.perf_counter() - self.started
        done = module.evaluations - self.evaluations_at_start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = _duration((self.planned - module.evaluations) / rate) if rate > 0 else "?"
        return f"{loss}  {rate:.1f}/s  {left} left"

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        if not self.enabled:
            return
        if self.progress is not None:
            self.progress.update(self.task, completed=module.evaluations, status=self.status(trainer, module))
            return
        every = max(1, trainer.max_steps // 10)
        if trainer.global_step % every == 0 or trainer.global_step == trainer.max_steps:
            what = f"{self.label}: " if self.label else ""
            status = self.status(trainer, module)
            log.info("%s%d/%d %s, %s", what, module.evaluations, self.planned, self.unit, status)

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._stop()

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        self._stop()
