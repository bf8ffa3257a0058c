"""`style_balance`: a style weight for a painting nst has never seen, from a short probe before training.

    loss.style_weight = style_balance · loss.content_weight · Σ content terms / Σ style terms

summed over the first PROBE_STEPS batches.

The terms are those of the network as training starts it (for network=adain_style:
AdaIN's one pass with the shipped decoder), unweighted, so the weighted style term
starts at `style_balance` times the content term whatever the painting: a painting
whose statistics lie far from the photos' gets a smaller weight than one close to
them, as the anchors tune per style by hand (Johnson's released models: 3 to 20).
Not in any paper; the balance itself was chosen with nst's sweeps (benchmarks/results.md).
"""

import logging

import torch

from nst.errors import NSTError
from nst.train.data import StepBatches
from nst.train.module import StyleNetTraining

log = logging.getLogger("nst")

PROBE_STEPS = 4  # batches the terms are averaged over: the first ones the training will take, so nothing new is read


@torch.no_grad()
def balanced_style_weight(module: StyleNetTraining, batches: StepBatches, balance: float) -> float:
    """The style weight that `balance` asks for, measured on the module's untrained network (its criterion's
    targets prepared here on the CPU; the fit prepares them again on its device)."""
    module.on_fit_start()
    content = style = 0.0
    steps = min(PROBE_STEPS, len(batches))
    for step in range(steps):
        terms = module.losses(batches[step])
        content, style = content + float(terms["content"]), style + float(terms["style"])
    if not style > 0 or not content > 0:
        raise NSTError(f"style_balance={balance} needs a content and a style term, but the untrained network's are "
                       f"{content:.3g} and {style:.3g}: give loss.style_weight (style_balance=null)")  # fmt: skip
    weight = balance * module.criterion.weights["content"][0] * content / style
    log.info("style_balance=%g: loss.style_weight=%.4g (content term %.4g, style term %.4g on %d batches)", balance,
             weight, content / steps, style / steps, steps)  # fmt: skip
    return weight
