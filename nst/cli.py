"""The `nst` command: an image run (`nst …`), a training run (`nst train …`), `nst stylize …`, `nst export …` or
`nst compare …`.

Image and training runs (and any branch of nst/branches.py) are Hydra runs whose bad input ends in one line and
exit code 2.

Exit codes: 0 done; 1 a sweep in which some job failed or was interrupted (nst/sweeps.py); 2
bad input or a failed run; 128 + N stopped by signal N, resumable with `nst resume=DIR`. A job
that SLURM runs returns instead of exiting (nst/cluster.py).
Set NST_DEBUG=1 (or `hydra.verbose=true`) to see the traceback instead.
"""

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from hydra_plugins.nst_launcher import BatchedLauncher
from nst import cluster, command_line, environment, wandb_preload
from nst.branches import BRANCHES, Registration
from nst.configs import task_overrides
from nst.errors import NSTError, Stopped
from nst.processes import first_process
from nst.sweeps import done_line, objective, resumed_identity, run_identity

if TYPE_CHECKING:
    from nst.checkpoints import Interrupted

log = logging.getLogger("nst")
environment.configure()  # here, not in main: submitit's workers import this module's task function


def _hydra(registration: Registration) -> None:
    """The branch's Hydra run (or sweep) over its primary config."""

    def task(cfg: DictConfig) -> float | list[float] | None:
        if registration.command:  # the command as given: Lightning's DDP restarts it once per extra device
            sys.argv.insert(1, registration.command)
        try:
            return _job(cfg, registration)
        finally:
            if registration.command:
                del sys.argv[1]

    hydra.main(version_base="1.3", config_path=str(registration.config_dir), config_name=registration.config_name)(
        task
    )()


def _job(cfg: DictConfig, registration: Registration) -> float | list[float] | None:
    """One job of any branch: its run, its outcome on the console, its objective for a sweeper."""
    wandb_preload.preload(cfg.logger)  # before the imports below
    # Here, not at the top: `nst --cfg`, `--help`, `--info` and tab completion never call this, and skip torch.
    from nst import lifecycle
    from nst.checkpoints import RESUME_CHECKPOINT, Interrupted, resumable
    from nst.runs import Job

    steps_key = registration.steps_key

    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = task_overrides(hydra_cfg)
    try:
        resume, identity = None, run_identity(hydra_cfg)
        given = cfg.resume
        if given or (cluster.requeued() and (out_dir / RESUME_CHECKPOINT).is_file()):  # requeued: its own directory
            out_dir, cfg, resume = resumable(Path(to_absolute_path(given)) if given else out_dir,
                                             overrides if given else [], steps_key)  # fmt: skip
            overrides, identity = [], resumed_identity(out_dir)
        branch = registration.steps()  # its modules imported here: a benchmark's timers wrap them now
        (metrics,) = lifecycle.live(branch, [Job(cfg, out_dir, identity, overrides)], resume)
    except Stopped as exc:  # a signal outside the fit: metrics.json already says how the run stands
        return _signalled(exc, cfg)
    except Exception as exc:
        if isinstance(exc, OmegaConfBaseException):  # a setting that cannot be read (`${` in a path): bad input
            exc = NSTError(f"a setting cannot be read: {str(exc).splitlines()[0]} (quote it, or escape $ as \\$)")
        if not (sweeping or isinstance(exc, NSTError)) or os.environ.get("NST_DEBUG") or hydra_cfg.verbose:
            raise  # a bug, not bad input, or asked for: keep the traceback
        if isinstance(exc, Interrupted):  # asked for, not a failure: no "error"
            return _signalled(exc, cfg)
        print(f"nst: error: {exc}", file=sys.stderr)
        if not sweeping:
            sys.exit(2)
        from nst.lifecycle import refused

        refused(out_dir, exc)
        log.error("job failed; the sweep goes on (see %s/metrics.json)", out_dir)
        return objective(cfg.objective, None)
    if first_process():  # the other processes of a DDP training leave the line to the first
        log.info(done_line(out_dir, metrics))
    return objective(cfg.objective, metrics)


