"""Signal building blocks shared by the whole factory.

The deterministic random streams (one per clip, the same in every process) and the vectorised
helpers that archetypes, anomalies, backgrounds and the general-audio corpus are made of: levels,
slow random curves, cycle counts, shaped noise, band gains, harmonic series, ringing modes,
impulse trains and body resonances.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
from scipy import signal

_TWO_PI = 2.0 * np.pi


# ----------------------------------------------------------------------------------------------
# Determinism
# ----------------------------------------------------------------------------------------------


def stable_hash(*parts) -> int:
    """32-bit hash of the parts, identical in every process (Python's hash() is salted)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def clip_rng(seed: int, *parts) -> np.random.Generator:
    return np.random.default_rng([seed, stable_hash(*parts)])


# ----------------------------------------------------------------------------------------------
# Signal building blocks (vectorised over samples)
# ----------------------------------------------------------------------------------------------


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)) + 1e-12)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / _rms(x)


def _db(x):
    return 10.0 ** (np.asarray(x) / 20.0)


def _smooth(rng: np.random.Generator, n: int, sr: int, rate: float) -> np.ndarray:
    """Slowly varying random curve of unit std, about `rate` knots per second, linear between."""
    knots = max(int(n / sr * rate) + 2, 3)
    pts = rng.standard_normal(knots)
    return np.interp(np.linspace(0.0, knots - 1.0, n), np.arange(knots), pts)


def _cycles(rate: float, n: int, sr: int, rng: np.random.Generator, wander=0.003) -> np.ndarray:
    """Cumulative cycle count (float) of a motion at `rate` Hz with slow speed wander."""
    inst = rate * (1.0 + wander * _smooth(rng, n, sr, 2.0))
    return np.cumsum(inst) / sr + rng.random()


def _shaped_noise(
    rng: np.random.Generator, n: int, sr: int, gain: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """White noise with amplitude spectrum gain(f), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    return _unit(np.fft.irfft(spec * gain(f), n))


def _band(lo: float, hi: float, slope=1.0):
    """Smooth band-pass gain on a log-frequency axis."""

    def gain(f):
        lf = np.log2(np.maximum(f, 1.0))
        return 1.0 / (
            (1.0 + np.exp(-(lf - np.log2(lo)) * 6 * slope))
            * (1.0 + np.exp((lf - np.log2(hi)) * 6 * slope))
        )

    return gain


def _pink(f):
    return 1.0 / np.sqrt(np.maximum(f, 20.0))


def _brown(f):
    return 1.0 / np.maximum(f, 20.0)


def _harmonics(cycles: np.ndarray, mults, amps, rng: np.random.Generator) -> np.ndarray:
    """sum_k amps[k] sin(2 pi mults[k] cycles + phi_k); a loop over partials, vectorised in time."""
    out = np.zeros_like(cycles)
    phis = rng.uniform(0.0, _TWO_PI, len(mults))
    base = _TWO_PI * cycles
    top = np.max(np.diff(cycles[:: max(len(cycles) // 64, 1)]) / max(len(cycles) // 64, 1))
    for m, a, p in zip(mults, amps, phis, strict=True):
        if m * top < 0.45:  # cycles per sample: skip partials that would alias
            out += a * np.sin(m * base + p)
    return out


def _ring(sr: int, freqs, decays, amps, dur: float = 0.08) -> np.ndarray:
    """Impulse response of decaying modes: (L,) = sum_k a_k exp(-t/tau_k) sin(2 pi f_k t)."""
    t = np.arange(int(dur * sr)) / sr
    f, d, a = (np.asarray(v, float)[:, None] for v in (freqs, decays, amps))
    return (a * np.exp(-t / d) * np.sin(_TWO_PI * f * t)).sum(0)


def _events(cycles: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Sample indices where cycles - offset crosses an integer."""
    return np.flatnonzero(np.diff(np.floor(cycles - offset)) > 0) + 1


def _excite(n: int, idx: np.ndarray, amps, ir: np.ndarray) -> np.ndarray:
    """Impulses of the given amplitudes at idx, filtered by ir."""
    x = np.zeros(n)
    idx = np.clip(idx, 0, n - 1)
    np.add.at(x, idx, np.broadcast_to(amps, idx.shape))
    if not len(idx):
        return x
    return signal.fftconvolve(x, ir)[:n]


def _modes(srng: np.random.Generator, k: int, lo: float, hi: float):
    """Body resonances of a machine: centre freqs (Hz), gains (dB), widths (octaves)."""
    f = np.exp(srng.uniform(np.log(lo), np.log(hi), k))
    return f, srng.uniform(4.0, 10.0, k), srng.uniform(0.15, 0.4, k)


def _env_db(f, modes, shift: float) -> np.ndarray:
    """Resonance envelope in dB at frequencies f; `shift` scales the centre frequencies."""
    cf, g, w = modes
    lf = np.log2(np.maximum(np.asarray(f, float), 1.0))[..., None]
    return (g * np.exp(-0.5 * ((lf - np.log2(cf * shift)) / w) ** 2)).sum(-1)
