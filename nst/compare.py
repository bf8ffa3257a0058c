"""`nst compare DIR… [--out DIR]`: one look at a sweep, read from the run directories on disk.

It needs no logger and no network: every run leaves `metrics.json`,
`.hydra/overrides.yaml`, `history.csv` and `final.png`, and this module turns
them into a contact sheet, a sorted metrics table (Markdown and CSV), a
content-error vs style-error scatter with the Pareto front (`--style style_swd`:
the judge's sliced Wasserstein figure instead of its Gram error), loss curves, and
one self-contained HTML page holding all of it.
"""

import argparse
import base64
import csv
import html
import io
import json
import logging
import math
import re
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import yaml
from matplotlib.axes import Axes
from PIL import Image, ImageDraw, ImageFont, ImageOps

from nst.curvature import stuck
from nst.errors import NSTError
from nst.outputs import atomic_write

log = logging.getLogger(__name__)

COLUMNS = ("content_error", "style_error", "style_swd", "error_sum", "loss/total", "evaluations", "wall_time_s")
REGION_FIGURE = re.compile(r"region_\d+/style_(error|swd)")  # a region's judged figures, beside the columns
SHEET_TILES = 64  # the contact sheet shows the first runs by the table's order; thousands would make a huge image
LEGEND_RUNS = 20  # the loss curves name at most this many runs
# The judge's two style figures (nst/judge.py), either of which the Pareto plot can put against the content error.
STYLE_FIGURES = {
    "style_error": "style error (judge's Gram distance, relu1_1…relu5_1)",
    "style_swd": "style SWD (judge's sliced Wasserstein distance, relu1_1…relu5_1)",
}


@dataclass
class Run:
    """One run directory as `nst` left it."""

    path: Path
    metrics: dict[str, Any]
    overrides: dict[str, str]
    history: list[dict[str, float]] = field(default_factory=list)
    label: str = ""
    number: int = 0

    @property
    def finished(self) -> bool:
        return self.metrics.get("status", "finished") == "finished"

    @property
    def stuck(self) -> bool:
        """A finished L-BFGS run whose history stopped changing early: its result is not its config's."""
        kept, possible = self.metrics.get("lbfgs_pairs") or (0, 0)
        return self.finished and stuck(kept, possible)

    @property
    def final(self) -> Path | None:
        path = self.path / "final.png"
        return path if path.is_file() else None


