"""What a job of a sweep needs to know about the sweep: its W&B identity, its objective, the verdict.

Every job of a Hydra multirun is its own W&B run; the runs of one sweep share a
`group` (the sweep directory), are named by their overrides and tagged with
them, so the dashboard can group and filter them with no extra work.
"""

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nst.configs import task_overrides

log = logging.getLogger(__name__)

# Returned to a sweeper for a failed job: large but finite, since a NaN crashes Optuna (hydra#2237).
FAILED_OBJECTIVE = 1e6
WANDB_TAG_LIMIT = 64


class RunIdentity(TypedDict, total=False):
    name: str
    group: str | None
    tags: list[str]
    id: str  # a resumed run's W&B run, continued
    resume: str


def run_identity(hydra_cfg: DictConfig) -> RunIdentity:
    """Name, group and tags of this job's W&B run, from Hydra's view of the job."""
    overrides = [o for o in task_overrides(hydra_cfg) if not o.startswith("hydra")]
    group = None
    if hydra_cfg.mode == RunMode.MULTIRUN:
        group = str(hydra_cfg.sweep.dir).strip("/").replace("/", "_")
    return {
        "name": ",".join(overrides) or "defaults",
        "group": group,
        "tags": [o[:WANDB_TAG_LIMIT] for o in overrides],
    }


def resumed_identity(run_dir: Path) -> RunIdentity:
    """The identity an interrupted run had, from its directory, and its W&B run to continue (`wandb_id`)."""
    try:
        overrides = [o for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml") if not o.startswith("hydra")]
    except (OSError, ValueError):
        overrides = []
    identity: RunIdentity = {"name": ",".join(overrides) or "defaults"}
    identity["tags"] = [o[:WANDB_TAG_LIMIT] for o in overrides]
    try:
        wandb_id = json.loads((run_dir / "metrics.json").read_text()).get("wandb_id")
    except (OSError, ValueError):
        wandb_id = None
    if wandb_id:
        identity.update(id=wandb_id, resume="allow")
    return identity


def done_line(out_dir: Path, metrics: dict[str, Any]) -> str:
    """The line a finished run ends with: where its result is, and the judge's figures (or its loss)."""
    training = metrics.get("kind") == "training"
    result = f"{out_dir}/{'model.pt' if training else 'final.png'}"
    use = f"; use it: nst stylize model={out_dir} content=PHOTO out=FILE" if training else ""
    if "content_error" not in metrics:  # judge=false
        return f"done: {result} (loss {metrics.get('loss/total', float('nan')):.4g}){use}"
    figures = "content error {content_error:.3f}, style error {style_error:.3f}, style SWD {style_swd:.3f}"
    return f"done: {result} ({'validation: ' if training else ''}{figures.format(**metrics)}){use}"


def objective(names: Sequence[str] | None, metrics: dict[str, Any] | None) -> float | list[float] | None:
    """The figures a sweeper minimises (`objective: [content_error, style_error]`), penalised on failure."""
    if not names:
        return None
    values = [float(metrics[n]) if metrics is not None else FAILED_OBJECTIVE for n in names]
    values = [v if v == v and abs(v) != float("inf") else FAILED_OBJECTIVE for v in values]
    return values[0] if len(values) == 1 else values


def unfinished_jobs(sweep_dir: Path) -> list[tuple[Path, str, str]]:
    """The job directories of a sweep whose metrics.json says failed or interrupted, with that status and why."""
    unfinished = []
    for path in sorted(Path(sweep_dir).glob("**/metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            metrics = {"status": "failed", "error": f"its metrics.json cannot be read ({exc})"}
        if metrics.get("status") in ("failed", "interrupted"):
            unfinished.append((path.parent, metrics["status"], metrics.get("error", "unknown error")))
    return unfinished


def sweeper_problem(config: DictConfig) -> str | None:
    """What an Optuna sweep's settings cannot do with this config's objective, as the line that says so."""
    sweeper = config.hydra.get("sweeper") or {}
    if "optuna" not in str(sweeper.get("_target_", "")).lower():
        return None
    trials, jobs = sweeper.get("n_trials"), sweeper.get("n_jobs", 1)
    for key, value in (("n_trials", trials), ("n_jobs", jobs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"hydra.sweeper.{key}={value!r} must be a whole number >= 1"
    names = config.get("objective")
    if not names:
        return "an Optuna sweep minimises the run's `objective`: set objective=[content_error,style_error] or one"
    names = [names] if isinstance(names, str) else list(names)
    direction = sweeper.get("direction")
    directions = [direction] if isinstance(direction, str) else list(direction or [])
    if len(directions) != len(names):
        return (f"hydra.sweeper.direction={direction} gives {len(directions)} direction(s) for the {len(names)} "
                f"objective(s) {names}: give one per objective, e.g. [{', '.join(['minimize'] * len(names))}]")
    unknown = [d for d in directions if d not in ("minimize", "maximize")]
    if unknown:
        return f"hydra.sweeper.direction={direction}: each is minimize or maximize, not {unknown[0]!r}"
    return None


class SweepSettings(Callback):
    """Refuses, before the sweep starts and before anything is written, what its sweeper cannot run."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        problem = sweeper_problem(config)
        if problem:
            print(f"nst: error: {problem}", file=sys.stderr)
            sys.exit(2)


class SweepVerdict(Callback):
    """After a multirun: where it is and how to look at it, one line per failed or interrupted job, exit code 1 if
    there is one.

    An interrupted job (a signal, a SLURM job cancelled with `scancel --signal=TERM`)
    kept its checkpoint: `nst resume=DIR` finishes it.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        print(f"nst: sweep done: {sweep_dir}; compare its runs with `nst compare {sweep_dir}`", file=sys.stderr)
        unfinished = unfinished_jobs(sweep_dir)
        for job_dir, status, error in unfinished:
            print(f"nst: job {job_dir} {status}: {error}", file=sys.stderr)
        failed = sum(status == "failed" for _, status, _ in unfinished)
        interrupted = len(unfinished) - failed
        if unfinished:
            counts = [f"{n} {what}" for n, what in ((failed, "failed"), (interrupted, "interrupted")) if n]
            print(f"nst: {' and '.join(counts)} job(s) of the sweep; the others finished", file=sys.stderr)
            sys.exit(1)
