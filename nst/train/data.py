"""The photos a style network learns from: a folder searched recursively, random crops, a held-out validation set.

Batch k of a run is drawn from (seed, k) alone: which photos (each epoch a new
shuffle, every photo once per epoch) and where each is cropped. A resumed run
therefore sees exactly the batches the uninterrupted run would have, whatever the
number of loader workers, and ends with the same weights.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from nst.errors import NSTError
from nst.images import load_image, open_rgb

log = logging.getLogger("nst")

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

def photo_files(folder: str | Path) -> list[Path]:
    """Every image below `folder` (by suffix, recursively, sorted), those that cannot be opened left out.

    Unreadable files are counted in one warning line, never a crash: a crawl of
    thousands of photos usually holds a few truncated or mislabelled ones.
    """
    root = Path(folder)
    if not root.is_dir():
        raise NSTError(f"data.content={folder}: no such folder; give a folder of photos (COCO train2014, say)")
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    readable, broken = [], []
    for path in found:
        try:
            with Image.open(path) as img:
                width, height = img.size
            (readable if min(width, height) >= 2 else broken).append(path)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            broken.append(path)
    if broken:
        log.warning("%d of %d images in %s cannot be read and are skipped (e.g. %s)", len(broken), len(found), root,
                    broken[0])  # fmt: skip
    if not readable:
        what = "no image files" if not found else f"only unreadable images ({len(found)})"
        raise NSTError(f"data.content={folder} holds {what} ({', '.join(SUFFIXES)}): give a folder of photos")
    return readable


@dataclass(frozen=True)
class Split:
    """The photos trained on and those held out to judge the network (never trained on)."""

    train: list[Path]
    val: list[Path]


def split(paths: Sequence[Path], val_count: int, seed: int) -> Split:
    """Hold out `val_count` photos, drawn from `seed`: the same split for every run of a sweep."""
    if val_count >= len(paths):
        raise NSTError(
            f"data.val_count={val_count} holds out every one of the {len(paths)} photos in data.content: "
            "nothing is left to train on; lower data.val_count or give more photos"
        )
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed)).tolist()
    return Split(train=[paths[i] for i in sorted(order[val_count:])], val=[paths[i] for i in sorted(order[:val_count])])


def random_crop(path: Path, size: int, resize: int, generator: torch.Generator) -> Tensor:
    """(3, size, size) in [0, 1]: the photo with its short side resized to `resize`, cropped at a random place."""
    img = open_rgb(path)
    scale = resize / min(img.size)
    img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))),
                     Image.Resampling.BILINEAR)  # fmt: skip
    top = int(torch.randint(img.height - size + 1, (1,), generator=generator))
    left = int(torch.randint(img.width - size + 1, (1,), generator=generator))
    crop = img.crop((left, top, left + size, top + size))
    return pil_to_tensor(crop).float().div(255)


class StepBatches(Dataset):
    """Item k is the batch of step k: `batch_size` random crops, drawn from (seed, k) alone."""

    def __init__(self, paths: Sequence[Path], size: int, resize: int, batch_size: int, seed: int, steps: int):
        self.paths, self.size, self.resize, self.batch_size = list(paths), size, resize, batch_size
        self.seed, self.steps = seed, steps
        self._order: tuple[int, list[int]] = (-1, [])  # the last epoch's shuffle, drawn once per worker

    def __len__(self) -> int:
        return self.steps

    def _epoch_order(self, epoch: int) -> list[int]:
        if self._order[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._order = (epoch, torch.randperm(len(self.paths), generator=generator).tolist())
        return self._order[1]

    def __getitem__(self, step: int) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        crops = []
        for position in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch, within = divmod(position, len(self.paths))
            index_in_order = self._epoch_order(epoch)[within]
            crops.append(self._crop(index_in_order, generator))
        return torch.stack(crops)

    def _crop(self, index: int, generator: torch.Generator) -> Tensor:
        """A photo that fails to decode now (truncated after the header check) is replaced by the next one."""
        for offset in range(len(self.paths)):
            try:
                return random_crop(self.paths[(index + offset) % len(self.paths)], self.size, self.resize, generator)
            except NSTError:
                continue
        raise NSTError("no photo of data.content could be decoded: give a folder of readable photos")


def validation_photos(paths: Sequence[Path], size: int) -> list[Tensor]:
    """The held-out photos, each (1, 3, H, W) at a long side of `size`, in a fixed order."""
    return [load_image(path, size) for path in paths]
