"""A clip through a style network frame by frame, and how much the result flickers.

Frames are decoded and encoded with PyAV (FFmpeg's libraries inside a wheel: no
system FFmpeg to install), at the clip's own frame rate, H.264 where the wheel has
it. The flicker figure is the warping error of Lai et al. 2018 ("Learning Blind
Video Temporal Consistency"): each stylised frame against the previous stylised
frame warped by the optical flow of the *input* frames (OpenCV's Farnebäck, no
weights needed), over the pixels where the input itself agrees with its warped
previous frame (what the flow explains: no occlusion, no new content):

    E_warp = mean_t mean_{p valid} |S_t(p) − warp(S_{t−1}, F_{t→t−1})(p)|

The same figure for the input clip is reported beside it: what the flow itself
leaves unexplained, the floor a perfectly stable network would reach.
"""

import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nst.errors import NSTError

SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm")
CONSISTENT = 0.05  # an input pixel within this of its warped previous value counts as explained by the flow


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def _libraries() -> Any:
    """PyAV (and OpenCV, for the flow), or one line saying how to install them."""
    try:
        import av
        import cv2  # noqa: F401 - the flow of `warping_errors`
    except ImportError:
        raise NSTError('video needs PyAV and OpenCV: pip install -e ".[video]"') from None
    return av


def _frames(path: Path) -> tuple[Iterator[np.ndarray], Fraction, int]:
    """The clip's frames as (H, W, 3) uint8 RGB, its frame rate and its frame count (0 when the file does not say)."""
    av = _libraries()
    try:
        container = av.open(str(path))
        stream = container.streams.video[0]
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise NSTError(f"content={path} cannot be read as a video ({exc}): give an MP4, MOV, MKV or WebM "
                       "file") from None  # fmt: skip

    def frames() -> Iterator[np.ndarray]:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        finally:
            container.close()

    return frames(), Fraction(stream.average_rate or 25), int(stream.frames or 0)


def _flow(to: np.ndarray, frm: np.ndarray) -> np.ndarray:
    """Where each pixel of `to` was in `frm` (the flow from `to` back to `frm`), as absolute sampling maps."""
    import cv2

    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (to, frm)]
    flow = cv2.calcOpticalFlowFarneback(grey[0], grey[1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
    height, width = flow.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).astype(np.float32)
    return grid + flow


def _warped(image: np.ndarray, maps: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warping_errors(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> tuple[float, float]:
    """The stylised clip's warping error and the input clip's own (float RGB frames in [0, 1], in order)."""
    styled, own = [], []
    for t in range(1, len(inputs)):
        maps = _flow((inputs[t] * 255).astype(np.uint8), (inputs[t - 1] * 255).astype(np.uint8))
        input_error = np.abs(inputs[t] - _warped(inputs[t - 1], maps)).mean(-1)
        valid = input_error < CONSISTENT
        if valid.any():
            styled.append(float(np.abs(outputs[t] - _warped(outputs[t - 1], maps)).mean(-1)[valid].mean()))
            own.append(float(input_error[valid].mean()))
    return (sum(styled) / len(styled), sum(own) / len(own)) if styled else (math.nan, math.nan)


def stylize_video(
    render: Callable[[Tensor], Tensor], source: Path, target: Path, progress: Callable[[int, int], None]
) -> dict[str, Any]:
    """Every frame of `source` through `render` ((1, 3, H, W) in [0, 1] -> the same), into `target` at the same
    frame rate; the figures of the run. A Ctrl-C closes the file with the frames done so far, then propagates."""
    import av

    frames, rate, count = _frames(source)
    inputs: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    container = av.open(str(target), "w")
    stream = None
    try:
        for index, frame in enumerate(frames):
            photo = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
            image = render(photo)[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy()
            height, width = (side - side % 2 for side in image.shape[:2])  # yuv420p: even sides
            if stream is None:
                codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
                stream = container.add_stream(codec, rate=rate)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            rgb = (image[:height, :width] * 255).round().astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
            inputs.append(frame[:height, :width].astype(np.float32) / 255)
            outputs.append(rgb.astype(np.float32) / 255)
            progress(index + 1, count)
    finally:
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
        container.close()
    if not outputs:
        raise NSTError(f"content={source} holds no video frames")
    styled, own = warping_errors(inputs, outputs)
    return {"frames": len(outputs), "fps": float(rate), "warping_error": styled, "input_warping_error": own}
