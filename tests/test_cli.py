"""The `nst` command end to end, as a user runs it: through a real subprocess where the process is the behaviour
(the console, W&B's own process), in this process otherwise."""

import json

import pytest
from PIL import Image

from tests.helpers import TINY, TINY_WANDB, nst, run_cli, wandb_run


def test_a_run_writes_image_snapshots_metrics_config_and_an_offline_wandb_run(tmp_path):
    run_dir = tmp_path / "run"
    # max_eval 3: each L-BFGS step moves once more after its 2 evaluations, as it does at the default max_iter of 20
    overrides = ["loss.style_weight=5e6", "+optimizer.torch.max_eval=3", f"hydra.run.dir={run_dir}"]
    result = nst(*TINY_WANDB, *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for noise in ("wandb: WARNING", "LeafSpec", "Tip: "):  # deprecations and adverts of the libraries, every run
        assert noise not in result.stdout + result.stderr, noise

    with Image.open(run_dir / "final.png") as final:
        assert final.size == (48, 36)  # the 4:3 content photo, long side 48
    assert sorted(p.name for p in (run_dir / "snapshots").iterdir()) == ["step_00002.png"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("loss/content", "loss/style", "loss/tv", "loss/total", "content_error", "style_error"):
        assert isinstance(metrics[key], float), key
    assert metrics["steps"] == 4 and metrics["evaluations"] == 8
    assert metrics["device"] == "cpu" and metrics["peak_memory_mb"] > 0 and metrics["wall_time_s"] > 0
    assert "loss.style_weight=5e6" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "style_weight: 5000000.0" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert "WandbLogger" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert not (tmp_path / "wandb").exists(), "W&B files belong in the run directory"

    (wandb_dir,) = (run_dir / "wandb").glob("offline-run-*")
    run = wandb_run(wandb_dir)
    assert run.config["loss"]["style_weight"] == 5e6
    assert run.config["content"].endswith("tubingen.jpg")  # resolved, not ${example:…}
    loss_rows = [row for row in run.history if "loss/total" in row]
    assert [row["trainer/global_step"] for row in loss_rows] == [0, 1, 2, 3, 4]  # the start image, then each step
    assert loss_rows[0]["loss/content"] == 0 and loss_rows[0]["evaluations"] == 1  # the start is the content image
    assert {"loss/content/conv4_2", "loss/style/conv5_1", "loss/tv", "evaluations"} <= set(loss_rows[0])
    assert run.summary["quality/content_error"] == metrics["content_error"]
    assert run.summary["loss/total"] == metrics["loss/total"]  # final.png's, not the last step's
    assert run.summary["quality/style_error"] == metrics["style_error"]
    assert [run.summary["lbfgs/pairs_kept"], run.summary["lbfgs/pairs_possible"]] == metrics["lbfgs_pairs"]
    assert run.exit_code == 0
    media = sorted(p.name.split("_")[0] for p in (wandb_dir / "files" / "media" / "images").iterdir())
    assert media == ["content", "final", "snapshot", "style"]


def test_cfg_job_prints_the_composed_config(tmp_path):
    result = nst("--cfg", "job", "image.size=512", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "size: 512" in result.stdout and "arch: vgg19" in result.stdout


def test_an_unknown_layer_is_one_error_line_and_exit_code_2(tmp_path, capsys):
    code, err = run_cli(tmp_path, capsys, *TINY, "+layers.style.conv9_9=1", f"hydra.run.dir={tmp_path / 'r'}")
    assert code == 2
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1, err
    assert errors[0].startswith("nst: error: unknown layer 'conv9_9' for vgg19: valid names are conv1_1")


def test_relative_image_paths_are_read_from_where_nst_was_started(tmp_path, capsys, photo):
    photo("photo.png", size=(40, 64))
    run_dir = tmp_path / "run"
    code, err = run_cli(tmp_path, capsys, *TINY, "content=photo.png", f"hydra.run.dir={run_dir}")
    assert code == 0, err
    with Image.open(run_dir / "final.png") as final:
        assert final.size == (30, 48)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["optimizer=lbgfs"], "optimizer=lbgfs: no such option (did you mean lbfgs?); optimizer is one of adam, lbfgs"),
        (["image_size=128"], "image_size is not a setting (did you mean image.size?); to add a key on purpose write"),
        (["--content", "x.jpg"], "--content is not an option of nst: settings are written key=value, without dashes"),
        (["train", "--max_steps", "5"], "without dashes (e.g. trainer.max_steps=…)"),
        (["optimizer.torch.lr=[1"], "no viable alternative at input '[1'"),
        (["train", "netwrk.start=8"], "netwrk.start is not a setting (did you mean network.start?)"),
        (["train", "schedule=cosine"], "schedule=cosine: no such option; schedule is one of inverse_time, step"),
        (["train", "experiment=gatys2016_fig2"], "is a setup for `nst`: run it as `nst experiment=gatys2016_fig2`"),
        (["experiment=johnson2016_fast"], "run it as `nst train experiment=johnson2016_fast`"),
    ],
)
def test_a_mistyped_command_line_is_one_line_with_the_fix_and_leaves_nothing_behind(tmp_path, capsys, args, says):
    code, err = run_cli(tmp_path, capsys, *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert code == 2 and err.strip().splitlines() == [err.strip()] and says in err, err
    assert err.startswith("nst: error: ") and not (tmp_path / "run").exists()


def test_each_command_s_help_names_the_other_commands_and_only_its_own_experiments(tmp_path, capsys):
    from tests.helpers import run_cli_output

    _, image_help, _ = run_cli_output(tmp_path, capsys, "--help")
    _, train_help, _ = run_cli_output(tmp_path, capsys, "train", "--help")
    assert "nst train style=" in image_help and "nst stylize model=" in image_help
    image_experiments = next(line for line in image_help.splitlines() if line.startswith("experiment: "))
    train_experiments = next(line for line in train_help.splitlines() if line.startswith("experiment: "))
    assert "gatys2016_fig2" in image_experiments and "johnson2016_fast" not in image_experiments
    assert train_experiments == "experiment: dumoulin2017_multistyle, johnson2016_fast, ulyanov2017_instance_norm"
    assert "debug/image" not in train_help


def test_help_says_where_the_defaults_resolver_strings_point(tmp_path, capsys):
    from nst.configs import EXAMPLES, PHOTOS
    from tests.helpers import run_cli_output

    _, image_help, _ = run_cli_output(tmp_path, capsys, "--help")
    _, train_help, _ = run_cli_output(tmp_path, capsys, "train", "--help")
    assert f"${{photos:}}                    {PHOTOS}" in train_help
    assert f"${{example:tubingen.jpg}}       {EXAMPLES / 'tubingen.jpg'}" in image_help
