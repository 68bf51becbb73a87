"""One clip: a machine type's attributes turned into physical conditions, rendered.

render_clip drives the archetype, applies the anomaly, places the microphone, mixes in the
background and sets the level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asdflow.data.synth.anomalies import ANOMALIES, PARAMETRIC_ANOMALIES
from asdflow.data.synth.archetypes import ARCHETYPES, DEFAULT_SPEED, Drive
from asdflow.data.synth.catalog import MachineType, attribute_role
from asdflow.data.synth.scene import _background, _level, _microphone
from asdflow.data.synth.signals import _db, _rms, _unit, stable_hash


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
