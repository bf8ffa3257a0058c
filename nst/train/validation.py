"""Validation judged like every run: the held-out photos stylised every N steps and measured by the fixed judge.

The figures (`val/content_error`, `val/style_error`, `val/style_swd`) are the judge's
(nst/judge.py), averaged over the held-out photos, so a trained network and an
optimised image are compared on one scale. A network of several styles (or an
arbitrary-style decoder) renders each photo once per style, each judged against its
own style; the figures are then the mean over styles, and each style's own are kept
too (`val/style<k>/…`). Only the first process of a DDP training validates. Each
validation also writes a sample grid (photos above, the network's images below) and
logs the images to the logger.

The network kept is the best one validated after step 0 (`best`, a judged figure: the lowest;
`dominance` measures each validation against step 0's); with `patience`, a training whose
figure has not improved for that many validations in a row stops early. All three are part
of the checkpoint: a resumed run keeps its best and its step-0 figures.
"""

import csv
import logging
import math
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


def sample_grid(photos: Sequence[Tensor], outputs: Sequence[Sequence[Tensor]], height: int = 128) -> Tensor:
    """(1, 3, (1 + S)·height, W): each photo above its S stylised images, side by side, scaled to one height."""
    columns = []
    for photo, images in zip(photos, outputs, strict=True):
        h, w = photo.shape[-2:]
        size = (height, max(1, round(w * height / h)))
        column = [F.interpolate(i.float().cpu(), size=size, mode="bilinear", antialias=True) for i in (photo, *images)]
        columns.append(torch.cat(column, dim=2))
    return torch.cat(columns, dim=3).clamp(0, 1)


class Validation(pl.Callback):
    """Every `every` steps, at the start and at the end: the held-out photos through the network, judged and logged."""

    def __init__(
        self,
        photos: Sequence[Tensor],
        every: int,
        out_dir: Path,
        logger: Logger | bool,
        judge: bool = True,
        best: str = "error_sum",
        patience: int = 0,
    ):
        self.photos = list(photos)
        self.every, self.out_dir, self.logger, self.judge = every, Path(out_dir), logger, judge
        self.criterion, self.patience = best, patience
        self.latest: dict[str, float] = {}
        self.per_style: list[dict[str, float]] = []
        self.outputs: list[list[Tensor]] = []  # per held-out photo, its image per style
        self.best: dict = {}  # the best validation so far: its step, figures, per-style figures, outputs and weights
        self.start: dict[str, float] = {}  # the figures of step 0: what `dominance` measures against
        self.stale = 0  # validations since the best one

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.global_step == 0 and trainer.is_global_zero:
            self.validate(trainer, module)

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: object) -> None:
        step = trainer.global_step
        if ((self.every and step % self.every == 0) or step == trainer.max_steps) and trainer.is_global_zero:
            self.validate(trainer, module)

    @torch.no_grad()
    def validate(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict[str, float]:
        """The network's images of the held-out photos now, their figures logged and kept in `latest`."""
        step = trainer.global_step
        was_training = module.network.training
        module.network.eval()
        self.outputs = [[i.clamp(0, 1).cpu() for i in module.stylised(p.to(module.device))] for p in self.photos]
        module.network.train(was_training)
        if self.judge:
            self._judge(module.judged_against())
            if self.logger:
                per_style = {f"val/style{k}/{n}": v for k, f in enumerate(self.per_style) for n, v in f.items()}
                self.logger.log_metrics({**{f"val/{k}": v for k, v in self.latest.items()}, **per_style}, step=step)
            self._append_row(step)
            if step == 0:
                self.start = dict(self.latest)
            else:  # the untrained network is never the one to keep
                self._keep_best(trainer, module, step)
        grid = sample_grid(self.photos, self.outputs)
        try:
            save_image(grid, self.out_dir / "samples" / f"step_{step:06d}.png", rescue=False)
        except DiskFault as fault:
            log.warning("%s; the run goes on without this sample grid", fault)
        log_images(self.logger, {"val/samples": grid}, step=step)
        return self.latest

    def figure(self, figures: dict[str, float]) -> float:
        """The judged figure the best network is chosen by: one of the judge's, or
        error_sum = content error + style error, or
        dominance = max(content error / its step-0 value, style SWD / its step-0 value): the network that is
        furthest ahead of the one the training started from in its weaker figure, so that neither figure is
        bought with the other (a network fine-tuned from AdaIN's decoder starts at AdaIN's one pass)."""
        if self.criterion == "error_sum":
            return figures["content_error"] + figures["style_error"]
        if self.criterion == "dominance":
            return max(figures[k] / max(self.start[k], 1e-12) for k in ("content_error", "style_swd"))
        return figures[self.criterion]

    def _keep_best(self, trainer: pl.Trainer, module: pl.LightningModule, step: int) -> None:
        """The network of this validation kept if its figure is the lowest so far (NaN never is); else, with
        `patience`, the training stops once that many validations in a row did not improve it."""
        value = self.figure(self.latest)
        if math.isfinite(value) and (not self.best or value < self.best["value"]):
            weights = {k: v.detach().to("cpu", copy=True) for k, v in module.network.state_dict().items()}
            self.best = {"step": step, "value": value, "figures": dict(self.latest), "per_style": list(self.per_style),
                         "outputs": self.outputs, "weights": weights}  # fmt: skip
            self.stale = 0
            return
        self.stale += 1
        if self.patience and self.stale >= self.patience and step < trainer.max_steps:
            log.info("%s: %s has not improved for %d validations (best %.4g at step %d): stopping early",
                     self.out_dir, self.criterion, self.stale, self.best["value"], self.best["step"])  # fmt: skip
            trainer.should_stop = True

    def state_dict(self) -> dict:
        """The best network so far (how long since, and step 0's figures), so that a resumed training keeps it."""
        return {"best": dict(self.best), "stale": self.stale, "start": dict(self.start)}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.stale = dict(state.get("best") or {}), int(state.get("stale", 0))
        self.start = dict(state.get("start") or {})

    def _judge(self, against: Sequence[tuple[list[Tensor], list[float]]]) -> None:
        """`per_style`: each style's figures over the photos; `latest`: their mean over the styles."""
        self.per_style = []
        for k, (styles, blend) in enumerate(against):
            pairs = zip(self.outputs, self.photos, strict=True)
            each = [quality(images[k], photo, styles, blend) for images, photo in pairs]
            self.per_style.append({name: sum(f[name] for f in each) / len(each) for name in FIGURES})
        self.latest = {name: sum(f[name] for f in self.per_style) / len(self.per_style) for name in FIGURES}
        if len(self.per_style) == 1:
            self.per_style = []

    def _append_row(self, step: int) -> None:
        """val.csv: the figures at every validation, for `nst compare` and a reader without W&B; then, with several
        styles, each style's (`style<k>_<figure>`)."""
        path = self.out_dir / "val.csv"
        new = not path.is_file()
        each = [(f"style{k}_{name}", f[name]) for k, f in enumerate(self.per_style) for name in FIGURES]
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", *FIGURES, *(column for column, _ in each)])
            writer.writerow([step, *(f"{self.latest[name]:.6g}" for name in FIGURES), *(f"{v:.6g}" for _, v in each)])


def read_validations(run_dir: Path) -> list[dict[str, float]]:
    """A run's val.csv as `Validation` wrote it: every validation's figures as numbers, step 0 first."""
    with open(run_dir / "val.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
