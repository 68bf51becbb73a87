"""Precision and the faster paths: which hardware "native" picks bf16 on, that the bf16 embedding
pass scoring uses computes the float32 function within bf16 tolerance, and that the fused AdamW
of the training loop makes the loop implementation's update."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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
    with train.autocast_for(cpu, "auto"):  # "auto" stays float32 on every CPU
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


@pytest.mark.parametrize("fused", [None, False])
def test_the_training_loop_takes_fused_adamw_on_cpu_and_it_updates_as_the_loop_does(fused):
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 4)
    copies = [[p.detach().clone().requires_grad_() for p in layer.parameters()] for _ in "ab"]
    optimizers = [
        train.build_optimizer("adamw", [{"params": ps, "weight_decay": 0.05}], 1e-2, (0.9, 0.95), f)
        for ps, f in zip(copies, (fused, False), strict=True)
    ]
    assert optimizers[0].defaults["fused"] is (True if fused is None else None)
    for _ in range(5):
        for ps, optimizer in zip(copies, optimizers, strict=True):
            for p in ps:
                p.grad = torch.ones_like(p)
            optimizer.step()
    for a, b in zip(*copies, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_a_bad_scoring_precision_is_an_error_naming_the_setting(tmp_path):
    from asdflow import knn, score

    with pytest.raises(ValueError, match="scoring setting precision 'half'"):
        score.score_encoder(tmp_path / "model.pt", [], knn.KnnSettings(precision="half"))


def _output_and_gradients(encoder, x: torch.Tensor, precision: str):
    encoder.zero_grad()
    with train.autocast_for(torch.device("cpu"), precision):
        out = encoder.embed(x, pooling="freq")
    out.float().pow(2).sum().backward()
    grads = torch.cat([p.grad.flatten() for p in encoder.parameters() if p.grad is not None])
    return out.detach().float(), grads


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def test_bf16_training_on_cpu_takes_attention_and_patch_gradients_in_float32(monkeypatch):
    seen = []
    sdpa = models.F.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        seen.append(q.dtype)
        return sdpa(q, k, v, *args, **kwargs)

    monkeypatch.setattr(models.F, "scaled_dot_product_attention", spy)
    torch.manual_seed(0)
    encoder = models.create_model("eat_tiny", depth=2)
    x = torch.randn(4, 1, 64, 128)
    reference = _output_and_gradients(encoder, x, "fp32")
    assert set(seen) == {torch.float32}
    seen.clear()
    fast = _output_and_gradients(encoder, x, "bf16")
    assert set(seen) == {torch.float32}  # attention with gradients: float32 under autocast
    seen.clear()
    monkeypatch.setattr(models, "FLOAT32_CPU_BACKWARD", False)
    plain = _output_and_gradients(encoder, x, "bf16")
    assert set(seen) == {torch.bfloat16}  # the switch the benchmark times it with
    seen.clear()
    monkeypatch.setattr(models, "FLOAT32_CPU_BACKWARD", True)
    with torch.no_grad(), train.autocast_for(torch.device("cpu"), "bf16"):
        encoder.embed(x, pooling="freq")
    assert set(seen) == {torch.bfloat16}  # forward-only passes (embedding, teacher) keep bf16
    # the same function as float32 and as plain bf16, within bf16 tolerance
    for output, grads in (fast, plain):
        assert _cosine(output, reference[0]) > 0.999
        assert _cosine(grads, reference[1]) > 0.99
    assert _cosine(fast[1], plain[1]) > 0.99
