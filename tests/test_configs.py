"""Every option of every config group composes with the rest and runs two steps."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

import nst
from nst import settings
from nst.colour import MODES
from nst.configs import CONF_DIR
from nst.losses import CONVENTIONS
from nst.train.network import NORMS, UPSAMPLES
from tests.helpers import run_cli, train

GROUPS = sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir())
TRAINING_GROUPS = ("network", "schedule")  # groups of `nst train` alone


def _options(groups: list[str]) -> list[tuple[str, str]]:
    return [(g, f.stem) for g in groups for f in sorted((Path(CONF_DIR) / g).glob("*.yaml"))]


# Experiments have tests of their own (test_experiments.py), at the sizes they need.
OPTIONS = _options([g for g in GROUPS if g not in ("experiment", *TRAINING_GROUPS)])
# The groups an image run shares with a training run, each option trained too (MRF is refused: tests of bad input).
SHARED = ("backbone", "layers", "loss", "style_loss")
TRAINING_OPTIONS = _options(list(TRAINING_GROUPS)) + [o for o in _options(list(SHARED)) if o != ("style_loss", "mrf")]
# Options whose default weights need the network or are not what the test is about get random weights.
EXTRA = {
    ("backbone", "vgg16"): ["backbone.weights=random"],
    ("style_loss", "mrf"): ["layers=li2016", "image.size=48"],  # 3x3 patches at each style layer
    ("hparams_search", "optuna"): ["judge=true"],  # its objective is the judge's figures
    ("hparams_search", "optuna_single"): ["judge=true"],
}


def test_the_groups_mirror_the_modules():
    assert GROUPS == [
        "backbone",
        "debug",
        "experiment",
        "hparams_search",
        "hydra",
        "layers",
        "logger",
        "loss",
        "network",
        "optimizer",
        "schedule",
        "style_loss",
    ]
    modules = {
        "backbone": "backbones",
        "layers": "layers",
        "logger": "loggers",
        "loss": "losses",
        "style_loss": "statistics",
        "network": "train/network",
    }
    package = Path(nst.__file__).parent
    assert all((package / f"{module}.py").is_file() for module in modules.values())


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_runs_two_steps(make_cfg, tmp_path, group, option):
    cfg = make_cfg(f"{group}={option}", *EXTRA.get((group, option), []))
    metrics = train(cfg, tmp_path)
    assert metrics["steps"] == 2
    assert (tmp_path / "final.png").is_file()
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.parametrize(("group", "option"), TRAINING_OPTIONS, ids=[f"{g}={o}" for g, o in TRAINING_OPTIONS])
def test_training_option_composes_and_trains_two_steps(tmp_path, capsys, group, option):
    extra = EXTRA.get((group, option), []) if group == "backbone" else []
    args = ["train", "debug=tiny", f"{group}={option}", *extra, f"hydra.run.dir={tmp_path / 'r'}"]
    run_dir = tmp_path / "r"
    code, err = run_cli(tmp_path, capsys, *args)
    assert code == 0, err
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 2


def test_the_optimizer_settings_instantiate_as_torch_optimizers(make_cfg):
    import torch

    for option in ("lbfgs", "adam"):
        cfg = make_cfg(f"optimizer={option}")
        optimizer = instantiate(cfg.optimizer.torch)([torch.zeros(1, requires_grad=True)])
        assert isinstance(optimizer, torch.optim.Optimizer)


def test_default_config_is_the_paper_setup(make_cfg):
    cfg = make_cfg(tiny=False)
    assert cfg.backbone.arch == "vgg19" and cfg.backbone.weights == "caffe"
    assert dict(cfg.layers.content) == {"conv4_2": 1.0}
    assert list(cfg.layers.style) == ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    assert cfg.optimizer.torch._target_ == "torch.optim.LBFGS"
    assert cfg.logger._target_.endswith("WandbLogger")
    assert Path(cfg.content).name == "tubingen.jpg" and Path(cfg.content).is_file()


def test_coarse_to_fine_runs_each_scale_and_keeps_the_earlier_stages(make_cfg, tmp_path):
    metrics = train(make_cfg("image.scales=[32,48]"), tmp_path)
    assert metrics["status"] == "finished" and metrics["image_size"] == [36, 48]
    assert (tmp_path / "stage_32px.png").is_file() and (tmp_path / "history_32px.csv").is_file()
    assert metrics["evaluations"] == 2 * 2 * 2  # two stages of 2 steps x 2 L-BFGS evaluations


def test_the_settings_tables_of_the_docs_and_the_checks_come_from_one_description():
    text = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    for run in ("image", "train"):
        shown = text.split(f"<!-- settings:{run}:start -->\n")[1].split(f"\n<!-- settings:{run}:end -->")[0]
        assert shown == settings.table(run), f"docs/configuration.md's {run} table: run python -m nst.settings"
    assert CONVENTIONS is settings.choices("loss.convention")  # the code acting on the choices reads the same list
    assert {None, *MODES} == set(settings.choices("colour"))
    assert (NORMS, UPSAMPLES) == (settings.choices("network.norm"), settings.choices("network.upsample"))


@pytest.mark.parametrize("run", ["image", "train"])
def test_every_described_setting_exists_in_its_config_and_its_default_passes(make_cfg, run):
    """A group option's settings (the schedule's) count where that option is chosen."""
    if run == "image":
        cfgs = [make_cfg(tiny=False)]
    else:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            options = ("", "step", "inverse_time")
            cfgs = [compose("train", [f"schedule={option}"] if option else []) for option in options]
            cfgs.append(compose("train", ["network=johnson"]))  # the Johnson network's own settings
    for setting in settings.of(run):
        values = [OmegaConf.select(cfg, setting.key, default="absent") for cfg in cfgs]
        assert set(values) != {"absent"}, f"{setting.key} is described but not in the {run} config"
        for value in values:
            if value != "absent":
                setting.check(value)
