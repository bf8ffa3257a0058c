"""Every setting nst checks by its value alone, described once: kind, range or choices, and what it is for.

The description drives three things: the checks that run before torch is imported
or anything is written (`check`, called by nst/refusal.py and by both pipelines'
checks), the table of `nst --help` and `nst train --help` (`${settings:image}`,
`${settings:train}`), and the table in docs/configuration.md (`table`; a test keeps
the two equal). What needs torch, files or several settings at once (a layer the
backbone has, a key the Trainer takes, an image's size, a blend's length) is
checked in nst/checks.py and nst/train/checks.py. This module imports no torch.
"""

import math
from dataclasses import dataclass
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf

from nst.errors import NSTError

Run = Literal["image", "train", "both"]
_ABSENT = object()


@dataclass(frozen=True)
class Setting:
    """One setting: `kind` int, number (finite), weight (finite >= 0), positive (> 0), choice or flag."""

    key: str
    kind: Literal["int", "number", "weight", "positive", "choice", "flag"]
    what: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    runs: Run = "both"
    optional: bool = False  # null means "not set" (e.g. data.resize: as data.size)

    def rule(self, above: bool = False) -> str:
        """What a valid value is, in the words of the error line and the tables (`above`: the upper bound too)."""
        if self.kind == "choice":
            return "one of " + ", ".join("null" if c is None else str(c) for c in self.choices)
        if self.kind == "flag":
            return "true or false"
        if self.kind == "weight":
            return "a finite number >= 0"
        if self.kind == "positive":
            return "a number > 0"
        what = "an integer" if self.kind == "int" else "a number"
        if self.high is not None and (above or self.low is None):
            return f"{what} between {_number(self.low)} and {_number(self.high)}"
        return f"{what} >= {_number(self.low)}"

    def check(self, value: Any) -> None:
        """One line naming the key, the value and the rule, if `value` breaks it."""
        if value is None and self.optional:
            return
        if self.kind == "choice":
            if value not in self.choices:
                raise NSTError(f"{self.key}={value!r}: choose {self.rule()} ({self.what})")
            return
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise NSTError(f"{self.key}={value!r} must be {self.rule()}")
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise NSTError(f"{self.key}={value!r} is not a number: it must be {self.rule()}")
        if not math.isfinite(value):
            finite = "" if "finite" in self.rule() else "a finite number, "
            raise NSTError(f"{self.key}={value!r} must be {finite}{self.rule()}")
        fits = self.kind != "int" or value == int(value)
        if self.kind in ("weight", "positive"):
            fits = fits and (value > 0 if self.kind == "positive" else value >= 0)
        elif fits and value < self.low:
            fits = False
        elif fits and self.high is not None and value > self.high:
            raise NSTError(f"{self.key}={value!r} must be {self.rule(above=True)}")
        if not fits:
            raise NSTError(f"{self.key}={value!r} must be {self.rule()}")


def _number(x: float | None) -> str:
    return str(int(x)) if x is not None and x == int(x) and abs(x) >= 1e6 else f"{x:g}"


CONVENTIONS = ("gatys", "johnson", "jcjohnson", "keras")  # nst/losses.py's normalisations

