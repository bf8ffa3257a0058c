"""A network of fixed styles over a photo larger than memory allows, tile by tile, without seams.

Two things make naive tiles show: each tile's instance normalisation would use that
tile's own statistics (a sky tile and a street tile get different colours), and a
tile's border sees reflection padding instead of its neighbours. So:

1. The statistics: the photo, shrunk to `stats_side` px on its long side, goes through
   the network once; every instance normalisation records the mean and variance of
   what it normalises (per image and channel).
2. The tiles: each tile, cut with `overlap` px of context on every side, goes through
   the network with those recorded statistics in place of its own; only its centre
   is kept, blended with its neighbours by linear ramps across the overlap.

Where the whole photo fits at `stats_side`, the statistics are exactly the whole
pass's, and tiled and whole outputs differ only where a tile's context ends
(measured in the tests and benchmarks/results.md).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STRIDE = 4  # the network's downsampling: a tile cut off this grid would be sampled differently from the whole


@contextmanager
def _recorded_statistics(network: nn.Module, record: bool, stats: dict[nn.Module, tuple[Tensor, Tensor]]
                         ) -> Iterator[None]:  # fmt: skip
    """Every InstanceNorm2d of `network` records (`record`) or applies the mean and variance in `stats`."""
    norms = [m for m in network.modules() if isinstance(m, nn.InstanceNorm2d)]
    originals = {m: m.forward for m in norms}

    def forward_of(norm: nn.InstanceNorm2d) -> Callable[[Tensor], Tensor]:
        def forward(x: Tensor) -> Tensor:
            if record:
                stats[norm] = (x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True))
            mean, var = stats[norm]
            out = (x - mean) / torch.sqrt(var + norm.eps)
            if norm.affine:
                out = out * norm.weight[None, :, None, None] + norm.bias[None, :, None, None]
            return out

        return forward

    for norm in norms:
        norm.forward = forward_of(norm)
    try:
        yield
    finally:
        for norm, forward in originals.items():
            norm.forward = forward


def _ramp(length: int, overlap: int, first: bool, last: bool) -> Tensor:
    """1 in a tile's centre, rising linearly over `overlap` px at a side that has a neighbour."""
    weights = torch.ones(length)
    ramp = torch.linspace(0, 1, overlap + 2)[1:-1] if overlap else torch.ones(0)
    if not first and overlap:
        weights[:overlap] = ramp
    if not last and overlap:
        weights[-overlap:] = ramp.flip(0)
    return weights


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Where tiles of `tile` px start so that neighbours share `overlap` px and the last ends at `size`."""
    if size <= tile:
        return [0]
    step = tile - overlap
    return sorted({*range(0, size - tile, step), size - tile})


@torch.no_grad()
def tiled(
    run: Callable[[Tensor], Tensor], network: nn.Module, photo: Tensor, tile: int, overlap: int = 64,
    context: int = 64, stats_side: int = 1024, stride: int = STRIDE,
) -> Tensor:  # fmt: skip
    """`run(photo)`'s image, computed over tiles of `tile` px (plus `context` px each side) blended across `overlap`
    px (at most a quarter of a tile), with the normalisation statistics of the whole photo shrunk to `stats_side`
    px; tiles start on the `stride` grid of the network's downsampling."""
    overlap = min(overlap, tile // 4)  # neighbours overlap by at most a quarter of a tile
    stats: dict[nn.Module, tuple[Tensor, Tensor]] = {}
    height, width = photo.shape[-2:]
    if any(isinstance(m, nn.InstanceNorm2d) for m in network.modules()):  # else no statistics to record
        scale = min(1.0, stats_side / max(height, width))
        small = photo if scale == 1 else F.interpolate(photo, scale_factor=scale, mode="bilinear", antialias=True)
        with _recorded_statistics(network, True, stats):
            run(small)
    out = torch.zeros_like(photo)
    total = torch.zeros(1, 1, height, width, dtype=photo.dtype, device=photo.device)
    rows, columns = _starts(height, tile, overlap), _starts(width, tile, overlap)
    with _recorded_statistics(network, False, stats):
        for i, top in enumerate(rows):
            for j, left in enumerate(columns):
                h, w = min(tile, height - top), min(tile, width - left)
                t0, l0 = (max(0, s - context) // stride * stride for s in (top, left))  # the whole pass's grid
                t1, l1 = min(height, top + h + context), min(width, left + w + context)
                image = run(photo[..., t0:t1, l0:l1])[..., top - t0 : top - t0 + h, left - l0 : left - l0 + w]
                weight = (_ramp(h, overlap, i == 0, i == len(rows) - 1)[:, None]
                          * _ramp(w, overlap, j == 0, j == len(columns) - 1)[None, :]).to(photo)  # fmt: skip
                out[..., top : top + h, left : left + w] += image * weight
                total[..., top : top + h, left : left + w] += weight
    return out / total


def seam_figure(image: Tensor, tile: int, overlap: int) -> float:
    """How much a tiled image jumps at the tile borders: the mean absolute difference between neighbouring
    pixels across the borders, over the same across all other rows and columns (1 = no seam)."""
    height, width = image.shape[-2:]
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean((0, 1, 3))
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean((0, 1, 2))
    borders_y = [s + overlap // 2 for s in _starts(height, tile, overlap)[1:]]
    borders_x = [s + overlap // 2 for s in _starts(width, tile, overlap)[1:]]
    at = torch.cat([dy[[b - 1 for b in borders_y]], dx[[b - 1 for b in borders_x]]])
    elsewhere = torch.cat([dy, dx]).mean()
    return float(at.mean() / elsewhere) if len(at) else 1.0


@torch.no_grad()
def bytes_per_pixel(run: Callable[[Tensor], Tensor], network: nn.Module, device: torch.device) -> float:
    """What one pixel of the photo costs in the network's activations, all of them counted as if alive at once
    (an upper bound: a pass without gradients frees them as it goes), from a 64 px probe."""
    counted = [0]
    hooks = [m.register_forward_hook(lambda _m, _i, out: counted.__setitem__(0, counted[0] + out.numel()))
             for m in network.modules() if not list(m.children())]  # fmt: skip
    try:
        run(torch.zeros(1, 3, 64, 64, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return 4 * counted[0] / 64**2


def tile_side(height: int, width: int, per_pixel: float, free: int | None) -> int:
    """0 where the whole photo fits in a quarter of the `free` bytes; else the largest tile (a multiple of 256 px,
    at least 256) that does."""
    budget = (free or 2**31) / 4
    if height * width * per_pixel <= budget:
        return 0
    return max(256, int((budget / per_pixel) ** 0.5) // 256 * 256)
