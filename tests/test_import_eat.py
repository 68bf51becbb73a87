"""Tests of `asdflow import-eat` on synthetic checkpoints written with the official key names and
shapes: fairseq pre-trained (student + EMA teacher + decoder,
pickled config objects) and fine-tuned, Hugging Face safetensors folder and pytorch_model.bin.
The imported encoder is checked against an independent post-LN forward written here."""

import argparse
import json
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asdflow import checkpoint, cli
from asdflow.checkpoint import CheckpointError
from asdflow.import_eat import (
    InertObject,
    detect_layout,
    import_eat,
    infer_config,
    load_untrusted,
    map_official,
)
from asdflow.models import Decoder2d, EATEncoder, eat_base, eat_tiny

DIM, HEADS, PATCH, MELS = 192, 3, 16, 128
IMAGE = "modality_encoders.IMAGE."


# --- synthetic official weights -----------------------------------------------------------------


def mae_positions(dim: int, height: int, width: int) -> np.ndarray:
    """MAE's 2-D sin-cos table, written independently: (height * width, dim), row t * W + f."""

    def one_axis(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        angles = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    grid = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    return np.concatenate([one_axis(dim // 2, grid[0]), one_axis(dim // 2, grid[1])], axis=1)


def official_tensors(seed: int, depth: int, dim: int = DIM) -> dict[str, torch.Tensor]:
    """Encoder tensors under neutral names: patch.*, cls, norm.*, blocks.N.<official suffix>."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.05, offset=0.0):
        return torch.randn(*shape, generator=g) * scale + offset

    t = {
        "patch.weight": rand(dim, 1, PATCH, PATCH),
        "patch.bias": rand(dim),
        "cls": rand(1, 1, dim, scale=1.0),
        "norm.weight": rand(dim, scale=0.1, offset=1.0),
        "norm.bias": rand(dim, scale=0.1),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        t |= {
            b + "attn.qkv.weight": rand(3 * dim, dim, scale=0.1),
            b + "attn.qkv.bias": rand(3 * dim),
            b + "attn.proj.weight": rand(dim, dim),
            b + "attn.proj.bias": rand(dim),
            b + "norm1.weight": rand(dim, scale=0.1, offset=1.0),
            b + "norm1.bias": rand(dim, scale=0.1),
            b + "mlp.fc1.weight": rand(4 * dim, dim),
            b + "mlp.fc1.bias": rand(4 * dim),
            b + "mlp.fc2.weight": rand(dim, 4 * dim),
            b + "mlp.fc2.bias": rand(dim),
            b + "norm2.weight": rand(dim, scale=0.1, offset=1.0),
            b + "norm2.bias": rand(dim, scale=0.1),
        }
    return t


def positions_table(dim: int = DIM) -> torch.Tensor:
    """The stored table as in real checkpoints: (1, 6144, D) = 768 time x 8 frequency patches."""
    return torch.from_numpy(mae_positions(dim, 768, MELS // PATCH)).float()[None]


def fairseq_keys(t: dict, prefix: str = "") -> dict:
    out = {
        f"{prefix}{IMAGE}local_encoder.proj.weight": t["patch.weight"],
        f"{prefix}{IMAGE}local_encoder.proj.bias": t["patch.bias"],
        f"{prefix}{IMAGE}extra_tokens": t["cls"],
        f"{prefix}{IMAGE}fixed_positional_encoder.positions": positions_table(),
        f"{prefix}{IMAGE}context_encoder.norm.weight": t["norm.weight"],
        f"{prefix}{IMAGE}context_encoder.norm.bias": t["norm.bias"],
    }
    return out | {prefix + k: v for k, v in t.items() if k.startswith("blocks.")}


def hf_keys(t: dict) -> dict:
    out = {
        "model.local_encoder.proj.weight": t["patch.weight"],
        "model.local_encoder.proj.bias": t["patch.bias"],
        "model.extra_tokens": t["cls"],
        "model.fixed_positional_encoder.positions": positions_table(),
        "model.pre_norm.weight": t["norm.weight"],
        "model.pre_norm.bias": t["norm.bias"],
    }
    return out | {"model." + k: v for k, v in t.items() if k.startswith("blocks.")}


def decoder_tensors(seed: int, depth: int = 6, dim: int = DIM, groups: int = 16) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in range(depth):
        out[f"{IMAGE}decoder.blocks.{k}.0.weight"] = torch.randn(
            dim, dim // groups, 3, 3, generator=g
        )
        out[f"{IMAGE}decoder.blocks.{k}.0.bias"] = torch.randn(dim, generator=g)
    out[f"{IMAGE}decoder.proj.weight"] = torch.randn(dim, dim, generator=g)
    out[f"{IMAGE}decoder.proj.bias"] = torch.randn(dim, generator=g)
    return out


def head_tensors(classes: int = 10, dim: int = DIM) -> dict:
    return {
        "fc_norm.weight": torch.ones(dim),
        "fc_norm.bias": torch.zeros(dim),
        "head.weight": torch.randn(classes, dim),
        "head.bias": torch.randn(classes),
    }


class FakeFairseqModule:
    """Pickles objects of a class living in a module that is gone when the file is loaded, as
    fairseq's and omegaconf's config classes are for us."""

    NAME = "fairseq_dataclass_configs_for_tests"

    def __enter__(self):
        module = types.ModuleType(self.NAME)

        class FairseqConfig:
            def __init__(self, **values):
                self.values = values

        class DictConfig:  # omegaconf-like: state through __getstate__/__setstate__
            def __init__(self, content):
                self.content = content

            def __getstate__(self):
                return {"_content": self.content, "_flags": {"readonly": True}}

            def __setstate__(self, state):
                raise AssertionError("pickled code ran")

        for cls in (FairseqConfig, DictConfig):
            cls.__module__ = self.NAME
            cls.__qualname__ = cls.__name__
            setattr(module, cls.__name__, cls)
        sys.modules[self.NAME] = module
        return module

    def __exit__(self, *exc):
        del sys.modules[self.NAME]


def write_fairseq(
    path, model: dict, ema_layout: str | None = None, ema: dict | None = None, legacy=False
):
    """A fairseq checkpoint dict with config objects; the EMA teacher nested, flat or top-level."""
    model = dict(model)
    state = {}
    if ema is not None:
        if ema_layout == "nested":
            model["_ema"] = ema
        elif ema_layout == "flat":
            model |= {f"_ema.{k}": v for k, v in ema.items()}
        else:
            state["_ema"] = ema
    with FakeFairseqModule() as fake:
        cfg = fake.FairseqConfig(model=fake.DictConfig({"_name": "data2vec_multi"}), seed=1)
        state |= {
            "cfg": cfg,
            "args": argparse.Namespace(arch="data2vec_multi"),
            "model": model,
            "optimizer_history": [{"criterion_name": "ModelCriterion", "num_updates": 3}],
            "extra_state": {"epoch": 30, "best": np.float64(0.5)},
        }
        torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    assert FakeFairseqModule.NAME not in sys.modules


# --- an independent reference forward -----------------------------------------------------------


def reference_layers(
    t: dict, x: torch.Tensor, depth: int, heads: int, table: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """EAT's post-LN encoder from the raw official tensors, in float64: every block's output
    (B, 1 + N, D). `table`: the stored (1, rows, D) positions, sliced as official EAT slices
    them; else MAE's table computed here."""
    t = {k: v.double() for k, v in t.items()}
    x = x.double()
    ln = lambda v, n: F.layer_norm(v, v.shape[-1:], t[n + ".weight"], t[n + ".bias"], eps=1e-6)  # noqa: E731
    lin = lambda v, n: F.linear(v, t[n + ".weight"], t[n + ".bias"])  # noqa: E731
    grid = F.conv2d(x, t["patch.weight"], t["patch.bias"], stride=PATCH)  # (B, D, T', F')
    b, d, height, width = grid.shape
    if table is None:
        positions = torch.from_numpy(mae_positions(d, height, width))
    else:
        positions = table.reshape(-1, d)[: height * width].double()
    tokens = grid.flatten(2).transpose(1, 2) + positions
    h = ln(torch.cat([t["cls"].expand(b, -1, -1), tokens], dim=1), "norm")
    layers = []
    for i in range(depth):
        p = f"blocks.{i}."
        q, k, v = lin(h, p + "attn.qkv").chunk(3, dim=-1)
        split = lambda z: z.reshape(b, -1, heads, d // heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        weights = torch.softmax(q @ k.transpose(-1, -2) / (d // heads) ** 0.5, dim=-1)
        h = h + lin((weights @ v).transpose(1, 2).reshape(b, -1, d), p + "attn.proj")
        r = ln(h, p + "norm1")
        ffn = lin(F.gelu(lin(r, p + "mlp.fc1")), p + "mlp.fc2")
        h = ln(r + ffn, p + "norm2")
        layers.append(h)
    return layers


def assert_same_function(path, t: dict, depth: int, heads: int, table=None):
    encoder, _ = checkpoint.encoder_from_checkpoint(path)
    encoder.eval()
    x = torch.randn(2, 1, 64, MELS, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ours = encoder.forward_features(x).double()
    expected = reference_layers(t, x, depth, heads, table)[-1]
    assert ours.shape == expected.shape == (2, 1 + 4 * 8, DIM)
    assert (ours - expected).abs().max().item() < 1e-4


# --- formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ema_layout", ["nested", "flat", "top-level"])
def test_fairseq_pretrained_teacher_student_decoder(tmp_path, ema_layout):
    student, teacher = official_tensors(1, depth=6), official_tensors(2, depth=6)
    # fp16 runs store a half-precision student; the EMA teacher is kept in fp32, as official
    # EAT does.
    model = {k: v.half() for k, v in fairseq_keys(student).items()} | decoder_tensors(3)
    src = tmp_path / "EAT-base_epoch30_pt.pt"
    write_fairseq(src, model, ema_layout, fairseq_keys(teacher))

    # the student by default: official EAT extracts features and fine-tunes with it
    report = import_eat(src, tmp_path / "student.pt")
    assert (report.model_name, report.config) == ("eat_tiny", eat_tiny())
    assert (report.format, report.kind, report.weights) == ("fairseq", "pretrained", "student")
    assert report.warnings == []  # the real-layout positions equal our sincos_2d

    report = import_eat(src, tmp_path / "teacher.pt", weights="teacher")
    assert report.weights == "teacher"
    assert_same_function(tmp_path / "teacher.pt", teacher, depth=6, heads=HEADS)

    student32 = {k: v.half().float() for k, v in student.items()}
    # the fp16 student's stored table is half precision too, and it is what the model adds
    half_table = model[f"{IMAGE}fixed_positional_encoder.positions"]
    assert_same_function(tmp_path / "student.pt", student32, depth=6, heads=HEADS, table=half_table)

    state = checkpoint.load_checkpoint(tmp_path / "student.pt")
    assert state["settings"] == {
        "source": "import-eat",
        "file": str(src),
        "format": "fairseq",
        "kind": "pretrained",
        "weights": "student",
        "num_heads_from": "default table",
    }
    assert state["normalization"] == {"mean": -4.268, "std": 4.569, "source": "fixed"}
    assert torch.equal(
        state["teacher"]["blocks.5.mlp.fc2.weight"], teacher["blocks.5.mlp.fc2.weight"]
    )
    assert state["encoder"]["cls_token"].shape == (1, 1, DIM)
    assert "head" not in state and all(v.dtype == torch.float32 for v in state["encoder"].values())
    decoder = Decoder2d(eat_tiny())
    decoder.load_state_dict(state["decoder"])
    assert torch.equal(decoder.proj.weight, model[f"{IMAGE}decoder.proj.weight"])


def test_fairseq_finetuned_keeps_head_apart(tmp_path):
    t = official_tensors(4, depth=2)
    head = head_tensors()
    src = tmp_path / "EAT-base_epoch30_ft.pt"
    write_fairseq(src, fairseq_keys(t, prefix="model.") | head)
    report = import_eat(src, tmp_path / "ft.pt")
    assert (report.kind, report.weights, report.model_name) == (
        "finetuned",
        "student",
        "eat_custom",
    )
    assert report.config.depth == 2 and not report.has_teacher and not report.has_decoder
    state = checkpoint.load_checkpoint(tmp_path / "ft.pt")
    assert set(state["head"]) == set(head)
    assert torch.equal(state["head"]["head.weight"], head["head.weight"])
    assert "teacher" not in state and "decoder" not in state
    assert_same_function(tmp_path / "ft.pt", t, depth=2, heads=HEADS)
    with pytest.raises(CheckpointError, match="no EMA teacher"):
        import_eat(src, tmp_path / "x.pt", weights="teacher")


def test_fairseq_legacy_serialization(tmp_path):
    """Older fairseq releases were written in torch's pre-zip format."""
    t = official_tensors(17, depth=2)
    write_fairseq(tmp_path / "old.pt", fairseq_keys(t), "nested", fairseq_keys(t), legacy=True)
    report = import_eat(tmp_path / "old.pt", tmp_path / "out.pt")
    assert report.has_teacher and report.weights == "student"
    assert_same_function(tmp_path / "out.pt", t, depth=2, heads=HEADS)


def test_huggingface_safetensors_folder_with_config(tmp_path):
    from safetensors.torch import save_file

    t = official_tensors(5, depth=2)
    folder = tmp_path / "EAT-base_epoch30_finetune_AS2M"
    folder.mkdir()
    tensors = {
        k: v.contiguous()
        for k, v in (hf_keys(t) | {"model." + k: v for k, v in head_tensors().items()}).items()
    }
    save_file(tensors, str(folder / "model.safetensors"))
    config = {"model_type": "eat", "embed_dim": DIM, "depth": 2, "num_heads": 6,
              "patch_size": PATCH, "mel_bins": 128, "max_length": 768,
              "layer_norm_first": False, "norm_eps": 1e-6}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    report = import_eat(folder, tmp_path / "hf.pt")
    assert (report.format, report.kind, report.weights) == (
        "huggingface",
        "finetuned",
        "as-released",
    )
    assert report.config.num_heads == 6  # from config.json, not the default table's 3
    assert_same_function(tmp_path / "hf.pt", t, depth=2, heads=6)


def test_huggingface_pytorch_model_bin(tmp_path):
    t = official_tensors(6, depth=2)
    src = tmp_path / "pytorch_model.bin"
    torch.save(hf_keys(t), src)
    report = import_eat(src, tmp_path / "bin.pt")
    assert (report.format, report.kind) == ("huggingface", "pretrained")
    assert_same_function(tmp_path / "bin.pt", t, depth=2, heads=HEADS)


def test_eat_base_key_map_on_meta_tensors():
    """Every official EAT-base key lands on one of our encoder keys with the right shape."""
    with torch.device("meta"):
        t = official_tensors(0, depth=12, dim=768)
        ours = EATEncoder(eat_base()).state_dict()
    for keys in (fairseq_keys(t), fairseq_keys(t, prefix="model."), hf_keys(t)):
        keys = {k: v.to("meta") for k, v in keys.items()}
        mapped = map_official(keys, detect_layout(keys))
        assert not mapped.unknown and mapped.positions is not None
        assert {k: v.shape for k, v in mapped.encoder.items()} == {
            k: v.shape for k, v in ours.items()
        }
        name, cfg, _ = infer_config(mapped)
        assert (name, cfg) == ("eat_base", eat_base())


def test_mismatched_positions_are_a_warning(tmp_path):
    t = official_tensors(8, depth=2)
    keys = hf_keys(t)
    table = keys["model.fixed_positional_encoder.positions"]
    half = DIM // 2
    keys["model.fixed_positional_encoder.positions"] = torch.cat(
        [table[..., half:], table[..., :half]], dim=-1
    )  # time and frequency halves swapped
    torch.save(keys, tmp_path / "pytorch_model.bin")
    report = import_eat(tmp_path / "pytorch_model.bin", tmp_path / "out.pt")
    assert len(report.warnings) == 1 and "uses the stored ones" in report.warnings[0]
    # the encoder adds the stored table, as the official model would
    swapped = keys["model.fixed_positional_encoder.positions"]
    assert_same_function(tmp_path / "out.pt", t, depth=2, heads=HEADS, table=swapped)


def test_float64_parity_with_the_stored_table_on_every_layer(tmp_path):
    """With the checkpoint's own position table and float64 on both sides, the imported
    encoder is the official function to rounding: every block's output within 1e-12."""
    t = official_tensors(11, depth=4)
    keys = hf_keys(t)
    rng = torch.Generator().manual_seed(5)  # any table: the stored one must be what is added
    table = keys["model.fixed_positional_encoder.positions"] + 1e-3 * torch.randn(
        keys["model.fixed_positional_encoder.positions"].shape, generator=rng
    )
    keys["model.fixed_positional_encoder.positions"] = table
    torch.save(keys, tmp_path / "pytorch_model.bin")
    import_eat(tmp_path / "pytorch_model.bin", tmp_path / "out.pt")
    encoder, _ = checkpoint.encoder_from_checkpoint(tmp_path / "out.pt")
    encoder = encoder.double().eval()
    ours = []
    for block in encoder.blocks:
        block.register_forward_hook(lambda module, args, out: ours.append(out[0]))
    x = torch.randn(2, 1, 96, MELS, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    with torch.no_grad():
        encoder.forward_features(x)
    expected = reference_layers(t, x, depth=4, heads=HEADS, table=table)
    assert len(ours) == len(expected) == 4
    for i, (a, b) in enumerate(zip(ours, expected, strict=True)):
        gap = (a - b).abs().max().item()
        assert gap < 1e-12, f"block {i}: {gap:.3g}"


def test_without_a_stored_table_positions_are_computed_as_official_eat_does():
    """Official EAT computes its table in float32 (omega, grid, products, sin and cos)."""
    from asdflow.models import sincos_2d

    def official_float32(dim: int, height: int, width: int) -> np.ndarray:
        def one_axis(d: int, pos: np.ndarray) -> np.ndarray:
            omega = np.arange(d // 2, dtype=np.float32)
            omega /= d / 2.0
            omega = 1.0 / 10000**omega
            angles = np.einsum("m,d->md", pos.reshape(-1), omega)
            return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

        grid = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        return np.concatenate([one_axis(dim // 2, grid[0]), one_axis(dim // 2, grid[1])], axis=1)

    ours = sincos_2d(768, 768, 8).numpy()
    assert np.array_equal(ours, official_float32(768, 768, 8))
    # the float64 formula differs where the time index is large
    assert np.abs(ours - mae_positions(768, 768, 8)).max() > 1e-5


def test_cli(tmp_path, capsys):
    torch.save(hf_keys(official_tensors(9, depth=2)), tmp_path / "pytorch_model.bin")
    assert (
        cli.main(
            ["import-eat", str(tmp_path / "pytorch_model.bin"), "--out", str(tmp_path / "o.pt")]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["model_name"] == "eat_custom" and summary["config"]["depth"] == 2
    assert (
        cli.main(["import-eat", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o2.pt")])
        == 1
    )
    assert "missing.pt" in capsys.readouterr().err


# --- safety -------------------------------------------------------------------------------------


class Evil:
    """Unpickling this runs a shell command, unless the loader refuses to call os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class EvilExec:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_pickled_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    t = official_tensors(10, depth=2)
    # A checkpoint whose config carries the payload: the weights import, the payload stays inert.
    state = {"cfg": Evil(marker), "args": EvilExec(marker), "model": fairseq_keys(t)}
    torch.save(state, tmp_path / "evil_cfg.pt")
    loaded = load_untrusted(tmp_path / "evil_cfg.pt")
    assert isinstance(loaded["cfg"], InertObject) and isinstance(loaded["args"], InertObject)
    import_eat(tmp_path / "evil_cfg.pt", tmp_path / "ok.pt")
    assert_same_function(tmp_path / "ok.pt", t, depth=2, heads=HEADS)
    # Payload alone (torch zip format and a bare pickle): a clear error, nothing executed.
    torch.save(Evil(marker), tmp_path / "evil_only.pt")
    with open(tmp_path / "evil_plain.pt", "wb") as f:
        pickle.dump({"model": EvilExec(marker)}, f, protocol=2)
    for name in ("evil_only.pt", "evil_plain.pt"):
        with pytest.raises(CheckpointError, match=name):
            import_eat(tmp_path / name, tmp_path / "never.pt")
    # A .bin is loaded weights-only without the restricted fallback.
    torch.save({"model.x": Evil(marker)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        import_eat(tmp_path / "pytorch_model.bin", tmp_path / "never.pt")
    assert not marker.exists()
    assert not (tmp_path / "never.pt").exists()


# --- errors -------------------------------------------------------------------------------------


def test_missing_key_is_listed(tmp_path):
    keys = fairseq_keys(official_tensors(11, depth=2))
    del keys["blocks.1.mlp.fc2.bias"]
    write_fairseq(tmp_path / "m.pt", keys)
    with pytest.raises(CheckpointError, match=r"missing \['blocks\.1\.mlp\.fc2\.bias'\]"):
        import_eat(tmp_path / "m.pt", tmp_path / "out.pt")


def test_unknown_key_is_listed(tmp_path):
    keys = hf_keys(official_tensors(12, depth=2)) | {"model.recon_proj.weight": torch.zeros(2)}
    torch.save(keys, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="model.recon_proj.weight"):
        import_eat(tmp_path / "pytorch_model.bin", tmp_path / "out.pt")


def test_wrong_shape_is_listed(tmp_path):
    keys = fairseq_keys(official_tensors(13, depth=2), prefix="model.")
    keys["model.blocks.1.attn.qkv.weight"] = torch.zeros(3 * DIM, DIM + 1)
    write_fairseq(tmp_path / "s.pt", keys | head_tensors())
    with pytest.raises(CheckpointError, match=r"model\.blocks\.1\.attn\.qkv\.weight: \(576, 193\)"):
        import_eat(tmp_path / "s.pt", tmp_path / "out.pt")


def test_teacher_wrong_shape_is_listed(tmp_path):
    teacher = fairseq_keys(official_tensors(14, depth=2))
    teacher[f"{IMAGE}extra_tokens"] = torch.zeros(1, 2, DIM)
    write_fairseq(tmp_path / "t.pt", fairseq_keys(official_tensors(15, depth=2)), "nested", teacher)
    with pytest.raises(CheckpointError, match="_ema.modality_encoders.IMAGE.extra_tokens"):
        import_eat(tmp_path / "t.pt", tmp_path / "out.pt")


def test_truncated_and_foreign_files_name_the_file(tmp_path):
    write_fairseq(tmp_path / "full.pt", fairseq_keys(official_tensors(16, depth=2)))
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "notes.pt").write_text("not a checkpoint\n")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    torch.save({"weights": [1, 2, 3]}, tmp_path / "other.pt")
    torch.save({"model": {"encoder.layer.0.weight": torch.zeros(2)}}, tmp_path / "alien.pt")
    for name in ("truncated.pt", "noise.pt", "notes.pt", "bad.safetensors", "other.pt",
                 "alien.pt", "absent.pt"):  # fmt: skip
        with pytest.raises(CheckpointError, match=name):
            import_eat(tmp_path / name, tmp_path / "out.pt")
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="empty_folder"):
        import_eat(empty, tmp_path / "out.pt")
