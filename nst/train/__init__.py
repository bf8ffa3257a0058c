"""Training a feed-forward style network: the model-optimisation branch of style transfer.

`nst train` (pipeline.py) reads top to bottom: checks, the config read once (plan.py),
photos (data.py), the network of a registered kind (kinds.py, network.py), the shared
perceptual criterion (nst/criterion.py) inside the Lightning module (module.py),
validation judged like every run (validation.py), and what the run leaves: model.pt
(model_file.py) for `nst stylize` (stylize.py, tiles.py) and `nst export` (export.py).
It lives the life every run lives (nst/lifecycle.py) and shares with image
optimisation the loss network, the criterion, the judge, the run directory, the
loggers, the callbacks and the outputs, and nothing of the image-only modules.
"""
