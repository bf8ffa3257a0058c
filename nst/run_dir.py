"""One run owns its directory: a lock file with the owner's pid, taken before anything is written there.

Two runs started with the same `hydra.run.dir` would otherwise both write to it and
both exit 0, leaving one's image beside the other's config. The second refuses with
one line instead. A lock whose process is gone (a killed run) is taken over.
"""

import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from nst.errors import NSTError
from nst.outputs import DiskFault
from nst.processes import first_process

LOCK = ".nst.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def holder(directory: Path) -> int | None:
    """The pid of the live process other than this one that holds `directory`, if one does."""
    try:
        pid = int((Path(directory) / LOCK).read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and pid != os.getpid() and _alive(pid) else None


def claim(directory: Path, key: str = "hydra.run.dir") -> None:
    """Make `directory` this process's, or refuse with one line naming the run that has it (`key` sets it)."""
    lock = Path(directory) / LOCK
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        if pid := holder(directory):
            raise NSTError(
                f"{directory} is in use by another nst run (pid {pid}): give each run its own {key}, "
                f"or wait for it to end"
            )
        lock.write_text(f"{os.getpid()}\n")
    except OSError as exc:  # a full or read-only disk, or a path through a file: nothing can be written there
        raise NSTError(f"{DiskFault(Path(directory), exc)}; nothing was optimised") from None


def release(directory: Path) -> None:
    """Give `directory` up, if this process holds it."""
    lock = Path(directory) / LOCK
    try:
        if int(lock.read_text().strip() or 0) == os.getpid():
            lock.unlink()
    except (OSError, ValueError):
        pass


class RunDirLock(Callback):
    """Claims a single run's directory, or a sweep's, before Hydra writes there, so a second one changes nothing.

    A second sweep into the same `hydra.sweep.dir` would otherwise rewrite each job's
    `.hydra/` before the job's own lock refused it, leaving one sweep's images under the
    other's settings.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if first_process():  # the other processes of a DDP training share the first's directory
            _claim_or_exit(Path(str(config.hydra.run.dir)), "hydra.run.dir")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        if first_process():
            release(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _claim_or_exit(Path(str(config.hydra.sweep.dir)), "hydra.sweep.dir")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        release(Path(str(config.hydra.sweep.dir)))


def _claim_or_exit(directory: Path, key: str) -> None:
    try:
        claim(directory, key)
    except NSTError as exc:
        print(f"nst: error: {exc}", file=sys.stderr)
        sys.exit(2)
