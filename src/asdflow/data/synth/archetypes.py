"""Archetypes: renderers of a machine's own sound (no background) from a Drive.

One renderer per kind of mechanism (rotating, fan, reciprocating, slider, valve, gearbox), the
Drive that describes what one clip's machine is doing, and the default speed of each archetype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from asdflow.data.synth.signals import (
    _TWO_PI,
    _band,
    _brown,
    _cycles,
    _db,
    _env_db,
    _events,
    _excite,
    _harmonics,
    _modes,
    _pink,
    _ring,
    _shaped_noise,
    _unit,
)


@dataclass
class Drive:
    """What one clip's machine is doing: its physical parameters after nuisance and anomalies."""

    sr: int
    n: int
    rate: float  # Hz of the main motion: shaft / stroke / travel cycle / switching
    load: float  # 0..1 (above 1 = overload)
    shift: float  # body-resonance multiplier (machine model)
    # speed ratios other speed values of the machine type / this clip's (empty: no speed attribute)
    other_speeds: tuple[float, ...] = ()


# Each returns (machine sound (n,), cycles (n,)): the main motion's cycle count, which
# synchronous anomalies (imbalance, rubbing, bearing faults) lock to.
ArchetypeFn = Callable[[Drive, np.random.Generator, np.random.Generator], tuple]


def _rotating(d: Drive, rng, srng):
    """Motor/pump: shaft-frequency harmonics shaped by body resonances, plus broadband noise."""
    modes = _modes(srng, 3, 250.0, 3000.0)
    slots = int(srng.integers(24, 48))
    cyc = _cycles(d.rate, d.n, d.sr, rng)
    k = np.arange(1, int(min(40, 3500.0 / d.rate)) + 1)
    rolloff = 1.5 - 0.8 * d.load  # more load, richer harmonics
    amps_db = -20 * rolloff * np.log10(k) + _env_db(k * d.rate, modes, d.shift)
    amps_db += rng.normal(0.0, 1.0, len(k))
    amps_db[1] += 6.0 * d.load  # 2x (misalignment-like) grows with load
    tonal = _unit(_harmonics(cyc, k, _db(amps_db), rng))
    # rotor-slot whine: slots x shaft rate, magnetic, grows with load
    slot = _unit(_harmonics(cyc, slots * np.array([1, 2]), [1.0, 0.4], rng))
    noise = _shaped_noise(rng, d.n, d.sr, lambda f: _db(_env_db(f, modes, d.shift)) * _pink(f))
    return tonal + _db(-8.0 + 4.0 * d.load) * slot + _db(-14.0 + 4.0 * d.load) * noise, cyc


def _fan(d: Drive, rng, srng):
    """Fan: blade-pass tone and harmonics on broadband airflow modulated at the blade-pass rate."""
    blades = int(srng.integers(5, 10))
    modes = _modes(srng, 2, 200.0, 2500.0)
    hump = srng.uniform(350.0, 700.0)
    cyc = _cycles(d.rate, d.n, d.sr, rng)
    m = np.arange(1, 7)
    bpf = blades * d.rate
    tonal = _harmonics(
        cyc, blades * m, _db(-22 * np.log10(m) + _env_db(m * bpf, modes, d.shift)), rng
    )
    tonal = _unit(tonal) + _db(-18.0) * _unit(_harmonics(cyc, [1, 2], [1.0, 0.5], rng))
    centre = hump * (0.8 + 0.6 * d.load) * d.shift
    air = _shaped_noise(
        rng, d.n, d.sr, lambda f: _band(centre / 2.5, centre * 2.5, 0.5)(f) + 2.0 * _pink(f)
    )
    air *= 1.0 + 0.15 * np.sin(_TWO_PI * blades * cyc)
    return tonal + _db(-6.0 + 8.0 * d.load) * air, cyc


def _reciprocating(d: Drive, rng, srng):
    """Piston compressor/press: two impacts per stroke ringing body modes, plus drive hum."""
    fa, fb = _modes(srng, 3, 500.0, 3500.0)[0], _modes(srng, 2, 300.0, 1500.0)[0]
    da, db = srng.uniform(0.008, 0.03, 3), srng.uniform(0.01, 0.04, 2)
    cyc = _cycles(d.rate, d.n, d.sr, rng, wander=0.005)
    ir_a = _ring(d.sr, fa * d.shift, da * (1.0 + 0.4 * d.load), [1.0, 0.7, 0.5])
    ir_b = _ring(d.sr, fb * d.shift, db, [1.0, 0.6])
    jitter = int(0.002 * d.sr)
    ia, ib = _events(cyc), _events(cyc, 0.5)
    ia = ia + rng.integers(-jitter, jitter + 1, len(ia))
    ib = ib + rng.integers(-jitter, jitter + 1, len(ib))
    a = (0.5 + 0.6 * d.load) * (1.0 + 0.1 * rng.standard_normal(len(ia)))
    b = (1.0 - 0.4 * d.load) * (1.0 + 0.1 * rng.standard_normal(len(ib)))
    impacts = _excite(d.n, ia, a, ir_a) + 0.6 * _excite(d.n, ib, b, ir_b)
    k = np.arange(1, 16)
    hum = _harmonics(cyc, 4 * k, _db(-18 * np.log10(k)), rng)  # motor runs at 4x stroke rate
    rumble = _shaped_noise(rng, d.n, d.sr, _brown)
    return _unit(impacts) + _db(-10.0) * _unit(hum) + _db(-16.0) * rumble, cyc