def _read_run(path: Path) -> Run:
    """A run directory as far as it can be read: a damaged file makes the run `unreadable`, with why, not an error.

    Only regular files are read (a FIFO named metrics.json would block the report), and
    figures of the wrong type are dropped, with why.
    """
    problems = []
    try:
        metrics = json.loads(_text(path / "metrics.json"))
        if not isinstance(metrics, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        metrics, problems = {}, [f"metrics.json unreadable ({str(exc).splitlines()[0]})"]
    metrics, wrong = _typed(metrics)
    problems += [f"metrics.json's {key} is not a number" for key in wrong]
    try:
        overrides = yaml.safe_load(_text(path / ".hydra" / "overrides.yaml")) or []
        overrides = overrides if isinstance(overrides, list) else []
    except (OSError, ValueError, yaml.YAMLError):
        overrides = []
    pairs = dict(o.split("=", 1) for o in overrides if isinstance(o, str) and "=" in o and not o.startswith("hydra"))
    history, damaged = _read_history(path / "history.csv")
    if damaged:
        problems.append(f"history.csv cut short after {len(history)} rows, or without a total column")
    if (path / "final.png").is_file() and not _readable(path / "final.png"):
        problems.append("final.png unreadable")
    if metrics.get("status") == "running":
        problems.append("still running, or killed before it ended (no final figures)")
    if problems:
        metrics = {**metrics, "status": metrics.get("status") if metrics else "unreadable"}
        metrics["error"] = "; ".join([*problems, *([metrics["error"]] if metrics.get("error") else [])])
    return Run(path=path, metrics=metrics, overrides=pairs, history=history)


def _plain(label: str) -> str:
    """A run's label as plain text on a plot: a `$` in an override is not matplotlib's maths (tick labels are)."""
    return label.replace("$", r"\$")


def _text(path: Path) -> str:
    """A regular file's text; anything else (missing, a FIFO, a directory) is an OSError, never a wait."""
    if not path.is_file():
        raise OSError(f"{path.name} is missing or not a regular file")
    return path.read_text(errors="replace")


def _typed(metrics: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The metrics with every figure the report computes with a number (else dropped and named), status a word."""
    kept, wrong = dict(metrics), []
    for key in (*COLUMNS, "steps"):
        value = kept.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            wrong.append(key)
            kept.pop(key)
    pairs = kept.get("lbfgs_pairs")
    if pairs is not None and not (isinstance(pairs, list) and len(pairs) == 2 and all(type(p) is int for p in pairs)):
        wrong.append("lbfgs_pairs")
        kept.pop("lbfgs_pairs")
    for key in ("status", "error"):
        if key in kept and not isinstance(kept[key], str):
            kept[key] = str(kept[key])
    return kept, wrong


def _readable(image: Path) -> bool:
    """Whether a PNG's structure is whole (checked without decoding it: thousands of runs stay fast)."""
    try:
        with Image.open(image) as opened:
            opened.verify()
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return False
    return True


def _read_history(path: Path) -> tuple[list[dict[str, float]], bool]:
    """The rows of a history.csv that are whole, and whether any was not (a run killed mid-write, or no `total`)."""
    if not path.is_file():
        return [], False
    rows, damaged = [], False
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if "total" not in (reader.fieldnames or []):
            return [], True
        for row in reader:
            try:
                rows.append({k: float(v) for k, v in row.items()})
            except (TypeError, ValueError):
                damaged = True
                break
    return rows, damaged


def find_runs(dirs: list[Path]) -> list[Run]:
    """Every run under `dirs` (a run directory, a sweep directory, or folders of them)."""
    found = []
    for directory in dirs:
        if not directory.is_dir():
            raise NSTError(f"{directory} is not a directory: give run or sweep directories (outputs/…, multirun/…)")
        found += [_read_run(p.parent) for p in sorted(directory.glob("**/metrics.json"))]
    if not found:
        raise NSTError(f"no runs (no metrics.json) under {', '.join(map(str, dirs))}: point at nst output folders")
    return found


def human(value: str) -> str:
    """A number as a person writes it in an override: 10000.0 -> 1e4, 0.001 -> 1e-3, 0.5 -> 0.5; text unchanged."""
    try:
        number = float(value)
    except ValueError:
        return value
    if number == 0 or 1e-3 <= abs(number) < 1e4:
        return f"{number:g}"
    mantissa, _, exponent = f"{number:.2e}".partition("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def label_runs(runs: list[Run]) -> None:
    """Label each run by the overrides that differ between the runs (its directory name if none do)."""
    keys = sorted({k for run in runs for k in run.overrides})
    differing = [k for k in keys if len({run.overrides.get(k, "(default)") for run in runs}) > 1]
    for run in runs:
        parts = [f"{k}={human(run.overrides.get(k, '(default)'))}" for k in differing]
        run.label = ", ".join(parts) or run.path.name


def _sort_key(run: Run, by: str) -> tuple[int, float]:
    value = run.metrics.get(by)
    return (0 if run.finished else 1, float(value) if isinstance(value, (int, float)) else math.inf)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates (both minimised), by x."""
    front = [
        i for i, (x, y) in enumerate(points) if not any(x2 <= x and y2 <= y and (x2, y2) != (x, y) for x2, y2 in points)
    ]
    return sorted(front, key=lambda i: points[i])


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def contact_sheet(runs: list[Run], path: Path, tile: int = 256, columns: int = 4) -> None:
    """Final images in a grid, each with its number and label underneath: the first `SHEET_TILES` runs."""
    font, line_height, chars = _font(15), 19, tile // 8
    tiles = []
    for run in runs[:SHEET_TILES]:
        lines = textwrap.wrap(f"#{run.number} {run.label}", chars) or [""]
        if not run.finished:
            lines.append(str(run.metrics.get("status", "failed")).upper())
        image = Image.new("RGB", (tile, tile), "#dddddd")
        if run.final is not None:
            try:
                with Image.open(run.final) as final:
                    final.draft("RGB", (tile, tile))  # JPEG-style shrink on load where the format allows
                    final = final.convert("RGB")
            except (Image.DecompressionBombError, OSError, SyntaxError, ValueError):
                lines.append("final.png unreadable")
            else:
                final = ImageOps.contain(final, (tile, tile), Image.Resampling.LANCZOS)  # small finals scaled up too
                image.paste(final, ((tile - final.width) // 2, (tile - final.height) // 2))
        tiles.append((image, lines))
    text_height = max(len(lines) for _, lines in tiles) * line_height + 8
    rows = math.ceil(len(tiles) / columns)
    width = min(columns, len(tiles))
    sheet = Image.new("RGB", (width * (tile + 8) + 8, rows * (tile + text_height + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, lines) in enumerate(tiles):
        x, y = 8 + (i % columns) * (tile + 8), 8 + (i // columns) * (tile + text_height + 8)
        sheet.paste(image, (x, y))
        for j, line in enumerate(lines):
            draw.text((x, y + tile + 4 + j * line_height), line, fill="red" if line.isupper() else "black", font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())


def _save_figure(fig: plt.Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def scatter(runs: list[Run], path: Path, style: str = "style_error") -> list[Run]:
    """Content error vs `style` (a key of STYLE_FIGURES) of every judged run, the Pareto front highlighted; returns
    the front.

    A stuck L-BFGS run is drawn apart and kept off the front: it stopped near its start,
    which may look like a good trade-off only because it barely moved.
    """
    judged = [r for r in runs if r.finished and "content_error" in r.metrics and style in r.metrics]
    points = [(r.metrics["content_error"], r.metrics[style]) for r in judged]
    healthy = [i for i, r in enumerate(judged) if not r.stuck]
    front = [judged[healthy[i]] for i in pareto_front([points[i] for i in healthy])]
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter([points[i][0] for i in healthy], [points[i][1] for i in healthy], color="#888888", label="run")
    stuck_points = [p for p, r in zip(points, judged, strict=True) if r.stuck]
    if stuck_points:
        xs, ys = zip(*stuck_points, strict=True)
        ax.scatter(xs, ys, color="#888888", marker="x", label="L-BFGS stuck (kept off the front)")
    if front:
        xs = [r.metrics["content_error"] for r in front]
        ys = [r.metrics[style] for r in front]
        ax.plot(xs, ys, "-o", color="#d62728", label="Pareto front", zorder=3)
    ax.margins(0.08)
    _label_points(ax, [f"#{run.number}" for run in judged], points)
    ax.set_xlabel("content error (judge, relu4_2) — lower keeps more content")
    ax.set_ylabel(f"{STYLE_FIGURES[style]} — lower is more stylised")
    ax.set_title("Content vs style trade-off")
    ax.grid(alpha=0.3)
    ax.legend()
    _save_figure(fig, path)
    return front


def _label_points(ax: Axes, labels: list[str], points: list[tuple[float, float]]) -> None:
    """Each point's label on the side that faces the middle of the plot, so that none runs out of the axes."""
    if not points:
        return
    xs, ys = zip(*points, strict=True)
    middle = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
    for label, (x, y) in zip(labels, points, strict=True):
        right, top = x > middle[0], y > middle[1]
        ax.annotate(_plain(label), (x, y), textcoords="offset points", xytext=(-5 if right else 5, -4 if top else 4),
                    ha="right" if right else "left", va="top" if top else "bottom", fontsize=10)  # fmt: skip


def curve(run: Run, x: str = "evaluations") -> tuple[list[float], list[float]]:
    """A run's total loss against `x`: function evaluations, its cost whatever a step holds.

    An L-BFGS step is up to `max_iter` evaluations, an Adam step one: counted in steps,
    their curves would not share an axis.
    """
    return [row[x] for row in run.history], [row["total"] for row in run.history]


CURVE_AXES = {"evaluations": "function evaluations", "time_s": "seconds of optimisation", "step": "optimizer step"}


def curve_axis(runs: list[Run], wanted: str) -> str:
    """`wanted` if every history has it, else the first of evaluations and step that they all have (older runs)."""
    for x in (wanted, "evaluations", "step"):
        if all(x in run.history[0] for run in runs):
            if x != wanted:
                log.warning("nst compare: not every run's history.csv has %s; loss curves against %s", wanted, x)
            return x
    raise NSTError("the runs' history.csv files share no step column: are they nst runs?")


def loss_curves(runs: list[Run], path: Path, x: str = "evaluations") -> None:
    """Total loss against `x` (evaluations, time_s or step), one line per run, log scale."""
    drawn = [run for run in runs if run.history]
    x = curve_axis(drawn, x)
    fig, ax = plt.subplots(figsize=(7, 5))
    for index, run in enumerate(drawn):
        ax.plot(*curve(run, x), label=_plain(f"#{run.number} {run.label}"[:60]) if index < LEGEND_RUNS else None)
    ax.set_yscale("log")
    ax.set_xlabel(CURVE_AXES[x])
    ax.set_ylabel("total loss (each run in its own loss convention)")
    ax.set_title("Loss curves")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    _save_figure(fig, path)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _error(run: Run) -> str:
    """A failed run's error, or what went wrong in a finished one: an L-BFGS run that got stuck early."""
    if run.stuck:
        kept, possible = run.metrics["lbfgs_pairs"]
        return f"L-BFGS stuck: kept {kept} of {possible} curvature pairs (see its run.log)"
    return run.metrics.get("error", "")


def region_columns(runs: list[Run]) -> list[str]:
    """The judge's per-region figures any run has (spatial control: nst/regions.py), in region order."""
    keys = {k for run in runs for k, v in run.metrics.items() if REGION_FIGURE.fullmatch(k) and _number(v)}
    return sorted(keys, key=lambda k: (int(k.split("/")[0].removeprefix("region_")), k))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def table_rows(runs: list[Run]) -> list[dict[str, str]]:
    regions = region_columns(runs)
    return [
        {
            "#": str(run.number),
            "run": run.label,
            "status": run.metrics.get("status", "finished"),
            **{c: _cell(run.metrics.get(c)) for c in (*COLUMNS, *regions)},
            "error": _error(run),
            "dir": str(run.path),
        }
        for run in runs
    ]


def markdown_table(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row[c].replace("|", "\\|") for c in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_table(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def html_page(
    rows: list[dict[str, str]], images: dict[str, Path], front: list[Run], sources: list[Path], style: str
) -> str:
    """One self-contained page: the figures inlined as data URIs, the table as HTML."""

    def img(path: Path, alt: str) -> str:
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    header = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        f'<tr class="{html.escape(row["status"])}">' + "".join(f"<td>{html.escape(v)}</td>" for v in row.values())
        + "</tr>"
        for row in rows
    )
    failed = [row for row in rows if row["status"] != "finished"]
    front_items = "".join(f"<li>#{r.number} {html.escape(r.label)}</li>" for r in front)
    axis = style.replace("_", " ")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nst compare</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
img {{ max-width: 100%; border: 1px solid #ccc; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
tr.failed {{ background: #fdd; }}
.figures {{ display: flex; flex-wrap: wrap; gap: 1em; }}
.figures img {{ max-width: 48%; }}
</style></head><body>
<h1>nst compare</h1>
<p>{len(rows)} runs from {html.escape(", ".join(map(str, sources)))}; {len(failed)} failed.</p>
<h2>Pareto front (content error vs {axis})</h2><ol class="front">{front_items}</ol>
<div class="figures">{img(images["scatter"], f"content error vs {axis}")}{img(images["curves"], "loss curves")}</div>
<h2>Final images</h2>{img(images["sheet"], "contact sheet")}
<h2>Metrics</h2><table id="metrics"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>
</body></html>
"""


def compare(
    dirs: list[Path], out: Path, sort_by: str = "error_sum", x: str = "evaluations", style: str = "style_error"
) -> dict[str, Path]:
    """Write the report of the runs under `dirs` into `out`, loss curves against `x`, the Pareto front on `style`;
    returns the files by kind."""
    runs = [run for run in find_runs(dirs) if out.resolve() not in run.path.resolve().parents]
    runs.sort(key=lambda run: _sort_key(run, sort_by))
    for number, run in enumerate(runs, start=1):
        run.number = number
    label_runs(runs)
    rows = table_rows(runs)
    files = {
        "sheet": out / "contact_sheet.png",
        "scatter": out / "pareto.png",
        "curves": out / "loss_curves.png",
        "markdown": out / "metrics.md",
        "csv": out / "metrics.csv",
        "html": out / "index.html",
    }
    contact_sheet(runs, files["sheet"])
    front = scatter(runs, files["scatter"], style)
    loss_curves(runs, files["curves"], x)
    atomic_write(files["markdown"], markdown_table(rows).encode())
    atomic_write(files["csv"], csv_table(rows).encode())
    atomic_write(files["html"], html_page(rows, files, front, dirs, style).encode())
    return files


def _probe(out: Path) -> None:
    """Create `out` and write a file there first: a folder that cannot take the report (read-only, not ours) is
    one line before any figure is drawn, not a report half written or rescued elsewhere."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out, prefix=".nst-probe-"):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nst compare", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories (outputs/…, multirun/…)")
    parser.add_argument("--out", type=Path, help="report directory (default: DIR/report of the first DIR)")
    parser.add_argument("--sort", default="error_sum", help=f"metric to sort the table by: {', '.join(COLUMNS)}")
    parser.add_argument(
        "--x", choices=list(CURVE_AXES), default="evaluations", help="loss curves against (default: evaluations)"
    )
    parser.add_argument(
        "--style", choices=list(STYLE_FIGURES), default="style_error", help="the Pareto plot's style axis"
    )
    args = parser.parse_args(argv)
    out = args.out or args.dirs[0] / "report"
    try:
        if args.sort not in COLUMNS:
            raise NSTError(f"--sort {args.sort}: choose one of {', '.join(COLUMNS)}")
        if out.exists() and not out.is_dir():
            raise NSTError(f"--out {out} is a file: give a directory for the report (it is created if missing)")
        _probe(out)
        files = compare(args.dirs, out, args.sort, args.x, args.style)
    except NSTError as exc:
        print(f"nst compare: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"nst compare: error: cannot write the report to {out} ({exc.strerror or exc}): choose another --out",
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"nst compare: wrote {files['html']} (and {', '.join(p.name for k, p in files.items() if k != 'html')})")
    return 0
