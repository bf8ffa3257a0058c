"""Every setting is checked before anything starts: a bad value opens no logger and writes no W&B run."""

import pytest
from omegaconf import OmegaConf

from nst.checks import check_job, check_loss
from nst.errors import NSTError
from tests.helpers import TINY_WANDB, run_cli, run_cli_output, run_nst

LOSS = {"convention": "jcjohnson", "content_weight": 1.0, "style_weight": 1e5, "tv_weight": 0.0, "tv_beta": 2.0}


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ({"style_weight": -1.0}, r"loss.style_weight=-1.0 must be a finite number >= 0"),
        ({"style_weight": 0.0, "content_weight": 0.0}, "both 0: nothing to optimise"),
        ({"convention": "caffe"}, "loss.convention='caffe': choose one of gatys, johnson, jcjohnson, keras"),
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
        ("optimizer.steps=1.5", "optimizer.steps=1.5 must be an integer >= 0"),
    ],
)
def test_counts_and_shares_out_of_range_are_one_line_naming_the_key(tmp_path, capsys, setting, message):
    code, stderr = run_nst(tmp_path, capsys, setting)
    assert code == 2 and stderr.strip() == f"nst: error: {message}"


def test_a_bad_value_prints_one_line_exits_2_and_leaves_nothing_behind(tmp_path, capsys):
    """With the default logger (W&B, offline): the checks run before Hydra writes anything (nst/refusal.py)."""
    run_dir = tmp_path / "run"
    code, out, err = run_cli_output(tmp_path, capsys, *TINY_WANDB, "loss.style_weight=-1", f"hydra.run.dir={run_dir}")
    assert code == 2
    assert err.strip().splitlines() == ["nst: error: loss.style_weight=-1 must be a finite number >= 0"]
    assert "wandb" not in out.lower()
    assert not run_dir.exists()
    training = ["train", "debug=tiny", "data.val_count=0", f"hydra.run.dir={run_dir}"]
    code, _, err = run_cli_output(tmp_path, capsys, *training)
    assert code == 2 and err.strip().splitlines() == ["nst: error: data.val_count=0 must be an integer >= 1"]
    assert not run_dir.exists()


