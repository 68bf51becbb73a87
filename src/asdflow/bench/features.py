"""`asdflow bench features`: building the log-mel cache, and reading a training epoch from it
against computing fbank on the fly."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from asdflow import features
from asdflow.bench.printing import print_figures


def _write_clips(folder: Path, n_clips: int, clip_seconds: float, sample_rate: int) -> list[str]:
    """Machine-like test clips: a few harmonics of a random shaft frequency in noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(clip_seconds * sample_rate)) / sample_rate
    paths = []
    for i in range(n_clips):
        f0 = rng.uniform(40, 200)
        wav = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
        wav = 0.1 * wav + 0.05 * rng.standard_normal(t.size)
        path = folder / f"clip_{i:05d}.wav"
        sf.write(path, wav.astype(np.float32), sample_rate, subtype="PCM_16")
        paths.append(str(path))
    return paths


def bench_features(
    n_clips: int = 400, clip_seconds: float = 10.0, n_frames: int = 1024, epochs: int = 1
) -> dict:
    """Cache build speed, and reading a training epoch from the cache vs fbank on the fly.

    Both epoch variants deliver the same normalised (n_frames, 128) float32 tensors in a shuffled
    order, one clip at a time, as a data loader would.
    """
    torch.set_num_threads(1)
    settings = features.FbankSettings(n_frames=n_frames)
    stats = features.NormStats(features.AUDIOSET_MEAN, features.AUDIOSET_STD, "fixed")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = _write_clips(tmp, n_clips, clip_seconds, settings.sample_rate)
        clips = pd.DataFrame({"file": paths, "split": "train"})

        start = time.perf_counter()
        features.cache_split(clips, tmp / "train.npy", tmp / "train.csv", settings, progress=False)
        build_s = time.perf_counter() - start

        order = np.random.default_rng(1).permutation(n_clips)
        cache = features.open_cache(tmp / "train.npy")
        start = time.perf_counter()
        for _ in range(epochs):
            for i in order:
                x = torch.from_numpy(stats.apply(np.array(cache[i])))
        cached_s = time.perf_counter() - start

        start = time.perf_counter()
        for _ in range(epochs):
            for i in order:
                x, _ = features.clip_features(paths[i], settings)
                x = torch.from_numpy(stats.apply(x))
        onthefly_s = time.perf_counter() - start
        del x

    result = {
        "clips": n_clips,
        "clip_seconds": clip_seconds,
        "n_frames": n_frames,
        "cache_build_clips_per_s": n_clips / build_s,
        "epoch_from_cache_clips_per_s": epochs * n_clips / cached_s,
        "epoch_on_the_fly_clips_per_s": epochs * n_clips / onthefly_s,
        "speedup_cache_vs_on_the_fly": onthefly_s / cached_s,
    }
    print_figures(result)
    return result
