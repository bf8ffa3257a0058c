"""Where the configs live, and turning a config node into an object with errors a user can act on."""

from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from nst.errors import NSTError
from nst.images import example

_HERE = Path(__file__).resolve().parent
# A checkout keeps conf/ beside the package; a wheel ships it inside as nst/conf.
CONF_DIR = next(p for p in (_HERE / "conf", _HERE.parent / "conf") if p.is_dir())

OmegaConf.register_new_resolver("example", example, replace=True)


def build(node: DictConfig, what: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, with a bad setting reported as one line that names the config key."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, NSTError):
            raise cause from None
        reason = str(cause or exc).strip().splitlines()[0] if str(cause or exc).strip() else type(cause).__name__
        raise NSTError(f"cannot build {what} from its config ({reason}): check the {what}.* settings") from None
