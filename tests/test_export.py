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


def test_an_adain_decoder_is_refused_for_now_in_one_line(tmp_path, capsys):
    from nst.adain import AdaINDecoder

    save_model(AdaINDecoder("scratch"), tmp_path / "decoder.pt", {})
    code, err = run_cli(tmp_path, capsys, "export", f"model={tmp_path / 'decoder.pt'}", f"out={tmp_path / 'd.onnx'}")
    assert code == 2 and "is not supported yet" in err and not (tmp_path / "d.onnx").exists()
