"""The 23 freely licensed photos of two Debian wallpaper packages, as training photos for `nst train`.

Downloads `mate-backgrounds` (GPL-2+) and `plasma-workspace-wallpapers` (LGPL-3)
with `apt-get download` (run `apt-get update` first), takes the photographs (not the
drawn or abstract wallpapers) and writes each with its long side resized to 512 px
(JPEG, quality 92), as nst/photos/ holds its own. Authors and licences are listed in
PHOTOS and, for the ones nst ships, in nst/photos/README.md.

    python -m benchmarks.debian_photos OUT_DIR
"""

import argparse
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

LONG_SIDE = 512  # the training crops come from photos resized to 128 px (data.size): 512 leaves room for data.resize
MATE = ("mate-backgrounds", "usr/share/backgrounds/mate/nature/{}.jpg", "GPL-2+")
PLASMA = ("plasma-workspace-wallpapers", "usr/share/wallpapers/{}/contents/images/1280x1024.jpg",
          "LGPL-3 (its metadata.json; Debian's copyright file: GPL-2+)")  # fmt: skip

# name: (package, its file name, author): from the packages' copyright files and metadata.json
PHOTOS: dict[str, tuple[tuple[str, str, str], str, str]] = {
    "aqua": (MATE, "Aqua", "Charles Barbin"),
    "blinds": (MATE, "Blinds", "Lennart Poettering, Andrea Cimitan"),
    "dune": (MATE, "Dune", "Marco Cogoni, Hylke Bons"),
    "fresh_flower": (MATE, "FreshFlower", "Jens Ansorg"),
    "garden": (MATE, "Garden", "Charles Barbin"),
    "green_meadow": (MATE, "GreenMeadow", "Timothy Schellhase, Lapo Calamandrei"),
    "lady_bird": (MATE, "LadyBird", "Charles Barbin"),
    "rain_drops": (MATE, "RainDrops", "blackcombwhistler07"),
    "storm": (MATE, "Storm", "Sergey Nazarov"),
    "two_wings": (MATE, "TwoWings", "Charles Barbin, Hylke Bons"),
    "wood": (MATE, "Wood", "Jean-François Fortin Tam"),
    "yellow_flower": (MATE, "YellowFlower", "Charles Barbin"),
    "by_the_water": (PLASMA, "BytheWater", "Maciej Wiklo"),
    "cold_ripple": (PLASMA, "ColdRipple", "Risto Saukonpää"),
    "colorful_cups": (PLASMA, "ColorfulCups", "Dmitri Popov"),
    "darkest_hour": (PLASMA, "DarkestHour", "Risto Saukonpää"),
    "evening_glow": (PLASMA, "EveningGlow", "Ian Hex"),
    "fallen_leaf": (PLASMA, "FallenLeaf", "Martin Klapetek"),
    "grey": (PLASMA, "Grey", "Sigi Sagi"),
    "kite": (PLASMA, "Kite", "Risto Saukonpää"),
    "one_stands_out": (PLASMA, "OneStandsOut", "Risto Saukonpää"),
    "path": (PLASMA, "Path", "Risto Saukonpää"),
    "summer_1am": (PLASMA, "summer_1am", "Risto Saukonpää"),
}


def unpacked(package: str, into: Path) -> Path:
    """The Debian package's files, downloaded and extracted below `into`."""
    subprocess.run(["apt-get", "download", package], cwd=into, check=True, capture_output=True)
    root = into / package
    (deb,) = into.glob(f"{package}_*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder the photos are written to")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        roots = {package: unpacked(package, Path(tmp)) for package in (MATE[0], PLASMA[0])}
        for name, ((package, file, _), source, _) in PHOTOS.items():
            # ColorfulCups ships no 1280x1024 version: its 2560x1600 one
            path = roots[package] / file.format(source)
            path = path if path.exists() else path.with_name("2560x1600.jpg")
            image = Image.open(path).convert("RGB")
            image.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
            image.save(args.out / f"{name}.jpg", quality=92)
    print(f"{len(PHOTOS)} photos in {args.out}")


if __name__ == "__main__":
    main()
