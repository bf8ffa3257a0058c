"""Which validated network to keep: every validated step's network judged on photos that neither trained it nor
chose it, and the step each `best` criterion keeps.

For each painting: `nst train style=PAINTING` with the defaults (plus any `--set`),
its network copied each time a checkpoint is written (`checkpoint_every` = `val_every`,
so at every validation). Then each copy and AdaIN's one pass (shipped decoder) stylise
the photos of `--test` at the validation's size, judged like validation (caffe VGG-19,
mean over the photos). The run's own held-out photos (val.csv) are what `best`
chooses by; the test photos are a third set, so the table shows whether a criterion's
choice holds on photos it never looked at. The copy of the kept step is checked
against the run's model.pt.

    python -m benchmarks.kept_step --test DIR [--styles a.jpg …] [--set best=dominance …] [--out DIR]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.networks import compose_config, mean
from benchmarks.results_file import machine, write_section
from nst import environment
from nst.adain import AdaIN
from nst.configs import STYLES
from nst.images import load_image
from nst.judge import quality
from nst.train.data import photo_files
from nst.train.model_file import load_model, stylize
from nst.train.validation import Validation, read_validations

CRITERIA = ("error_sum", "dominance", "style_swd")


def train_keeping_each_validation(style: Path, overrides: list[str], every: int, run_dir: Path) -> dict[int, dict]:
    """`nst train` in a process of its own, a checkpoint every `every` steps (each validation); its network's
    weights at each checkpoint, by step."""
    command = [sys.executable, "-m", "nst", "train", f"style={style}", "logger=none",
               "trainer.enable_progress_bar=false", f"checkpoint_every={every}", *overrides,
               f"hydra.run.dir={run_dir}"]  # fmt: skip
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    seen, weights = 0.0, {}
    with subprocess.Popen(command, stdout=subprocess.DEVNULL) as process:
        while True:
            time.sleep(0.5)
            running = process.poll() is None
            if checkpoint.exists() and checkpoint.stat().st_mtime != seen:
                stamp = checkpoint.stat().st_mtime
                try:
                    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
                except Exception:
                    if not running:
                        raise
                    continue  # caught mid-write: read at the next poll
                seen = stamp
                state = saved["state_dict"]
                network = {k.removeprefix("network."): v for k, v in state.items() if k.startswith("network.")}
                weights[int(saved["global_step"])] = network
            if not running:
                break
    if process.returncode != 0:
        raise SystemExit(f"nst train style={style} failed (exit {process.returncode}): see {run_dir}/run.log")
    return weights


def picks(rows: list[dict[str, float]]) -> dict[str, int]:
    """The step each criterion keeps from a run's validations (val.csv; step 0 first, never kept)."""
    chosen = {}
    for criterion in CRITERIA:
        validation = Validation([], 0, Path("."), False, best=criterion)
        validation.start = rows[0]
        chosen[criterion] = int(min(rows[1:], key=validation.figure)["step"])
    return chosen


def one_style(style: Path, photos: list[torch.Tensor], cfg: Any, args: argparse.Namespace) -> dict:
    """Train for `style`, then judge each validated network and AdaIN on `photos` (the test photos at val_size)."""
    run_dir = args.out / style.stem
    weights = train_keeping_each_validation(style, args.set, int(cfg.val_every), run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = read_validations(run_dir)
    network, _ = load_model(run_dir)
    kept = network.state_dict()
    if not all(torch.equal(kept[k], v) for k, v in weights[metrics.get("best_step", metrics["steps"])].items()):
        raise SystemExit(f"{run_dir}: the copied network of the kept step differs from model.pt")
    painting = load_image(style, cfg.data.style_size)
    adain = AdaIN()
    test = {"AdaIN": mean([quality(adain(p, [painting], [1.0]), p, [painting], [1.0]) for p in photos])}
    for step, state in sorted(weights.items()):
        network.load_state_dict(state)
        test[step] = mean([quality(stylize(network, p), p, [painting], [1.0]) for p in photos])
    return {"style": style.name, "validated": rows, "test": test, "picks": picks(rows),
            "minutes": metrics["fit_time_s"] / 60, "validated_on": metrics["validated_on"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=Path, required=True, help="a folder of photos no run trains on or judges")
    parser.add_argument("--styles", nargs="*", type=Path, default=None, help="paintings (default: nst/styles/)")
    parser.add_argument("--set", nargs="*", default=[], help="more `nst train` overrides, KEY=VALUE")
    parser.add_argument("--out", type=Path, required=True, help="the runs and their copies go here")
    parser.add_argument("--note", default="", help="what the table showed, appended under it")
    args = parser.parse_args()
    environment.configure()
    tests = photo_files(args.test)
    styles = args.styles or sorted(Path(str(p)) for p in STYLES.iterdir() if p.name.endswith(".jpg"))
    cfg = compose_config("train", args.set)  # the sizes and val_every, the same for every painting
    photos = [load_image(p, cfg.data.val_size) for p in tests]
    results = [one_style(style, photos, cfg, args) for style in styles]
    lines = []
    for r in results:
        bar = r["test"]["AdaIN"]
        for row in r["validated"][1:]:
            step = int(row["step"])
            f = r["test"][step]
            beats = f["content_error"] < bar["content_error"] and f["style_swd"] < bar["style_swd"]
            kept_by = ", ".join(c for c, s in r["picks"].items() if s == step) or "–"
            lines.append(f"| {r['style']} | {step} | {row['content_error']:.3f} | {row['style_swd']:.4f} | "
                         f"{f['content_error']:.3f} | {f['style_swd']:.4f} | {'yes' if beats else 'no'} | "
                         f"{kept_by} |")  # fmt: skip
        lines.append(f"| {r['style']} | AdaIN | | | {bar['content_error']:.3f} | {bar['style_swd']:.4f} | | |")
    held_out = ", ".join(sorted({Path(p).name for r in results for p in r["validated_on"]}))
    minutes = ", ".join(f"{r['style']} {r['minutes']:.1f}" for r in results)
    body = f"""## Which validated network to keep

{machine()}. `python -m benchmarks.kept_step {" ".join(["--test DIR", *(["--set", *args.set] if args.set else [])])}`:
`nst train style=PAINTING` with the defaults, its network copied at every validation; "held out" = the run's own
held-out photos ({held_out}), which `best` chooses by; "test" = {len(tests)} other photos
({", ".join(p.name for p in tests)}), never trained on and never looked at by `best`, judged at the same size
beside AdaIN's one pass on them. "beats" = lower content error and style SWD than AdaIN on the test photos.
"kept by" = the `best` criteria that keep that step. Fit minutes: {minutes}.

| style | step | held out: content | held out: SWD | test: content | test: SWD | beats AdaIN | kept by |
| --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(lines)}

{args.note}
"""
    write_section("kept-step", body)
    (args.out / "summary.json").write_text(json.dumps(results, indent=2, default=str))
    print(body)


if __name__ == "__main__":
    main()
