"""Every paper configuration in experiments/ composes and runs, so none can break silently."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nst.configs import CONF_DIR, EXPERIMENTS_DIR, experiment_sweep
from tests.helpers import run_cli, train

ALL = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))
# Training experiments (`nst train experiment=NAME`) share the group; each kind is run with its own command.
TRAINING = [n for n in ALL if f"nst train experiment={n}" in (EXPERIMENTS_DIR / f"{n}.yaml").read_text()
            or f"nst train -m experiment={n}" in (EXPERIMENTS_DIR / f"{n}.yaml").read_text()]  # fmt: skip
EXPERIMENTS = [n for n in ALL if n not in TRAINING]
# Small and fast whatever the experiment asks for: 48 px (MRF's patches fit at relu4_1), random weights, 2 steps.
SMALL = ["backbone.weights=random", "image.size=48", "optimizer.steps=2", "image.scales=null"]


def test_every_experiment_file_is_an_option_of_the_experiment_group_and_holds_only_global_deltas(make_cfg):
    defaults = OmegaConf.load(CONF_DIR / "config.yaml").defaults
    assert {"experiment": None} in defaults  # selected as experiment=NAME, no `+`
    assert len(EXPERIMENTS) >= 11
    assert TRAINING == ["dumoulin2017_multistyle", "johnson2016_fast", "ulyanov2017_instance_norm"]
    for name in ALL:
        text = (EXPERIMENTS_DIR / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_\n"), name
        assert f"experiment={name}" in text, f"{name}: say how to run it"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_two_steps(make_cfg, tmp_path, name):
    cfg = make_cfg(f"experiment={name}", *SMALL)
    if cfg.optimizer.torch._target_.endswith("LBFGS"):
        cfg.optimizer.torch.max_iter = 2
    metrics = train(cfg, tmp_path)
    assert metrics["status"] == "finished" and metrics["steps"] == 2


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if experiment_sweep(n)])
def test_every_point_of_an_experiment_sweep_composes(make_cfg, name):
    points = experiment_sweep(name)
    assert len(points) == {"gatys2016_fig3": 20, "gatys2017_color": 2}[name]
    for point in points:
        cfg = make_cfg(f"experiment={name}", *SMALL, *point)
        assert cfg.image.size == 48


def test_experiments_override_what_their_papers_say(make_cfg):
    fig2 = make_cfg("experiment=gatys2016_fig2", tiny=False)
    assert fig2.backbone.pooling == "avg" and fig2.loss.convention == "gatys" and fig2.init == "random"
    assert fig2.loss.content_weight / fig2.loss.style_weight == pytest.approx(1e-8)  # see its header
    assert fig2.optimizer.torch.line_search_fn == "strong_wolfe"
    jcj = make_cfg("experiment=jcjohnson_defaults", tiny=False)
    assert dict(jcj.layers.content) == {"relu4_2": 1.0} and len(jcj.layers.style) == 5
    assert (jcj.loss.content_weight, jcj.loss.style_weight, jcj.image.size) == (5.0, 100.0, 512)
    surma = make_cfg("experiment=surma_vgg16", tiny=False)
    assert surma.backbone.arch == "vgg16" and surma.loss.tv_beta == 1.25
    assert Path(surma.content).is_file()
    mrf = make_cfg("experiment=li2016_mrf", tiny=False)
    assert mrf.style_loss._target_ == "nst.statistics.MRF" and mrf.style_loss.patch_size == 3
    assert dict(mrf.layers.content) == {"relu4_2": 1.0} and set(mrf.layers.style) == {"relu3_1", "relu4_1"}
    assert mrf.init == "content" and mrf.loss.convention == "gatys" and mrf.loss.style_weight == 0.1
    mean_std = make_cfg("experiment=li2017_mean_std", tiny=False)
    assert mean_std.style_loss._target_ == "nst.statistics.MeanStd" and len(mean_std.layers.style) == 5
    adain = make_cfg("experiment=huang2017_adain", tiny=False)
    assert adain.init == "adain" and adain.optimizer.steps == 0 and adain.adain.alpha == 1.0
    warm = make_cfg("experiment=adain_warm_start", tiny=False)
    assert warm.init == "adain" and warm.optimizer.steps == 15 and warm.loss.style_weight == 1e5


def test_a_built_wheel_carries_the_configs_and_experiments(tmp_path):
    """`experiment=` (and the older `+experiment=`) must work from an installed wheel, not only from a checkout."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path, root], check=True)
    (wheel,) = tmp_path.glob("nst-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", tmp_path / "site", wheel], check=True)
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    shown = subprocess.run(
        [sys.executable, "-m", "nst", "--cfg", "job", "experiment=gatys2016_fig2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "pooling: avg" in shown.stdout and "convention: gatys" in shown.stdout
    launcher = subprocess.run(
        [sys.executable, "-m", "nst", "--cfg", "hydra", "hydra/launcher=batched"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "_target_: hydra_plugins.nst_launcher.BatchedLauncher" in launcher.stdout, launcher.stderr
    where = subprocess.run(
        [sys.executable, "-c", "import nst.configs as c; print(c.CONF_DIR, c.EXPERIMENTS_DIR)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert where.stdout.split() == [str(tmp_path / "site" / "nst" / d) for d in ("conf", "conf/experiment")]
    old_form = subprocess.run(
        [sys.executable, "-m", "nst", "--cfg", "job", "+experiment=jcjohnson_defaults"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert old_form.returncode == 0 and "init: random" in old_form.stdout, old_form.stderr


@pytest.mark.parametrize("name", TRAINING)
def test_every_training_experiment_trains_two_steps_at_each_point_of_its_sweep(tmp_path, capsys, name):
    points = experiment_sweep(name) or [[]]
    for index, point in enumerate(points):
        run_dir = tmp_path / str(index)
        code, err = run_cli(tmp_path, capsys, "train", f"experiment={name}", "debug=tiny", *point,
                            f"hydra.run.dir={run_dir}")  # fmt: skip
        assert code == 0, err
        assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"
