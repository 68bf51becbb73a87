"""General-audio corpus (not machine sound): one renderer per kind, GENERAL_KINDS.

Tones, chords, chirps, speech-like sounds, rain, wind and clatter, for pre-training a general
encoder; writer.generate_general writes them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

from asdflow.data.synth.signals import _TWO_PI, _band, _excite, _ring, _shaped_noise, _smooth, _unit


def _tone(n, sr, rng):
    t = np.arange(n) / sr
    f = np.exp(rng.uniform(np.log(120.0), np.log(3000.0)))
    vib = 1.0 + rng.uniform(0, 0.01) * np.sin(_TWO_PI * rng.uniform(3, 7) * t)
    x = np.sin(_TWO_PI * np.cumsum(f * vib) / sr)
    on, off = sorted(rng.uniform(0, n, 2).astype(int))
    env = np.zeros(n)
    env[on : max(off, on + sr // 4)] = 1.0
    return np.convolve(env, np.hanning(400) / 200, mode="same") * x


def _chord(n, sr, rng):
    t = np.arange(n) / sr
    root = rng.uniform(40, 70)
    notes = root + np.array([0, rng.choice([3, 4]), 7, rng.choice([10, 11, 12])])
    freqs = 440.0 * 2 ** ((notes - 69) / 12)
    k = np.arange(1, 7)
    partials = (freqs[:, None] * k).ravel()
    amps = np.tile(1.0 / k, len(freqs))
    keep = partials < sr / 2 - 200
    x = (
        amps[keep, None]
        * np.sin(_TWO_PI * partials[keep, None] * t + rng.uniform(0, 6, (keep.sum(), 1)))
    ).sum(0)
    return x * np.exp(-t / rng.uniform(0.4, 2.0))


def _chirp(n, sr, rng):
    t = np.arange(n) / sr
    f0, f1 = np.exp(rng.uniform(np.log(100.0), np.log(6000.0), 2))
    x = signal.chirp(t, f0, t[-1], f1, method=rng.choice(["logarithmic", "linear", "quadratic"]))
    return x * np.hanning(n) ** 0.3


def _speech(n, sr, rng):
    """Speech-like: glottal harmonics with intonation through moving formants, syllabic envelope."""
    f0 = rng.uniform(90.0, 220.0) * (1.0 + 0.1 * _smooth(rng, n, sr, 3.0))
    cyc = np.cumsum(f0) / sr
    source = np.mod(cyc, 1.0) - 0.5  # sawtooth: all harmonics
    nper = 512
    _, _, z = signal.stft(source, sr, nperseg=nper)
    freqs = np.fft.rfftfreq(nper, 1.0 / sr)[:, None]
    frames = z.shape[1]
    env = np.zeros((len(freqs), frames))
    for lo, hi, bw in ((300, 850, 80), (900, 2300, 120), (2400, 3100, 180)):
        track = np.interp(np.linspace(0, 1, frames), np.linspace(0, 1, 6), rng.uniform(lo, hi, 6))
        env += np.exp(-0.5 * ((freqs - track) / bw) ** 2)
    _, x = signal.istft(z * env, sr, nperseg=nper)
    x = np.resize(x, n) if len(x) < n else x[:n]
    syll = np.clip(
        np.sin(_TWO_PI * rng.uniform(3.0, 5.0) * np.arange(n) / sr + rng.uniform(0, 6)), 0, None
    )
    return x * syll


def _rain(n, sr, rng):
    drops = _excite(
        n,
        rng.integers(0, n, rng.poisson(rng.uniform(200, 800) * n / sr)),
        rng.exponential(1.0),
        _ring(sr, [rng.uniform(2000, 6000)], [0.001], [1.0], 0.01),
    )
    return _unit(drops) + _shaped_noise(rng, n, sr, _band(1500.0, 7500.0))


def _wind(n, sr, rng):
    noise = rng.standard_normal(n)
    nper = 1024
    _, _, z = signal.stft(noise, sr, nperseg=nper)
    freqs = np.fft.rfftfreq(nper, 1.0 / sr)[:, None]
    centre = np.exp(
        np.log(rng.uniform(200.0, 900.0)) + 0.5 * np.tanh(_smooth(rng, z.shape[1], 10, 1.0))
    )
    z *= np.exp(-0.5 * (np.log2(np.maximum(freqs, 1.0) / centre) / 0.8) ** 2)
    _, x = signal.istft(z, sr, nperseg=nper)
    x = np.resize(x, n) if len(x) < n else x[:n]
    return x * (1.0 + 0.7 * np.tanh(_smooth(rng, n, sr, 1.5)))


def _clatter(n, sr, rng):
    k = rng.poisson(rng.uniform(5.0, 20.0) * n / sr) + 1
    out = np.zeros(n)
    for _ in range(3):  # three objects with their own resonances
        ir = _ring(
            sr,
            rng.uniform(300.0, 5000.0, 3),
            rng.uniform(0.005, 0.08, 3),
            rng.uniform(0.3, 1.0, 3),
            0.3,
        )
        out += _excite(n, rng.integers(0, n, k), rng.exponential(1.0, k), ir)
    return out


GENERAL_KINDS: dict[str, Callable] = {
    "tone": _tone,
    "chord": _chord,
    "chirp": _chirp,
    "speech": _speech,
    "rain": _rain,
    "wind": _wind,
    "clatter": _clatter,
}
