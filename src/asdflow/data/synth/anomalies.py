"""Anomalies: parametric ones change the Drive, additive ones add a fault sound.

The anomaly functions, the registry ANOMALIES, which of them are PARAMETRIC_ANOMALIES (applied
to the Drive before rendering) and each archetype's default anomaly kinds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from asdflow.data.synth.archetypes import Drive
from asdflow.data.synth.signals import (
    _TWO_PI,
    _band,
    _db,
    _events,
    _excite,
    _ring,
    _shaped_noise,
    _unit,
)


def _detune(d: Drive, arng, severity: float) -> None:
    """Runs at the speed of the nearest other speed value: a normal sound of another attribute
    value, anomalous only given the attribute (severity 1; 0.5 lands halfway). Without a speed
    attribute: 6 % off nominal."""
    if d.other_speeds:
        ratio = min(d.other_speeds, key=lambda r: (abs(math.log(r)), arng.random()))
    else:
        ratio = 1.0 + arng.choice([-1.0, 1.0]) * 0.06
    d.rate *= ratio**severity


def _overload(d: Drive, arng, severity: float) -> None:
    """Harmonic balance / impact strength / flow of a higher load than the attribute says
    (+35 points: about the next load value, or beyond the highest)."""
    d.load += 0.35 * severity


def _bearing(x, cyc, d: Drive, arng, severity: float):
    """Outer-race fault: impulses at a non-integer order of the shaft, ringing a high resonance."""
    order = arng.uniform(3.1, 5.3)
    idx = _events(cyc * order)
    amp = 1.0 + 0.5 * np.cos(_TWO_PI * cyc[np.clip(idx, 0, d.n - 1)])
    ir = _ring(d.sr, [arng.uniform(2500.0, 4500.0)], [0.0015], [1.0], 0.02)
    return x + severity * _db(-13.0) * _unit(_excite(d.n, idx, amp, ir))


def _imbalance(x, cyc, d: Drive, arng, severity: float):
    """Mass imbalance: amplitude modulation and a stronger 1x component at the shaft rate."""
    phase = _TWO_PI * cyc + arng.uniform(0.0, _TWO_PI)
    return x * (1.0 + 0.4 * severity * np.cos(phase)) + 0.3 * severity * np.sin(phase)


def _rubbing(x, cyc, d: Drive, arng, severity: float):
    """Rubbing: band-limited noise bursts in part of the revolutions."""
    rev = np.floor(cyc).astype(int)
    hit = arng.random(rev.max() - rev.min() + 1) < 0.6
    gate = ((np.mod(cyc, 1.0) < 0.3) & hit[rev - rev.min()]).astype(float)
    lo = arng.uniform(1000.0, 2000.0)
    burst = _shaped_noise(arng, d.n, d.sr, _band(lo, 2.5 * lo)) * gate
    return x + severity * _db(-6.0) * burst


def _rattle(x, cyc, d: Drive, arng, severity: float):
    """Loose part: irregular clicks of a small resonator (Poisson timing, random strength)."""
    k = arng.poisson(arng.uniform(6.0, 14.0) * d.n / d.sr)
    idx = arng.integers(0, d.n, k)
    ir = _ring(
        d.sr, arng.uniform(1500.0, 5000.0, 2), arng.uniform(0.002, 0.006, 2), [1.0, 0.6], 0.03
    )
    return x + severity * _db(-9.0) * _unit(_excite(d.n, idx, arng.exponential(1.0, k), ir))


def _chipped_tooth(x, cyc, d: Drive, arng, severity: float):
    """Chipped gear tooth: one impact per shaft revolution ringing the gear body."""
    ir = _ring(d.sr, arng.uniform(800.0, 2500.0, 2), [0.004, 0.003], [1.0, 0.7], 0.03)
    return x + severity * _db(-11.0) * _unit(_excite(d.n, _events(cyc, arng.random()), 1.0, ir))


def _leak(x, cyc, d: Drive, arng, severity: float):
    """Seat leak: continuous faint high-frequency hiss, audible while the valve is closed."""
    hiss = _shaped_noise(arng, d.n, d.sr, _band(arng.uniform(3000.0, 4500.0), 7500.0))
    return x + severity * _db(-15.0) * hiss


ANOMALIES: dict[str, Callable] = {
    "detune": _detune,
    "overload": _overload,
    "bearing": _bearing,
    "imbalance": _imbalance,
    "rubbing": _rubbing,
    "rattle": _rattle,
    "chipped_tooth": _chipped_tooth,
    "leak": _leak,
}
PARAMETRIC_ANOMALIES = ("detune", "overload")
DEFAULT_ANOMALIES: dict[str, tuple[str, ...]] = {
    "rotating": ("bearing", "imbalance", "rubbing", "detune"),
    "fan": ("imbalance", "rubbing", "rattle", "detune"),
    "reciprocating": ("rattle", "bearing", "overload", "detune"),
    "slider": ("rubbing", "rattle", "overload", "detune"),
    "valve": ("leak", "rattle", "overload", "detune"),
    "gearbox": ("chipped_tooth", "bearing", "imbalance", "detune"),
}
