"""Each benchmark owns one section of benchmarks/results.md, rewritten in place on every run."""

import datetime
import platform
import re
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("results.md")


def bench_device() -> torch.device:
    """Where the benchmarks run: the GPU when there is one, as `nst` on `accelerator: auto`."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def machine() -> str:
    """Where and with what the figures were measured."""
    if bench_device().type == "cuda":
        device = torch.cuda.get_device_name()
    else:
        device = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
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
