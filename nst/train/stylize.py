"""Using a trained network: `nst stylize model=RUN_DIR content=PHOTO out=FILE`, and `init=network`'s start image.

One forward pass per photo, at any size; the photo is read at `size` px on its long
side (default: as it is). `content=FOLDER out=FOLDER` stylises every photo below the
folder, `content=clip.mp4 out=styled.mp4` every frame of a clip with its flicker
measured (nst/train/video.py). What one image goes through, controls and tiles
included, is nst/train/inference.py.
"""

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.errors import NSTError
from nst.images import load_image, open_rgb, save_image
from nst.outputs import write_json
from nst.regions import Regions, parse_region_styles, read_regions
from nst.train.data import photo_files
from nst.train.inference import MIN_SIDE, Control, style_images, styled
from nst.train.model_file import load_model, style_mix, stylize
from nst.train.video import is_video, stylize_video

USAGE = (
    "usage: nst stylize model=RUN_DIR content=PHOTO|FOLDER|CLIP out=FILE|FOLDER|CLIP [size=PX] [device=cpu|cuda] "
    "[strength=0..1] [colour=luminance|histogram] [scale=F] [tile=auto|0|PX] [style_index=K | style_mix=[W0,...]] "
    "[style=IMAGE (an AdaIN decoder)] [regions=MASK [region_styles=[K0,K1,...]]]"
)
MAX_SIDE = 30000  # a photo's long side: a network of fixed styles runs in tiles where the whole does not fit
KEYS = {"model", "content", "out", "size", "device", "style_index", "style_mix", "style", "strength", "colour", "scale",
        "tile", "regions", "region_styles"}  # fmt: skip


class NetworkStart:
    """`init=network`: a trained network's image of the content photo, as the start of an optimisation."""

    def __init__(self, model: str | None = None, style_index: int | None = None, style_mix: list | None = None):
        if not model:
            raise NSTError("init=network needs network.model=RUN_DIR: the directory of an `nst train` run")
        self.network, _ = load_model(model)
        self.mix = style_mix_of(self.network, style_index, style_mix)

    def __call__(self, content: Tensor) -> Tensor:
        return stylize(self.network, content, self.mix).cpu()


def style_mix_of(network: torch.nn.Module, index: object, mix: object) -> list[float] | None:
    """`style_index` / `style_mix` as given on a command line or in a config, checked against the network."""
    if index is not None and (isinstance(index, bool) or not str(index).lstrip("-").isdigit()):
        raise NSTError(f"style_index={index} must be a whole number: a style of the network, from 0")
    weights = None
    if mix is not None:
        items = mix if isinstance(mix, list | tuple) else str(mix).strip("[]").split(",")
        try:
            weights = [float(w) for w in items]
        except (TypeError, ValueError):
            raise NSTError(f"style_mix={mix} must be a list of numbers, e.g. style_mix=[0.5,0.5]") from None
    return style_mix(int(getattr(network, "styles", 0)), None if index is None else int(str(index)), weights)


