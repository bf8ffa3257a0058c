"""A single run's settings checked before Hydra writes anything: a refused run leaves no directory behind.

Hydra creates the run directory, `.hydra/` and the log before the job starts; nst's
lock and `metrics.json` follow. This callback runs the job's own checks first
(nst/settings.py's, which need no torch, then the branch's own: nst/branches.py),
in Hydra's `on_run_start`, and ends a refused run there with its one line and exit
code 2. The job then skips its own check of the same config (`passed`); a resume's
directory, checkpoint and overrides are checked here too (its saved config by the job);
a sweep's jobs and a SLURM job are checked by the job alone.
"""

import copy
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from nst import settings
from nst.branches import by_config
from nst.configs import task_overrides
from nst.errors import NSTError
from nst.processes import first_process

_passed: set[str] = set()  # the configs this process's refusal passed: their jobs need no second check


def passed(cfg: DictConfig) -> bool:
    """Whether this process already checked `cfg` whole before Hydra wrote anything (a single run)."""
    return bool(_passed) and OmegaConf.to_yaml(cfg) in _passed


class RefuseBadSettings(Callback):
    """Before a single run starts: its settings checked, a bad one refused with nothing written."""

    def on_run_start(self, config: DictConfig, config_name: str | None = None, **kwargs: Any) -> None:
        if not first_process():  # checked by the first process of a DDP run
            return
        overrides = task_overrides(config.hydra)
        registration = by_config(config_name)
        if config.get("resume"):
            self._check_resume(config.resume, overrides, registration.steps_key)
            return
        job = copy.deepcopy(config)
        with read_write(job), open_dict(job):
            del job["hydra"]
        try:
            settings.check(job, registration.settings)  # no torch needed: fast
            registration.checker()(job, overrides, described=False)
            _passed.add(OmegaConf.to_yaml(job))
        except NSTError as exc:
            self._refuse(str(exc))
        except OmegaConfBaseException as exc:
            self._refuse(f"a setting cannot be read: {str(exc).splitlines()[0]} (quote it, or escape $ as \\$)")

    def _check_resume(self, given: str, overrides: list[str], steps_key: str) -> None:
        """A resume's directory, checkpoint and overrides, as the job will read them (its config is the run's own,
        checked by the job)."""
        from hydra.utils import to_absolute_path

        from nst.checkpoints import resumable

        try:
            resumable(Path(to_absolute_path(str(given))), overrides, steps_key, write=False)
        except NSTError as exc:
            self._refuse(str(exc))

    @staticmethod
    def _refuse(problem: str) -> None:
        print(f"nst: error: {problem}", file=sys.stderr)
        sys.exit(2)
