"""Precision of the forward passes: which hardware "native" picks bf16 on, and that the bf16
embedding pass scoring uses computes the float32 function within bf16 tolerance."""

from pathlib import Path

import numpy as np
import pytest
import torch

from asdflow import embed, features, models, train
from asdflow import workflow as plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("amx", [True, False])
def test_native_is_bf16_exactly_on_a_cpu_with_amx(monkeypatch, amx):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    cpu = torch.device("cpu")
    assert train.native_bf16(cpu) is amx
    with train.autocast_for(cpu, "native"):
        assert torch.is_autocast_enabled("cpu") is amx
    with train.autocast_for(cpu, "auto"):  # training's default stays float32 on every CPU
        assert not torch.is_autocast_enabled("cpu")
    with train.autocast_for(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu")


def test_an_unknown_precision_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match="'half'.*auto, native, fp32, bf16"):
        train.autocast_for(torch.device("cpu"), "half")


def test_bf16_embeddings_keep_the_float32_neighbours():
    torch.manual_seed(0)
    encoder = models.create_model("eat_tiny")
    clips = np.random.default_rng(0).normal(size=(24, 64, 128)).astype(np.float32)
    stats = features.NormStats(mean=0.0, std=1.0, source="fixed")
    exact = embed.embed_array(encoder, clips, stats, "freq", 8, precision="fp32")
    fast = embed.embed_array(encoder, clips, stats, "freq", 8, precision="bf16")
    cosine = (exact * fast).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
    assert cosine.min() > 0.999
    assert not np.array_equal(exact, fast)  # the bf16 pass did run in bf16


def test_the_log_mel_baseline_does_not_get_the_embedding_precision():
    config = plan.load_config([ROOT / "config" / "config.yaml"])
    assert plan.scoring_settings(config)["precision"] == "native"
    assert "precision" not in plan.scoring_settings(config, encoder=False)
