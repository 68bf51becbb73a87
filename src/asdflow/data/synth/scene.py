"""What surrounds the machine in a recording: background noise, the microphone and the level.

Background kinds (BACKGROUND_KINDS), the microphone position's spectral tilt and reverberation,
and the random clip level with its soft limiter.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from asdflow.data.synth.signals import (
    _band,
    _brown,
    _cycles,
    _db,
    _excite,
    _harmonics,
    _pink,
    _ring,
    _rms,
    _shaped_noise,
    _smooth,
    _unit,
)


def _background(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS background noise of one kind."""
    if kind == "white":
        return _unit(rng.standard_normal(n))
    if kind == "pink":
        return _shaped_noise(rng, n, sr, _pink)
    if kind == "brown":
        return _shaped_noise(rng, n, sr, _brown)
    if kind == "hvac":
        hum = _harmonics(_cycles(50.0, n, sr, rng, 0.0), [1, 2, 3, 6], [0.5, 1.0, 0.4, 0.2], rng)
        return _unit(_shaped_noise(rng, n, sr, _band(60.0, 500.0)) + 0.5 * _unit(hum))
    if kind == "babble":
        speechy = _shaped_noise(rng, n, sr, _band(250.0, 3000.0))
        return _unit(speechy * (1.0 + 0.6 * _smooth(rng, n, sr, 8.0)))
    if kind == "factory":
        clanks = _excite(
            n,
            rng.integers(0, n, rng.poisson(2.0 * n / sr) + 1),
            rng.exponential(1.0),
            _ring(sr, rng.uniform(300.0, 3000.0, 3), [0.05, 0.03, 0.02], [1, 0.6, 0.4], 0.3),
        )
        return _unit(_shaped_noise(rng, n, sr, _pink) + 0.7 * _unit(clanks))
    if kind == "street":
        swell = 1.0 + 0.5 * np.tanh(_smooth(rng, n, sr, 1.0))
        return _unit(_shaped_noise(rng, n, sr, _brown) * swell)
    raise ValueError(f"Unsupported background kind {kind!r}; known: {sorted(BACKGROUND_KINDS)}")


BACKGROUND_KINDS = frozenset({"white", "pink", "brown", "hvac", "babble", "factory", "street"})


def _microphone(x: np.ndarray, position: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Farther positions: darker spectrum (-1.5 dB/octave per step) and more reverberation."""
    steps = position - 1.0
    if steps <= 0:
        return x
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    tilt = _db(-1.5 * steps * np.clip(np.log2(np.maximum(f, 1.0) / 500.0), 0.0, None))
    x = np.fft.irfft(np.fft.rfft(x) * tilt, len(x))
    rt60 = 0.15 + 0.12 * steps
    t = np.arange(int(rt60 * sr)) / sr
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    wet = signal.fftconvolve(x, ir)[: len(x)]
    return x + 0.35 * steps * _unit(wet) * _rms(x)


def _level(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random level (-27 +- 4 dBFS), independent of attributes, so loudness carries no label."""
    x = x - x.mean()
    x = x * _db(rng.uniform(-31.0, -23.0)) / _rms(x)
    # soft knee above 0.5 full scale: rare impulsive peaks are limited without rescaling the clip
    mag = np.abs(x)
    knee = 0.5 + 0.49 * np.tanh((mag - 0.5) / 0.49)
    return np.where(mag > 0.5, np.sign(x) * knee, x)
