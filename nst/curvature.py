"""Whether an L-BFGS run stopped learning, told by the curvature pairs it kept (`lbfgs_pairs` in metrics.json).

Plain arithmetic without torch, so `nst compare` reads a sweep without loading it;
nst/lbfgs.py counts the pairs.
"""


def stuck(kept: int, possible: int) -> bool:
    """Whether an L-BFGS run's history stopped changing: fewer than half the pairs it could hold (of 10 or more)."""
    return possible >= 10 and kept < possible / 2
