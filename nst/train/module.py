"""The Lightning module that trains a style network against the shared perceptual criterion.

Each step: a batch of photo crops goes through the network; the criterion compares
each output with its own photo's features (content) and with the style targets
computed once (style), plus total variation; Adam follows the mean over the batch.
A multi-style network (`network.styles` > 0) is told each crop's style and matched
to that style's targets. The loss network is frozen and left out of checkpoints
(its config rebuilds it). Under DDP each process takes its share of the batch and
the logged terms are the mean over all processes: the curve one process would give.
"""

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from nst.criterion import PerceptualLoss
from nst.errors import NSTError
from nst.fastpath import FastPath
from nst.train.network import one_hot

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class Stability:
    """Gupta, Johnson, Alahi & Fei-Fei 2017's remedy for flicker: the network should give nearly the same image for
    a photo and for the photo with a little noise. Adds weight · mean((f(x) − f(x + ε))²), ε ~ N(0, noise²) per
    pixel, drawn from (seed, step) so that a resumed run draws the same. Differs from the paper: noise only (they
    also analyse shifts), on the training crops, one noisy copy per crop."""

    weight: float = 0.0
    noise: float = 0.02
    seed: int = 0

    def term(self, network: Callable[[Tensor], Tensor], photos: Tensor, images: Tensor, step: int) -> Tensor:
        """Per image: weight times the mean squared change of the network's image under the noise."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        noisy = photos + self.noise * torch.randn(photos.shape, generator=generator).to(photos)
        return self.weight * (images - network(noisy)).pow(2).mean((1, 2, 3))


ScheduleFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class NonFiniteNetwork(NSTError):
    """The training loss became NaN or infinite: the network is lost from that step on."""


class StyleNetTraining(pl.LightningModule):
    """Trains `network` so that network(photo) minimises `criterion` for every photo."""

    def __init__(
        self,
        network: nn.Module,
        criterion: PerceptualLoss,
        styles: Sequence[Tensor],
        blend: Sequence[float],
        optimizer: OptimizerFactory,
        schedule: ScheduleFactory | None = None,
        fast: FastPath | None = None,
        stability: Stability | None = None,
    ):
        super().__init__()
        self.network, self.criterion = network, criterion
        self.style_images, self.blend = list(styles), list(blend)
        self.make_optimizer, self.make_schedule = optimizer, schedule
        self.fast = fast or FastPath()
        self.stability = stability or Stability()
        self.evaluations = 0  # training steps, the unit history.csv and the progress display count in
        self.last_terms: dict[str, Tensor] = {}
        self.good: tuple[int, dict[str, Tensor]] | None = None  # (step, weights on the CPU) at the last finite loss

    @property
    def conditional(self) -> int:
        """How many styles the network keeps apart (0: one style, or one blend, in its weights)."""
        return int(getattr(self.network, "styles", 0))

    def on_fit_start(self) -> None:
        fast = self.fast.for_device(self.device)
        if fast.channels_last:
            self.network.to(memory_format=torch.channels_last)
        encode = self.fast.encoder(self.criterion.encoder, self.device)
        if self.conditional:
            self.criterion.prepare_each(self.style_images, encode)
        else:
            self.criterion.prepare(self.style_images, self.blend, encode)

    def forward(self, photos: Tensor, style: Tensor | None = None) -> Tensor:
        """The network's images of `photos`; `style` (B,) picks a multi-style network's style per photo."""
        return self.network(photos, one_hot(style, self.conditional)) if self.conditional else self.network(photos)

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Every term of the criterion for a batch (nst/train/data.py's items), each a mean over the batch."""
        photos, style = batch["photos"], batch["style"]
        content = self.criterion.content_features(photos)
        targets = self.criterion.targets_of(style) if self.conditional else None
        images = self(photos, style)
        terms = self.criterion(images, content, targets)
        if self.stability.weight:
            terms["stability"] = self.stability.term(lambda x: self(x, style), photos, images, self.global_step)
            terms["total"] = terms["total"] + terms["stability"]
        return {name: value.mean() for name, value in terms.items()}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        terms = self.losses(batch)
        self.last_terms = self._over_processes({k: v.detach() for k, v in terms.items()})
        self.evaluations = self.global_step + 1
        return terms["total"]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """At every logged step (its terms reach the host then anyway) and the last, before the update: a non-finite
        loss ends the run (`NonFiniteNetwork`) without taking the step; a finite one keeps the weights it measured
        (those of the steps so far) as the last good ones."""
        done, trainer = self.trainer.global_step, self.trainer
        if (done + 1) % trainer.log_every_n_steps and done + 1 != trainer.max_steps:
            return
        total = float(self.last_terms["total"])
        if not math.isfinite(total):
            kept = f"; the network after step {self.good[0]} is kept as last_good.pt" if self.good else ""
            raise NonFiniteNetwork(f"the training loss became {total} at step {done + 1}: lower optimizer.lr or the "
                                   f"loss weights{kept}")  # fmt: skip
        self.good = (done, {k: v.detach().to("cpu", copy=True) for k, v in self.network.state_dict().items()})

    def _over_processes(self, terms: dict[str, Tensor]) -> dict[str, Tensor]:
        """The terms averaged over the DDP processes (one all-reduce), as is: one process."""
        if self.trainer.world_size == 1:
            return terms
        mean = self.trainer.strategy.reduce(torch.stack(list(terms.values())), reduce_op="mean")
        return dict(zip(terms, mean.unbind(), strict=True))

    def stylised(self, photo: Tensor) -> list[Tensor]:
        """The held-out `photo` (1, 3, H, W) as the network renders it: once per style it keeps apart, else once."""
        if not self.conditional:
            return [self(photo)]
        return [self(photo, torch.tensor([k], device=photo.device)) for k in range(self.conditional)]

    def judged_against(self) -> list[tuple[list[Tensor], list[float]]]:
        """The style (images, blend) each of `stylised`'s images is judged against."""
        if not self.conditional:
            return [(self.style_images, self.blend)]
        return [([style], [1.0]) for style in self.style_images]

    def terms_of(self, index: int = 0) -> dict[str, float]:
        """The last step's loss terms, as numbers (one device sync per logged step)."""
        values = torch.stack([v.float() for v in self.last_terms.values()]).tolist()
        return dict(zip(self.last_terms, values, strict=True))

    def start_terms_of(self, index: int = 0) -> None:
        """None: a training step is one evaluation, so step 1's row already is the start's loss."""
        return None

    def configure_optimizers(self) -> dict:
        optimizer = self.make_optimizer(self.network.parameters())
        if self.make_schedule is None:
            return {"optimizer": optimizer}
        schedule = {"scheduler": self.make_schedule(optimizer), "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    @property
    def style_weight(self) -> float:
        return float(self.criterion.weights["style"][0])

    def set_style_weight(self, weight: float) -> None:
        """The style weight the run trains with (`style_balance` chooses it before step 0; a resume reads it back)."""
        self.criterion.weights["style"] = [weight]
        if "style" in self.criterion.factors:
            self.criterion.factors["style"] = torch.tensor([weight], device=self.criterion.factors["style"].device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The frozen loss network is left out: the run's config rebuilds it. The style weight is kept: one that
        `style_balance` measured before step 0 cannot be measured again from a later network."""
        kept = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("criterion.encoder.")}
        checkpoint["state_dict"] = kept
        checkpoint["style_weight"] = self.style_weight

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.evaluations = int(checkpoint["global_step"])
        if "style_weight" in checkpoint:
            self.set_style_weight(float(checkpoint["style_weight"]))
        encoder = {f"criterion.encoder.{k}": v for k, v in self.criterion.encoder.state_dict().items()}
        checkpoint["state_dict"] = {**checkpoint["state_dict"], **encoder}


def inverse_time(optimizer: torch.optim.Optimizer, decay: float) -> torch.optim.lr_scheduler.LambdaLR:
    """lr_t = lr / (1 + decay · t): Huang & Belongie 2017's schedule (`schedule=inverse_time`)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + decay * step))
