"""Start-up: what a short run costs beyond its evaluations, against a bare script, side by side in one run.

(a) The config commands (`nst --cfg job`, `nst --help`, `nst compare`), each a fresh
process. (b) A whole `nst` process at `--size` px with `--steps` L-BFGS steps of 20
evaluations (W&B offline, defaults otherwise) against benchmarks/bare.py doing the
same optimisation in its own process, alternating, `--rounds` each, fastest of each
compared. (c) Where the `nst` process's time goes: one more run with its phases timed
from inside (`--probe`, wrappers around the pipeline's steps; nothing else changes).
(d) An in-process multirun of `--jobs` jobs (seeds) of `--job-steps` steps: its wall
time less the jobs' evaluations (the bare script's loop time for that many steps),
per job. (e) W&B's start and finish under each of the settings that could shorten
it, fresh processes. Writes the section `startup-<device>` of results.md
(`--section=-before` for a checkout of older code, this file copied into it).

    python -m benchmarks.startup [--size 128] [--steps 10] [--rounds 3] [--jobs 8] [--job-steps 2]

Nothing heavy is imported at the top: the probe's import phase must be nst's own.
"""

import argparse
import atexit
import functools
import importlib.abc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "nst" / "examples"
BARE = [sys.executable, str(ROOT / "benchmarks" / "bare.py"), str(EXAMPLES / "tubingen.jpg")]
BARE.append(str(EXAMPLES / "starry_night.jpg"))
NST = [sys.executable, "-m", "nst"]
# Every process imports nst from this checkout, whichever one is installed (to measure an older one beside it).
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
# The bare script's loss weights; the rest of nst's defaults are the bare script's settings.
SAME_RUN = ["loss.style_weight=1e5", "trainer.enable_progress_bar=false"]


