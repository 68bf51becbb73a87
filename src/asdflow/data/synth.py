"""Synthetic machine-sound factory: DCASE-layout data sets rendered from physical archetypes.

Writes exactly the DCASE Task 2 layout and file names (shared/reference/dcase.md), with domain
shift, hidden attributes (true values kept in a separate ground-truth file), several anomaly
kinds, an "earlier years" set and a non-machine general-audio corpus. It is the embedded
default data set.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import itertools
import json
import math
import os
import shutil
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm import tqdm

SECTION = "section_00"
EVAL_SET = "eval"  # the set whose test clips are distributed as section_00_NNNN.wav
_TWO_PI = 2.0 * np.pi


# ----------------------------------------------------------------------------------------------
# Catalog: machine types, attributes, counts
# ----------------------------------------------------------------------------------------------

# What an attribute key means physically; a key outside this table needs an explicit role.
ROLE_OF_KEY = {
    "spd": "speed",  # cycles per minute of the main motion (rpm, strokes/min, switchings/min)
    "speed": "speed",
    "rpm": "speed",
    "load": "load",  # percent: harmonic balance, modulation depth, flow, impact strength
    "mic": "mic",  # microphone position 1, 2, 3...: spectral tilt, reverberation, lower SNR
    "bkg": "background",  # background-noise kind, one of BACKGROUND_KINDS
    "noise": "background",
    "model": "model",  # product variant: shifts the body resonances a few percent
}
ROLES = ("speed", "load", "mic", "background", "model")


@dataclass(frozen=True)
class AttributeSpec:
    """Discrete values of one attribute in each domain (strings without "_")."""

    source_values: tuple[str, ...]
    target_values: tuple[str, ...]
    role: str = ""  # "" = inferred from the key via ROLE_OF_KEY


@dataclass(frozen=True)
class MachineType:
    """One machine type: an archetype renderer plus its attributes (key order = file-name order)."""

    name: str
    archetype: str
    attributes: dict[str, AttributeSpec]
    attributes_hidden: bool = False
    anomalies: tuple[str, ...] = ()  # () = the archetype's default anomaly kinds
    snr_db: tuple[float, float] = (8.0, 16.0)  # machine-to-background ratio range (nuisance)

    def __post_init__(self):
        if not self.name or not self.name.isalnum():
            raise ValueError(f"machine type name must be alphanumeric, got {self.name!r}")
        if self.archetype not in ARCHETYPES:
            raise ValueError(
                f"Unsupported archetype {self.archetype!r} for {self.name}; "
                f"known: {sorted(ARCHETYPES)}"
            )
        if not 1 <= len(self.attributes) <= 3:
            raise ValueError(f"{self.name}: needs one to three attributes")
        shifted = False
        for key, spec in self.attributes.items():
            role = attribute_role(key, spec)
            if "_" in key or not key:
                raise ValueError(f"{self.name}: attribute key {key!r} may not contain '_'")
            values = spec.source_values + spec.target_values
            if not spec.source_values or not spec.target_values:
                raise ValueError(f"{self.name}.{key}: needs source and target values")
            for value in values:
                _check_value(self.name, key, role, value)
            shifted |= not set(spec.source_values) & set(spec.target_values)
        if not shifted:
            raise ValueError(
                f"{self.name}: at least one attribute needs target values unseen in the source"
            )
        unknown = set(self.anomalies) - set(ANOMALIES)
        if unknown:
            raise ValueError(f"{self.name}: unknown anomaly kinds {sorted(unknown)}")

    @property
    def anomaly_kinds(self) -> tuple[str, ...]:
        return self.anomalies or DEFAULT_ANOMALIES[self.archetype]

    def combos(self, domain: str) -> list[dict[str, str]]:
        """Every attribute combination of one domain, in a fixed order."""
        keys = list(self.attributes)
        lists = [
            getattr(self.attributes[k], "source_values" if domain == "source" else "target_values")
            for k in keys
        ]
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*lists)]


@dataclass(frozen=True)
class Counts:
    """Clips per machine type. DCASE: Counts(990, 10, 50, 100); the demo default is smaller."""

    train_source: int = 120
    train_target: int = 8
    # test clips in each of source-normal, source-anomaly, target-normal, target-anomaly
    test_per_quadrant: int = 20
    supplemental: int = 10  # half clean machine sound, half background noise only


DCASE_COUNTS = Counts(990, 10, 50, 100)


def attribute_role(key: str, spec: AttributeSpec) -> str:
    role = spec.role or ROLE_OF_KEY.get(key, "")
    if role not in ROLES:
        raise ValueError(
            f"attribute {key!r}: unknown role {role!r}; use a key from {sorted(ROLE_OF_KEY)} "
            f"or a role from {list(ROLES)}"
        )
    return role


def _check_value(name: str, key: str, role: str, value: str) -> None:
    if not isinstance(value, str) or not value or "_" in value:
        raise ValueError(f"{name}.{key}: value {value!r} must be a non-empty string without '_'")
    if role in ("speed", "load", "mic"):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{name}.{key}: {role} value {value!r} must be numeric") from None
        if number <= 0 and role != "load":
            raise ValueError(f"{name}.{key}: {role} value {value!r} must be positive")
    if role == "background" and value not in BACKGROUND_KINDS:
        raise ValueError(f"{name}.{key}: background {value!r} not in {sorted(BACKGROUND_KINDS)}")


def _attrs(**specs: tuple[Sequence, Sequence]) -> dict[str, AttributeSpec]:
    return {k: AttributeSpec(tuple(map(str, s)), tuple(map(str, t))) for k, (s, t) in specs.items()}


def _catalog(*types: MachineType) -> dict[str, MachineType]:
    return {m.name: m for m in types}


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


# ----------------------------------------------------------------------------------------------
# Archetypes: each renders the machine's own sound (no background) from a Drive
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Anomalies: parametric ones change the Drive, additive ones add a fault sound
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Backgrounds and the microphone
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# The default catalog
# ----------------------------------------------------------------------------------------------

# Target domains use speeds beyond the source range (like DCASE's unseen operating conditions);
# neighbouring speeds are ~7-12 % apart, about the size of the "detune" anomaly.
MACHINE_TYPES: dict[str, MachineType] = _catalog(
    # dev
    MachineType(
        "motor", "rotating", _attrs(spd=([1400, 1550, 1700], [1900]), mic=([1, 2], [1, 2]))
    ),
    MachineType("blower", "fan", _attrs(spd=([1000, 1100], [1250]), load=([40, 70], [40, 70]))),
    MachineType(
        "compressor",
        "reciprocating",
        _attrs(spd=([420, 480], [560]), load=([50, 80], [50, 80]), mic=([1], [2])),
    ),
    MachineType(
        "conveyor", "slider", _attrs(spd=([36, 42], [50]), load=([30, 60], [30, 60])), True
    ),
    MachineType("solenoid", "valve", _attrs(spd=([60, 75], [95]), load=([40, 70], [40, 70])), True),
    # eval
    MachineType("spindle", "rotating", _attrs(spd=([2400, 2700], [3050]), mic=([1, 2], [3]))),
    MachineType(
        "ventilator", "fan", _attrs(spd=([1300, 1450], [1650]), bkg=(["pink", "hvac"], ["babble"]))
    ),
    MachineType(
        "press", "reciprocating", _attrs(spd=([240, 270], [320]), load=([40, 70], [40, 70]))
    ),
    MachineType(
        "transmission",
        "gearbox",
        _attrs(spd=([900, 1000], [1150]), load=([30, 60], [30, 60])),
        True,
    ),
    MachineType("shuttle", "slider", _attrs(spd=([30, 34], [40]), mic=([1, 2], [1, 2])), True),
    # earlier years (all attributes visible)
    MachineType(
        "turbine", "rotating", _attrs(spd=([2000, 2200], [2500]), load=([40, 80], [40, 80]))
    ),
    MachineType("winch", "gearbox", _attrs(spd=([600, 680], [780]), mic=([1, 2], [3]))),
    MachineType(
        "dispenser", "valve", _attrs(spd=([40, 50], [65]), bkg=(["pink", "brown"], ["factory"]))
    ),
)

DEFAULT_SETS: dict[str, list[str]] = {
    "dev": ["motor", "blower", "compressor", "conveyor", "solenoid"],
    "eval": ["spindle", "ventilator", "press", "transmission", "shuttle"],
    "earlier": ["turbine", "winch", "dispenser"],
}


def get_machine_type(name: str) -> MachineType:
    """The catalog entry for `name`; ValueError listing the known names otherwise."""
    try:
        return MACHINE_TYPES[name]
    except KeyError:
        raise ValueError(
            f"Unknown machine type {name!r}; known: {', '.join(sorted(MACHINE_TYPES))}"
        ) from None


_DICT_KEYS = {"archetype", "attributes", "attributes_hidden", "anomalies", "snr_db"}
_ATTRIBUTE_KEYS = {"source", "target", "role"}


def machine_type_from_dict(name: str, d: dict) -> MachineType:
    """A machine type from configuration: {archetype, attributes: {key: {source, target}}, ...}."""
    unknown = set(d) - _DICT_KEYS
    if unknown:
        raise ValueError(f"{name}: unknown keys {sorted(unknown)}; allowed: {sorted(_DICT_KEYS)}")
    if "archetype" not in d or "attributes" not in d:
        raise ValueError(f"{name}: needs 'archetype' and 'attributes'")
    attributes = {}
    for key, spec in d["attributes"].items():
        bad = set(spec) - _ATTRIBUTE_KEYS
        if bad or "source" not in spec or "target" not in spec:
            raise ValueError(f"{name}.{key}: expects keys source, target (and optional role)")
        attributes[key] = AttributeSpec(
            tuple(_value_str(v) for v in spec["source"]),
            tuple(_value_str(v) for v in spec["target"]),
            spec.get("role", ""),
        )
    return MachineType(
        name,
        d["archetype"],
        attributes,
        bool(d.get("attributes_hidden", False)),
        tuple(d.get("anomalies", ())),
        tuple(d.get("snr_db", (8.0, 16.0))),
    )


def _value_str(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


# ----------------------------------------------------------------------------------------------
# One clip
# ----------------------------------------------------------------------------------------------


@dataclass
class _Condition:
    speed: float
    load: float = 0.5
    mic: float = 1.0
    background: str = "pink"
    shift: float = 1.0
    other_speeds: tuple[float, ...] = ()  # other speed values of the machine type / this one


def _condition(mt: MachineType, attributes: dict[str, str]) -> _Condition:
    c = _Condition(DEFAULT_SPEED[mt.archetype])
    for key, value in attributes.items():
        role = attribute_role(key, mt.attributes[key])
        if role == "speed":
            c.speed = float(value)
            spec = mt.attributes[key]
            others = sorted({float(v) for v in spec.source_values + spec.target_values} - {c.speed})
            c.other_speeds = tuple(v / c.speed for v in others)
        elif role == "load":
            c.load = float(value) / 100.0
        elif role == "mic":
            c.mic = float(value)
        elif role == "background":
            c.background = value
        else:  # model: a stable few-percent shift of the body resonances
            c.shift = 0.9 + 0.2 * (stable_hash("model", mt.name, value) % 1000) / 1000.0
    return c


def render_clip(
    machine_type: MachineType,
    attributes: dict[str, str],
    rng: np.random.Generator,
    arng: np.random.Generator | None = None,
    anomaly: str | None = None,
    severity: float = 1.0,
    clip_seconds: float = 2.0,
    sample_rate: int = 16000,
    content: str = "full",
) -> np.ndarray:
    """One clip (n,) float in [-1, 1]. content: "full", "clean" (no background) or "noise" (only
    background). Anomalies draw from their own `arng`, so severity 0 gives the normal clip."""
    mt, sr = machine_type, sample_rate
    n = int(round(clip_seconds * sr))
    cond = _condition(mt, attributes)
    srng = np.random.default_rng(stable_hash("structure", mt.archetype, mt.name))
    drive = Drive(
        sr=sr,
        n=n,
        rate=cond.speed / 60.0 * (1.0 + 0.004 * rng.standard_normal()),  # rate jitter
        load=float(np.clip(cond.load + 0.03 * rng.standard_normal(), 0.0, 1.0)),
        shift=cond.shift,
        other_speeds=cond.other_speeds,
    )
    if anomaly is not None and anomaly not in ANOMALIES:
        raise ValueError(f"Unsupported anomaly {anomaly!r}; known: {sorted(ANOMALIES)}")
    if anomaly in PARAMETRIC_ANOMALIES:
        ANOMALIES[anomaly](drive, arng, severity)
    sound, cyc = ARCHETYPES[mt.archetype](drive, rng, srng)
    sound = _unit(sound)
    if anomaly is not None and anomaly not in PARAMETRIC_ANOMALIES:
        sound = ANOMALIES[anomaly](sound, cyc, drive, arng, severity)
    sound = _microphone(sound, cond.mic, sr, rng)
    background = _background(cond.background, n, sr, rng)
    snr = rng.uniform(*mt.snr_db) - 2.0 * (cond.mic - 1.0)
    if content == "full":
        x = sound / _rms(sound) + _db(-snr) * background
    elif content == "clean":
        x = sound
    elif content == "noise":
        x = background
    else:
        raise ValueError(f"Unsupported content {content!r}")
    return _level(x, rng)


def _level(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random level (-27 +- 4 dBFS), independent of attributes, so loudness carries no label."""
    x = x - x.mean()
    x = x * _db(rng.uniform(-31.0, -23.0)) / _rms(x)
    # soft knee above 0.5 full scale: rare impulsive peaks are limited without rescaling the clip
    mag = np.abs(x)
    knee = 0.5 + 0.49 * np.tanh((mag - 0.5) / 0.49)
    return np.where(mag > 0.5, np.sign(x) * knee, x)