def _slider(d: Drive, rng, srng):
    """Slider/conveyor: back-and-forth travel, friction noise and motor whine with the velocity,
    end-stop clicks at reversals."""
    lo = srng.uniform(700.0, 1400.0)
    whine_per_cycle = srng.uniform(500.0, 900.0)  # motor Hz per travel cycle per second
    fc = _modes(srng, 2, 1000.0, 4000.0)[0]
    cyc = _cycles(d.rate, d.n, d.sr, rng, wander=0.01)
    vel = np.abs(np.cos(_TWO_PI * cyc))
    friction = _shaped_noise(rng, d.n, d.sr, _band(lo * d.shift, 3.5 * lo * d.shift)) * vel**1.5
    wcyc = np.cumsum(whine_per_cycle * d.rate * (0.15 + vel)) / d.sr
    whine = _harmonics(wcyc, [1, 2, 3, 4], [1.0, 0.5, 0.3, 0.15], rng) * np.sqrt(vel)
    clicks = _excite(
        d.n,
        np.concatenate([_events(cyc, 0.25), _events(cyc, 0.75)]),
        0.5 + 0.5 * d.load,
        _ring(d.sr, fc * d.shift, [0.01, 0.006], [1.0, 0.7]),
    )
    hum = _harmonics(_cycles(50.0, d.n, d.sr, rng, 0.0), [1, 2, 3], [1.0, 0.5, 0.25], rng)
    sound = (
        _db(-4.0 + 8.0 * d.load) * _unit(friction)
        + _db(-6.0) * _unit(whine)
        + _db(-10.0) * _unit(clicks)
        + _db(-24.0) * _unit(hum)
    )
    return sound, cyc


def _valve(d: Drive, rng, srng):
    """Solenoid valve: open/close clicks and flow hiss while open."""
    f_open, f_close = _modes(srng, 3, 2000.0, 6000.0)[0], _modes(srng, 2, 900.0, 3000.0)[0]
    hiss_lo = srng.uniform(1800.0, 3000.0)
    cyc = _cycles(d.rate, d.n, d.sr, rng, wander=0.01)
    duty = 0.3 + 0.3 * min(d.load, 1.0)
    gate = (np.mod(cyc, 1.0) < duty).astype(float)
    ramp = np.hanning(int(0.02 * d.sr))
    gate = np.convolve(gate, ramp / ramp.sum(), mode="same")
    hiss = _shaped_noise(rng, d.n, d.sr, _band(hiss_lo * d.shift, 7000.0)) * gate
    opens = _excite(
        d.n, _events(cyc), 1.0, _ring(d.sr, f_open * d.shift, [0.006, 0.004, 0.003], [1, 0.8, 0.5])
    )
    closes = _excite(
        d.n, _events(cyc, duty), 0.8, _ring(d.sr, f_close * d.shift, [0.01, 0.008], [1, 0.6])
    )
    hum = _harmonics(
        _cycles(50.0, d.n, d.sr, rng, 0.0), np.arange(1, 7), 1.0 / np.arange(1, 7), rng
    )
    sound = (
        _unit(opens + closes) + _db(-10.0 + 8.0 * d.load) * _unit(hiss) + _db(-20.0) * _unit(hum)
    )
    return sound, cyc


def _gearbox(d: Drive, rng, srng):
    """Gearbox: mesh frequency (teeth x shaft) and harmonics with sidebands at the shaft rate."""
    teeth = int(srng.integers(17, 32))
    modes = _modes(srng, 3, 300.0, 3000.0)
    cyc = _cycles(d.rate, d.n, d.sr, rng)
    m = np.arange(1, 5)
    amps = np.array([1.0, 0.4 + 0.5 * d.load, 0.3, 0.15]) * _db(
        _env_db(m * teeth * d.rate, modes, d.shift)
    )
    mesh = _harmonics(cyc, teeth * m, amps, rng)
    mesh *= 1.0 + (0.05 + 0.12 * d.load) * np.cos(_TWO_PI * cyc + rng.uniform(0, _TWO_PI))
    shaft = _harmonics(cyc, [1, 2, 3], [1.0, 0.5, 0.3], rng)
    noise = _shaped_noise(rng, d.n, d.sr, lambda f: _db(_env_db(f, modes, d.shift)) * _pink(f))
    return _unit(mesh) + _db(-16.0) * _unit(shaft) + _db(-16.0) * noise, cyc


ARCHETYPES: dict[str, ArchetypeFn] = {
    "rotating": _rotating,
    "fan": _fan,
    "reciprocating": _reciprocating,
    "slider": _slider,
    "valve": _valve,
    "gearbox": _gearbox,
}
# Speed (cycles per minute) of machines without a speed attribute.
DEFAULT_SPEED = {
    "rotating": 1500.0,
    "fan": 1200.0,
    "reciprocating": 450.0,
    "slider": 40.0,
    "valve": 70.0,
    "gearbox": 900.0,
}
