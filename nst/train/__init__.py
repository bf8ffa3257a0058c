"""Training a feed-forward style network: the model-optimisation branch of style transfer.

`nst train` (pipeline.py) reads top to bottom: checks, photos (data.py), the network
(network.py), the shared perceptual criterion (nst/criterion.py) inside the Lightning
module (module.py), validation judged like every run (validation.py), and what the run
leaves: model.pt (model_file.py) for `nst stylize` (stylize.py). It shares with image
optimisation the loss network, the criterion, the judge, the run directory, the
loggers, the callbacks and the outputs, and nothing of the image-only modules.
"""
