"""Shared fixtures: the real configs, composed as the CLI composes them, shrunk to test size (conf/debug/tiny.yaml)."""

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image

from nst import environment
from nst.configs import CONF_DIR

environment.configure()  # the `${example:…}` resolver, as the CLI sets it


def pytest_configure(config: pytest.Config) -> None:
    """Each of pytest-xdist's workers computes with one thread, and so do the processes its tests start.

    Two workers on two cores with two threads each would contend; and a test that compares
    a run in this process with one in a subprocess needs both to sum in the same order.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `gpu` run where there is a CUDA device and are skipped, with the reason, elsewhere."""
    import torch

    if torch.cuda.is_available():
        return
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture
def make_cfg() -> Callable[..., DictConfig]:
    """Compose conf/config.yaml with `debug=tiny` (L-BFGS at 2 evaluations a step, no judge), then the test's own."""

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[*(["debug=tiny"] if tiny else []), *overrides])

    return make


@pytest.fixture
def photo(tmp_path: Path) -> Callable[..., Path]:
    """Write a small synthetic image (a colour gradient) and return its path."""

    def make(name: str = "photo.png", size: tuple[int, int] = (48, 32), mode: str = "RGB") -> Path:
        img = Image.linear_gradient("L").resize(size).convert(mode)
        path = tmp_path / name
        img.save(path)
        return path

    return make


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 150 KiB tmpfs: room for a run's start, not for its snapshots and W&B files (needs root, as CI has)."""
    yield from _tmpfs(tmp_path / "disk", "size=150k")


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs: what root cannot write to either, unlike a folder without write permission."""
    yield from _tmpfs(tmp_path / "read_only", "ro,size=64k")


def _tmpfs(mount: Path, options: str) -> Iterator[Path]:
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
