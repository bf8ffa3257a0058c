"""Validation judged like every run: the held-out photos stylised every N steps and measured by the fixed judge.

The figures (`val/content_error`, `val/style_error`, `val/style_swd`) are the judge's
(nst/judge.py), averaged over the held-out photos, so a trained network and an
optimised image are compared on one scale. Each validation also writes a sample grid
(photos above, the network's images below) and logs the images to the logger.
"""

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import Logger
from torch import Tensor

from nst.images import save_image
from nst.judge import quality
from nst.loggers import log_images
from nst.outputs import DiskFault

log = logging.getLogger("nst")

FIGURES = ("content_error", "style_error", "style_swd")


def sample_grid(photos: Sequence[Tensor], outputs: Sequence[Tensor], height: int = 128) -> Tensor:
    """(1, 3, 2·height, W): each photo above its stylised image, side by side, scaled to one height."""
    columns = []
    for photo, output in zip(photos, outputs, strict=True):
        h, w = photo.shape[-2:]
        size = (height, max(1, round(w * height / h)))
        pair = [F.interpolate(i.float().cpu(), size=size, mode="bilinear", antialias=True) for i in (photo, output)]
        columns.append(torch.cat(pair, dim=2))
    return torch.cat(columns, dim=3).clamp(0, 1)


class Validation(pl.Callback):
    """Every `every` steps, at the start and at the end: the held-out photos through the network, judged and logged."""

    def __init__(
        self,
        photos: Sequence[Tensor],
        styles: Sequence[Tensor],
        blend: Sequence[float],
        every: int,
        out_dir: Path,
        logger: Logger | bool,
        judge: bool = True,
    ):
        self.photos, self.styles, self.blend = list(photos), list(styles), list(blend)
        self.every, self.out_dir, self.logger, self.judge = every, Path(out_dir), logger, judge
        self.latest: dict[str, float] = {}
        self.outputs: list[Tensor] = []

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.global_step == 0:
            self.validate(trainer, module)

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        step = trainer.global_step
        if (self.every and step % self.every == 0) or step == trainer.max_steps:
            self.validate(trainer, module)

    @torch.no_grad()
    def validate(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict[str, float]:
        """The network's images of the held-out photos now, their figures logged and kept in `latest`."""
        step = trainer.global_step
        was_training = module.network.training
        module.network.eval()
        self.outputs = [module(photo.to(module.device)).clamp(0, 1).cpu() for photo in self.photos]
        module.network.train(was_training)
        if self.judge:
            pairs = zip(self.outputs, self.photos, strict=True)
            each = [quality(out, photo, self.styles, self.blend) for out, photo in pairs]
            self.latest = {name: sum(f[name] for f in each) / len(each) for name in FIGURES}
            if self.logger:
                self.logger.log_metrics({f"val/{k}": v for k, v in self.latest.items()}, step=step)
            self._append_row(step)
        grid = sample_grid(self.photos, self.outputs)
        try:
            save_image(grid, self.out_dir / "samples" / f"step_{step:06d}.png", rescue=False)
        except DiskFault as fault:
            log.warning("%s; the run goes on without this sample grid", fault)
        log_images(self.logger, {"val/samples": grid}, step=step)
        return self.latest

    def _append_row(self, step: int) -> None:
        """val.csv: the figures at every validation, for `nst compare` and a reader without W&B."""
        path = self.out_dir / "val.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", *FIGURES])
            writer.writerow([step, *(f"{self.latest[name]:.6g}" for name in FIGURES)])
