"""Convert official EAT weights (fairseq `.pt` or Hugging Face) into an asdflow checkpoint.

`asdflow import-eat` reads the released files without fairseq and without ever running pickled
code, maps the official key names onto `asdflow.models.EATEncoder` (`map_official` below),
infers the architecture from the tensor shapes, and writes a self-describing checkpoint that
every later stage loads with `checkpoint.encoder_from_checkpoint`.

Which weights become the encoder: a pre-trained fairseq checkpoint holds the student (`model`)
and its EMA teacher (`_ema`). We take the student by default, as official EAT does in both of
its paths: its feature extractor runs the model's own blocks, and its fine-tuning loads the model
state and drops the EMA copy, so the paper's general encoder is the student. `--weights
teacher` takes the EMA copy instead; the teacher is kept under `teacher` either way, so
continued pre-training resumes with it.

The stored position table (official EAT computes it in float32 and saves it with the weights)
goes with each copy into its encoder state as `position_table`, and the encoder uses it, so an
imported encoder adds exactly the positions the official model adds.
"""

from __future__ import annotations

import json
import pickle
import re
import types
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from asdflow import checkpoint
from asdflow.checkpoint import CheckpointError
from asdflow.features import AUDIOSET_MEAN, AUDIOSET_STD
from asdflow.models import MODELS, Decoder2d, EATConfig, EATEncoder, sincos_2d

# AudioSet statistics the released models were trained with.
FIXED_NORMALIZATION = {"mean": AUDIOSET_MEAN, "std": AUDIOSET_STD, "source": "fixed"}

# Heads per width when no config.json says otherwise: the widths of the ViT family EAT follows.
DEFAULT_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16}

POSITIONS = "positions"  # stored fixed sin-cos table: checked against ours, then used
POSITION_TOLERANCE = 1e-4

# Official key (after one leading "model." is removed) -> our key. A trailing dot maps a prefix.
# Our groups: encoder keys as EATEncoder names them, "decoder." for Decoder2d, "head." for the
# fine-tuned classifier, POSITIONS for the stored positional table.
FAIRSEQ_KEYS = {
    "modality_encoders.IMAGE.local_encoder.proj.": "patch_embed.proj.",
    "modality_encoders.IMAGE.extra_tokens": "cls_token",
    "modality_encoders.IMAGE.fixed_positional_encoder.positions": POSITIONS,
    "modality_encoders.IMAGE.context_encoder.norm.": "pre_norm.",
    "modality_encoders.IMAGE.decoder.": "decoder.",
    "blocks.": "blocks.",
    "fc_norm.": "head.fc_norm.",
    "head.": "head.head.",
}
HF_KEYS = {
    "local_encoder.proj.": "patch_embed.proj.",
    "extra_tokens": "cls_token",
    "fixed_positional_encoder.positions": POSITIONS,
    "pre_norm.": "pre_norm.",
    "blocks.": "blocks.",
    "fc_norm.": "head.fc_norm.",
    "head.": "head.head.",
}
LAYOUTS = {"fairseq": FAIRSEQ_KEYS, "huggingface": HF_KEYS}
EMA_KEY = "_ema"


# --- loading pickles without running them --------------------------------------------------------