def main(argv: Sequence[str]) -> int:
    """`nst stylize KEY=VALUE …`: 0 when the images are written, 2 with one line on bad input, 130 on Ctrl-C."""
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if not argv:
        print(f"nst stylize: error: model=, content= and out= are missing: {USAGE}", file=sys.stderr)
        return 2
    try:
        settings = _settings(argv)
        control = Control.of(settings)
        network, info = load_model(settings["model"])
        mix = style_mix_of(network, settings.get("style_index"), settings.get("style_mix"))
        device = torch.device(settings.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        network.to(device)
        if Path(settings["content"]).is_dir():
            return _folder(network, settings, mix, control, device)
        if is_video(settings["content"]):
            return _video(network, settings, mix, control, device)
        image, seconds = _render(network, settings["content"], settings, mix, control, device)
        written = save_image(image, settings["out"])
    except NSTError as exc:
        print(f"nst stylize: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"nst stylize: error: out={settings['out']} cannot be written ({exc.strerror or exc}): give a "
              "writable path", file=sys.stderr)  # fmt: skip
        return 2
    height, width = image.shape[-2:]
    given = settings.get("style", "").strip("[]").split(",") if settings.get("style") else info.get("style", [])
    names = [Path(s.strip()).name for s in given]
    if mix is not None and len(names) == len(mix):
        names = [f"{w:g} {name}" for w, name in zip(mix, names, strict=True) if w]
    styles = ", ".join(names) or "its style"
    print(f"nst stylize: {written} ({width}x{height} px, {styles}) in {seconds:.3f} s on {device}", file=sys.stderr)
    return 0


def _folder(
    network: torch.nn.Module, settings: dict[str, str], mix: list[float] | None, control: Control, device: torch.device
) -> int:
    """Every photo below `content` (recursively) into `out`, as PNGs in the same subfolders; photos that cannot be
    read are skipped and counted; Ctrl-C keeps the finished ones and says how far it got."""
    root, out = Path(settings["content"]), Path(settings["out"])
    sources = photo_files(root, "content")  # unreadable headers: one warning line, already counted there
    out.mkdir(parents=True, exist_ok=True)
    skipped, started, every = [], time.perf_counter(), max(1, len(sources) // 10)
    done = 0
    try:
        for done, source in enumerate(sources, start=1):
            target = out / source.relative_to(root).with_suffix(".png")
            try:
                image, _ = _render(network, str(source), settings, mix, control, device)
            except NSTError as exc:
                skipped.append(str(exc))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            save_image(image, target)
            if done % every == 0 or done == len(sources):
                print(f"nst stylize: {done}/{len(sources)} photos", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"nst stylize: stopped by SIGINT after {done - 1} of {len(sources)} photos; they are in {out}",
              file=sys.stderr)  # fmt: skip
        return 130
    if skipped:
        print(f"nst stylize: {len(skipped)} photos skipped (e.g. {skipped[0]})", file=sys.stderr)
    seconds = time.perf_counter() - started
    written = len(sources) - len(skipped)
    print(f"nst stylize: {written} photos -> {out} in {seconds:.1f} s on {device}", file=sys.stderr)
    return 0


def _render(
    network: torch.nn.Module,
    content: str,
    settings: dict[str, str],
    mix: list[float] | None,
    control: Control,
    device: torch.device,
) -> tuple[Tensor, float]:
    """The network's image of `content` (read at `size`, default its own) under `control`, and the pass's seconds."""
    size = int(settings["size"]) if settings.get("size") else max(open_rgb(content).size)
    if size > MAX_SIDE:
        raise NSTError(f"content={content} is {size} px on its long side, more than the {MAX_SIDE} px a network "
                       f"stylises whole: give size={MAX_SIDE} or less")  # fmt: skip
    photo = load_image(content, size)
    styles = style_images(network, settings.get("style"), size)  # read before the timed pass
    regions = regions_for(network, settings, photo, styles)
    return styled(network, photo, styles, settings.get("tile", "auto"), mix, control, device, content, regions)


def regions_for(network: torch.nn.Module, settings: dict[str, str], photo: Tensor, styles: list[Tensor] | None
                ) -> Regions | None:  # fmt: skip
    """`regions=MASK` read over the photo: each region to a style of the decoder's `style=[…]` or of the
    multi-style network (nst/regions.py's rules; a network's styles need not all be used)."""
    if not settings.get("regions"):
        if settings.get("region_styles"):
            raise NSTError("region_styles changes nothing without regions=MASK: give the photo's mask")
        return None
    if styles is None and not getattr(network, "styles", 0):
        raise NSTError("regions need several styles: a multi-style network (network.norm=conditional_instance) or "
                       "an AdaIN decoder with style=[a.jpg,b.jpg]; this network has one style")  # fmt: skip
    if settings.get("style_index") or settings.get("style_mix"):
        raise NSTError("regions choose each region's style (region_styles=[…]): drop style_index and style_mix")
    given = settings.get("region_styles")
    region_styles = None if given is None else parse_region_styles(given)
    sizes = [(s.shape[-1], s.shape[-2]) for s in styles] if styles else [(1, 1)] * int(network.styles)
    return read_regions(settings["regions"], (photo.shape[-1], photo.shape[-2]), sizes, region_styles,
                        every_style=styles is not None)  # fmt: skip


def _video(
    network: torch.nn.Module, settings: dict[str, str], mix: list[float] | None, control: Control, device: torch.device
) -> int:
    """A clip frame by frame into `out` at its frame rate; its flicker (warping error) printed and written beside it
    as OUT.json. Ctrl-C keeps the frames done as a shorter clip and says how far it got."""
    source, target = Path(settings["content"]), Path(settings["out"])
    size = int(settings["size"]) if settings.get("size") else None
    style = style_images(network, settings.get("style"), size or 512)
    done = [0]

    def render(frame: Tensor) -> Tensor:
        if size:
            frame = F.interpolate(frame, scale_factor=size / max(frame.shape[-2:]), mode="bilinear", antialias=True)
        return styled(network, frame, style, settings.get("tile", "auto"), mix, control, device, str(source))[0]

    def progress(index: int, count: int) -> None:
        done[0] = index
        if index % 25 == 0 or index == count:
            print(f"nst stylize: {index}/{count or '?'} frames", file=sys.stderr)

    started = time.perf_counter()
    try:
        figures = stylize_video(render, source, target, progress)
    except KeyboardInterrupt:
        print(f"nst stylize: stopped by SIGINT after {done[0]} frames; {target} holds them", file=sys.stderr)
        return 130
    seconds = time.perf_counter() - started
    figures = {**figures, "seconds": round(seconds, 3), "model": settings["model"], "content": str(source)}
    write_json(target.with_name(target.name + ".json"), figures)
    print(f"nst stylize: {target} ({figures['frames']} frames at {figures['fps']:g} fps) in {seconds:.1f} s on "
          f"{device}; warping error {figures['warping_error']:.4f} (the input's own "
          f"{figures['input_warping_error']:.4f})", file=sys.stderr)  # fmt: skip
    return 0


def _settings(argv: Sequence[str]) -> dict[str, str]:
    """KEY=VALUE arguments: model, content and out required, nothing unknown."""
    pairs = [a.split("=", 1) for a in argv]
    if any(len(p) != 2 for p in pairs):
        raise NSTError(f"arguments are KEY=VALUE: {USAGE}")
    settings = {k: v for k, v in pairs}
    unknown = sorted(set(settings) - KEYS)
    if unknown:
        raise NSTError(f"{unknown[0]} is not a setting of nst stylize: {USAGE}")
    missing = [k for k in ("model", "content", "out") if not settings.get(k)]
    if missing:
        raise NSTError(f"{missing[0]}= is missing: {USAGE}")
    if settings.get("size") and not (settings["size"].isdigit() and MIN_SIDE <= int(settings["size"]) <= MAX_SIDE):
        raise NSTError(f"size={settings['size']} must be a whole number of pixels from {MIN_SIDE} to {MAX_SIDE}")
    out = Path(settings["out"])
    if Path(settings["content"]).is_dir():
        if out.exists() and not out.is_dir():
            raise NSTError(f"out={out} is a file: a folder of photos goes to a folder, e.g. out={out.with_suffix('')}")
    elif out.is_dir():
        raise NSTError(f"out={out} is a directory: give the file to write, e.g. out={out / 'styled.png'}")
    elif is_video(settings["content"]) != is_video(out):
        kind = "a clip goes to a clip, e.g. out=styled.mp4" if is_video(settings["content"]) else "a photo to an image"
        raise NSTError(f"out={out}: {kind}")
    if not out.parent.is_dir():
        raise NSTError(f"out={out}: its folder {out.parent} does not exist: create it or give another path")
    if settings.get("regions") and (Path(settings["content"]).is_dir() or is_video(settings["content"])):
        raise NSTError("regions=MASK is drawn over one photo: give content=PHOTO (not a folder or a clip)")
    if settings.get("regions") and settings.get("tile", "auto") not in ("auto", "0"):
        raise NSTError("with regions the photo runs whole: drop tile= (or give tile=0)")
    tile = settings.get("tile", "auto")
    if tile != "auto" and not (tile.isdigit() and (int(tile) == 0 or 64 <= int(tile) <= MAX_SIDE)):
        raise NSTError(f"tile={tile}: give auto, 0 (the whole photo at once) or a side of 64 to {MAX_SIDE} px")
    if settings.get("device") not in (None, "cpu", "cuda"):
        raise NSTError(f"device={settings['device']}: choose cpu or cuda")
    if settings.get("device") == "cuda" and not torch.cuda.is_available():
        raise NSTError("device=cuda: no CUDA device here; leave device out or give device=cpu")
    return settings
