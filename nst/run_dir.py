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


def claim(directory: Path) -> None:
    """Make `directory` this process's, or refuse with one line naming the run that has it."""
    lock = Path(directory) / LOCK
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        if pid := holder(directory):
            raise NSTError(
                f"{directory} is in use by another nst run (pid {pid}): give each run its own hydra.run.dir, "
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
    """Claims a single run's directory before Hydra writes its `.hydra/` there, so a second run changes nothing."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            claim(Path(str(config.hydra.run.dir)))
        except NSTError as exc:
            print(f"nst: error: {exc}", file=sys.stderr)
            sys.exit(2)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        release(Path(str(config.hydra.run.dir)))
