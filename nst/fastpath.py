"""The GPU fast path: settings that make a step cheaper without changing what it computes.

Each setting is `auto` (on where it is known to be safe and to pay: CUDA devices),
`true` or `false`. The Gram matrices and every loss stay in fp32 whatever the
backbone runs in: the features leave the encoder as fp32.
"""

from collections.abc import Callable, Collection
from dataclasses import dataclass

import torch
from torch import Tensor

from nst.errors import NSTError

Setting = bool | str
Encode = Callable[[Tensor, Collection[str]], dict[str, Tensor]]


def _on(name: str, value: Setting, device: torch.device) -> bool:
    if value == "auto":
        return device.type == "cuda"
    if isinstance(value, bool):
        return value
    raise NSTError(f"speed.{name}={value!r}: choose auto, true or false")


@dataclass(frozen=True)
class FastPath:
    """`speed.*` in the config; `for_device` turns `auto` into on or off."""

    channels_last: Setting = "auto"  # NHWC activations: the layout cuDNN's fastest convolutions want
    tf32: Setting = "auto"  # TF32 tensor cores for the backbone's convolutions (Ampere and newer)
    bf16: Setting = False  # the backbone under bf16 autocast; features, Grams and losses in fp32
    compile: Setting = False  # torch.compile the backbone: a compile pause at the start, then faster steps
    compact_lbfgs: Setting = "auto"  # a single L-BFGS run through BatchedLBFGS: torch's iterates, no host syncs

    def for_device(self, device: torch.device) -> "FastPath":
        return FastPath(**{name: _on(name, value, device) for name, value in vars(self).items()})

    def __post_init__(self) -> None:
        """Refuse a setting that is neither auto, true nor false, before anything runs."""
        for name, value in vars(self).items():
            _on(name, value, torch.device("cpu"))

    def encoder(self, encoder: torch.nn.Module, device: torch.device) -> Encode:
        """`encoder` set up for this path on `device`, as a function image, layers -> fp32 features."""
        fast = self.for_device(device)
        if fast.tf32 and device.type == "cuda":
            torch.backends.cudnn.allow_tf32 = True  # convolutions only: matmuls (the Grams) stay full fp32
        if fast.channels_last:
            encoder = encoder.to(memory_format=torch.channels_last)
        run = torch.compile(encoder) if fast.compile else encoder

        def encode(image: Tensor, layers: Collection[str]) -> dict[str, Tensor]:
            if fast.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(fast.bf16)):
                features = run(image, layers)
            return {name: f.float() for name, f in features.items()}

        return encode
