"""Where the configs live, the example images they name, and turning a config node into an object with errors a
user can act on."""

import itertools
from importlib.resources import files
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from nst.errors import NSTError

_HERE = Path(__file__).resolve().parent
# A checkout keeps conf/ beside the package; a wheel ships it inside as nst/conf.
CONF_DIR = next(p for p in (_HERE / "conf", _HERE.parent / "conf") if p.is_dir())
# The `experiment` group: in a checkout conf/experiment links to the top-level experiments/, the papers' configs.
EXPERIMENTS_DIR = CONF_DIR / "experiment"
EXAMPLES = files("nst") / "examples"
PHOTOS = files("nst") / "photos"  # the photos `nst train` learns from by default (nst/photos/README.md)
STYLES = files("nst") / "styles"  # the bundled style set (nst/styles/README.md)


def experiment_sweep(name: str) -> list[list[str]]:
    """The override sets of the sweep an experiment file declares (`hydra.sweeper.params`); [] if none."""
    params = OmegaConf.load(EXPERIMENTS_DIR / f"{name}.yaml").get("hydra", {}).get("sweeper", {}).get("params", {})
    parser = OverridesParser.create()
    axes = []
    for key, values in params.items():
        (override,) = parser.parse_overrides([f"{key}={values}"])
        axes.append([f"{key}={value}" for value in override.sweep_string_iterator()])
    return [list(point) for point in itertools.product(*axes)] if axes else []


def task_overrides(hydra_cfg: DictConfig) -> list[str]:
    """The job's command-line overrides as typed: a `${…}` inside a value stays text, not resolved here."""
    return [str(o) for o in OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)]  # type: ignore[union-attr]


def build(node: DictConfig, what: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, with a bad setting reported as one line that names the config key.

    Lists and dicts reach the object as plain Python (`_convert_="all"`): an optimizer's
    `betas` must not put an omegaconf type into a checkpoint that loads with `weights_only=True`.
    """
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, NSTError):
            raise cause from None
        reason = str(cause or exc).strip().splitlines()[0] if str(cause or exc).strip() else type(cause).__name__
        raise NSTError(f"cannot build {what} from its config ({reason}): check the {what}.* settings") from None


def example(name: str) -> str:
    """Path of an example image shipped with the package (the `${example:…}` config resolver)."""
    path = EXAMPLES / name
    if not path.is_file():
        shipped = ", ".join(sorted(p.name for p in EXAMPLES.iterdir() if p.name.endswith((".jpg", ".png"))))
        raise NSTError(f"no example image {name!r}: shipped examples are {shipped}")
    return str(path)


def photos() -> str:
    """The folder of photos that ships with nst (the `${photos:}` config resolver)."""
    return str(PHOTOS)


def styles(name: str = "") -> str:
    """The bundled style set, or one painting of it (the `${styles:}` and `${styles:NAME}` config resolvers)."""
    if not name:
        return str(STYLES)
    path = STYLES / name
    if not path.is_file():
        shipped = ", ".join(sorted(p.name for p in STYLES.iterdir() if p.name.endswith(".jpg")))
        raise NSTError(f"no bundled style {name!r}: the style set holds {shipped}")
    return str(path)
