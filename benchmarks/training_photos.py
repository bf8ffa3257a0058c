"""Do more training photos help at this budget? `nst train` runs on photo folders of different sizes, judged on one
fixed folder of held-out photos (`data.val`), beside AdaIN's one pass on the same photos.

The runs are those of `nst train -m` sweeps (or single runs) given as label=DIR; each
row is one run: its painting, how many photos it trained on, the style weight it
trained with (chosen by style_balance, or given), and its kept network's figures (the
mean over the held-out photos at 256 px). AdaIN's figures come from an
`nst -m experiment=huang2017_adain optimizer.steps=0 content=…,… style=…,…` sweep over
the same photos.

    python -m benchmarks.debian_photos PHOTOS/more        # 23 photos from Debian's wallpaper packages
    nst train -m style=A,B data.content=PHOTOS/base,PHOTOS/more data.val=PHOTOS/val hydra.sweep.dir=SWEEP
    python -m benchmarks.training_photos --adain ADAIN_SWEEP --runs "balanced=SWEEP" ["fixed weight=DIR" …]
"""

import argparse
from pathlib import Path

from benchmarks.recipe_sweeps import FIGURES, adain_bar, jobs
from benchmarks.results_file import machine, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adain", type=Path, required=True, help="the AdaIN sweep over the held-out photos")
    parser.add_argument("--runs", nargs="+", required=True, help="label=DIR: runs below DIR, each in a folder")
    parser.add_argument("--note", default="", help="what the runs showed, appended under the table")
    args = parser.parse_args()
    bar = adain_bar(args.adain)
    rows, photos = [], set()
    for given in args.runs:
        label, _, directory = given.partition("=")
        for overrides, metrics, _ in sorted(jobs(Path(directory)), key=lambda job: job[0]["style"]):
            style = Path(overrides["style"]).name
            adain = bar[style]
            beats = all(metrics[f] < adain[f] for f in FIGURES)
            last = metrics.get("last", metrics)  # the last network, where an earlier one was kept
            photos.update(metrics["validated_on"])
            rows.append(
                f"| {label} | {style} | {metrics['training_photos']} | {metrics['style_weight']:.0f} | "
                f"{metrics.get('best_step', metrics['steps'])} | {metrics['content_error']:.3f} | "
                f"{metrics['style_swd']:.4f} | "
                f"{last['content_error']:.3f} | {last['style_swd']:.4f} | {adain['content_error']:.3f} | "
                f"{adain['style_swd']:.4f} | {'yes' if beats else 'no'} | {metrics['fit_time_s'] / 60:.1f} |"
            )
    held_out = ", ".join(sorted(Path(p).name for p in photos))
    header = ("| runs | style | photos trained on | style weight | kept step | content error | style SWD | "
              "last: content | last: SWD | AdaIN content | AdaIN SWD | beats | minutes |")  # fmt: skip
    body = f"""## More training photos at this budget

{machine()}. `python -m benchmarks.training_photos --adain … --runs {" ".join(args.runs)}`: each row one
`nst train` run (the defaults apart from its photo folder, and its style weight where the label says so), its kept
network (the best of its validations; the last one beside it) judged on the same held-out photos
({held_out}; `data.val`) at 256 px (mean), beside AdaIN's one pass on them. "beats" = lower content error and lower
style SWD than AdaIN.

{header}
|{" --- |" * (header.count("|") - 1)}
{chr(10).join(rows)}

{args.note}
"""
    write_section("training-photos", body)
    print(body)


if __name__ == "__main__":
    main()
