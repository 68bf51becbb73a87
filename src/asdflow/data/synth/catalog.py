"""Catalog: machine types, their attributes and clip counts.

AttributeSpec, MachineType (with the checks on a definition), Counts, the attribute roles, the
default catalog MACHINE_TYPES with its DEFAULT_SETS, get_machine_type and machine_type_from_dict
(a machine type defined in configuration).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from asdflow.data.synth.anomalies import ANOMALIES, DEFAULT_ANOMALIES
from asdflow.data.synth.archetypes import ARCHETYPES
from asdflow.data.synth.scene import BACKGROUND_KINDS

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
