"""Every paper configuration in experiments/ composes and runs, so none can break silently."""

from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from nst.configs import EXPERIMENTS_DIR, register_experiments
from nst.run import train

EXPERIMENTS = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))
# Small and fast whatever the experiment asks for: 32 px, random weights, 2 steps.
SMALL = ["backbone.weights=random", "image.size=32", "optimizer.steps=2", "image.scales=null"]


def test_every_experiment_file_is_registered_and_holds_only_global_deltas():
    assert register_experiments() == EXPERIMENTS
    assert len(EXPERIMENTS) >= 7
    for name in EXPERIMENTS:
        text = (EXPERIMENTS_DIR / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_\n"), name
        assert "Run: nst" in text or "nst +experiment" in text, f"{name}: say how to run it"


def _sweep(name: str) -> list[str]:
    """One override per value of the experiment's own sweep (its first value of every other parameter)."""
    params = OmegaConf.load(EXPERIMENTS_DIR / f"{name}.yaml").get("hydra", {}).get("sweeper", {}).get("params", {})
    parser = OverridesParser.create()
    overrides = []
    for key, values in params.items():
        (override,) = parser.parse_overrides([f"{key}={values}"])
        overrides += [f"{key}={value}" for value in override.sweep_string_iterator()]
    return overrides


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_two_steps(make_cfg, tmp_path, name):
    cfg = make_cfg(f"+experiment={name}", *SMALL)
    if cfg.optimizer.torch._target_.endswith("LBFGS"):
        cfg.optimizer.torch.max_iter = 2
    metrics = train(cfg, tmp_path)
    assert metrics["status"] == "finished" and metrics["steps"] == 2


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if _sweep(n)])
def test_every_point_of_an_experiment_sweep_composes(make_cfg, name):
    for override in _sweep(name):
        cfg = make_cfg(f"+experiment={name}", *SMALL, override)
        assert cfg.image.size == 32


def test_experiments_override_what_their_papers_say(make_cfg):
    fig2 = make_cfg("+experiment=gatys2016_fig2", tiny=False)
    assert fig2.backbone.pooling == "avg" and fig2.loss.convention == "gatys" and fig2.init == "random"
    assert fig2.loss.content_weight / fig2.loss.style_weight == pytest.approx(1e-3)
    jcj = make_cfg("+experiment=jcjohnson_defaults", tiny=False)
    assert dict(jcj.layers.content) == {"relu4_2": 1.0} and len(jcj.layers.style) == 5
    assert (jcj.loss.content_weight, jcj.loss.style_weight, jcj.image.size) == (5.0, 100.0, 512)
    surma = make_cfg("+experiment=surma_vgg16", tiny=False)
    assert surma.backbone.arch == "vgg16" and surma.loss.tv_beta == 1.25
    assert Path(surma.content).is_file()
