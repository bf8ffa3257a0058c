"""What a run records while it runs: snapshots of the image and the loss history."""

from pathlib import Path

import pytorch_lightning as pl

from nst.images import save_image
from nst.loggers import log_images
from nst.outputs import atomic_write


class Snapshots(pl.Callback):
    """Every `every_n_steps` training steps, write `snapshots/step_NNNNN.png` and log it."""

    def __init__(self, directory: Path, every_n_steps: int):
        self.directory, self.every = Path(directory), every_n_steps

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        step = trainer.global_step
        if self.every > 0 and step % self.every == 0 and step < trainer.max_steps:
            save_image(module.image, self.directory / f"step_{step:05d}.png")
            log_images(trainer.logger, {"snapshot": module.image}, step)


class LossHistory(pl.Callback):
    """Every logged loss term per step, written to `history.csv` when fitting ends (for `nst compare`)."""

    def __init__(self, path: Path):
        self.path, self.rows = Path(path), []

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        step = trainer.global_step
        if step % trainer.log_every_n_steps == 0 or step == trainer.max_steps:
            terms = {k: v.mean().item() for k, v in module.last_terms.items()}
            self.rows.append({"step": step, "evaluations": module.evaluations, **terms})

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not self.rows:
            return
        columns = list(self.rows[0])
        lines = [",".join(columns)] + [",".join(str(row[c]) for c in columns) for row in self.rows]
        atomic_write(self.path, ("\n".join(lines) + "\n").encode())