class InertObject:
    """Stands in for every class or function the restricted unpickler refuses (fairseq and
    omegaconf configs, argparse namespaces, numpy scalars, os.system, ...). It takes any
    arguments and state, keeps them as plain data and does nothing else."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value):
        self.__dict__.setdefault("elements", []).append(value)

    def extend(self, values):
        for value in values:
            self.append(value)

    def __repr__(self) -> str:
        return f"<inert {type(self).__module__}.{type(self).__qualname__}>"


_TORCH_REBUILDERS = {
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
}
_PLAIN_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("torch", "Size"): torch.Size,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only torch's tensor rebuild functions, dtypes and plain
    containers; any other global becomes an `InertObject` subclass of the same name, so pickled
    configs load as inert data and pickled callables (os.system, eval, ...) are never called."""

    _stubs: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in _PLAIN_GLOBALS:
            return _PLAIN_GLOBALS[(module, name)]
        if module == "torch._utils" and name in _TORCH_REBUILDERS:
            return getattr(torch._utils, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        # Storage classes are resolved by torch.load's wrapper before they reach this method.
        key = (module, name)
        if key not in self._stubs:
            self._stubs[key] = type(name, (InertObject,), {"__module__": module})
        return self._stubs[key]


def _restricted_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


# The "pickle module" torch.load uses for the fallback: only Unpickler and load are needed.
restricted_pickle = types.ModuleType("asdflow_restricted_pickle")
restricted_pickle.Unpickler = RestrictedUnpickler
restricted_pickle.load = _restricted_load


def load_untrusted(path: str | Path, allow_objects: bool = True) -> object:
    """torch.load that never executes pickled code.

    Weights-only loading first; when it refuses a global (fairseq's pickled config objects),
    and `allow_objects`, load again with `RestrictedUnpickler`, which turns such objects into
    inert stubs. Unreadable, truncated or foreign files raise `CheckpointError` naming the path.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not allow_objects:
            raise CheckpointError(f"{path}: not a readable weights file ({err})") from err
    except Exception as err:  # truncated zip, not a torch file at all
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from err
    try:
        return torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle
        )
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from err


# --- reading the official files ------------------------------------------------------------------


@dataclass
class OfficialFile:
    """What an official file holds, before any renaming."""

    path: Path
    format: str  # "fairseq" | "huggingface"
    weights: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None = None
    hf_config: dict | None = None


def _tensor_dict(obj: object, path: Path, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: {what} is not a dict of tensors (got {type(obj).__name__})")
    bad = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointError(f"{path}: {what} holds non-tensor entries {bad[:8]}")
    return dict(obj)


def _split_ema(model: Mapping, container: Mapping) -> tuple[dict, dict | None]:
    """Separate the EMA teacher: a nested `_ema` dict, flat `_ema.`-prefixed keys, or a
    top-level `_ema` entry beside `model`."""
    model = dict(model)
    ema = model.pop(EMA_KEY, None)
    flat = {k[len(EMA_KEY) + 1 :]: model.pop(k) for k in list(model) if k.startswith("_ema.")}
    if flat:
        if ema is not None:
            raise CheckpointError("both a nested `_ema` dict and `_ema.` keys: ambiguous teacher")
        ema = flat
    if ema is None and isinstance(container.get(EMA_KEY), Mapping):
        ema = container[EMA_KEY]
    return model, ema


def _read_config_json(folder: Path) -> dict | None:
    file = folder / "config.json"
    if not file.is_file():
        return None
    try:
        config = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{file}: not a readable config.json ({err})") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{file}: config.json is not an object")
    return config


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except Exception as err:  # SafetensorError, truncated header, ...
        raise CheckpointError(f"{file}: not a readable safetensors file ({err})") from err


def read_official(path: str | Path) -> OfficialFile:
    """Read a fairseq `.pt`, a Hugging Face folder, `model.safetensors` or `pytorch_model.bin`."""
    path = Path(path)
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                found = read_official(path / name)
                found.path = path
                return found
        raise CheckpointError(f"{path}: folder has neither model.safetensors nor pytorch_model.bin")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        weights = _tensor_dict(_read_safetensors(path), path, "the file")
        return OfficialFile(path, "huggingface", weights, hf_config=_read_config_json(path.parent))
    # Hugging Face .bin files are plain state dicts: weights-only, no fallback.
    state = load_untrusted(path, allow_objects=path.suffix != ".bin")
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        model, ema = _split_ema(state["model"], state)
        weights = _tensor_dict(model, path, "state['model']")
        ema = _tensor_dict(ema, path, "the EMA teacher (_ema)") if ema is not None else None
        return OfficialFile(path, "fairseq", weights, ema=ema)
    weights = _tensor_dict(state, path, "the file")
    return OfficialFile(path, "huggingface", weights, hf_config=_read_config_json(path.parent))


# --- renaming -----------------------------------------------------------------------------------


@dataclass
class MappedWeights:
    """Official tensors under our names, split by destination."""

    encoder: dict[str, torch.Tensor] = field(default_factory=dict)
    decoder: dict[str, torch.Tensor] = field(default_factory=dict)
    head: dict[str, torch.Tensor] = field(default_factory=dict)
    positions: torch.Tensor | None = None
    unknown: list[str] = field(default_factory=list)  # official keys nothing maps


def detect_layout(keys) -> str:
    """'fairseq' or 'huggingface' from where the patch conv lives."""
    keys = {k.removeprefix("model.") for k in keys}
    if "modality_encoders.IMAGE.local_encoder.proj.weight" in keys:
        return "fairseq"
    if "local_encoder.proj.weight" in keys:
        return "huggingface"
    raise CheckpointError(
        "no EAT patch embedding found (expected a key ending in local_encoder.proj.weight)"
    )


def _rename(key: str, table: dict[str, str]) -> str | None:
    for official, ours in table.items():
        if official.endswith(".") and key.startswith(official):
            return ours + key[len(official) :]
        if key == official:
            return ours
    return None


def map_official(weights: Mapping[str, torch.Tensor], layout: str) -> MappedWeights:
    """Rename official keys (with or without a leading "model.") to ours; nothing is copied."""
    table = LAYOUTS[layout]
    mapped = MappedWeights()
    for key, tensor in weights.items():
        ours = _rename(key.removeprefix("model."), table)
        if ours is None:
            mapped.unknown.append(key)
        elif ours == POSITIONS:
            mapped.positions = tensor
        elif ours.startswith("decoder."):
            mapped.decoder[ours.removeprefix("decoder.")] = tensor
        elif ours.startswith("head."):
            mapped.head[ours.removeprefix("head.")] = tensor
        else:
            mapped.encoder[ours] = tensor
    return mapped


def official_name(ours: str, layout: str, prefix: str = "") -> str:
    """Our encoder key -> the official name (for error messages)."""
    for official, mine in LAYOUTS[layout].items():
        if (
            mine.endswith(".")
            and ours.startswith(mine)
            and not mine.startswith(("decoder", "head"))
        ):
            return prefix + official + ours[len(mine) :]
        if ours == mine:
            return prefix + official
    return ours


# --- architecture -------------------------------------------------------------------------------

_DECODER_FIELDS = ("decoder_depth", "decoder_kernel", "decoder_groups")


def _block_count(keys, pattern: str, what: str) -> int:
    indices = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    if not indices:
        return 0
    if indices != set(range(max(indices) + 1)):
        missing = sorted(set(range(max(indices) + 1)) - indices)
        raise CheckpointError(
            f"{what} blocks are not numbered 0..{max(indices)}: missing {missing}"
        )
    return len(indices)


def infer_config(
    mapped: MappedWeights, hf_config: dict | None = None, num_heads: int | None = None
) -> tuple[str, EATConfig, str]:
    """(registered size name or "eat_custom", architecture, where num_heads came from)."""
    enc = mapped.encoder
    for key in ("patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"):
        if key not in enc:
            raise CheckpointError(f"cannot infer the architecture: {key!r} is missing")
    patch = enc["patch_embed.proj.weight"]  # (D, 1, p, p)
    if patch.ndim != 4 or patch.shape[1] != 1 or patch.shape[2] != patch.shape[3]:
        raise CheckpointError(f"patch conv weight has shape {tuple(patch.shape)}, not (D, 1, p, p)")
    dim, patch_size = patch.shape[0], patch.shape[2]
    hf = hf_config or {}
    if hf.get("layer_norm_first"):
        raise CheckpointError(
            "config.json says layer_norm_first=true: only post-LN EAT is supported"
        )
    if num_heads is not None:
        heads, heads_from = num_heads, "argument"
    elif "num_heads" in hf:
        heads, heads_from = int(hf["num_heads"]), "config.json"
    elif dim in DEFAULT_HEADS:
        heads, heads_from = DEFAULT_HEADS[dim], "default table"
    else:
        raise CheckpointError(f"no default number of heads for width {dim}: pass --num-heads")
    arch = {
        "embed_dim": dim,
        "depth": _block_count(enc, r"blocks\.(\d+)\.", "encoder"),
        "num_heads": heads,
        "mlp_ratio": enc["blocks.0.mlp.fc1.weight"].shape[0] / dim,
        "patch_size": patch_size,
        "n_mels": int(hf.get("mel_bins", 128)),
        "qkv_bias": "blocks.0.attn.qkv.bias" in enc,
        "norm_eps": float(hf.get("norm_eps", 1e-6)),
    }
    for name, ours in (
        ("embed_dim", "embed_dim"),
        ("depth", "depth"),
        ("patch_size", "patch_size"),
    ):
        if name in hf and int(hf[name]) != arch[ours]:
            raise CheckpointError(
                f"config.json says {name}={hf[name]} but the weights have {arch[ours]}"
            )
    decoder = {}
    if mapped.decoder:
        conv = mapped.decoder.get("blocks.0.0.weight")
        if conv is None or conv.ndim != 4:
            raise CheckpointError("decoder weights lack a (D, D/groups, k, k) blocks.0.0.weight")
        decoder = {
            "decoder_depth": _block_count(mapped.decoder, r"blocks\.(\d+)\.", "decoder"),
            "decoder_kernel": conv.shape[-1],
            "decoder_groups": dim // conv.shape[1],
        }
    try:
        cfg = EATConfig(**arch, **decoder)
    except ValueError as err:
        raise CheckpointError(f"the weights describe an impossible architecture: {err}") from err
    for name, factory in MODELS.items():
        size = factory()
        if replace(cfg, **{f: getattr(size, f) for f in _DECODER_FIELDS}) == size:
            cfg = replace(size, **decoder)
            return (name if cfg == size else "eat_custom"), cfg, heads_from
    return "eat_custom", cfg, heads_from


# --- checks -------------------------------------------------------------------------------------


def _meta_state(module_cls, cfg: EATConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):
        return {k: v.shape for k, v in module_cls(cfg).state_dict().items()}


def check_weights(
    weights: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size],
    what: str,
    name_of=lambda key: key,
) -> None:
    """Raise a CheckpointError listing missing, unexpected and wrongly shaped tensors."""
    missing = sorted(name_of(k) for k in set(expected) - set(weights))
    unexpected = sorted(name_of(k) for k in set(weights) - set(expected))
    wrong = sorted(
        f"{name_of(k)}: {tuple(weights[k].shape)} vs expected {tuple(expected[k])}"
        for k in set(expected) & set(weights)
        if tuple(weights[k].shape) != tuple(expected[k])
    )
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{what} do not fit the inferred architecture: missing {missing}, "
            f"unexpected {unexpected}, wrong shapes {wrong}"
        )


def position_table(positions: torch.Tensor | None, cfg: EATConfig) -> torch.Tensor | None:
    """A stored table as (rows, D) float32 when it fits the encoder, else None."""
    if positions is None:
        return None
    table = positions.reshape(-1, positions.shape[-1]).to(torch.float32).contiguous()
    if table.shape[1] != cfg.embed_dim or table.shape[0] % cfg.freq_patches or not len(table):
        return None
    return table


def check_positions(positions: torch.Tensor | None, cfg: EATConfig, what: str) -> list[str]:
    """Compare a stored position table with `sincos_2d`: a list of warnings (empty if equal)."""
    if positions is None:
        return []
    table = position_table(positions, cfg)  # (N, D)
    if table is None:
        return [
            f"{what}: stored positions have shape {tuple(positions.shape)}; ignored, the "
            "encoder computes its own"
        ]
    rows = table.shape[0]  # every row (official EAT: 768 x 8)
    ours = sincos_2d(cfg.embed_dim, rows // cfg.freq_patches, cfg.freq_patches)
    gap = (table - ours).abs().max().item()
    # A half-precision table (fp16 runs) is only as exact as its dtype.
    tolerance = max(POSITION_TOLERANCE, torch.finfo(positions.dtype).eps)
    if gap > tolerance:
        return [
            f"{what}: stored positions differ from our sin-cos table by up to {gap:.3g} over "
            f"the first {rows} rows; the imported encoder uses the stored ones, as official "
            "EAT does"
        ]
    return []


def _as_float32(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fairseq fp16 runs store half-precision students: our encoder holds float32."""
    return {
        k: v.detach().to(torch.float32, copy=True).contiguous()
        if v.is_floating_point()
        else v.detach().clone()
        for k, v in weights.items()
    }


def _check_equal(saved: Mapping, source: Mapping, what: str, path: Path) -> None:
    if set(saved) != set(source):
        differ = sorted(set(saved) ^ set(source))
    else:
        differ = sorted(
            k for k in source if not torch.equal(saved[k], source[k].to(saved[k].dtype))
        )
    if differ:
        raise CheckpointError(f"{path}: {what} differ from the source after conversion: {differ}")


# --- the conversion -----------------------------------------------------------------------------


@dataclass
class ImportReport:
    out: Path
    model_name: str
    config: EATConfig
    format: str
    kind: str
    weights: str
    has_teacher: bool
    has_decoder: bool
    has_head: bool
    warnings: list[str]

    def summary(self) -> dict:
        """A JSON-ready description of what was written."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**data, "out": str(self.out), "config": self.config.to_dict()}


def import_eat(
    source: str | Path,
    out: str | Path,
    weights: str | None = None,
    num_heads: int | None = None,
) -> ImportReport:
    """Convert an official EAT checkpoint at `source` into an asdflow checkpoint at `out`.

    weights: "student" (default, the paper's general encoder) or "teacher" (the EMA copy), for
    pre-trained fairseq files; files with a single set of weights take it whatever is asked,
    except that asking for a teacher the file lacks is an error. The written checkpoint is read
    back and every encoder, teacher and decoder tensor compared with its source.
    """
    if weights not in (None, "student", "teacher"):
        raise ValueError(f"Unsupported weights {weights!r}: use 'student' or 'teacher'")
    source, out = Path(source), Path(out)
    official = read_official(source)
    try:
        layout = detect_layout(official.weights)
    except CheckpointError as err:
        raise CheckpointError(f"{source}: {err}") from err
    prefix = "model." if any(k.startswith("model.") for k in official.weights) else ""
    mapped = map_official(official.weights, layout)
    if mapped.unknown:
        raise CheckpointError(f"{source}: keys with no place in an EAT encoder: {mapped.unknown}")
    kind = "finetuned" if mapped.head else "pretrained"
    try:
        name, cfg, heads_from = infer_config(mapped, official.hf_config, num_heads)
        check_weights(
            mapped.encoder,
            _meta_state(EATEncoder, cfg),
            "encoder weights",
            lambda k: official_name(k, layout, prefix),
        )
        if mapped.decoder:
            check_weights(mapped.decoder, _meta_state(Decoder2d, cfg), "decoder weights")
    except CheckpointError as err:
        raise CheckpointError(f"{source}: {err}") from err
    warnings = check_positions(mapped.positions, cfg, "model")

    teacher = None
    if official.ema is not None and kind == "pretrained":
        teacher, more = _read_teacher(official.ema, layout, cfg, source)
        warnings += more
    if weights == "teacher" and teacher is None:
        raise CheckpointError(f"{source}: --weights teacher, but the file has no EMA teacher")

    student = _with_positions(_as_float32(mapped.encoder), mapped.positions, cfg)
    if teacher is not None:
        chosen = weights or "student"
    else:
        chosen = "student" if official.format == "fairseq" else "as-released"
    encoder = teacher if chosen == "teacher" else student
    source_encoder = official.ema if chosen == "teacher" else official.weights
    decoder = _as_float32(mapped.decoder) if mapped.decoder else None
    head = _as_float32(mapped.head) if mapped.head else None

    settings = {
        "source": "import-eat",
        "file": str(source),
        "format": official.format,
        "kind": kind,
        "weights": chosen,
        "num_heads_from": heads_from,
    }
    extra = {"teacher": teacher, "decoder": decoder, "head": head}
    state = checkpoint.make_state(
        name,
        cfg,
        encoder,
        settings=settings,
        normalization=dict(FIXED_NORMALIZATION),
        **{k: v for k, v in extra.items() if v is not None},
    )
    checkpoint.save_checkpoint(out, state)
    try:
        _verify(out, layout, source_encoder, official.ema, mapped.decoder, teacher is not None)
    except CheckpointError:
        out.unlink(missing_ok=True)
        raise
    return ImportReport(
        out=out,
        model_name=name,
        config=cfg,
        format=official.format,
        kind=kind,
        weights=chosen,
        has_teacher=teacher is not None,
        has_decoder=decoder is not None,
        has_head=head is not None,
        warnings=warnings,
    )


def _read_teacher(
    ema_weights: Mapping, layout: str, cfg: EATConfig, source: Path
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The EMA teacher as float32 encoder weights (it has no decoder)."""
    ema = map_official(ema_weights, layout)
    if ema.unknown or ema.decoder or ema.head:
        extra = ema.unknown + [f"decoder.{k}" for k in ema.decoder] + list(ema.head)
        raise CheckpointError(f"{source}: unexpected keys in the EMA teacher: {extra}")
    try:
        check_weights(
            ema.encoder,
            _meta_state(EATEncoder, cfg),
            "EMA teacher weights",
            lambda k: "_ema." + official_name(k, layout),
        )
    except CheckpointError as err:
        raise CheckpointError(f"{source}: {err}") from err
    teacher = _with_positions(_as_float32(ema.encoder), ema.positions, cfg)
    return teacher, check_positions(ema.positions, cfg, "EMA teacher")


def _with_positions(encoder: dict, positions: torch.Tensor | None, cfg: EATConfig) -> dict:
    """The encoder state with its stored position table, when the file has one that fits."""
    table = position_table(positions, cfg)
    return encoder if table is None else {**encoder, "position_table": table}


def _verify(
    out: Path,
    layout: str,
    source_encoder: Mapping,
    source_ema: Mapping | None,
    source_decoder: Mapping,
    has_teacher: bool,
) -> None:
    """Rebuild the encoder from `out` and compare every tensor with the official one."""
    encoder, state = checkpoint.encoder_from_checkpoint(out)
    source = map_official(source_encoder, layout)
    expected = _with_positions(source.encoder, source.positions, encoder.cfg)
    _check_equal(encoder.state_dict(), expected, "encoder", out)
    if has_teacher:
        ema = map_official(source_ema, layout)
        expected = _with_positions(ema.encoder, ema.positions, encoder.cfg)
        _check_equal(state["teacher"], expected, "teacher weights", out)
    if source_decoder:
        decoder = Decoder2d(encoder.cfg)
        decoder.load_state_dict(state["decoder"])
        _check_equal(decoder.state_dict(), source_decoder, "decoder weights", out)