def timed_process(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds from start to exit of a fresh process, which must succeed."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env or ENV)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def bare(size: int, steps: int, work: Path) -> dict[str, Any]:
    """One run of the bare script in its own process: its loop's seconds, evaluations and final loss."""
    done = subprocess.run([*BARE, str(size), str(steps)], cwd=work, capture_output=True, text=True, check=True, env=ENV)
    return json.loads(done.stdout)


def config_commands(rounds: int, run_dir: Path, work: Path) -> list[tuple[str, float]]:
    """The fastest of `rounds` fresh processes for each command that prints or reads and runs nothing."""
    commands = {
        "nst --cfg job": [*NST, "--cfg", "job"],
        "nst --help": [*NST, "--help"],
        "nst --info": [*NST, "--info"],
        "nst compare RUN": [*NST, "compare", str(run_dir), "--out", str(work / "compare")],
        "python -c pass (the interpreter alone)": [sys.executable, "-c", "pass"],
    }
    return [(label, min(timed_process(c, work) for _ in range(rounds))) for label, c in commands.items()]


def whole_process(size: int, steps: int, rounds: int, work: Path) -> dict[str, Any]:
    """nst and the bare script, alternating; the fastest round of each, and nst's own fit time."""
    nst_s, bare_s, fits, loops = [], [], [], []
    for index in range(rounds):
        out = work / f"whole{index}"
        nst_s.append(timed_process([*NST, f"image.size={size}", f"optimizer.steps={steps}", *SAME_RUN,
                                    f"hydra.run.dir={out}"], work))  # fmt: skip
        fits.append(json.loads((out / "metrics.json").read_text())["fit_time_s"])
        started = time.perf_counter()
        done = subprocess.run(
            [*BARE, str(size), str(steps)], cwd=work, capture_output=True, text=True, check=True, env=ENV
        )
        bare_s.append(time.perf_counter() - started)
        loops.append(json.loads(done.stdout)["loop_s"])
        print(f"round {index}: nst {nst_s[-1]:.2f} s, bare {bare_s[-1]:.2f} s", flush=True)
    return {"nst_s": min(nst_s), "bare_s": min(bare_s), "fit_s": min(fits), "loop_s": min(loops),
            "rounds": (nst_s, bare_s)}  # fmt: skip


def probed(size: int, steps: int, work: Path) -> dict[str, float]:
    """One nst run with its phases timed from inside (`probe`), and its whole wall time."""
    out, report = work / "probed", work / "phases.json"
    env = {**ENV, "NST_PROBE_T0": repr(time.time())}
    command = [sys.executable, "-m", "benchmarks.startup", "--probe", str(report), "--",
               f"image.size={size}", f"optimizer.steps={steps}", *SAME_RUN, f"hydra.run.dir={out}"]  # fmt: skip
    timed_process(command, ROOT, env)
    ended = time.time()
    phases = json.loads(report.read_text())
    phases["exit: W&B teardown, interpreter shutdown"] = ended - phases.pop("_main_returned")
    phases["total"] = ended - float(env["NST_PROBE_T0"])
    return phases


def multirun(jobs: int, size: int, steps: int, work: Path) -> dict[str, float]:
    """An in-process multirun of `jobs` seeds; the bare script's loop time for one job's evaluations."""
    sweep = work / "sweep"
    seeds = ",".join(str(s) for s in range(jobs))
    wall = timed_process([*NST, "-m", f"seed={seeds}", f"image.size={size}", f"optimizer.steps={steps}", *SAME_RUN,
                          f"hydra.sweep.dir={sweep}"], work)  # fmt: skip
    fits = [json.loads(p.read_text())["fit_time_s"] for p in sweep.glob("*/metrics.json")]
    loop = bare(size, steps, work)["loop_s"]
    return {"wall_s": wall, "fit_s": sum(fits), "loop_s": loop, "jobs": len(fits)}


# W&B settings that could shorten its start, each tried in fresh processes beside nst's own (`wandb_start`).
WANDB_VARIANTS = {
    "nst's settings": [],
    "console=off (no console capture)": ["console=off"],
    "x_disable_stats (no system metrics)": ["x_disable_stats=true"],
    "x_disable_meta (no system metadata)": ["x_disable_meta=true"],
    "x_save_requirements=false": ["x_save_requirements=false"],
}


def wandb_starts(rounds: int, work: Path) -> list[tuple[str, float]]:
    """Seconds from opening nst's W&B logger to finishing its run, per variant, fastest of `rounds` processes."""
    best: dict[str, float] = {}
    for index in range(rounds):
        for label, settings in WANDB_VARIANTS.items():
            command = [sys.executable, "-m", "benchmarks.startup", "--wandb-probe", str(work / f"wandb{index}"),
                       "--", *settings]  # fmt: skip
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, env=ENV)
            best[label] = min(best.get(label, float("inf")), float(done.stdout.strip().splitlines()[-1]))
    return list(best.items())


def wandb_start(out: Path, settings: list[str]) -> None:
    """Open and finish nst's W&B logger with `settings` added, after the pipeline's imports (`--wandb-probe`)."""
    from hydra import compose, initialize_config_dir

    from nst import environment
    from nst.configs import CONF_DIR

    environment.configure()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"+logger.settings.{s}" for s in settings])
    if Path(ROOT / "nst" / "wandb_preload.py").exists():  # as the run does, before torch
        from nst.wandb_preload import preload

        preload(cfg.logger)
    from nst.loggers import build_logger, finish_logger
    from nst.pipeline import Job  # noqa: F401 - the run's imports, as W&B finds them in a real run

    started = time.perf_counter()
    logger = build_logger(cfg.logger, out, {"name": "startup"})
    finish_logger(logger, None)
    print(time.perf_counter() - started)


