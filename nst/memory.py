"""How much memory a run needs and used: checked before the first step, reported in metrics.json."""

import ctypes
import gc
import resource
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from nst.backbones import activation_bytes
from nst.errors import NSTError
from nst.images import size_at

if TYPE_CHECKING:
    from nst.module import StyleTransfer

_runs_started = 0  # in this process: the first run has no earlier run's memory to let go of


def reset_peak_memory() -> None:
    """Start measuring a new run's peak memory.

    The jobs of a sweep share one process: without this, each would report the
    largest peak of the jobs before it. On the CPU, Linux resets the process's
    resident high-water mark to its resident memory now; CUDA, its statistics.
    """
    global _runs_started
    if torch.cuda.is_initialized():
        for index in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(index)
    if _runs_started:
        gc.collect()  # the jobs before left tensors in reference cycles (Lightning's trainer and module)
        try:  # and memory they freed that the C allocator kept
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc
    _runs_started += 1
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux: the peak is the process's since it started


def _status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (Linux), such as VmHWM, the resident high-water mark."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith(f"{field}:")), None)


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """The run's peak so far and what it measures: CUDA's max allocated, or the process's peak resident set.

    On Linux the high-water mark of /proc, not getrusage's ru_maxrss: that one keeps the
    peak of the process nst was started from (it survives fork and exec), so a run started
    from a large Python process would report that process's memory.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    high_water = _status_kib("VmHWM")
    if high_water is not None:
        return high_water / 2**10, "process_peak_rss"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**10 if sys.platform == "darwin" else 1)  # macOS: B
    return kib / 2**10, "process_max_rss"


def resident_memory_mb() -> float | None:
    """This process's resident memory now (Linux), to see whether a long sweep in one process grows."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return round(pages * resource.getpagesize() / 2**20, 1)


def free_memory(device: torch.device) -> int | None:
    """Bytes the run can still allocate on `device` (None where that cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    available = next((line.split()[1] for line in meminfo.splitlines() if line.startswith("MemAvailable:")), None)
    return int(available) * 1024 if available else None


def memory_estimate(module: "StyleTransfer", lbfgs_history: int = 0) -> int:
    """Bytes a run needs beyond its start-up: activations and their gradients, L-BFGS history, images.

    1.2 x the activations one forward pass keeps (the backward pass frees them as
    it goes; calibrated on the CPU peaks at 1024 and 2048 px in benchmarks/results.md),
    plus two image-sized vectors per L-BFGS history slot (`lbfgs_history`, 0 for other
    optimizers), for every image of the module.
    """
    batch, _, height, width = module.image.shape
    encoder = module.criterion.encoder
    return memory_need(encoder.arch, list(encoder.layers._modules), height, width, batch, lbfgs_history)


def memory_need(arch: str, layers: Iterable[str], height: int, width: int, batch: int = 1, lbfgs_history: int = 0
                ) -> int:  # fmt: skip
    """`memory_estimate` for `batch` images of `height` x `width` px through `arch` up to the deepest of `layers`."""
    pixels = batch * 3 * height * width * 4
    return int(1.2 * activation_bytes(arch, layers, height, width, batch)) + (2 * lbfgs_history + 8) * pixels


def check_memory(module: "StyleTransfer", device: torch.device, lbfgs_history: int = 0) -> None:
    """Fail before the first step, not with an out-of-memory traceback in the middle of the run."""
    runs, _, height, width = module.image.shape
    check_need(memory_estimate(module, lbfgs_history), device, height, width, runs)


def check_stages(
    arch: str, layers: Iterable[str], content: Path, styles: Sequence[Path], sizes: Sequence[int],
    style_scale: float, runs: int, lbfgs_history: int, accelerator: str,
) -> None:  # fmt: skip
    """Every stage's images fit the device the run will use, read from their headers: refused before the first
    stage, not when a late (larger) one starts. Each style image passes the network (to the deepest of `layers`)
    once, without gradients: a third of the need."""
    device = planned_device(accelerator)
    for size in sizes:
        width, height = size_at(content, size)
        check_need(memory_need(arch, layers, height, width, runs, lbfgs_history), device, height, width, runs)
        for path in styles:
            style_width, style_height = size_at(path, max(1, round(size * style_scale)))
            need = memory_need(arch, layers, style_height, style_width) // 3
            check_need(need, device, style_height, style_width, style=True)


def planned_device(accelerator: str) -> torch.device:
    """The device `trainer.accelerator` will pick, known before the Trainer exists."""
    wants_gpu = accelerator in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def check_need(need: int, device: torch.device, height: int, width: int, runs: int = 1, style: bool = False) -> None:
    """One line if `need` bytes are more than `device` has free; nothing where that cannot be told."""
    free = free_memory(device)
    if free is not None and need > free and style:
        raise NSTError(
            f"a {width}x{height} px style image needs about {need / 2**30:.1f} GiB on {device}, but only "
            f"{free / 2**30:.1f} GiB are free: lower image.style_scale or image.size"
        )
    if free is not None and need > free:
        what = f"a batch of {runs} {width}x{height} px images" if runs > 1 else f"a {width}x{height} px image"
        raise NSTError(
            f"{what} needs about {need / 2**30:.1f} GiB on {device}, but only "
            f"{free / 2**30:.1f} GiB are free: lower image.size, or go coarse to fine with image.scales=[...], "
            "or lower optimizer.torch.history_size" + (", or batch fewer runs" if runs > 1 else "")
        )
