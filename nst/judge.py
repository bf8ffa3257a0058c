"""One fixed yardstick for every run: quality figures under the caffe VGG-19 with max pooling.

Whatever backbone, layers and loss convention a run optimised, its final image is
measured here, so runs of different configs can be compared in one dashboard:

- content error: |F(x) − F(c)|² / |F(c)|² at relu4_2;
- style error: the mean over relu1_1 … relu5_1 of |G(x) − G(s)|² / |G(s)|², with
  Grams normalised by C H W (several style images blended as in the run).
"""

from collections.abc import Sequence

import torch
from torch import Tensor

from nst.backbones import VGG, backbone
from nst.losses import gram, relative_error
from nst.targets import style_targets

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def judge_network() -> VGG:
    """The judge's network: the process's caffe VGG-19, shared with runs whose backbone it is (`backbone`)."""
    return backbone("vgg19", weights="caffe", pooling="max", padding="zeros").trim((CONTENT_LAYER, *STYLE_LAYERS))


@torch.no_grad()
def quality(image: Tensor, content: Tensor, styles: Sequence[Tensor], blend: Sequence[float]) -> dict[str, float]:
    """The content and style errors of the first image of `image` (lower is better)."""
    net = judge_network().to(image.device)
    layers = (CONTENT_LAYER, *STYLE_LAYERS)
    features = net(image[:1].float().clamp(0, 1), layers)
    content_target = net(content.to(image.device), (CONTENT_LAYER,))[CONTENT_LAYER]
    grams = style_targets(net, [s.to(image.device) for s in styles], blend, STYLE_LAYERS, gram)
    style_errors = [relative_error(gram(features[name]), grams[name]) for name in STYLE_LAYERS]
    return {
        "content_error": relative_error(features[CONTENT_LAYER], content_target).item(),
        "style_error": torch.stack(style_errors).mean().item(),
    }
