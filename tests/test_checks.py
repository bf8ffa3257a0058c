"""Every setting is checked before anything starts: a bad value opens no logger and writes no W&B run."""

import pytest
from omegaconf import OmegaConf

from nst.checks import check_loss
from nst.errors import NSTError
from tests.helpers import TINY, nst, run_nst

LOSS = {"convention": "jcjohnson", "content_weight": 1.0, "style_weight": 1e5, "tv_weight": 0.0, "tv_beta": 2.0}


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ({"style_weight": -1.0}, r"loss.style_weight=-1.0 must be a number >= 0"),
        ({"style_weight": 0.0, "content_weight": 0.0}, "both 0: nothing to optimise"),
        ({"convention": "caffe"}, "unknown loss.convention 'caffe'"),
        ({"tv_beta": 0}, "loss.tv_beta=0 must be a number > 0"),
    ],
)
def test_bad_loss_settings_are_refused(loss, message):
    with pytest.raises(NSTError, match=message):
        check_loss(OmegaConf.create({**LOSS, **loss}))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("log_every=0", "log_every=0 must be an integer >= 1"),
        ("snapshot_every=-1", "snapshot_every=-1 must be an integer >= 0"),
        ("init_noise=2", "init_noise=2 must be a number between 0 and 1"),
        ("image.scales=[32,0]", "image.scales[1]=0 must be an integer >= 1"),
        ("optimizer.steps=1.5", "optimizer.steps=1.5 must be an integer >= 1"),
    ],
)
def test_counts_and_shares_out_of_range_are_one_line_naming_the_key(tmp_path, capsys, setting, message):
    code, stderr = run_nst(tmp_path, capsys, setting)
    assert code == 2 and stderr.strip() == f"nst: error: {message}"


def test_a_bad_value_prints_one_line_exits_2_and_leaves_no_wandb_run(tmp_path):
    """With the default logger (W&B, offline): nothing of W&B's starts before the checks."""
    run_dir = tmp_path / "run"
    result = nst(*TINY, "loss.style_weight=-1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["nst: error: loss.style_weight=-1 must be a number >= 0"]
    assert "wandb" not in result.stdout.lower()
    assert not (run_dir / "wandb").exists() and (run_dir / ".hydra").is_dir()
    assert '"status": "failed"' in (run_dir / "metrics.json").read_text()  # what a sweep's verdict reads


def test_a_bad_job_of_a_sweep_leaves_no_wandb_run_and_the_others_finish(tmp_path):
    sweep = tmp_path / "sweep"
    result = nst("-m", *TINY, "loss.style_weight=-1,1e5", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 1  # the verdict: one job failed
    assert "nst: error: loss.style_weight=-1 must be a number >= 0" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (sweep / "0" / "wandb").exists() and list((sweep / "1" / "wandb").glob("offline-run-*"))
