"""A third branch and a third network kind, defined outside nst/, as a researcher would add them.

`Inversion` (Mahendran & Vedaldi 2015, "Understanding deep image representations by
inverting them"): an image drawn from noise until the loss network's features at one
layer match the content photo's. It plugs into nst's run lifecycle (nst/lifecycle.py)
with its own steps only. `TinyNet` is a network kind of one convolution.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger
from torch import Tensor, nn
from torch.utils.data import DataLoader

from nst import lifecycle
from nst.backbones import VGG
from nst.checkpoints import RESUME_CHECKPOINT, Interrupted
from nst.errors import NSTError
from nst.images import load_image, save_image
from nst.runs import Job, RunSignals


def check_inversion(cfg: DictConfig, overrides: Sequence[str] = (), described: bool = True) -> None:
    if not (isinstance(cfg.steps, int) and cfg.steps >= 1):
        raise NSTError(f"steps={cfg.steps!r} must be an integer >= 1")


class Inverted(pl.LightningModule):
    """The image as the module's parameter; its loss, the features' mean squared error at `layer`."""

    def __init__(self, encoder: VGG, photo: Tensor, layer: str, lr: float, seed: int):
        super().__init__()
        self.encoder, self.layer, self.lr = encoder.requires_grad_(False), layer, lr
        self.register_buffer("photo", photo)
        self.image = nn.Parameter(torch.rand(photo.shape, generator=torch.Generator().manual_seed(seed)))
        self.evaluations, self.loss = 0, torch.zeros(())

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        target = self.encoder(self.photo, [self.layer])[self.layer]
        loss = nn.functional.mse_loss(self.encoder(self.image, [self.layer])[self.layer], target)
        self.loss, self.evaluations = loss.detach(), self.evaluations + 1
        return loss

    def terms_of(self, index: int = 0) -> dict[str, float]:
        return {"total": float(self.loss)}

    def start_terms_of(self, index: int = 0) -> None:
        return None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([self.image], lr=self.lr)


@dataclass
class Prepared:
    module: Inverted
    photo: Tensor

    @property
    def logged(self) -> dict[str, Tensor]:
        return {"content": self.photo}


class InversionBranch:
    kind = "inversion"

    def check(self, job: Job) -> None:
        check_inversion(job.cfg, job.overrides)

    def prepare(self, jobs: Sequence[Job], encoder: VGG) -> Prepared:
        cfg = jobs[0].cfg
        photo = load_image(cfg.content, int(cfg.size))
        return Prepared(Inverted(encoder, photo, cfg.layer, float(cfg.lr), int(cfg.seed)), photo)

    def fit(self, jobs: Sequence[Job], loggers: Sequence[Logger | bool], prepared: Prepared, resume: Path | None,
            signals: RunSignals) -> pl.Trainer:  # fmt: skip
        cfg, out_dir = jobs[0].cfg, jobs[0].out_dir
        callbacks = lifecycle.recorders(loggers, [out_dir / "history.csv"], out_dir / RESUME_CHECKPOINT, signals, None)
        trainer = lifecycle.trainer(pl.Trainer, out_dir, callbacks, 1, max_steps=int(cfg.steps), accelerator="cpu",
                                    enable_checkpointing=False, enable_progress_bar=False,
                                    enable_model_summary=False)  # fmt: skip
        lifecycle.fit(trainer, prepared.module, DataLoader(range(int(cfg.steps)), batch_size=None), resume, signals)
        if signals.received is not None:
            raise Interrupted(signals.received, trainer.global_step, int(cfg.steps), [out_dir])
        return trainer

    def outputs(self, jobs: Sequence[Job], loggers: Sequence[Logger | bool], prepared: Prepared, fitted: pl.Trainer
                ) -> list[dict[str, Any]]:  # fmt: skip
        save_image(prepared.module.image.detach().clamp(0, 1), jobs[0].out_dir / "inverted.png")
        return [{"status": "finished", "loss": float(prepared.module.loss), **lifecycle.device_figures(fitted)}]


class TinyNet(nn.Module):
    """A network kind of one 3x3 convolution: a photo in, an image of its size out."""

    def __init__(self, width: int = 3, styles: int = 1):
        super().__init__()
        self.settings = {"width": width}
        self.conv = nn.Conv2d(3, 3, width, padding=width // 2, padding_mode="reflect")

    def forward(self, photo: Tensor) -> Tensor:
        return photo + self.conv(photo)
