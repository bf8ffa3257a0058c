"""Writing run outputs: atomically, with the user's umask, and somewhere else when their disk cannot take them.

Every file is written to a temporary file and renamed, so a crash never leaves half
a file. When the run directory's disk is full or read-only, a finished result is not
lost: `atomic_write` puts the file in a rescue folder on another disk (the system's
temporary folder, else the home folder) and `rescued()` lists what went there, so
that the run can end with one line that names both places.
"""

import errno
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from nst.errors import NSTError

log = logging.getLogger(__name__)

# What "this disk cannot take the file" looks like, as opposed to a bug in a path.
DISK_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
_rescued: dict[Path, Path] = {}  # in this process: each output that went to the rescue folder, and where
_folders: dict[Path, list[Path]] = {}  # each run directory's rescue folders, chosen once


class DiskFault(NSTError):
    """A run output could not be written where it belongs; `path` and `reason` say which and why."""

    def __init__(self, path: Path, exc: OSError):
        self.path, self.reason = path, exc.strerror or type(exc).__name__
        fix = "free space there" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "make it writable"
        super().__init__(f"cannot write {path} ({self.reason}): {fix} or choose another hydra.run.dir")


class RescuedOutputs(NSTError):
    """The run finished, but its disk did not take some of its outputs: they are in the rescue folder."""

    def __init__(self, moved: dict[Path, Path]):
        self.moved = moved
        directories = sorted({str(p.parent) for p in moved})
        folders = sorted({str(t.parent) for t in moved.values()})
        size = sum(t.stat().st_size for t in moved.values() if t.exists()) / 2**20
        names = ", ".join(sorted({p.name for p in moved}))
        super().__init__(
            f"{', '.join(directories)} could not take {names}: they are in {', '.join(folders)} instead; "
            f"free about {max(size, 0.1):.1f} MiB there (more for snapshots and W&B) and move them back"
        )


def is_disk_fault(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FAULTS


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600: colleagues on a shared filesystem could not read it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes, rescue: bool = True) -> Path:
    """Write `data` to `path`; where its disk cannot take it, to the rescue folder (or `DiskFault` without `rescue`).

    Returns where the file is.
    """
    path = Path(path)
    try:
        _write(path, data)
        return path
    except OSError as exc:
        if not is_disk_fault(exc):
            raise
        fault = DiskFault(path, exc)
    if not rescue:
        raise fault
    for folder in _rescue_folders(path.parent):
        target = folder / path.name
        try:
            _write(target, data)
        except OSError:
            continue
        _rescued[path] = target
        log.warning("%s; written to %s instead", fault, target)
        try:
            path.unlink(missing_ok=True)  # an older version (metrics.json's "running"): it would mislead
        except OSError:
            pass
        return target
    raise fault


def _rescue_folders(directory: Path) -> list[Path]:
    """Where `directory`'s outputs go instead: one folder per directory and process, other disks first."""
    if directory not in _folders:
        name = f"{directory.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        roots = [Path(tempfile.gettempdir()), Path.home()]
        try:
            device = os.stat(directory).st_dev
            roots.sort(key=lambda root: root.exists() and os.stat(root).st_dev == device)
        except OSError:
            pass
        _folders[directory] = [root / "nst-rescued" / name for root in roots]
    return _folders[directory]


def rescued() -> dict[Path, Path]:
    """Each output of this process that its disk could not take, and where it was written instead."""
    return dict(_rescued)


def write_json(path: str | Path, data: dict[str, Any], rescue: bool = True) -> Path:
    return atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), rescue)