# ----------------------------------------------------------------------------------------------
# Writing a machine type
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """One wav file to render: its identity (which seeds its rng) and its output path."""

    machine_type: MachineType
    set_name: str
    split: str  # train | test | supplemental
    domain: str
    label: str  # normal | anomaly | clean | noise
    index: int
    attributes: dict = field(default_factory=dict)
    anomaly: str | None = None
    path: str = ""
    seed: int = 0
    severity: float = 1.0
    clip_seconds: float = 2.0
    sample_rate: int = 16000


def _run_job(job: _Job) -> None:
    key = (job.set_name, job.machine_type.name, job.split, job.domain, job.label, job.index)
    content = {"clean": "clean", "noise": "noise"}.get(job.label, "full")
    x = render_clip(
        job.machine_type,
        job.attributes,
        clip_rng(job.seed, *key),
        clip_rng(job.seed, *key, "anomaly"),
        job.anomaly,
        job.severity,
        job.clip_seconds,
        job.sample_rate,
        content,
    )
    sf.write(job.path, x.astype(np.float32), job.sample_rate, subtype="PCM_16")


def _run_all(jobs: list, fn: Callable, workers: int, desc: str) -> None:
    bar = tqdm(total=len(jobs), desc=desc, unit="clip", mininterval=1.0)
    if workers <= 1:
        for job in jobs:
            fn(job)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(fn, jobs, chunksize=8):
                bar.update()
    bar.close()


