"""Snapshots of the image while it forms: on disk and in the logger."""

from pathlib import Path

import pytorch_lightning as pl

from nst.images import save_image
from nst.loggers import log_images


class Snapshots(pl.Callback):
    """Every `every_n_steps` training steps, write `snapshots/step_NNNNN.png` and log it."""

    def __init__(self, directory: Path, every_n_steps: int):
        self.directory, self.every = Path(directory), every_n_steps

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        step = trainer.global_step
        if self.every > 0 and step % self.every == 0 and step < trainer.max_steps:
            save_image(module.image, self.directory / f"step_{step:05d}.png")
            log_images(trainer.logger, {"snapshot": module.image}, step)