def test_a_bad_job_of_a_sweep_leaves_no_wandb_run_and_the_others_finish(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    code, err = run_cli(tmp_path, capsys, "-m", *TINY_WANDB, "loss.style_weight=-1,1e5", f"hydra.sweep.dir={sweep}")
    assert code == 1  # the verdict: one job failed
    assert "nst: error: loss.style_weight=-1 must be a finite number >= 0" in err
    assert "Traceback" not in err
    assert not (sweep / "0" / "wandb").exists() and list((sweep / "1" / "wandb").glob("offline-run-*"))


# Every numeric setting at the edge of its range: (the last value allowed, the first refused, what the line says).
EDGES = [
    ("seed", "0", "-1", "seed=-1 must be an integer >= 0"),
    ("optimizer.steps", "0", "-1", "optimizer.steps=-1 must be an integer >= 0"),
    ("adain.alpha", "1", "1.01", "adain.alpha=1.01 must be a number between 0 and 1"),
    ("style_loss.stride", "1", "0", "style_loss.stride=0 must be an integer >= 1"),
    ("image.size", "1", "0", "image.size=0 must be an integer >= 1"),
    ("image.style_scale", "1e-6", "0", "image.style_scale=0 must be a number >= 1e-06"),
    ("image.scales", "[32,48]", "[48,32]", "image.scales=[48, 32] must grow, coarse to fine"),
    ("log_every", "1", "0", "log_every=0 must be an integer >= 1"),
    ("snapshot_every", "0", "-1", "snapshot_every=-1 must be an integer >= 0"),
    ("init_noise", "1", "1.01", "init_noise=1.01 must be a number between 0 and 1"),
    ("loss.content_weight", "0", "-1e-9", "loss.content_weight=-1e-09 must be a finite number >= 0"),
    ("loss.tv_weight", "0", "-1", "loss.tv_weight=-1 must be a finite number >= 0"),
    ("loss.tv_beta", "1e-3", "0", "loss.tv_beta=0 must be a number > 0"),
    ("optimizer.torch.lr", "1e-9", "0", "optimizer.torch.lr=0 must be a finite number > 0"),
    ("optimizer.torch.max_iter", "1", "0", "optimizer.torch.max_iter=0 must be an integer >= 1"),
    ("optimizer.torch.history_size", "1", "0", "optimizer.torch.history_size=0 must be an integer >= 1"),
    ("optimizer.torch.max_eval", "1", "0", "optimizer.torch.max_eval=0 must be an integer >= 1"),
    ("trainer.devices", "1", "2", "trainer.devices=2: nst runs on one device of one node"),
]
# Settings read only under another one, and the override that makes them count.
# Sizes at their edges need layers a 1-px image still reaches (relu1_1: no pooling before it).
FIRST_LAYER_ONLY = ["~layers", "+layers.content.relu1_1=1", "+layers.style.relu1_1=1"]
NEEDS = {
    "adain.alpha": ["init=adain"],
    "style_loss.stride": ["style_loss=mrf", "image.size=96"],
    "image.size": FIRST_LAYER_ONLY,
    "image.style_scale": FIRST_LAYER_ONLY,
}
ADAM_EDGES = [
    (
        "optimizer.torch.betas",
        "[0.0,0.999]",
        "[0.9,1.0]",
        "optimizer.torch.betas[1]=1.0 must be a number between 0 and",
    ),
    ("optimizer.torch.eps", "0.0", "-1e-8", "optimizer.torch.eps=-1e-08 must be a number >= 0"),
]


@pytest.mark.parametrize(
    ("key", "allowed", "refused", "message"), EDGES + ADAM_EDGES, ids=[e[0] for e in EDGES + ADAM_EDGES]
)
def test_every_numeric_setting_is_checked_at_the_edges_of_its_range(
    make_cfg, tmp_path, capsys, key, allowed, refused, message
):
    optimizer = ["optimizer=adam"] if (key, allowed, refused, message) in ADAM_EDGES else NEEDS.get(key, [])
    plus = "+" if key in ("optimizer.torch.max_eval", "optimizer.torch.eps") else ""  # not in the shipped configs
    check_job(make_cfg(*optimizer, f"{plus}{key}={allowed}"))  # the last value allowed passes
    code, stderr = run_nst(tmp_path, capsys, *optimizer, f"{plus}{key}={refused}")
    assert code == 2 and stderr.startswith(f"nst: error: {message}") and len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("layers.style={}", "layers.style={} changes nothing (Hydra merges an empty dict into layers.style)"),
        ("+loss.typo=1", "loss.typo is not a setting nst reads: the loss keys are"),
        ("+image.sise=64", "image.sise is not a setting nst reads"),
        ("+colur=luminance", "colur is not a setting nst reads"),
        ("logger=wandb logger.mode=bogus", "logger.mode='bogus': choose offline, online or disabled"),
        ("+trainer.max_steps=5", "trainer.max_steps is set by nst from optimizer.steps: drop it"),
        ("+trainer.devise=1", "trainer.devise is not a setting of pytorch_lightning.Trainer"),
        ("optimizer.restart_stuck=maybe", "optimizer.restart_stuck='maybe': choose true or false"),
        ("adain.alpha=0.5", "adain.alpha=0.5 changes nothing: the adain settings make the start image of init=adain"),
    ],
)
def test_settings_that_would_do_nothing_or_something_else_are_refused(tmp_path, capsys, setting, message):
    code, stderr = run_nst(tmp_path, capsys, *setting.split())
    assert code == 2 and stderr.startswith(f"nst: error: {message}"), stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("style_loss.convention=bogus", "style_loss.convention='bogus': choose one of gatys, johnson, jcjohnson"),
        ("+trainer.accumulate_grad_batches=4", "trainer.accumulate_grad_batches is not honoured by an image run"),
        ("+trainer.max_epochs=0", "trainer.max_epochs is not honoured by an image run"),
        ("trainer.precision=64-true", "trainer.precision='64-true': an image run optimises fp32 images"),
        ("trainer.precision=bf16-true", "set speed.bf16=true"),
        ("logger=wandb +logger.bogus=1", "logger.bogus is not a setting of ResilientWandbLogger"),
        ("objective=[nope]", "objective 'nope' is no figure a run reports: choose from content_error"),
        ("objective=[content_error] judge=false", "objective content_error is the judge's figure, but judge=false"),
        ("image.size=1e9", "px image needs about"),
        ("image.style_scale=1e4", "px style image needs about"),
        ("image.style_scale=inf", "image.style_scale=inf must be a finite number"),
        ("image.scales=48", "image.scales=48 must be a list of sizes"),
        ("style_blend=abc", "style_blend='abc' must be a list of weights"),
        ("content=[a.jpg,b.jpg]", "content takes one image: sweep several with `nst -m content=a.jpg,b.jpg`"),
        ("loss.style_weight=inf", "loss.style_weight=inf must be a finite number >= 0"),
        ("style_loss=mrf style_loss.scales=[inf]", "style_loss.scales=[inf] must all be > 0 and at most 4"),
    ],
)
def test_a_value_the_run_could_not_honour_is_one_line_before_anything_starts(tmp_path, capsys, setting, message):
    """Each of these was once accepted and failed later, after W&B had opened, or not at all."""
    code, stderr = run_nst(tmp_path, capsys, *setting.split())
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
    assert not (tmp_path / "run" / "wandb").exists()


@pytest.mark.parametrize(("value", "shown"), [("0", "0"), ("abc", "'abc'")])
def test_a_launcher_setting_out_of_range_is_one_line(tmp_path, capsys, value, shown):
    sweep = ["-m", "debug=tiny", "hydra/launcher=batched", f"hydra.launcher.batch_size={value}", "seed=1,2"]
    code, err = run_cli(tmp_path, capsys, *sweep, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert code == 2 and err.strip() == f"nst: error: hydra.launcher.batch_size={shown} must be an integer >= 1"
