"""Self-describing checkpoints: the model's architecture and the resolved stage settings travel
with the weights, so any later stage rebuilds the encoder from the file alone.

Files hold tensors and plain Python values only, so they load with `torch.load(weights_only=True)`
(no pickled code is ever executed), and are written atomically (temporary name, then rename).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from asdflow.models import EATConfig, EATEncoder

FORMAT = "asdflow-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what is wrong."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` (see `make_state`) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    os.replace(tmp, path)


def make_state(
    model_name: str,
    config: EATConfig,
    encoder: dict,
    settings: dict,
    normalization: dict | None = None,
    **extra,
) -> dict:
    """The common part of every checkpoint: architecture, weights, settings, normalisation.

    `extra` carries stage-specific entries (teacher, decoder, optimizer, step, rng, head, ...).
    """
    return {
        "model": {"name": model_name, "config": config.to_dict()},
        "encoder": encoder,
        "settings": settings,
        "normalization": normalization,
        **extra,
    }


def load_checkpoint(path: str | Path) -> dict:
    """Read an asdflow checkpoint with weights-only unpickling; clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, not a torch file, disallowed pickled objects
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not an asdflow checkpoint (official EAT weights need `asdflow import-eat`)"
        )
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {state.get('version')}, expected {VERSION}"
        )
    for key in ("model", "encoder", "settings"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint lacks its {key!r} entry")
    return state


def config_of(state: dict, path: str | Path = "checkpoint") -> EATConfig:
    try:
        return EATConfig(**state["model"]["config"])
    except (TypeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: bad model config in checkpoint ({err})") from err


def load_encoder_weights(encoder: EATEncoder, weights: dict, path: str | Path) -> None:
    """Load a state dict, listing missing/unexpected keys and shape mismatches on failure."""
    own = encoder.state_dict()
    # the stored position table is optional: imported checkpoints carry official EAT's
    missing = sorted(set(own) - set(weights) - {"position_table"})
    unexpected = sorted(set(weights) - set(own) - {"position_table"})
    wrong = sorted(
        f"{k}: {tuple(weights[k].shape)} vs expected {tuple(own[k].shape)}"
        for k in set(own) & set(weights)
        if tuple(weights[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: encoder weights do not fit the model: "
            f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}, "
            f"wrong shapes {wrong[:8]}"
        )
    encoder.load_state_dict(weights)


def encoder_from_checkpoint(path: str | Path, **overrides) -> tuple[EATEncoder, dict]:
    """Rebuild the encoder a checkpoint describes (overrides: e.g. drop_path); load its weights."""
    state = load_checkpoint(path)
    cfg = config_of(state, path)
    if overrides:
        cfg = EATConfig(**{**cfg.to_dict(), **overrides})
    encoder = EATEncoder(cfg)
    load_encoder_weights(encoder, state["encoder"], path)
    return encoder, state
