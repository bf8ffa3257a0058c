"""`nst export`: a trained network as ONNX or TorchScript, giving nst's own image at any size without nst."""

import numpy as np
import onnxruntime
import pytest
import torch

from nst.configs import example
from nst.images import load_image
from nst.train.model_file import save_model, stylize
from nst.train.network import TransformNet
from tests.helpers import run_cli


@pytest.fixture(params=["one style", "three styles"])
def network(request, tmp_path):
    torch.manual_seed(0)
    norm = "instance" if request.param == "one style" else "conditional_instance"
    net = TransformNet(width=8, residual_blocks=1, norm=norm, styles=3)
    save_model(net, tmp_path / "model.pt", {})
    return net.eval()


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_an_exported_network_gives_nst_s_image_at_sizes_it_was_not_traced_at(tmp_path, capsys, network, suffix):
    out = tmp_path / f"net{suffix}"
    code, err = run_cli(tmp_path, capsys, "export", f"model={tmp_path / 'model.pt'}", f"out={out}")
    assert code == 0 and err.strip().startswith(f"nst export: {out}"), err
    styles = network.styles
    for size in (61, 90):
        photo = load_image(example("tubingen.jpg"), size)
        mix = [0.2, 0.3, 0.5] if styles else None
        expected = stylize(network, photo, mix).numpy()
        inputs = (photo, torch.tensor([mix])) if styles else (photo,)
        if suffix == ".onnx":
            session = onnxruntime.InferenceSession(str(out))
            names = [i.name for i in session.get_inputs()]
            got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})[0]
        else:
            got = torch.jit.load(str(out))(*inputs).detach().numpy()
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4


def test_what_cannot_be_exported_is_one_line(tmp_path, capsys, network):
    for args, says in (
        ([f"out={tmp_path / 'x.tflite'}"], "give a .onnx (ONNX) or .pt (TorchScript) file"),
        ([f"out={tmp_path / 'none' / 'x.onnx'}"], "does not exist: create it"),
        ([], "model= and out= are needed"),
    ):
        code, err = run_cli(tmp_path, capsys, "export", f"model={tmp_path / 'model.pt'}", *args)
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_an_adain_decoder_exports_with_its_encoder_style_input_and_alpha(tmp_path, capsys, suffix):
    from nst.adain import AdaINDecoder
    from nst.train.inference import adain_target, decoded

    torch.manual_seed(0)
    decoder = AdaINDecoder("scratch").eval()
    save_model(decoder, tmp_path / "decoder.pt", {})
    out = tmp_path / f"decoder{suffix}"
    code, err = run_cli(tmp_path, capsys, "export", f"model={tmp_path / 'decoder.pt'}", f"out={out}")
    assert code == 0 and "style (B, 3, H', W'), alpha ()" in err, err
    style = load_image(example("starry_night.jpg"), 70)
    for size, alpha in ((61, 1.0), (90, 0.6)):  # neither the traced size nor on the encoder's 8 px grid
        photo = load_image(example("tubingen.jpg"), size)
        expected = decoded(decoder, photo, adain_target(decoder, [style])[1], alpha).numpy()
        if suffix == ".onnx":
            session = onnxruntime.InferenceSession(str(out))
            feeds = {"photo": photo.numpy(), "style": style.numpy(), "alpha": np.array(alpha, dtype=np.float32)}
            got = session.run(None, feeds)[0]
        else:
            got = torch.jit.load(str(out))(photo, style, torch.tensor(alpha)).detach().numpy()
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4
