"""The Lightning module: one generated image, optimised against fixed content and style targets."""

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from nst.backbones import VGG
from nst.errors import NSTError
from nst.layers import layer_weights
from nst.losses import CONVENTIONS, content_loss, style_gram, style_loss, total_variation
from nst.targets import blend_weights, content_targets, style_targets

# The frozen backbone stays in eval mode on purpose; Lightning warns about that at every fit.
warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode at the start of training.*")

OptimizerFactory = Callable[[Iterable[Tensor]], torch.optim.Optimizer]


def check_loss_weights(
    content_weight: float, style_weight: float, tv_weight: float, tv_beta: float, convention: str
) -> None:
    """Reject weights that make no sense before any compute is spent."""
    if convention not in CONVENTIONS:
        raise NSTError(f"unknown loss.convention {convention!r}: choose one of {', '.join(CONVENTIONS)}")
    weights = {"content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight}
    for name, value in weights.items():
        if not isinstance(value, (int, float)) or value != value or value < 0:
            raise NSTError(f"loss.{name}={value!r} must be a number >= 0")
    if not isinstance(tv_beta, (int, float)) or not tv_beta > 0:
        raise NSTError(f"loss.tv_beta={tv_beta!r} must be a number > 0 (2 is the usual squared TV)")
    if content_weight == 0 and style_weight == 0:
        raise NSTError("loss.content_weight and loss.style_weight are both 0: nothing to optimise")


class NonFiniteLoss(NSTError):
    """The loss became NaN or infinite; the image of the last finite step has been restored."""


class StyleTransfer(pl.LightningModule):
    """Treats the generated image as the model's only parameter.

    The backbone is frozen and cut after its deepest used layer; the content
    features and (blended) style Grams are computed once when fitting starts, on
    the fitting device. Each training step is one optimiser step: for L-BFGS that
    is up to `max_iter` evaluations through the closure, for Adam one.
    """

    def __init__(
        self,
        encoder: VGG,
        content: Tensor,
        styles: Sequence[Tensor],
        init: Tensor,
        content_layers: Mapping[str, float],
        style_layers: Mapping[str, float],
        optimizer: OptimizerFactory,
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        tv_weight: float = 0.0,
        tv_beta: float = 2.0,
        convention: str = "jcjohnson",
        style_blend: Sequence[float] | None = None,
    ):
        super().__init__()
        self.automatic_optimization = False
        check_loss_weights(content_weight, style_weight, tv_weight, tv_beta, convention)
        self.content_layers = layer_weights(content_layers, encoder.arch, "content")
        self.style_layers = layer_weights(style_layers, encoder.arch, "style")
        self.layers = set(self.content_layers) | set(self.style_layers)
        self.encoder = encoder.trim(self.layers)
        self.weights = {"content": content_weight, "style": style_weight, "tv": tv_weight}
        self.tv_beta, self.convention = tv_beta, convention
        try:  # a bad setting (lr=fast) would otherwise surface only inside the Trainer
            optimizer([torch.zeros(1, requires_grad=True)])
        except (TypeError, ValueError) as exc:
            raise NSTError(f"cannot build optimizer.torch ({exc}): check the optimizer.torch.* settings") from None
        self.optimizer_factory = optimizer
        self.blend = blend_weights(len(styles), style_blend)

        self.image = nn.Parameter(init.detach().clone().contiguous())
        self.register_buffer("last_good", self.image.detach().clone(), persistent=False)
        self.register_buffer("content_image", content)
        self.style_images = list(styles)
        self.content_targets: dict[str, Tensor] = {}
        self.style_targets: dict[str, Tensor] = {}
        self.evaluations = 0
        self.last_terms: dict[str, Tensor] = {}

    def extra_repr(self) -> str:
        return (
            f"content={self.content_layers}, style={self.style_layers}, weights={self.weights}, "
            f"convention={self.convention}"
        )

    def on_fit_start(self) -> None:
        content_layers = set(self.content_layers)
        self.content_targets = content_targets(self.encoder, self.content_image, content_layers)
        styles = [s.to(self.device) for s in self.style_images]
        self.style_targets = style_targets(
            self.encoder, styles, self.blend, set(self.style_layers), lambda f: style_gram(f, self.convention)
        )

    def evaluate(self) -> dict[str, Tensor]:
        """Every loss term of the current image, per image of the batch: one encoder pass feeds them all."""
        features = self.encoder(self.image, self.layers)
        terms: dict[str, Tensor] = {}
        for name in self.content_layers:
            terms[f"content/{name}"] = content_loss(features[name], self.content_targets[name], self.convention)
        for name in self.style_layers:
            terms[f"style/{name}"] = style_loss(features[name], self.style_targets[name], self.convention)
        terms["content"] = sum(w * terms[f"content/{n}"] for n, w in self.content_layers.items())
        terms["style"] = sum(w * terms[f"style/{n}"] for n, w in self.style_layers.items())
        terms["tv"] = total_variation(self.image, self.tv_beta)
        terms["total"] = sum(self.weights[k] * terms[k] for k in ("content", "style", "tv"))
        return terms

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        optimizer = self.optimizers()

        def closure() -> Tensor:
            optimizer.zero_grad()
            terms = self.evaluate()
            total = terms["total"].sum()
            self.manual_backward(total)
            self.evaluations += 1
            self.last_terms = {k: v.detach() for k, v in terms.items()}
            return total

        self.last_good.copy_(self.image.detach())
        optimizer.step(closure=closure)
        if not bool(torch.isfinite(self.last_terms["total"]).all()):
            with torch.no_grad():
                self.image.copy_(self.last_good)
            raise NonFiniteLoss(
                f"the loss became {self.last_terms['total'].mean().item()} at step {self.global_step + 1}: "
                "lower the learning rate (optimizer.torch.lr) or the loss weights; the last good image is kept"
            )
        logged = {f"loss/{k}": v.mean() for k, v in self.last_terms.items()}
        logged["evaluations"] = float(self.evaluations)
        self.log_dict(logged, on_step=True, on_epoch=False, batch_size=1)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["evaluations"] = self.evaluations

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.evaluations = checkpoint["evaluations"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory([self.image])
