"""Sweeps from the command line: grid multiruns, failures, Optuna, submitit, W&B sweep files."""

import itertools
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

import nst.compare as report
from nst.compare import Run, compare, curve, curve_axis, pareto_front, scatter, table_rows
from tests.helpers import TINY_WANDB, nst, run_cli, wandb_exit_code, wandb_run

FAST = [o for o in TINY_WANDB if not o.startswith(("optimizer.steps", "snapshot_every"))]
FAST += ["optimizer.steps=2", "snapshot_every=0"]
ROOT = Path(__file__).resolve().parents[1]


def test_a_grid_multirun_gives_one_run_dir_and_one_grouped_wandb_run_per_job(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    code, err = run_cli(tmp_path, capsys, "-m", *FAST, "loss.style_weight=1e2,1e3", "layers=gatys,johnson",
                        f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert code == 0, err

    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    runs = [wandb_run(next((job / "wandb").glob("offline-run-*"))) for job in jobs]
    assert len({run.group for run in runs}) == 1 and runs[0].group.endswith("sweep")
    assert {tuple(run.name.split(",")[-2:]) for run in runs} == {
        ("loss.style_weight=100.0", "layers=gatys"),
        ("loss.style_weight=100.0", "layers=johnson"),
        ("loss.style_weight=1000.0", "layers=gatys"),
        ("loss.style_weight=1000.0", "layers=johnson"),
    }
    assert all("layers=johnson" in run.tags or "layers=gatys" in run.tags for run in runs)
    assert all(run.exit_code == 0 for run in runs)

    files = compare([sweep], tmp_path / "report", x="time_s")
    table = files["markdown"].read_text().splitlines()
    assert len(table) == 2 + 4
    assert "layers=gatys, loss.style_weight=100" in files["markdown"].read_text()
    assert files["html"].read_text().count("<tr class=") == 4
    assert all(run.summary["quality/style_swd"] > 0 for run in runs)  # the judge's second style figure, logged
    code, err = run_cli(tmp_path, capsys, "compare", str(sweep), "--style", "style_swd", "--out", str(tmp_path / "swd"))
    assert code == 0, err
    assert "Pareto front (content error vs style swd)" in (tmp_path / "swd" / "index.html").read_text()
    assert "style_swd" in (tmp_path / "swd" / "metrics.md").read_text().splitlines()[0]


def test_jobs_in_one_process_finish_their_wandb_runs_and_do_not_grow_memory(tmp_path, capsys):
    """Six W&B runs in one process (about 1 s each to open and close): a leak shows over the last three."""
    sweep = tmp_path / "sweep"
    seeds = ",".join(map(str, range(6)))
    code, err = run_cli(tmp_path, capsys, "-m", *FAST, "judge=false", f"seed={seeds}", f"hydra.sweep.dir={sweep}")
    assert code == 0, err
    jobs = [sweep / str(i) for i in range(6)]
    codes = [wandb_exit_code(next((job / "wandb").glob("offline-run-*"))) for job in jobs]
    assert codes == [0] * 6  # every job closed its own run
    memory = [json.loads((job / "metrics.json").read_text())["resident_memory_mb"] for job in jobs]
    # A VGG-19 (80 MB) leaked per job would add about 240 MB over the last three.
    assert max(memory[3:]) - memory[2] < 150, memory


@pytest.mark.slow
def test_each_job_of_a_sweep_reports_its_own_peak_memory_not_the_largest_so_far(tmp_path):
    """Slow (~10 s): a process of its own, since this process's peak is the whole test session's."""
    sweep = tmp_path / "sweep"
    result = nst(
        "-m", *FAST, "logger=none", "judge=false", "image.size=384,32", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    large, small = (json.loads((sweep / job / "metrics.json").read_text()) for job in ("0", "1"))
    assert large["peak_memory_kind"] == small["peak_memory_kind"] == "process_peak_rss"
    # ru_maxrss never falls: the 32 px job would report the 384 px job's peak (what VmHWM, reset per run, avoids).
    assert small["peak_memory_mb"] < large["peak_memory_mb"] - 50, (small, large)


def test_one_failing_job_is_recorded_and_the_others_finish(tmp_path, capsys, photo):
    photo("ok.png")
    sweep = tmp_path / "sweep"
    code, err = run_cli(tmp_path, capsys, "-m", *FAST, "content=ok.png,missing.png,ok.png", f"hydra.sweep.dir={sweep}")
    assert code == 1
    assert "nst: 1 failed job(s) of the sweep; the others finished" in err

    statuses = [json.loads((sweep / str(i) / "metrics.json").read_text())["status"] for i in range(3)]
    assert statuses == ["finished", "failed", "finished"]
    failed = json.loads((sweep / "1" / "metrics.json").read_text())
    assert "missing.png does not exist" in failed["error"]
    assert not (sweep / "1" / "wandb").exists()  # refused before its logger opened
    assert (sweep / "2" / "final.png").is_file()

    files = compare([sweep], tmp_path / "report")
    assert "| failed |" in files["markdown"].read_text()


def test_optuna_runs_the_requested_trials_on_both_objectives(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    code, err = run_cli(
        tmp_path, capsys, "-m", *FAST, "logger=none", "hparams_search=optuna", "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.population_size=2", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert code == 0, err
    assert len(list(sweep.glob("*/metrics.json"))) == 3
    optimisation = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert optimisation["name"] == "optuna" and optimisation["solutions"]


@pytest.mark.slow
def test_submitit_local_runs_each_job_in_its_own_process(tmp_path):
    """Slow (~10 s): submitit starts a Python process per job, each importing torch and Lightning."""
    sweep = tmp_path / "sweep"
    result = nst(
        "-m", *FAST, "logger=none", "hydra/launcher=local", "loss.style_weight=1e2,1e3",
        f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert [m["status"] for m in metrics] == ["finished", "finished"]
    assert (sweep / ".submitit").is_dir()


def _sweep_overrides(sweep: dict) -> list[list[str]]:
    """Every grid point of a W&B sweep file, or the bounds and values of a random/bayes one."""
    choices = []
    for key, spec in sweep["parameters"].items():
        values = spec.get("values") or [spec[k] for k in ("min", "max") if k in spec] or [spec.get("value")]
        choices.append([f"{key}={v}" for v in values])
    return [list(combo) for combo in itertools.product(*choices)]


@pytest.mark.parametrize("path", sorted((ROOT / "docs" / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_wandb_sweep_files_drive_the_same_cli_with_valid_overrides(make_cfg, path):
    sweep = yaml.safe_load(path.read_text())
    assert "${args_no_hyphens}" in sweep["command"] and "nst" in sweep["command"]
    for overrides in _sweep_overrides(sweep):
        cfg = make_cfg(*overrides)
        assert cfg.loss.style_weight >= 0


def test_pareto_front_keeps_the_points_nobody_beats_on_both_errors():
    points = [(1.0, 0.1), (0.5, 0.5), (0.6, 0.6), (0.1, 1.0), (2.0, 0.1)]
    assert pareto_front(points) == [3, 1, 0]


def test_loss_curves_are_drawn_against_evaluations_so_lbfgs_and_adam_share_an_axis():
    lbfgs = Run(
        Path("a"),
        {},
        {},
        history=[{"step": 0, "evaluations": 1, "total": 9.0}, {"step": 1, "evaluations": 20, "total": 2.0}],
    )
    adam = Run(
        Path("b"),
        {},
        {},
        history=[{"step": 1, "evaluations": 1, "total": 9.0}, {"step": 20, "evaluations": 20, "total": 4.0}],
    )
    assert curve(lbfgs) == ([1, 20], [9.0, 2.0])
    assert curve(adam) == ([1, 20], [9.0, 4.0])


def test_loss_curves_go_against_seconds_when_every_history_has_them():
    timed = Run(Path("a"), {}, {}, history=[{"step": 0, "evaluations": 1, "time_s": 0.0, "total": 9.0}])
    older = Run(Path("b"), {}, {}, history=[{"step": 0, "evaluations": 1, "total": 9.0}])  # from before time_s
    assert curve_axis([timed], "time_s") == "time_s"
    assert curve_axis([timed, older], "time_s") == "evaluations"


def test_the_compare_table_flags_a_finished_run_whose_lbfgs_got_stuck():
    runs = [
        Run(Path("stuck"), {"status": "finished", "lbfgs_pairs": [6, 100]}, {}),
        Run(Path("healthy"), {"status": "finished", "lbfgs_pairs": [100, 100]}, {}),
        Run(Path("adam"), {"status": "finished"}, {}),
        Run(Path("failed"), {"status": "failed", "error": "the loss became nan at step 3"}, {}),
    ]
    errors = [row["error"] for row in table_rows(runs)]
    assert errors == ["L-BFGS stuck: kept 6 of 100 curvature pairs (see its run.log)", "", "", runs[3].metrics["error"]]


def test_a_stuck_lbfgs_run_is_kept_off_the_pareto_front(tmp_path):
    def run(name: str, content: float, style: float, pairs: list[int]) -> Run:
        figures = {"content_error": content, "style_error": style, "lbfgs_pairs": pairs}
        return Run(Path(name), {"status": "finished", **figures}, {})

    stuck, moved = run("stuck", 0.05, 0.55, [6, 100]), run("moved", 0.2, 0.3, [100, 100])
    assert scatter([stuck, moved], tmp_path / "pareto.png") == [moved]
    assert (tmp_path / "pareto.png").is_file()


def test_every_label_of_the_pareto_plot_lies_inside_its_axes(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(report, "_save_figure", lambda fig, path: drawn.append(fig))
    runs = [Run(Path(str(i)), {"status": "finished", "content_error": c, "style_error": s}, {})
            for i, (c, s) in enumerate([(0.1, 0.9), (0.9, 0.1), (0.9, 0.9), (0.5, 0.5)])]  # fmt: skip
    runs[2].number = 12345  # the longest label, at the top right corner
    scatter(runs, tmp_path / "pareto.png")
    (fig,) = drawn
    fig.canvas.draw()
    (ax,) = fig.axes
    box = ax.get_window_extent()
    for label in ax.texts:
        inside = label.get_window_extent()
        assert box.x0 <= inside.x0 and inside.x1 <= box.x1 and box.y0 <= inside.y0 and inside.y1 <= box.y1, label


def test_the_pareto_front_can_be_drawn_on_the_judges_sliced_wasserstein_figure(tmp_path):
    def run(name: str, content: float, gram: float, swd: float) -> Run:
        figures = {"content_error": content, "style_error": gram, "style_swd": swd}
        return Run(Path(name), {"status": "finished", **figures}, {})

    gram_run, mrf_run = run("gram", 0.5, 0.09, 0.05), run("mrf", 0.6, 0.20, 0.03)
    assert scatter([gram_run, mrf_run], tmp_path / "gram.png") == [gram_run]  # better content and Gram error
    assert scatter([gram_run, mrf_run], tmp_path / "swd.png", "style_swd") == [gram_run, mrf_run]
    older = Run(Path("older"), {"status": "finished", "content_error": 0.1, "style_error": 0.1}, {})
    assert scatter([older, mrf_run], tmp_path / "swd.png", "style_swd") == [mrf_run]  # judged before the SWD: left out


def test_the_report_of_hundreds_of_runs_stays_a_readable_size(tmp_path):
    """The contact sheet shows the first 64 runs of the table, the loss curves' legend the first 20."""
    for i in range(150):
        run = tmp_path / "sweep" / str(i)
        run.mkdir(parents=True)
        metrics = {"status": "finished", "content_error": 1 / (i + 1), "style_error": 0.01 * i, "error_sum": 1.0}
        (run / "metrics.json").write_text(json.dumps(metrics))
        (run / "history.csv").write_text("step,evaluations,total\n0,1,5.0\n1,20,2.0\n")
        Image.new("RGB", (8, 6), "blue").save(run / "final.png")
    files = compare([tmp_path / "sweep"], tmp_path / "report")
    assert len(files["markdown"].read_text().splitlines()) == 2 + 150
    with Image.open(files["sheet"]) as sheet:
        assert sheet.height < 17 * (256 + 60)  # 64 tiles in rows of 4, not 150


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0 must be a whole number >= 1"),
        ("hydra.sweeper.direction=minimize", "gives 1 direction(s) for the 2 objective(s)"),
        ("hydra.sweeper.direction=[minimize,upward]", "each is minimize or maximize, not 'upward'"),
        ("objective=null", "an Optuna sweep minimises the run's `objective`"),
    ],
)
def test_an_optuna_sweep_it_cannot_run_is_one_line_before_anything_is_written(tmp_path, capsys, setting, says):
    sweep = tmp_path / "sweep"
    code, err = run_cli(tmp_path, capsys, "-m", "hparams_search=optuna", "debug=tiny", setting,
                        f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert code == 2 and err.strip().startswith("nst: error:") and says in err and len(err.strip().splitlines()) == 1
    assert not sweep.exists()
