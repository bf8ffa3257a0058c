"""The photos a style network learns from: a folder searched recursively, random crops, a held-out validation set.

Batch k of a run is drawn from (seed, k) alone: which photos (each epoch a new
shuffle, every photo once per epoch), where each is cropped, how each crop is
altered (`data.augment`) and, for a multi-style network, which style each crop is
trained towards. A resumed run therefore sees exactly the batches the
uninterrupted run would have, whatever the number of loader workers or of
processes sharing the batch, and ends with the same weights.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from nst.errors import NSTError
from nst.images import load_image, open_rgb, pil_to_tensor

log = logging.getLogger("nst")

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def photo_files(folder: str | Path, key: str = "data.content") -> list[Path]:
    """Every image below `folder` (by suffix, recursively, sorted), those that cannot be opened left out.

    Unreadable files are counted in one warning line, never a crash: a crawl of
    thousands of photos usually holds a few truncated or mislabelled ones.
    """
    root = Path(folder)
    if not root.is_dir():
        raise NSTError(f"{key}={folder}: no such folder; give a folder of images (COCO train2014, say)")
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
        raise NSTError(f"{key}={folder} holds {what} ({', '.join(SUFFIXES)}): give a folder of images")
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


def photo_split(content: str | Path, val: str | Path | None, val_count: int, seed: int) -> Split:
    """The photos trained on and those judged: every photo of `content` and those of the folder `val` when it is
    given (the same judged set whatever the training folder holds), else `val_count` held out of `content`."""
    photos = photo_files(content)
    if val is None:
        return split(photos, val_count, seed)
    judged = photo_files(val, "data.val")
    shared = {p.resolve() for p in judged} & {p.resolve() for p in photos}
    if shared:
        raise NSTError(f"data.val={val} shares {len(shared)} photos with data.content={content} (e.g. "
                       f"{min(shared).name}): judge photos the network never trains on")  # fmt: skip
    return Split(train=photos, val=judged)


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


Augment = Callable[[Tensor], Tensor]


def augmented(crop: Tensor, augment: Augment, generator: torch.Generator) -> Tensor:
    """`augment` (a torchvision transform, say) applied to a crop in [0, 1], its randomness seeded from the crop's
    own generator: torchvision draws from torch's global generator, which is set for the call alone and restored, so
    a crop is altered the same way in a resumed run and whatever the number of loader workers."""
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return augment(crop).clamp(0, 1)


class Shuffled:
    """The images of a folder in a new order each epoch, drawn from (seed, epoch): position p of the run's crops
    is image `self[p]`, every image once per epoch."""

    def __init__(self, paths: Sequence[Path], seed: int):
        self.paths, self.seed = list(paths), seed
        self._order: tuple[int, list[int]] = (-1, [])  # the last epoch's shuffle, drawn once per worker

    def __getitem__(self, position: int) -> int:
        epoch, within = divmod(position, len(self.paths))
        if self._order[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._order = (epoch, torch.randperm(len(self.paths), generator=generator).tolist())
        return self._order[1][within]


class StepBatches(Dataset):
    """Item k is this process's share of step k's batch, each crop drawn from (seed, its position) alone.

    Step k's global batch holds positions k·B … k·B + B − 1; with `world` processes
    (DDP), process `rank` takes its B / world consecutive ones, so the processes
    together see exactly the batch one process would. Each item is a dict:

        photos        (b, 3, size, size) random crops of the content photos, each altered by `augment` if given
        style         (b,) a style index per crop, uniform over `styles` (0 with one style)
        style_images  (b, 3, size, size) random crops of `style_paths` (arbitrary-style training only)
    """

    def __init__(
        self,
        paths: Sequence[Path],
        size: int,
        resize: int,
        batch_size: int,
        seed: int,
        steps: int,
        styles: int = 1,
        style_paths: Sequence[Path] = (),
        rank: int = 0,
        world: int = 1,
        augment: Augment | None = None,
    ):
        self.photos, self.style_photos = Shuffled(paths, seed), Shuffled(style_paths, seed + 7919)
        self.size, self.resize, self.batch_size, self.seed, self.steps = size, resize, batch_size, seed, steps
        self.styles, self.rank, self.world, self.augment = styles, rank, world, augment

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> dict[str, Tensor]:
        share = self.batch_size // self.world
        first = step * self.batch_size + self.rank * share
        photos, styles, style_images = [], [], []
        for position in range(first, first + share):
            generator = torch.Generator().manual_seed(self.seed * 2**32 + position)
            photo = self._crop(self.photos, position, generator)
            styles.append(int(torch.randint(self.styles, (1,), generator=generator)))
            if self.style_photos.paths:
                style_images.append(self._crop(self.style_photos, position, generator))
            # drawn last: a run without `augment` draws its crops and styles as it always did
            photos.append(photo if self.augment is None else augmented(photo, self.augment, generator))
        item = {"photos": torch.stack(photos), "style": torch.tensor(styles)}
        if style_images:
            item["style_images"] = torch.stack(style_images)
        return item

    def _crop(self, images: Shuffled, position: int, generator: torch.Generator) -> Tensor:
        """An image that fails to decode now (truncated after the header check) is replaced by the next one."""
        index = images[position]
        for offset in range(len(images.paths)):
            try:
                path = images.paths[(index + offset) % len(images.paths)]
                return random_crop(path, self.size, self.resize, generator)
            except NSTError:
                continue
        raise NSTError("no image of the training folders could be decoded: give folders of readable images")


def validation_photos(paths: Sequence[Path], size: int) -> dict[Path, Tensor]:
    """The held-out photos that decode, each (1, 3, H, W) at a long side of `size`, in a fixed order; one that fails
    (truncated after its header) is skipped with a warning, as training skips its crops."""
    photos = {}
    for path in paths:
        try:
            photos[path] = load_image(path, size)
        except NSTError as exc:
            log.warning("held-out photo skipped: %s", exc)
    if not photos:
        raise NSTError(f"none of the {len(paths)} held-out photos can be decoded: give a folder of readable images")
    return photos
