"""The EAT decoder's forward + backward time at one shape, with its convolution weights in the
default layout and in channels-last, side by side (bf16 autocast on a GPU, float32 on the CPU).
Run from the repository root: python3 scripts/decoder-bench.py eat_base 512 1024
(model, clone rows per step, frames per clip)."""

import statistics
import sys
import time

import torch

sys.path.insert(0, "src")
from asdflow import models  # noqa: E402


def median_seconds(model: str, rows: int, frames: int, channels_last: bool) -> float:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = models.model_config(model)
    h, w = models.EATEncoder(cfg).grid(frames)
    torch.manual_seed(0)
    decoder = models.Decoder2d(cfg).to(device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    decoder.blocks.to(memory_format=layout)
    x = torch.randn(rows, h * w, cfg.embed_dim, device=device, requires_grad=True)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = decoder(x, (h, w))
        out.float().pow(2).mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        step()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    model, rows, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    default = median_seconds(model, rows, frames, channels_last=False)
    last = median_seconds(model, rows, frames, channels_last=True)
    print(
        f"{model}, {rows} rows, {frames} frames: default layout {default * 1e3:.1f} ms, "
        f"channels-last {last * 1e3:.1f} ms, ratio {default / last:.2f}x"
    )
