"""The network kinds `nst train` trains and `nst stylize` runs, registered in one place.

A kind is its network class, the Lightning module that trains it, and what it needs:
a new kind is its class, `conf/network/NAME.yaml` (whose `_target_` names the class)
and one `register` line. model.pt names its kind by the registered name, never by an
import path: a model file cannot make nst import or run anything. Everything that
differs between kinds (the data a training reads, the inputs of `nst stylize`, how a
model file is rebuilt) asks the kind, not the class.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from nst.adain import AdaINDecoder
from nst.errors import NSTError
from nst.train.decoder import DecoderTraining
from nst.train.module import StyleNetTraining
from nst.train.network import TransformNet
from nst.train.styled_decoder import StyledDecoder, StyledDecoderTraining


@dataclass(frozen=True)
class NetworkKind:
    """`network`: the class (`settings`, its attribute, rebuilds it as keyword arguments); `training`: the module
    that trains it; `any_style`: it takes the style as an input (a style folder to train, `style=` to stylise)
    rather than keeping fixed styles in its weights; `takes_styles`: its class is told how many style images the
    run has (`styles=N`: a conditional network keeps them apart); `rebuilt`: settings a model file's own cannot
    change (the decoder's weights come from the file, never from a path it names)."""

    name: str
    network: type[nn.Module]
    training: type[StyleNetTraining]
    any_style: bool = False
    takes_styles: bool = False
    rebuilt: Mapping[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """The `_target_` a config names the class by."""
        return f"{self.network.__module__}.{self.network.__qualname__}"


KINDS: dict[str, NetworkKind] = {}


def register(kind: NetworkKind) -> NetworkKind:
    """Make `kind` known by its name (model files) and its class (configs, trained networks)."""
    KINDS[kind.name] = kind
    return kind


register(NetworkKind("johnson", TransformNet, StyleNetTraining, takes_styles=True))
register(NetworkKind("adain_decoder", AdaINDecoder, DecoderTraining, any_style=True,
                     rebuilt={"start": "scratch"}))  # fmt: skip
register(NetworkKind("adain_style", StyledDecoder, StyledDecoderTraining, rebuilt={"start": "scratch"}))


def kind_of_config(node: Mapping[str, Any]) -> NetworkKind:
    """The kind a `network` config builds, from its `_target_`; one line naming the kinds if none."""
    target = str(node.get("_target_"))
    for kind in KINDS.values():
        if kind.target == target:
            return kind
    raise NSTError(f"network._target_={target} is no registered network kind ({', '.join(KINDS)}): register its "
                   "class in nst/train/kinds.py, or pick network=johnson, adain_decoder or adain_style")  # fmt: skip


def kind_of(network: nn.Module) -> NetworkKind:
    """The kind of a built network."""
    for kind in KINDS.values():
        if type(network) is kind.network:
            return kind
    raise NSTError(f"{type(network).__name__} is no registered network kind ({', '.join(KINDS)})")


def kind_named(name: object, where: str) -> NetworkKind:
    """The kind a model file names; one line saying `where` names an unknown one."""
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise NSTError(f"{where} names the network kind {name!r}, which this nst does not know ({', '.join(KINDS)})")
    return kind