SETTINGS = (
    Setting("seed", "int", "seeds the start image, random weights, the split and every batch", 0, 2**32 - 1),
    Setting("log_every", "int", "log the loss terms every N steps", 1),
    Setting("judge", "flag", "measure the result under the fixed caffe VGG-19 judge"),
    Setting("verbose", "flag", "Lightning's banners and all of W&B's console lines too"),
    Setting("loss.content_weight", "weight", "how much the content term counts"),
    Setting("loss.style_weight", "weight", "how much the style term counts"),
    Setting("loss.tv_weight", "weight", "how much total variation counts (0: off)"),
    Setting("loss.tv_beta", "positive", "the exponent of total variation (2 is the usual squared TV)"),
    Setting("loss.convention", "choice", "how content and Gram terms are normalised", choices=CONVENTIONS),
    Setting("backbone.arch", "choice", "the loss network", choices=("vgg16", "vgg19")),
    Setting("backbone.pooling", "choice", "the loss network's pooling", choices=("max", "avg")),
    Setting("backbone.padding", "choice", "the loss network's padding", choices=("zeros", "reflect")),
    Setting("optimizer.steps", "int", "optimizer steps (0: the start image is the result)", 0, 10**8, runs="image"),
    Setting("image.size", "int", "long side of the optimised image, in pixels", 1, runs="image"),
    Setting("image.style_scale", "number", "style image size relative to the content's", 1e-6, runs="image"),
    Setting("snapshot_every", "int", "write and log the image every N steps (0: never)", 0, runs="image"),
    Setting("init_noise", "number", "share of noise in init=noisy", 0, 1, runs="image"),
    Setting("adain.alpha", "number", "0 is the content, 1 fully stylised", 0, 1, runs="image"),
    Setting("colour", "choice", "keep the photo's colours", choices=(None, "luminance", "histogram"), runs="image"),
    Setting("trainer.max_steps", "int", "training steps", 1, 10**8, runs="train"),
    Setting("trainer.devices", "int", "processes per node (DDP above 1)", 1, runs="train"),
    Setting("trainer.num_nodes", "int", "nodes of a SLURM job", 1, runs="train"),
    Setting(
        "trainer.strategy",
        "choice",
        "several devices: ddp, a process per device, restarted from the command line",
        choices=("auto", "ddp"),
        runs="train",
    ),
    Setting("data.size", "int", "side of the square crops trained on (16: the network halves it twice)", 16,
            runs="train"),
    Setting("data.resize", "int", "short side photos are resized to before cropping", 1, runs="train", optional=True),
    Setting("data.batch_size", "int", "crops per step (shared by DDP processes)", 1, runs="train"),
    Setting("data.val_count", "int", "photos (and decoder styles) held out to judge", 1, runs="train"),
    Setting("data.val_size", "int", "long side of the held-out photos when judged", 1, runs="train"),
    Setting("data.style_size", "int", "long side of the style images", 1, runs="train"),
    Setting("data.workers", "int", "loader processes (0: in the training process)", 0, runs="train"),
    Setting("style_balance", "positive", "sets loss.style_weight from a probe: the style term this many times the "
            "content term at the start", runs="train", optional=True),
    Setting("val_every", "int", "judge the held-out photos every N steps (0: start and end)", 0, runs="train"),
    Setting("best", "choice", "the judged figure model.pt is the lowest of (with judge=true)",
            choices=("error_sum", "dominance", "content_error", "style_error", "style_swd"), runs="train"),
    Setting("patience", "int", "validations without a better `best` before stopping early (0: never)", 0,
            runs="train"),
    Setting("checkpoint_every", "int", "keep checkpoints/last.ckpt every N steps (0: never)", 0, runs="train"),
    Setting("schedule.step_size", "int", "steps between two drops of the learning rate (schedule=step)", 1,
            runs="train"),
    Setting("schedule.gamma", "positive", "factor of each drop (schedule=step)", runs="train"),
    Setting("schedule.decay", "weight", "lr / (1 + decay · step) (schedule=inverse_time)", runs="train"),
    Setting("optimizer.lr", "positive", "the learning rate of Adam", runs="train"),
    Setting("stability.weight", "weight", "how much a photo and its noisy copy must give the same image (0: off)",
            runs="train"),
    Setting("stability.noise", "positive", "the std of that noise, pixel values in [0, 1]", runs="train"),
    Setting("network.width", "int", "channels of the first convolution", 1, runs="train"),
    Setting("network.residual_blocks", "int", "residual blocks at the lowest resolution", 1, runs="train"),
    Setting(
        "network.norm",
        "choice",
        "normalisation (conditional_instance: one per style)",
        choices=("instance", "batch", "conditional_instance"),
        runs="train",
    ),
    Setting("network.upsample", "choice", "upsampling", choices=("resize", "transposed"), runs="train"),
    Setting("network.output", "choice", "the image itself, or what is added to the photo (starts as the identity)",
            choices=("direct", "residual"), runs="train"),
)


def choices(key: str) -> tuple[Any, ...]:
    """The choices of a described setting: the one list the code that acts on them reads too."""
    return next(s.choices for s in SETTINGS if s.key == key)


def of(run: str) -> list[Setting]:
    """The settings an image run, a training run (or another branch: the shared ones) reads."""
    return [s for s in SETTINGS if s.runs in (run, "both")]


def check(cfg: DictConfig, run: str) -> None:
    """Every described setting the config holds, against its rule; a setting a config does not hold is skipped
    (the network group's keys exist only for its `johnson` option)."""
    for setting in of(run):
        value = OmegaConf.select(cfg, setting.key, default=_ABSENT, throw_on_missing=False)
        if value is not _ABSENT:
            setting.check(value)


def check_group(node: DictConfig, group: str) -> None:
    """The described settings of one config node (`loss`, `backbone`, …), wherever it is checked alone."""
    for setting in SETTINGS:
        if setting.key.startswith(f"{group}.") and setting.key.count(".") == 1:
            value = node.get(setting.key.split(".")[1], _ABSENT)
            if value is not _ABSENT:
                setting.check(value)


def table(run: Literal["image", "train"]) -> str:
    """The settings of `run` as a Markdown table: key, rule, what it is for."""
    rows = [f"| `{s.key}` | {s.rule(above=True)} | {s.what} |" for s in of(run)]
    return "\n".join(["| setting | must be | what |", "| --- | --- | --- |", *rows])


def help_lines(run: str) -> str:
    """The same, as aligned lines for `nst --help` (the `${settings:…}` resolver)."""
    rows = [(s.key, s.rule(above=True), s.what) for s in of("train" if run == "train" else "image")]
    width = max(len(key) for key, _, _ in rows)
    return "\n".join(f"  {key.ljust(width)}  {rule}: {what}" for key, rule, what in rows)


def write_docs(path: str = "docs/configuration.md") -> None:
    """Put the two tables into docs/configuration.md between their markers (`python -m nst.settings`)."""
    from pathlib import Path

    text = Path(path).read_text()
    for run in ("image", "train"):
        start, end = f"<!-- settings:{run}:start -->\n", f"\n<!-- settings:{run}:end -->"
        before, rest = text.split(start)
        text = before + start + table(run) + end + rest.split(end, 1)[1]
    Path(path).write_text(text)


if __name__ == "__main__":
    write_docs()