def attribute_suffix(mt: MachineType, attributes: dict[str, str]) -> str:
    """File-name attribute part: "spd_1500_mic_2", or "noAttribute" for hidden machines."""
    if mt.attributes_hidden:
        return "noAttribute"
    return "_".join(f"{k}_{attributes[k]}" for k in mt.attributes)


def clip_name(mt: MachineType, domain: str, split: str, label: str, index: int, attrs) -> str:
    return f"{SECTION}_{domain}_{split}_{label}_{index:04d}_{attribute_suffix(mt, attrs)}.wav"


def plan_clips(mt: MachineType, set_name: str, counts: Counts, seed: int) -> list[dict]:
    """Every clip of a machine type: split, domain, label, index, attributes, anomaly, name."""
    kinds = mt.anomaly_kinds

    def row(split, domain, label, index, attributes, anomaly=None):
        return dict(split=split, domain=domain, label=label, index=index,
                    attributes=attributes, anomaly=anomaly)  # fmt: skip

    rows = []
    for domain, n_train in (("source", counts.train_source), ("target", counts.train_target)):
        combos = mt.combos(domain)
        rows += [row("train", domain, "normal", i, combos[i % len(combos)]) for i in range(n_train)]
    for domain in ("source", "target"):
        combos = mt.combos(domain)
        for i in range(counts.test_per_quadrant):
            rows.append(row("test", domain, "normal", i, combos[i % len(combos)]))
        for i in range(counts.test_per_quadrant):
            # every kind in turn; the combo shifts by one each pass over the kinds (no confounding)
            combo = combos[(i + i // len(kinds)) % len(combos)]
            rows.append(row("test", domain, "anomaly", i, combo, kinds[i % len(kinds)]))
    combos = mt.combos("source")
    n_clean = (counts.supplemental + 1) // 2  # clean machine sound first, then noise only
    for i in range(counts.supplemental):
        label, j = ("clean", i) if i < n_clean else ("noise", i - n_clean)
        rows.append(row("supplemental", "source", label, j, combos[j % len(combos)]))
    for r in rows:
        r["name"] = clip_name(mt, r["domain"], r["split"], r["label"], r["index"], r["attributes"])
    if set_name == EVAL_SET:  # distributed as section_00_NNNN.wav in a shuffled order
        tests = [r for r in rows if r["split"] == "test"]
        order = clip_rng(seed, "eval-order", set_name, mt.name).permutation(len(tests))
        for number, t in zip(order, tests, strict=True):
            t["relabeled"] = t["name"]
            t["name"] = f"{SECTION}_{int(number):04d}.wav"
    return rows


def generate_machine(
    root: Path,
    set_name: str,
    machine_type: MachineType | str,
    counts: Counts,
    seed: int,
    clip_seconds: float,
    sample_rate: int = 16000,
    severity: float = 1.0,
    workers: int = 1,
) -> Path:
    """Write <root>/<set>/<M>/{train,test,supplemental}/*.wav and attributes_00.csv, plus ground
    truth under <root>/ground_truth/<set>/. Built in <M>.tmp and renamed at the end, so a folder
    named <M> is always complete."""
    mt = get_machine_type(machine_type) if isinstance(machine_type, str) else machine_type
    root = Path(root)
    final = root / set_name / mt.name
    tmp = root / set_name / f"{mt.name}.tmp"
    for stale in (final, tmp):
        if stale.exists():
            shutil.rmtree(stale)
    for split in ("train", "test", "supplemental"):
        (tmp / split).mkdir(parents=True)
    rows = plan_clips(mt, set_name, counts, seed)
    jobs = [
        _Job(
            mt,
            set_name,
            r["split"],
            r["domain"],
            r["label"],
            r["index"],
            r["attributes"],
            r["anomaly"],
            str(tmp / r["split"] / r["name"]),
            seed,
            severity,
            clip_seconds,
            sample_rate,
        )
        for r in rows
    ]
    _run_all(jobs, _run_job, workers, f"{set_name}/{mt.name}")

    labelled = [
        r for r in rows if r["split"] == "train" or (r["split"] == "test" and "relabeled" not in r)
    ]
    _write_attributes_csv(tmp / "attributes_00.csv", mt, labelled)
    truth_dir = root / "ground_truth" / set_name
    truth = {}
    if set_name == EVAL_SET:
        tests = sorted((r for r in rows if "relabeled" in r), key=lambda r: r["name"])
        lines = [mt.name] + [f"{r['name']},{r['relabeled']}" for r in tests]
        truth[f"{mt.name}_eval_data_list.csv"] = "\n".join(lines) + "\n"
    if mt.attributes_hidden:
        truth[f"{mt.name}_hidden_attributes.csv"] = _hidden_csv(mt, rows)
    if truth:
        truth_dir.mkdir(parents=True, exist_ok=True)
    for name, text in truth.items():  # atomic per file; the machine folder appears last
        part = truth_dir / f"{name}.tmp"
        part.write_text(text)
        os.replace(part, truth_dir / name)
    os.replace(tmp, final)
    return final


def _write_attributes_csv(path: Path, mt: MachineType, rows: list[dict]) -> None:
    """DCASE attributes_00.csv: file_name,d1p,d1v[,d2p,d2v...]; hidden machines: empty pairs."""
    n_attr = 1 if mt.attributes_hidden else len(mt.attributes)
    header = ["file_name"] + [f"d{i}{c}" for i in range(1, n_attr + 1) for c in "pv"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            pairs = (
                ["", ""]
                if mt.attributes_hidden
                else [v for k in mt.attributes for v in (k, r["attributes"][k])]
            )
            w.writerow([f"{mt.name}/{r['split']}/{r['name']}", *pairs])


def _hidden_csv(mt: MachineType, rows: list[dict]) -> str:
    """True attributes of a hidden machine's train and test clips, by the name as distributed."""
    lines = [["machine_type", "file_name", "attributes"]]
    for r in rows:
        if r["split"] in ("train", "test"):
            lines.append(
                [
                    mt.name,
                    f"{mt.name}/{r['split']}/{r['name']}",
                    json.dumps(r["attributes"], sort_keys=True),
                ]
            )
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(lines)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# General-audio corpus (not machine sound)
# ----------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class _GeneralJob:
    kind: str
    index: int
    path: str
    seed: int
    clip_seconds: float
    sample_rate: int


def _run_general_job(job: _GeneralJob) -> None:
    rng = clip_rng(job.seed, "general", job.kind, job.index)
    n = int(round(job.clip_seconds * job.sample_rate))
    x = GENERAL_KINDS[job.kind](n, job.sample_rate, rng)
    x = x + _db(-40.0) * _shaped_noise(rng, n, job.sample_rate, _pink)  # never digital silence
    sf.write(job.path, _level(x, rng).astype(np.float32), job.sample_rate, subtype="PCM_16")


def generate_general(
    root: Path,
    n_clips: int,
    seed: int,
    clip_seconds: float,
    sample_rate: int = 16000,
    workers: int = 1,
) -> Path:
    """Write <root>/general/<kind>_<NNNN>.wav: n_clips non-machine clips, kinds in rotation."""
    root = Path(root)
    final, tmp = root / "general", root / "general.tmp"
    for stale in (final, tmp):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir(parents=True)
    kinds = list(GENERAL_KINDS)
    jobs = []
    for i in range(n_clips):
        kind, j = kinds[i % len(kinds)], i // len(kinds)
        jobs.append(
            _GeneralJob(kind, j, str(tmp / f"{kind}_{j:04d}.wav"), seed, clip_seconds, sample_rate)
        )
    _run_all(jobs, _run_general_job, workers, "general")
    os.replace(tmp, final)
    return final


# ----------------------------------------------------------------------------------------------
# CLI: asdflow synth
# ----------------------------------------------------------------------------------------------


def _parse_machine_json(text: str) -> dict:
    """--machine-json: JSON, or a Python dict literal (how Snakemake prints a dict param)."""
    if not text or not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return ast.literal_eval(text)


def main_synth(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="asdflow synth", description=__doc__)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--set", dest="set_name", default="dev")
    p.add_argument("--machine-type", help="catalog name (or the name of --machine-json's type)")
    p.add_argument("--machine-json", default="", help="custom machine type as a JSON object")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clip-seconds", type=float, default=2.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--train-source", type=int, default=Counts.train_source)
    p.add_argument("--train-target", type=int, default=Counts.train_target)
    p.add_argument("--test-per-quadrant", type=int, default=Counts.test_per_quadrant)
    p.add_argument("--supplemental", type=int, default=Counts.supplemental)
    p.add_argument("--severity", type=float, default=1.0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--general", type=int, metavar="N", help="write N general-audio clips instead")
    a = p.parse_args(argv)
    if a.general is not None:
        out = generate_general(a.root, a.general, a.seed, a.clip_seconds, a.sample_rate, a.workers)
    else:
        if not a.machine_type:
            p.error("--machine-type is required unless --general is given")
        custom = _parse_machine_json(a.machine_json)
        mt = machine_type_from_dict(a.machine_type, custom) if custom else a.machine_type
        counts = Counts(a.train_source, a.train_target, a.test_per_quadrant, a.supplemental)
        out = generate_machine(
            a.root,
            a.set_name,
            mt,
            counts,
            a.seed,
            a.clip_seconds,
            a.sample_rate,
            a.severity,
            a.workers,
        )
    print(out)
    return 0
