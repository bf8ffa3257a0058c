"""Video through a trained network: frame by frame at the clip's rate, with the flicker measured by optical flow."""

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from nst.configs import example
from nst.images import load_image
from nst.train.model_file import save_model
from nst.train.network import TransformNet
from nst.train.video import stylize_video
from tests.helpers import run_cli

FRAMES, SHIFT = 8, 2  # a pan of 2 px a frame: the true flow is known


def panned_clip(path: Path, rate: int = 12) -> Path:
    """The Tübingen photo panned left to right, SHIFT px a frame, as an H.264 clip."""
    photo = (load_image(example("tubingen.jpg"), 160)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
    for t in range(FRAMES):
        frame = np.ascontiguousarray(photo[20:84, SHIFT * t : SHIFT * t + 96])
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def test_the_warping_error_sees_flicker_that_the_flow_does_not_explain(tmp_path):
    clip = panned_clip(tmp_path / "pan.mp4")
    stable = stylize_video(lambda x: 1 - x, clip, tmp_path / "stable.mp4", lambda i, n: None)
    generator = torch.Generator().manual_seed(0)
    flicker = stylize_video(lambda x: (1 - x + 0.1 * torch.rand(x.shape, generator=generator)).clamp(0, 1), clip,
                            tmp_path / "flicker.mp4", lambda i, n: None)  # fmt: skip
    assert stable["frames"] == flicker["frames"] == FRAMES and stable["fps"] == 12
    assert stable["input_warping_error"] < 0.03  # the flow explains a pan
    assert stable["warping_error"] < 0.03 < flicker["warping_error"]


def test_nst_stylize_turns_a_clip_into_a_clip_at_its_rate_and_reports_its_flicker(tmp_path, capsys):
    torch.manual_seed(0)
    model = save_model(TransformNet(width=8, residual_blocks=1), tmp_path / "model.pt", {"style": ["x.jpg"]})
    clip, out = panned_clip(tmp_path / "pan.mp4"), tmp_path / "styled.mp4"
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={model}", f"content={clip}", f"out={out}")
    assert code == 0, err
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert len(frames) == FRAMES and Fraction(stream.average_rate) == 12
        assert (frames[0].width, frames[0].height) == (96, 64)
    figures = json.loads((tmp_path / "styled.mp4.json").read_text())
    assert figures["frames"] == FRAMES and figures["warping_error"] >= 0
    assert f"warping error {figures['warping_error']:.4f}" in err


def test_a_clip_must_go_to_a_clip_and_a_broken_one_is_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    model = save_model(TransformNet(width=8, residual_blocks=1), tmp_path / "model.pt", {})
    clip = panned_clip(tmp_path / "pan.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    for content, out, says in (
        (clip, tmp_path / "x.png", "a clip goes to a clip"),
        (broken, tmp_path / "y.mp4", "cannot be read as a video"),
    ):
        code, err = run_cli(tmp_path, capsys, "stylize", f"model={model}", f"content={content}", f"out={out}")
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_ctrl_c_keeps_the_frames_done_as_a_playable_clip_and_says_how_far_it_got(tmp_path, capsys, monkeypatch):
    import nst.train.stylize as stylize_module

    torch.manual_seed(0)
    model = save_model(TransformNet(width=8, residual_blocks=1), tmp_path / "model.pt", {})
    clip, out = panned_clip(tmp_path / "pan.mp4"), tmp_path / "styled.mp4"
    original, calls = stylize_module.styled, [0]

    def interrupted_at_the_fourth(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(stylize_module, "styled", interrupted_at_the_fourth)
    code, err = run_cli(tmp_path, capsys, "stylize", f"model={model}", f"content={clip}", f"out={out}")
    assert code == 130 and f"stopped by SIGINT after 3 frames; {out} holds them" in err
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) == 3
