"""model.pt: a trained style network as weights plus what rebuilds it, loadable without Hydra or nst's config.

The file holds only tensors, strings and numbers: its network kind by its registered
name (nst/train/kinds.py), the settings that rebuild it, its weights. It is read with
`torch.load(weights_only=True)`: a model file from someone else cannot run code, nor
make nst import anything.
"""

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nst.errors import NSTError
from nst.outputs import atomic_write
from nst.train.kinds import kind_named, kind_of

MODEL_FILE = "model.pt"  # the best network validated (the last, without the judge)
LAST_MODEL_FILE = "last.pt"  # the network at the last step, where an earlier one was better
FORMAT = "nst-style-network-1"


def save_model(network: nn.Module, path: Path, info: dict[str, Any]) -> Path:
    """Write the network's kind, settings and weights, with `info` (style images, steps, …) beside them; atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    saved = {"format": FORMAT, "kind": kind_of(network).name, "settings": dict(network.settings), "state_dict": state,
             "info": info}  # fmt: skip
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    return atomic_write(path, buffer.getvalue())


def model_path(given: str | Path) -> Path:
    """A run directory means its model.pt; anything else is the file itself."""
    path = Path(given)
    return path / MODEL_FILE if path.is_dir() else path


def load_model(given: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network of a run directory or model file, in eval mode, and the file's `info`; one line if it cannot."""
    path = model_path(given)
    if not path.is_file():
        what = f"no {MODEL_FILE} in {given}" if Path(given).is_dir() else f"{given} does not exist"
        raise NSTError(f"model={given}: {what}; give the directory of an `nst train` run or its {MODEL_FILE}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NSTError(f"model={given}: {path} cannot be read as a model file ({reason[:200]}): it is damaged, or "
                       "not a file nst wrote") from None  # fmt: skip
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise NSTError(f"model={given}: {path} is not a style network written by `nst train`")
    try:
        settings = dict(saved["settings"])
        named = saved.get("kind") or settings.pop("kind", None) or "johnson"  # files before kinds named only a decoder
        kind = kind_named(named, f"model={given}")
        network = kind.network(**{**settings, **kind.rebuilt})
        network.load_state_dict(saved["state_dict"])
    except (RuntimeError, TypeError, KeyError, ValueError, AttributeError) as exc:
        reason = str(exc).splitlines()[0]
        raise NSTError(f"model={given}: its weights do not fit the network it names ({reason[:200]}): the file "
                       "is damaged or of another architecture") from None  # fmt: skip
    return network.eval().requires_grad_(False), dict(saved.get("info") or {})


def stylize(network: nn.Module, photo: torch.Tensor, mix: Sequence[float] | None = None) -> torch.Tensor:
    """The network's image of `photo` (1, 3, H, W), clamped to [0, 1]; `mix`: a multi-style network's weights."""
    device = next(network.parameters()).device
    with torch.no_grad():
        if mix is None:
            return network(photo.to(device)).clamp(0, 1)
        return network(photo.to(device), torch.tensor([list(mix)], dtype=torch.float32, device=device)).clamp(0, 1)


def style_mix(styles: int, index: int | None = None, mix: Sequence[float] | None = None) -> list[float] | None:
    """The weights over a network's `styles` that `style_index` or `style_mix` ask for; one line if they cannot be.

    A mix must be N finite weights >= 0 summing to one, N the styles the network was trained for.
    """
    if index is None and mix is None:
        return None
    if not styles:
        raise NSTError("this network was trained for one style: style_index and style_mix need a multi-style network "
                       "(network.norm=conditional_instance)")  # fmt: skip
    if index is not None and mix is not None:
        raise NSTError("give style_index or style_mix, not both")
    if index is not None:
        if not 0 <= index < styles:
            known = f"this network knows {styles} styles, 0 to {styles - 1}"
            raise NSTError(f"style_index={index} is out of range: {known}")
        return [1.0 if k == index else 0.0 for k in range(styles)]
    weights = list(mix or [])
    if len(weights) != styles:
        raise NSTError(f"style_mix has {len(weights)} weights, but this network was trained for {styles} styles: "
                       f"give {styles}")  # fmt: skip
    if not all(math.isfinite(w) and w >= 0 for w in weights) or abs(sum(weights) - 1) > 1e-6:
        raise NSTError(f"style_mix={weights} must be {styles} weights >= 0 that sum to 1")
    return weights
