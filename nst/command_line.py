"""A mistyped command line as one `nst: error:` line with the fix, instead of Hydra's multi-line messages.

Hydra reports an unknown option (`optimizer=lbgfs`), a key that does not exist
(`image_size=128`), a group that does not exist, a malformed override or an unknown
flag (`--content x`) in several lines and exit code 1. nst says what was meant, in one
line, with exit code 2 like every other bad input. Nothing here imports torch.
"""

import difflib
import re
from collections.abc import Callable, Iterable, Sequence

from omegaconf import DictConfig, OmegaConf

# Hydra's own flags; those marked True take a value.
HYDRA_FLAGS = {
    "--help": False, "-h": False, "--hydra-help": False, "--version": False, "--cfg": True, "-c": True,
    "--resolve": False, "--package": True, "-p": True, "--run": False, "-r": False, "--multirun": False, "-m": False,
    "--shell-completion": False, "-sc": False, "--config-path": True, "-cp": True, "--config-name": True,
    "-cn": True, "--config-dir": True, "-cd": True, "--experimental-rerun": True, "--info": False, "-i": False,
}  # fmt: skip


def unknown_flag(argv: Sequence[str], keys: Callable[[], Iterable[str]] = tuple) -> str | None:
    """The one-line error for the first flag (an argument starting with -) that Hydra does not know, if any;
    `keys` gives the command's settings (dotted), asked only then, to name the one meant (`--max_steps`:
    trainer.max_steps)."""
    takes_value = False
    for arg in argv:
        if takes_value:
            takes_value = False
            continue
        if not arg.startswith("-"):
            continue
        flag = arg.split("=", 1)[0]
        if flag in HYDRA_FLAGS:
            takes_value = HYDRA_FLAGS[flag] and "=" not in arg
            continue
        name = flag.lstrip("-").replace("-", "_")
        meant = next((k for k in keys() if k == name or k.endswith(f".{name}")), name)
        return (
            f"{flag} is not an option of nst: settings are written key=value, without dashes "
            f"(e.g. {meant}=…); nst --help lists them"
        )
    return None


def experiment_command(conf_dir: str, name: str) -> str | None:
    """The command an experiment file is for: `nst train` where its header says so, else `nst`; None if no file."""
    from pathlib import Path

    path = Path(conf_dir) / "experiment" / f"{name}.yaml"
    if not path.is_file():
        return None
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    return "nst train" if re.search(r"\bnst train\b", header) else "nst"


def wrong_experiment(argv: Sequence[str], conf_dir: str, command: str) -> str | None:
    """The one-line error for `experiment=NAME` given to the other command than the one it is for."""
    for arg in argv:
        key, _, name = arg.partition("=")
        if key.lstrip("+") == "experiment" and name:
            meant = experiment_command(conf_dir, name)
            if meant is not None and meant != command:
                return f"experiment={name} is a setup for `{meant}`: run it as `{meant} experiment={name}`"
    return None


def flat_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every key of a config, dotted (`image.size`), for a did-you-mean."""
    keys = []
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        keys.append(name)
        if isinstance(value, DictConfig):
            keys += flat_keys(value, f"{name}.")
    return keys


def _closest(word: str, choices: Iterable[str]) -> str:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {found[0]}?)" if found else ""


def error_line(exc: BaseException, defaults: DictConfig | None, groups: dict[str, list[str]]) -> str:
    """One line for a Hydra composition error: what is wrong and what to write instead.

    `defaults` is the config composed without the command line's overrides (for the keys
    there are); `groups` maps each config group to its options.
    """
    text = str(exc).strip()
    missing_option = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if missing_option:
        group, option = missing_option.groups()
        options = groups.get(group, [])
        return f"{group}={option}: no such option{_closest(option, options)}; {group} is one of {', '.join(options)}"
    key = re.search(r"Could not override '([^']+)'", text)
    if key and "No match in the defaults list" in text:
        name = key.group(1)
        hint = _closest(name, groups)
        return f"{name} is not a config group of this command{hint}; the groups are {', '.join(sorted(groups))}"
    if key:
        name = key.group(1)
        hint = _closest(name, flat_keys(defaults) if defaults is not None else [])
        return (
            f"{name} is not a setting{hint}; to add a key on purpose write +{name}=…; "
            "`nst --cfg job` prints every setting"
        )
    first = text.splitlines()[0] if text else type(exc).__name__
    if "${" in text:
        first += "; a $ that is not an interpolation must be escaped: \\${"
    override = getattr(exc, "override", None)
    where = f"in {override.input_line!r}: " if override is not None and getattr(override, "input_line", None) else ""
    return f"{where}{first} (write key=value; quote lists and odd characters for Hydra: `nst --help` shows examples)"


def group_options(conf_dir: str, primary: str, command: str | None = None) -> dict[str, list[str]]:
    """The config groups a command's primary config uses, each with its options (file names); with `command`, the
    experiments for that command only."""
    from pathlib import Path

    root = Path(conf_dir)
    names = [next(iter(d)) for d in OmegaConf.load(root / f"{primary}.yaml").defaults if isinstance(d, DictConfig)]
    groups = {}
    for name in names:
        group = name.removeprefix("override ").removeprefix("optional ").split("@")[0].strip("/")
        if (root / group).is_dir() and not group.startswith(("hydra", "debug/")):
            options = sorted(p.stem for p in (root / group).glob("*.yaml"))
            if group == "experiment" and command is not None:
                options = [o for o in options if experiment_command(conf_dir, o) == command]
            groups[group] = options
    return groups


def groups_help(primary: str) -> str:
    """`nst --help`'s and `nst train --help`'s list of groups and options, the experiments of that command only
    (the `${groups:…}` resolver)."""
    from nst.configs import CONF_DIR

    command = "nst train" if primary == "train" else "nst"
    return "\n".join(f"{g}: {', '.join(o)}" for g, o in sorted(group_options(str(CONF_DIR), primary, command).items()))
