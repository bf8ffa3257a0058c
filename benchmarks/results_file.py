"""Each benchmark owns one section of benchmarks/results.md, rewritten in place on every run."""

import datetime
import platform
import re
from pathlib import Path

import torch
from omegaconf import DictConfig

from nst.pipeline import Job, run

RESULTS = Path(__file__).with_name("results.md")


def train(cfg: DictConfig, out_dir: Path) -> dict:
    """One nst run of `cfg` through the pipeline, into `out_dir`; its metrics."""
    (metrics,) = run([Job(cfg, Path(out_dir))])
    return metrics


def bench_device() -> torch.device:
    """Where the benchmarks run: the GPU when there is one, as `nst` on `accelerator: auto`."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_name() -> str:
    """The CPU's model (Linux), else its architecture, which does not tell one host from another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine() -> str:
    """Where and with what the figures were measured."""
    if bench_device().type == "cuda":
        device = torch.cuda.get_device_name()
    else:
        device = f"CPU ({cpu_name()}, {torch.get_num_threads()} threads)"
    return (
        f"{datetime.date.today().isoformat()}, {device}, torch {torch.__version__}, Python {platform.python_version()}"
    )


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section `name` of results.md with `body`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = (
        RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in this folder.\n"
    )
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
