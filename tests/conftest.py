"""Shared fixtures: the real configs, composed as the CLI composes them, shrunk to test size."""

from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image

from nst.configs import CONF_DIR

# Tiny and fast: random weights, 32 px, 2 steps of 2 evaluations, no experiment logger.
TINY = [
    "backbone.weights=random",
    "image.size=32",
    "optimizer.steps=2",
    "logger=none",
    "snapshot_every=1",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture
def make_cfg() -> Callable[..., DictConfig]:
    """Compose conf/config.yaml with the tiny overrides, then the test's own."""

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[*(TINY if tiny else []), *overrides])
        if tiny and cfg.optimizer.torch._target_.endswith("LBFGS"):
            cfg.optimizer.torch.max_iter = 2
        return cfg

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
