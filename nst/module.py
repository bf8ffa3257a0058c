"""The Lightning module: generated images, optimised against fixed content and style targets.

The module optimises B images at once (B = 1 for a single run) that share the
content, the style, the image size and the backbone; each image has its own loss
and layer weights (`LossWeights`, tensors of B values) and its own optimizer
state. The images share each forward pass and never influence each other: every
loss is per image, and so is every optimizer statistic (nst/lbfgs.py).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from nst.checkpoints import Stage
from nst.criterion import PerceptualLoss
from nst.errors import NSTError
from nst.fastpath import FastPath
from nst.lbfgs import restarted_runs, written_by_batched_lbfgs

# Builds the optimizer over the images; its flag says whether L-BFGS may take its compact form (nst/lbfgs.py).
OptimizerBuilder = Callable[[Sequence[Tensor], bool], torch.optim.Optimizer]


class NonFiniteLoss(NSTError):
    """The loss became NaN or infinite; the run's lowest-loss image has been restored."""


class StyleTransfer(pl.LightningModule):
    """Treats the generated images as the model's only parameters.

    The loss is the shared perceptual criterion (nst/criterion.py); its content
    targets (this run's one content image) and style targets are computed once when
    fitting starts, on the fitting device. Each training step is one optimiser step:
    for L-BFGS that is up to `max_iter` evaluations through the closure, for Adam one.
    """

    def __init__(
        self,
        criterion: PerceptualLoss,
        content: Tensor,
        styles: Sequence[Tensor],
        init: Sequence[Tensor],
        optimizer: OptimizerBuilder,
        blend: Sequence[float] = (1.0,),
        fast: FastPath | None = None,
        stage: Stage | None = None,
        failed: Mapping[int, str] | None = None,
    ):
        """`criterion`: the perceptual loss, one weight per image (nst/criterion.py); `init`: each image's start;
        `stage`: where this fit sits in a coarse-to-fine run; `failed`: images whose loss became NaN in an earlier
        stage, with why (they stay at their lowest-loss image)."""
        super().__init__()
        self.automatic_optimization = False
        self.criterion = criterion
        self.fast = fast or FastPath()
        self._compact_lbfgs: bool | None = None  # set by a checkpoint: the L-BFGS that wrote its history
        self.stage = stage or Stage()
        self.make_optimizer = optimizer
        self.blend = list(blend)

        self.images = nn.ParameterList([nn.Parameter(image.detach().clone().contiguous()) for image in init])
        # Each image's lowest-loss state evaluated in this fit: where a stuck L-BFGS run restarts, a failed one stays.
        self.register_buffer("best", self.image.detach().clone(), persistent=False)
        self.register_buffer("best_loss", torch.full((len(init),), torch.inf), persistent=False)
        self.failures: dict[int, str] = dict(failed or {})
        frozen = torch.zeros(len(init), dtype=torch.bool)
        frozen[sorted(self.failures)] = True
        self.register_buffer("frozen", frozen, persistent=False)
        self.register_buffer("content_image", content)
        self.style_images = list(styles)
        self.evaluations = 0
        self.last_terms: dict[str, Tensor] = {}
        self.start_terms: dict[str, Tensor] = {}  # the fit's first evaluation: the start image's loss, logged at step 0
        self._terms_on_host: tuple[int, list[list[float]]] = (-1, [])  # (evaluation, terms x images)

    @property
    def image(self) -> Tensor:
        """The generated images, (B, 3, H, W); for one image, the parameter itself."""
        return self.images[0] if len(self.images) == 1 else torch.cat(list(self.images))

    def extra_repr(self) -> str:
        return f"images={len(self.images)}"

    def on_fit_start(self) -> None:
        self.best.copy_(self.image.detach())  # a resumed run's image, restored by Lightning before this hook
        self.best_loss.fill_(torch.inf)
        encode = self.fast.encoder(self.criterion.encoder, self.device)
        self.criterion.prepare(self.style_images, self.blend, encode)
        self.criterion.set_content(self.content_image)

    def evaluate(self) -> dict[str, Tensor]:
        """Every loss term of the current images, one value per image."""
        return self.criterion(self.image)

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        optimizer = self.optimizers()

        def closure() -> Tensor:
            optimizer.zero_grad()
            terms = self.evaluate()
            total = torch.where(self.frozen, 0.0, terms["total"])
            self.manual_backward(total.sum())
            self._remember_best(torch.where(self.frozen, torch.inf, terms["total"].detach()))
            self.evaluations += 1
            self.last_terms = {k: v.detach() for k, v in terms.items()}
            if self.global_step == 0 and not self.start_terms:
                self.start_terms = self.last_terms
            return total.detach()

        optimizer.step(closure=closure)
        restarted = restarted_runs(optimizer.optimizer)  # images whose L-BFGS history was forgotten
        if restarted is not None:
            self._back_to_best(restarted)
        broken = ~torch.isfinite(self.last_terms["total"]) | self.frozen  # global_step now counts this step
        if bool(broken.any()):
            self._keep_best(broken)

    def on_train_end(self) -> None:
        """Measure the images the fit leaves, and put back its lowest-loss image in any run they made worse.

        Neither optimiser evaluates its last move: torch's LBFGS stops right after it, Adam
        never evaluates where its step lands. Without a line search that move can blow the
        loss up (benchmarks/results.md). One more pass makes `last_terms`, and so metrics.json,
        the terms of the image saved as final.png. It builds its graph as the steps' passes do,
        unused: a pass without gradients would make torch.compile compile the backbone again.
        """
        if self.trainer.global_step < self.trainer.max_steps:  # interrupted: its checkpoint holds these images
            return
        terms = self.evaluate()
        worse = ~(terms["total"] <= self.best_loss) & ~self.frozen  # NaN counts as worse
        if bool(worse.any()):
            self._back_to_best(worse)
            terms = self.evaluate()
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        self._terms_on_host = (-1, [])

    def on_fit_end(self) -> None:
        """A fit of no steps (`optimizer.steps=0`) evaluated nothing: its start image is its result, measured here."""
        if not self.last_terms:
            with torch.no_grad():
                self.last_terms = self.start_terms = self.evaluate()

    @torch.no_grad()
    def _remember_best(self, loss: Tensor) -> None:
        """Keep each run's lowest-loss image so far, on the device (no sync), for `_back_to_best`."""
        better = loss < self.best_loss
        self.best_loss.copy_(torch.where(better, loss, self.best_loss))
        self.best.copy_(torch.where(better[:, None, None, None], self.image.detach(), self.best))

    @torch.no_grad()
    def _back_to_best(self, restarted: Tensor) -> None:
        """A run whose L-BFGS history was just forgotten starts again from its best image, not from where it stuck.

        Without a line search, the step that got a run stuck may have blown its loss up
        by twenty orders of magnitude; restarting there lets the next steps blow it up
        further (measured in benchmarks/results.md).
        """
        for index, image in enumerate(self.images):
            image.copy_(torch.where(restarted[index], self.best[index : index + 1], image))

    @torch.no_grad()
    def _keep_best(self, broken: Tensor) -> None:
        """Runs whose loss became NaN/inf go back to their lowest-loss image and stay there.

        Not to the image the step started from: for Adam that is the very image whose
        loss was not finite, and for L-BFGS it may be.
        """
        for index in broken.nonzero().flatten().tolist():
            self.images[index].copy_(self.best[index : index + 1])
            if not self.frozen[index]:
                value = self.last_terms["total"][index].item()
                self.failures[index] = (
                    f"the loss became {value} at step {self.global_step}: lower the learning rate "
                    "(optimizer.torch.lr) or the loss weights; its lowest-loss image is kept as last_good.png"
                )
        self.frozen |= broken
        if bool(self.frozen.all()):
            raise NonFiniteLoss(self.failures[min(self.failures)])

    def terms_of(self, index: int) -> dict[str, float]:
        """The last evaluation's loss terms of image `index`, as numbers.

        Every image's logger and history read these each step: the terms of all images
        come to the host once per evaluation (one device sync), not once per reader.
        """
        if self._terms_on_host[0] != self.evaluations:
            values = torch.stack([v.float() for v in self.last_terms.values()]).tolist()
            self._terms_on_host = (self.evaluations, values)
        rows = self._terms_on_host[1]
        return {name: row[index] for name, row in zip(self.last_terms, rows, strict=True)}

    def start_terms_of(self, index: int) -> dict[str, float] | None:
        """The loss terms of image `index` at its start, where the first step made several evaluations (L-BFGS's
        large early drop); None after one (Adam's step 1 already is the start image's loss)."""
        if not self.start_terms or self.evaluations <= 1:
            return None
        return {name: float(values[index]) for name, values in self.start_terms.items()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The frozen encoder is left out: its config reloads it, and each image's share can resume alone."""
        checkpoint["evaluations"] = self.evaluations
        checkpoint["stage"] = asdict(self.stage)
        kept = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("criterion.encoder.")}
        checkpoint["state_dict"] = kept

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Lightning calls this before loading the state and `configure_optimizers`.

        The encoder's weights come from this run's own (trimmed) encoder, and a resumed
        run keeps the kind of L-BFGS state it was saved with.
        """
        self.evaluations = checkpoint["evaluations"]
        encoder = {f"criterion.encoder.{k}": v for k, v in self.criterion.encoder.state_dict().items()}
        checkpoint["state_dict"] = {**checkpoint["state_dict"], **encoder}
        saved = (checkpoint.get("optimizer_states") or [{}])[0].get("state", {})
        if saved:  # a run interrupted on a GPU may resume on a CPU, whose `auto` would pick the other one
            self._compact_lbfgs = written_by_batched_lbfgs(saved)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        compact = self._compact_lbfgs
        if compact is None:
            compact = bool(self.fast.for_device(self.device).compact_lbfgs)
        return self.make_optimizer(list(self.images), compact)