def probe(report: Path, argv: list[str]) -> None:
    """Run `nst ARGV` in this process with its phases timed (the `--probe` mode); write them to `report`.

    The pipeline's steps are wrapped as soon as nst.pipeline is imported, wherever nst
    imports it, so the imports happen where a real run has them.
    """
    launched = float(os.environ["NST_PROBE_T0"])
    marks = {"start": time.time()}
    spans: dict[str, float] = defaultdict(float)

    def timing(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name, None)
        if original is None:  # older code without this step
            return

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.time()
            marks.setdefault(f"{label}:first", started)
            try:
                return original(*args, **kwargs)
            finally:
                spans[label] += time.time() - started

        setattr(owner, name, wrapper)

    def wrap_pipeline(pipeline: Any) -> None:
        marks["pipeline"] = time.time()
        backbones, module, life = sys.modules["nst.backbones"], sys.modules["nst.module"], sys.modules["nst.lifecycle"]
        for owner, name, label in [
            (life, "live", "run"),
            (pipeline, "check_job", "checks"),
            (backbones.VGG, "__init__", "backbone build"),
            (backbones, "load_verified", "weights read"),
            (backbones, "file_digest", "weights checksum"),
            (pipeline, "load_stage", "images"),
            (life, "open_loggers", "loggers"),
            (pipeline, "fit", "fit"),
            (module.StyleTransfer, "on_fit_start", "targets"),
            (module.StyleTransfer, "training_step", "steps"),
            (pipeline, "quality", "judge"),
            (pipeline, "write_outputs", "outputs"),
            (life, "record", "record"),
        ]:
            timing(owner, name, label)

    sys.meta_path.insert(0, _AfterImport("nst.pipeline", marks, wrap_pipeline))
    sys.meta_path.insert(0, _AfterImport("torch", marks, lambda _: None))  # marks where the heavy imports begin

    def write() -> None:
        run = spans.pop("run")
        pipeline_import = marks["pipeline"] - marks["torch:importing"]
        imports = marks["cli"] - marks["start"] + (pipeline_import if marks["torch:importing"] > marks["cli"] else 0)
        phases = {
            "interpreter start": marks["start"] - launched,
            "imports: nst.cli and the pipeline (torch, Lightning)": imports,
            "imports: of which torch, Lightning and the pipeline": pipeline_import,
            "W&B: imported before torch (nst/wandb_preload.py)": spans["wandb preload"],
            "Hydra: compose config, run dir, logging": marks["run:first"]
            - marks["start"]
            - imports
            - spans["wandb preload"],
            "checks": spans["checks"],
            "backbone: weights read": spans["weights read"] - spans["weights checksum"],
            "backbone: weights checksum": spans["weights checksum"],
            "backbone: network built": spans["backbone build"] - spans["weights read"],
            "images loaded": spans["images"],
            "loggers opened (W&B init), inputs logged": spans["loggers"],
            "fit: target encoding": spans["targets"],
            "fit: optimizer steps (the evaluations)": spans["steps"],
            "fit: Lightning set-up and teardown, final measure": spans["fit"] - spans["targets"] - spans["steps"],
            "outputs: judge": spans["judge"],
            "outputs: final.png, figures logged": spans["outputs"] - spans["judge"],
            "record: metrics.json, W&B finish": spans["record"],
        }
        accounted = sum(v for k, v in phases.items() if k.startswith(("checks", "backbone", "images", "loggers")))
        accounted += sum(v for k, v in phases.items() if k.startswith(("fit", "outputs", "record")))
        phases["run: other"] = run - accounted
        phases["Hydra: job end"] = marks["main"] - marks["run:first"] - run
        report.write_text(json.dumps({**phases, "_main_returned": marks["main"]}))

    atexit.register(write)  # registered first, so it runs after W&B's own exit handlers
    import nst.cli

    marks["cli"] = time.time()
    if hasattr(nst.cli, "wandb_preload"):
        timing(nst.cli.wandb_preload, "preload", "wandb preload")
    sys.argv = ["nst", *argv]
    nst.cli.main()
    marks["main"] = time.time()


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls `then` right after module `name` is first imported (and marks when its import began)."""

    def __init__(self, name: str, marks: dict[str, float], then: Callable[[Any], None]) -> None:
        self.name, self.marks, self.then = name, marks, then

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        self.marks[f"{name.rsplit('.', 1)[-1]}:importing"] = time.time()
        spec = importlib.util.find_spec(name)
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            self.then(module)

        spec.loader.exec_module = exec_module
        return spec


def table(commands: list, whole: dict, phases: dict, sweep: dict, starts: list, args: argparse.Namespace) -> str:
    from benchmarks.results_file import bench_device, machine

    device = bench_device()
    evaluations = 20 * args.steps
    ratio = whole["nst_s"] / whole["bare_s"]
    lines = [
        f"## Start-up and per-job overhead ({device.type}, {args.size} px)",
        "",
        f"Measured {machine()} by `python -m benchmarks.startup --size {args.size} --steps {args.steps} "
        f"--rounds {args.rounds} --jobs {args.jobs} --job-steps {args.job_steps}`.",
        "",
        "| command (fresh process, fastest of the rounds) | seconds |",
        "| --- | ---: |",
        *[f"| `{label}` | {seconds:.2f} |" for label, seconds in commands],
        "",
        f"Whole process, {evaluations} L-BFGS evaluations at {args.size} px (W&B offline, defaults otherwise),",
        f"fastest of {args.rounds} alternating rounds: nst **{whole['nst_s']:.2f} s**, the bare script "
        f"(benchmarks/bare.py) **{whole['bare_s']:.2f} s**: ratio **{ratio:.3f}**. Their optimisation loops alone: "
        f"nst's fit {whole['fit_s']:.2f} s, the bare loop {whole['loop_s']:.2f} s.",
        "",
        "Where one nst process's time goes (timed from inside, one more run):",
        "",
        "| phase | seconds |",
        "| --- | ---: |",
        *[f"| {name} | {seconds:.3f} |" for name, seconds in phases.items() if name != "total"],
        f"| **total** | **{phases['total']:.2f}** |",
        "",
        f"Multirun of {sweep['jobs']} jobs (seeds) of {20 * args.job_steps} evaluations at {args.size} px, in one "
        f"process: {sweep['wall_s']:.2f} s; its fits {sweep['fit_s']:.2f} s; the bare loop for one job's "
        f"evaluations {sweep['loop_s']:.2f} s. Overhead per job beyond its evaluations "
        f"((wall − {sweep['jobs']} × bare loop) / {sweep['jobs']}): "
        f"**{(sweep['wall_s'] - sweep['jobs'] * sweep['loop_s']) / sweep['jobs']:.2f} s**; beyond its fit: "
        f"{(sweep['wall_s'] - sweep['fit_s']) / sweep['jobs']:.2f} s.",
        "",
        "W&B's start and finish (offline) after the pipeline's imports, fresh process each, fastest of the rounds:",
        "",
        "| W&B settings | seconds |",
        "| --- | ---: |",
        *[f"| {label} | {seconds:.2f} |" for label, seconds in starts],
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="L-BFGS steps of 20 evaluations, whole process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=8, help="jobs of the multirun")
    parser.add_argument("--job-steps", type=int, default=2, help="L-BFGS steps of each multirun job")
    parser.add_argument("--section", default="", help="results.md section name suffix (e.g. -before)")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--wandb-probe", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.probe:
        probe(args.probe, [a for a in rest if a != "--"])
        return
    if args.wandb_probe:
        wandb_start(args.wandb_probe, [a for a in rest if a != "--"])
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        whole = whole_process(args.size, args.steps, args.rounds, work)
        commands = config_commands(args.rounds, work / "whole0", work)
        phases = probed(args.size, args.steps, work)
        sweep = multirun(args.jobs, args.size, args.job_steps, work)
        starts = wandb_starts(args.rounds, work)
    body = table(commands, whole, phases, sweep, starts, args)
    print(body)
    from benchmarks.results_file import bench_device, write_section

    write_section(f"startup-{bench_device().type}{args.section}", body)


if __name__ == "__main__":
    main()
