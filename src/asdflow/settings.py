"""How a stage receives its settings: one JSON object, parsed into the stage's dataclass.

Every stage command that has settings in the workflow configuration takes them as
`--settings JSON` (the keys of its section of config/config.yaml, or a path to a JSON or YAML
file holding them). `parse` turns that into the stage's settings dataclass; an unknown key, a
value of the wrong type or a missing required key is an error that names it. Defaults live in
config/schema.yaml, which fills them into the configuration; the dataclasses carry the same
defaults for use from Python (tests/test_settings.py holds the two together).

A dataclass field whose metadata has `flatten=True` (a training stage's `loop`) takes its own
keys from the same flat object, so a config section reads `steps: 100` rather than
`loop: {steps: 100}`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

FLATTEN = {"flatten": True}


def to_json(values: dict) -> str:
    """The canonical JSON text of a settings object (sorted keys), as rules pass it."""
    return json.dumps(values, sort_keys=True)


def parse(cls, text: str, where: str = "--settings"):
    """`cls` from JSON text, or from a JSON/YAML file when `text` names one."""
    text = text.strip()
    if text.startswith("{"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not a JSON object ({err})") from None
    else:
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: {text!r} is neither a JSON object nor a file")
        import yaml

        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: invalid YAML/JSON ({err})") from None
        where = str(path)
    return from_mapping(cls, values, where)


def field_names(cls) -> set[str]:
    """The keys `cls` accepts: its fields, with flattened fields replaced by theirs."""
    names = set()
    for f in dataclasses.fields(cls):
        names |= field_names(_hints(cls)[f.name]) if f.metadata.get("flatten") else {f.name}
    return names


def defaults(cls) -> dict[str, Any]:
    """The default of every key `cls` accepts that has one (flattened fields included)."""
    found = {}
    for f in dataclasses.fields(cls):
        hint = _hints(cls)[f.name]
        if f.metadata.get("flatten"):
            found.update(defaults(hint))
        elif f.default is not dataclasses.MISSING:
            found[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            found[f.name] = f.default_factory()
    return found


def from_mapping(cls, values: Any, where: str = "settings"):
    """`cls` from a mapping of its keys; unknown keys, wrong types and missing keys are errors."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected an object of {cls.__name__} settings, got {values!r}")
    unknown = set(values) - field_names(cls)
    if unknown:
        raise ValueError(
            f"{where}: unknown {cls.__name__} setting(s) {sorted(unknown)}; "
            f"known: {', '.join(sorted(field_names(cls)))}"
        )
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("flatten"):
            own = {k: v for k, v in values.items() if k in field_names(hints[f.name])}
            if own or f.default_factory is dataclasses.MISSING:
                kwargs[f.name] = from_mapping(hints[f.name], own, where)
        elif f.name in values:
            kwargs[f.name] = _convert(hints[f.name], values[f.name], f"{where}: {f.name}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{where}: {cls.__name__} needs setting(s) {missing}")
    return cls(**kwargs)


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _convert(hint, value, where: str):
    """`value` checked against the annotation `hint` (lists become tuples where asked)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _convert(option, value, where)
            except ValueError:
                continue
        raise ValueError(f"{where}: {value!r} is not a {_name(hint)}")
    if hint is type(None):
        if value is None:
            return None
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            args = typing.get_args(hint)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(args[0], v, where) for v in value)
            if len(args) == len(value):
                return tuple(_convert(a, v, where) for a, v in zip(args, value, strict=True))
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where)
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Any:
        return value
    raise ValueError(f"{where}: {value!r} is not a {_name(hint)}")


def _name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint)
