"""The perceptual loss: content, style and total variation of images, as one module both branches use.

Optimising an image (nst/module.py) and training a network (nst/train/) minimise the
same criterion; only where the images come from differs. The criterion holds the
frozen loss network cut after its deepest used layer, the style statistic, the
style targets (buffers, computed once on the fitting device) and each image's
weights, and returns every term per image, ready to log:

    content/<layer>, style/<layer>   each layer's term (nst/losses.py, nst/statistics.py)
    content, style                   their layer-weighted sums
    tv                               total variation of the image
    total                            content_weight * content + style_weight * style + tv_weight * tv

Content targets are either fixed (`set_content`: one content image, image optimisation)
or given with each call (`content_features`: the batch's own photos, training). Style
targets are one blend (`prepare`), one per style picked per image (`prepare_each`,
a multi-style network) or each image's own (`style_features`, arbitrary styles).
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nst.backbones import VGG
from nst.fastpath import Encode
from nst.losses import Convention, content_loss, total_variation
from nst.statistics import Gram, StyleStatistic
from nst.targets import content_targets


@dataclass(frozen=True)
class LossWeights:
    """How much each term and layer counts, per image: each value is a list of B weights (one for a network)."""

    content: list[float]
    style: list[float]
    tv: list[float]
    content_layers: dict[str, list[float]]
    style_layers: dict[str, list[float]]

    @classmethod
    def of(cls, runs: Sequence[tuple[Mapping, Mapping[str, float], Mapping[str, float]]]) -> "LossWeights":
        """From each image's (`loss` config, content layers, style layers), layers over the union of all images'."""
        losses = [loss for loss, _, _ in runs]
        return cls(
            content=[loss["content_weight"] for loss in losses],
            style=[loss["style_weight"] for loss in losses],
            tv=[loss["tv_weight"] for loss in losses],
            content_layers=_union([content for _, content, _ in runs]),
            style_layers=_union([style for _, _, style in runs]),
        )


def _union(values: Sequence[Mapping[str, float]]) -> dict[str, list[float]]:
    """`{layer: weight}` of each image -> `{layer: [weight of image 1, …]}`, 0 where an image has no such layer."""
    names = list(dict.fromkeys(name for value in values for name in value))
    return {name: [value.get(name, 0.0) for value in values] for name in names}


class PerceptualLoss(nn.Module):
    """Every loss term of a batch of images against the style targets and content features, one value per image."""

    def __init__(
        self,
        encoder: VGG,
        weights: LossWeights,
        statistic: StyleStatistic | None = None,
        convention: Convention = "jcjohnson",
        tv_beta: float = 2.0,
    ):
        """`statistic`: what the style term matches (default the Gram under `convention`, which also normalises the
        content term); `tv_beta`: the exponent of total variation."""
        super().__init__()
        self.content_layers, self.style_layers = weights.content_layers, weights.style_layers
        self.layers = set(self.content_layers) | set(self.style_layers)
        self.encoder = encoder.trim(self.layers)
        self.encoder.requires_grad_(False)
        self.weights = {"content": weights.content, "style": weights.style, "tv": weights.tv}
        self.statistic = statistic or Gram(convention)
        self.convention, self.tv_beta = convention, tv_beta
        self._encode: Encode | None = None  # the encoder on the fast path (nst/fastpath.py), set by `prepare`
        self.factors: dict[str, Tensor] = {}

    def extra_repr(self) -> str:
        return (
            f"content={self.content_layers}, style={self.style_layers}, weights={self.weights}, "
            f"statistic={type(self.statistic).__name__}, convention={self.convention}"
        )

    def encode(self, image: Tensor, layers: Collection[str]) -> dict[str, Tensor]:
        """Features of `image` at `layers`, in fp32, through the fast path once `prepare` has set it up."""
        return (self._encode or self.encoder)(image, layers)

    def prepare(self, styles: Sequence[Tensor], blend: Sequence[float], encode: Encode | None = None) -> None:
        """The style targets (one blend of `styles`) and the weights, on the criterion's device: once per fit."""
        self._encode = encode
        device = next(self.encoder.parameters()).device
        styles = [s.to(device) for s in styles]
        self._keep_targets(self.statistic.targets(self.encode, styles, blend, set(self.style_layers)), device)

    def prepare_each(self, styles: Sequence[Tensor], encode: Encode | None = None) -> None:
        """One set of style targets per style, stacked (N, …): each image is matched to its own (`targets_of`)."""
        self._encode = encode
        device = next(self.encoder.parameters()).device
        each = [self.statistic.targets(self.encode, [s.to(device)], [1.0], set(self.style_layers)) for s in styles]
        self._keep_targets({name: torch.cat([targets[name] for targets in each]) for name in each[0]}, device)

    def _keep_targets(self, targets: Mapping[str, Tensor], device: torch.device) -> None:
        for name, target in targets.items():
            self.register_buffer(f"style_target_{name}", target, persistent=False)
        per_image = {**self.weights, **{f"content/{n}": w for n, w in self.content_layers.items()}}
        per_image.update({f"style/{n}": w for n, w in self.style_layers.items()})
        self.factors = {k: torch.tensor(w, device=device) for k, w in per_image.items()}

    def targets_of(self, index: Tensor) -> dict[str, Tensor]:
        """Each image's style targets, (B, …), picked by style index from those of `prepare_each`."""
        return {name: self.get_buffer(f"style_target_{name}")[index] for name in self.style_layers}

    @torch.no_grad()
    def style_features(self, styles: Tensor, features: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Each image of a batch of styles (B, 3, H, W) as its own target, (B, …): arbitrary-style training.

        `features`: the styles' features at the style layers, where the caller has encoded them already.
        """
        encode = self.encode if features is None else lambda _image, layers: {n: features[n] for n in layers}
        return self.statistic.targets(encode, [styles], [1.0], set(self.style_layers))

    def set_content(self, content: Tensor) -> None:
        """Fix the content targets to one image's features (image optimisation)."""
        for name, target in self.content_features(content).items():
            self.register_buffer(f"content_target_{name}", target, persistent=False)

    def content_features(self, content: Tensor) -> dict[str, Tensor]:
        """The content layers' features of `content`, without gradients: the targets of a batch's photos."""
        return content_targets(self.encode, content, set(self.content_layers))

    def forward(
        self, image: Tensor, content: Mapping[str, Tensor] | None = None, style: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Every loss term of `image` (B, 3, H, W), one value per image: one encoder pass feeds them all.

        `content`: the content features to match (from `content_features`); default the fixed ones of `set_content`.
        `style`: each image's own style targets (`targets_of`, `style_features`); default the one blend of `prepare`.
        """
        features = self.encode(image, self.layers)
        terms: dict[str, Tensor] = {}
        for name in self.content_layers:
            target = content[name] if content is not None else self.get_buffer(f"content_target_{name}")
            terms[f"content/{name}"] = content_loss(features[name], target, self.convention)
        for name in self.style_layers:
            target = style[name] if style is not None else self.get_buffer(f"style_target_{name}")
            terms[f"style/{name}"] = self.statistic.loss(features[name], target)
        for kind, layers in (("content", self.content_layers), ("style", self.style_layers)):
            terms[kind] = sum(self.factors[f"{kind}/{n}"] * terms[f"{kind}/{n}"] for n in layers)
        weighed = ("content", "style", "tv") if any(self.weights["tv"]) else ("content", "style")
        # TV that no image weighs (the default) is still reported, but kept out of the graph: no backward pass for it.
        with torch.set_grad_enabled(torch.is_grad_enabled() and "tv" in weighed):
            terms["tv"] = total_variation(image, self.tv_beta)
        terms["total"] = sum(self.factors[k] * terms[k] for k in weighed)
        return terms
