"""VGG layer names: the paper's names (`conv4_2`, `relu4_2`, `pool3`) and Keras aliases.

Keras' `block4_conv2` is a convolution *with its ReLU fused in*, so its output is
our `relu4_2`; the alias maps there. Note that Gatys et al. read caffe blobs whose
ReLUs ran in place, so their "conv" features were in fact post-ReLU too.
"""

import math
import re
from collections.abc import Iterable, Mapping

from nst.errors import NSTError

# Convolutions per block, from Simonyan & Zisserman (2015), Table 1 (D and E).
BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}

_KERAS_CONV = re.compile(r"^block(\d)_conv(\d)$")
_KERAS_POOL = re.compile(r"^block(\d)_pool$")


def layer_names(arch: str) -> list[str]:
    """All layer names of `arch` in forward order."""
    if arch not in BLOCKS:
        raise NSTError(f"unknown backbone arch {arch!r}: choose one of {', '.join(BLOCKS)}")
    names = []
    for block, convs in enumerate(BLOCKS[arch], start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def min_side(names: Iterable[str], arch: str) -> int:
    """The smallest image side whose deepest layer of `names` still has a pixel: 2 to the pools up to it."""
    order = layer_names(arch)
    last = max(order.index(canonical(name, arch)) for name in names)
    return 2 ** sum(name.startswith("pool") for name in order[: last + 1])


def canonical(name: str, arch: str) -> str:
    """The paper name of `name` (accepting Keras aliases), or an error listing valid names."""
    valid = layer_names(arch)
    if (m := _KERAS_CONV.match(name)) is not None:
        name = f"relu{m[1]}_{m[2]}"
    elif (m := _KERAS_POOL.match(name)) is not None:
        name = f"pool{m[1]}"
    if name not in valid:
        raise NSTError(
            f"unknown layer {name!r} for {arch}: valid names are {', '.join(valid)} "
            "(Keras names such as block4_conv2 are accepted too)"
        )
    return name


def layer_weights(weights: Mapping[str, float], arch: str, role: str) -> dict[str, float]:
    """Validate a `{layer: weight}` mapping from the config and canonicalise its names."""
    if not weights:
        raise NSTError(f"the {role} layer set is empty: name at least one layer, e.g. layers.{role}.relu4_2=1")
    out: dict[str, float] = {}
    for name, weight in weights.items():
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise NSTError(f"{role} layer {name}: weight {weight!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise NSTError(f"{role} layer {name}: weight {weight} must be a finite number >= 0")
        out[canonical(str(name), arch)] = weight
    return out


def config_layers(layers: Mapping, arch: str) -> tuple[dict[str, float], dict[str, float]]:
    """The `layers` config node's content and style sets, each validated and canonical."""
    content = layer_weights(layers.get("content") or {}, arch, "content")
    return content, layer_weights(layers.get("style") or {}, arch, "style")
