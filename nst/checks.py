"""Every check of a job's config, run before anything starts: no logger, output file or network is touched first.

Each bad value is one `NSTError` naming the key, what it must be and how to fix it.
The checks read the config only (and whether the files it names exist); reading
those files is the pipeline's next step, which has checks of its own (an image it
cannot decode, weights of the wrong shape).
"""

from pathlib import Path
from typing import Any

import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, ListConfig

from nst import colour
from nst.backbones import check_backbone
from nst.configs import build
from nst.errors import NSTError
from nst.images import check_init
from nst.layers import layer_weights
from nst.losses import CONVENTIONS
from nst.targets import blend_weights


def check_job(cfg: DictConfig) -> None:
    """Refuse a job's bad settings, each with the one line that says how to fix it."""
    check_numbers(cfg)
    check_loss(cfg.loss)
    check_backbone(cfg.backbone.arch, cfg.backbone.weights, cfg.backbone.pooling, cfg.backbone.padding)
    for role in ("content", "style"):
        layer_weights(cfg.layers.get(role) or {}, cfg.backbone.arch, role)
    check_init(cfg.init)
    check_optimizer(cfg.optimizer)
    build(cfg.speed, "speed")
    if cfg.colour not in (None, *colour.MODES):
        raise NSTError(f"colour={cfg.colour!r}: choose luminance, histogram or null")
    image_paths(cfg.content, "content")
    blend_weights(len(image_paths(cfg.style, "style")), cfg.style_blend)


def number(node: Any, key: str, kind: type, minimum: float, prefix: str = "", maximum: float | None = None) -> Any:
    """A numeric setting, or one line saying which key is wrong and what it must be."""
    value = node.get(key)
    try:
        result = kind(value)
    except (TypeError, ValueError):
        raise NSTError(f"{prefix}{key}={value!r} is not a number") from None
    what = "an integer" if kind is int else "a number"
    if result != float(value) or not result >= minimum:
        raise NSTError(f"{prefix}{key}={value!r} must be {what} >= {minimum:g}")
    if maximum is not None and result > maximum:
        raise NSTError(f"{prefix}{key}={value!r} must be {what} between {minimum:g} and {maximum:g}")
    return result


def check_numbers(cfg: DictConfig) -> None:
    """The counts and sizes of a run: steps, seed, image sizes, logging intervals, noise share."""
    number(cfg.optimizer, "steps", int, 1, "optimizer.")
    number(cfg, "seed", int, 0)
    number(cfg.image, "size", int, 1, "image.")
    number(cfg.image, "style_scale", float, 1e-6, "image.")
    for i, size in enumerate(cfg.image.get("scales") or []):
        number({f"scales[{i}]": size}, f"scales[{i}]", int, 1, "image.")
    number(cfg, "log_every", int, 1)
    number(cfg, "snapshot_every", int, 0)
    number(cfg, "init_noise", float, 0, maximum=1)


def check_loss(loss: DictConfig) -> None:
    """Weights that make no sense, and conventions nst does not know."""
    if loss.convention not in CONVENTIONS:
        raise NSTError(f"unknown loss.convention {loss.convention!r}: choose one of {', '.join(CONVENTIONS)}")
    for name in ("content_weight", "style_weight", "tv_weight"):
        value = loss[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
            raise NSTError(f"loss.{name}={value!r} must be a number >= 0")
    if isinstance(loss.tv_beta, bool) or not isinstance(loss.tv_beta, int | float) or not loss.tv_beta > 0:
        raise NSTError(f"loss.tv_beta={loss.tv_beta!r} must be a number > 0 (2 is the usual squared TV)")
    if loss.content_weight == 0 and loss.style_weight == 0:
        raise NSTError("loss.content_weight and loss.style_weight are both 0: nothing to optimise")


def check_optimizer(optimizer: DictConfig) -> None:
    """`optimizer.torch` builds a torch optimizer: a bad setting (lr=fast) would otherwise surface in the Trainer."""
    factory = build(optimizer.torch, "optimizer.torch")
    try:
        factory([torch.zeros(1, requires_grad=True)])
    except (TypeError, ValueError) as exc:
        raise NSTError(f"cannot build optimizer.torch ({exc}): check the optimizer.torch.* settings") from None


def image_paths(value: object, key: str) -> list[str]:
    """One path or a list of paths from the config, resolved against the directory nst was started in."""
    items = list(value) if isinstance(value, ListConfig) else [value]
    if not items:
        raise NSTError(f"{key} is an empty list: give at least one image")
    paths = [to_absolute_path(str(p)) for p in items]
    for path in paths:
        if not Path(path).is_file():
            raise NSTError(f"image {path} does not exist or is not a file: check the path")
    return paths


def check_image_sizes(images: dict[str, torch.Tensor], minimum: int) -> None:
    """Each loaded image is at least as large as the deepest layer needs (`minimum` px a side)."""
    for what, image in images.items():
        if min(image.shape[-2:]) < minimum:
            raise NSTError(
                f"{what} is {image.shape[-1]}x{image.shape[-2]} px, smaller than the {minimum} px the deepest "
                f"layer needs: raise image.size (or image.style_scale), or use shallower layers"
            )