def _signalled(exc: "Interrupted | Stopped", cfg: DictConfig) -> float | list[float] | None:
    """A job stopped by a signal: the line that says so, then the process ends with 128 + N, or under SLURM the job
    is requeued (SIGUSR2, it resumes) or returns for the sweep's verdict to list."""
    if first_process():  # the other processes of a DDP training stopped with it: one line says so
        print(f"nst: {exc}", file=sys.stderr)
    if not cluster.scheduled():
        sys.exit(128 + exc.signum)  # a sweep stops too: the next job would not start
    if exc.signum == cluster.requeue_signal():
        cluster.hand_on(exc.signum)  # submitit requeues the job (and exits): it resumes from its checkpoint
    return objective(cfg.objective, None)  # the sweep collects this job's result; the verdict lists it


# The commands that are no Hydra run, each a function of its arguments returning the exit code.
TOOLS = {"compare": "nst.compare:main", "export": "nst.train.export:main", "stylize": "nst.train.stylize:main"}


def main() -> None:
    """Console-script entry point: `nst compare|export|stylize …` run those tools, anything else a branch's run."""
    tool = TOOLS.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if tool:
        module, _, name = tool.partition(":")
        sys.exit(getattr(importlib.import_module(module), name)(sys.argv[2:]))
    registration = BRANCHES.get(sys.argv[1] if len(sys.argv) > 1 else None) or BRANCHES[None]
    if registration.command:
        sys.argv = [sys.argv[0], *sys.argv[2:]]
    # `+experiment=NAME` (the form before `experiment` was a default-null group) means `experiment=NAME`.
    sys.argv = [a[1:] if a.startswith("+experiment=") else a for a in sys.argv]
    problem = _command_line_problem(registration)
    if problem:
        print(f"nst: error: {problem}", file=sys.stderr)
        sys.exit(2)
    _register_launcher()
    shown = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its composition errors here instead of printing them
    try:
        _hydra(registration)
    except (HydraException, OmegaConfBaseException) as exc:
        if os.environ.get("NST_DEBUG") or shown:
            raise
        print(f"nst: error: {_command_line_error(exc, registration)}", file=sys.stderr)
        sys.exit(2)
    except NSTError as exc:  # a sweeper's or launcher's own setting, refused as it is built
        if os.environ.get("NST_DEBUG"):
            raise
        print(f"nst: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Stopped as exc:  # a signal outside one job's own handling (a batch of runs): one line
        print(f"nst: {exc}", file=sys.stderr)
        sys.exit(128 + exc.signum)
    finally:
        if shown is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def _command_line_problem(registration: Registration) -> str | None:
    """What is wrong with the command line before Hydra reads it: an unknown flag, another command's experiment,
    a `resume=` that is no directory."""
    command = " ".join(("nst", *([registration.command] if registration.command else [])))
    return (
        command_line.unknown_flag(sys.argv[1:], lambda: command_line.flat_keys(_defaults(registration) or {}))
        or command_line.wrong_experiment(sys.argv[1:], str(registration.config_dir), command)
        or _resume_in_place()
    )


def _defaults(registration: Registration) -> DictConfig | None:
    """The branch's config composed without the command line (for a did-you-mean); None if it cannot be."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(registration.config_dir), version_base="1.3"):
            return compose(registration.config_name)
    except Exception:
        return None


def _command_line_error(exc: BaseException, registration: Registration) -> str:
    """Hydra's error as one line, with the config composed without the command line for a did-you-mean."""
    defaults = _defaults(registration)
    groups = command_line.group_options(str(registration.config_dir), registration.config_name)
    return command_line.error_line(exc, defaults, groups)


def _resume_in_place() -> str | None:
    """`resume=DIR` runs in DIR itself: no new run directory, and DIR's `.hydra/` kept as the run was configured.

    Returns the one-line error when DIR is no directory.
    """
    given = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("resume=")), None)
    if not given or given == "null" or {"-m", "--multirun"} & set(sys.argv):
        return None
    if not Path(given).is_dir():
        return f"resume={given}: no such directory; give the directory of an interrupted run"
    if not any(a.startswith("hydra.run.dir=") for a in sys.argv):
        sys.argv += [f"hydra.run.dir={given}", "hydra.output_subdir=null"]  # its run.log is appended to
    return None


def _register_launcher() -> None:
    """Make `hydra/launcher=batched` known to Hydra also where its plugin scan cannot see it (editable installs)."""
    Plugins.instance().register(BatchedLauncher)
