"""The EAT encoder registry: shapes, finite outputs, gradients, positions, the post-LN block."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asdflow import models, pretrain


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_eat_base_counts_the_reference_parameters():
    encoder = models.create_model("eat_base")
    assert models.count_parameters(encoder) == 85_254_144  # 85.25M, official EAT-base
    assert models.count_parameters(models.Decoder2d(encoder.cfg)) == 2_585_856  # 2.59M


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_every_size_shapes_finite_and_gradients(name):
    cfg = models.model_config(name)
    objective = pretrain.UFOObjective(
        models.EATEncoder(cfg), pretrain.PretrainSettings(model=name, clone_batch=2)
    )
    x = torch.randn(2, 1, 32, 128)  # 2 x 8 patches
    features = objective.student.forward_features(x)
    assert features.shape == (2, 1 + 16, cfg.embed_dim)
    assert objective.student.embed(x).shape == (2, cfg.embed_dim)
    assert torch.isfinite(features).all()
    loss, metrics = objective({"x": x}, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    assert set(metrics) == {"frame_loss", "utterance_loss", "target_var", "pred_var"}
    loss.backward()
    for part in (objective.student, objective.decoder):
        for pname, p in part.named_parameters():
            assert p.grad is not None, f"{name}: no gradient reaches {pname}"
            assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    for pname, p in objective.teacher.named_parameters():
        assert not p.requires_grad and p.grad is None, f"teacher {pname} got a gradient"


def test_positions_split_frequency_then_time_and_do_not_depend_on_length():
    dim = 16
    pos = models.sincos_2d(dim, time_patches=5, freq_patches=8)  # row t * 8 + f
    assert pos.shape == (40, dim)
    row = lambda t, f: pos[t * 8 + f]  # noqa: E731
    assert torch.equal(row(0, 3)[: dim // 2], row(4, 3)[: dim // 2])  # first half: frequency
    assert torch.equal(row(2, 0)[dim // 2 :], row(2, 7)[dim // 2 :])  # second half: time
    longer = models.sincos_2d(dim, time_patches=64, freq_patches=8)
    assert torch.equal(longer[:40], pos)
    # MAE's 1-D formula: sin(p * w_k), cos(p * w_k), w_k = 10000^(-k / (d/2))
    w = 1.0 / 10000 ** (torch.arange(2, dtype=torch.float64) / 2)
    expected = torch.cat([torch.sin(3 * w), torch.cos(3 * w)]).float()
    one = torch.from_numpy(models.sincos_1d(4, np.array([3]))[0])
    torch.testing.assert_close(one, expected)


def test_a_stored_position_table_is_used_saved_and_loaded():
    encoder = models.create_model("eat_tiny")
    assert "position_table" not in encoder.state_dict()
    x = torch.randn(2, 1, 64, 128)
    table = models.sincos_2d(192, 768, 8) + 0.5  # (6144, D): any table the checkpoint carries
    encoder.set_position_table(table)
    torch.testing.assert_close(
        encoder.tokens(x) - encoder.patch_embed(x), table[:32].expand(2, -1, -1)
    )
    copy = models.create_model("eat_tiny")
    copy.load_state_dict(encoder.state_dict())
    assert torch.equal(copy.position_table, table)
    # a state dict without one clears it: the positions are computed again
    weights = {k: v for k, v in encoder.state_dict().items() if k != "position_table"}
    copy.load_state_dict(weights)
    assert copy.position_table is None
    torch.testing.assert_close(copy.positions(4, torch.device("cpu")), models.sincos_2d(192, 4, 8))
    with pytest.raises(ValueError, match="does not fit"):
        encoder.set_position_table(torch.zeros(10, 192))


def test_cls_token_has_no_position_and_tokens_are_time_major():
    encoder = models.create_model("eat_tiny")
    x = torch.zeros(1, 1, 32, 128)
    x[0, 0, 16:32, 0:16] = 1.0  # the patch at time 1, frequency 0 -> token 1 * 8 + 0
    patches = encoder.patch_embed(x)
    changed = (patches - encoder.patch_embed(torch.zeros_like(x))).abs().sum(-1)[0]
    assert changed.argmax().item() == 8


def test_post_layernorm_block_computes_the_reference_function():
    cfg = models.model_config("eat_tiny")
    block = models.PostNormBlock(cfg)
    x = torch.randn(2, 5, cfg.embed_dim)
    out, t = block(x)
    a = block.attn(x)
    r = F.layer_norm(x + a, (cfg.embed_dim,), block.norm1.weight, block.norm1.bias, 1e-6)
    mlp = block.mlp.fc2(F.gelu(block.mlp.fc1(r)))
    ref = F.layer_norm(r + mlp, (cfg.embed_dim,), block.norm2.weight, block.norm2.bias, 1e-6)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(t, mlp)


def test_attention_matches_explicit_softmax():
    attn = models.Attention(8, num_heads=2)
    x = torch.randn(1, 3, 8)
    q, k, v = attn.qkv(x).reshape(1, 3, 3, 2, 4).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)
    ref = attn.proj((weights @ v).transpose(1, 2).reshape(1, 3, 8))
    torch.testing.assert_close(attn(x), ref)


def test_bad_input_shapes_are_clear_errors():
    encoder = models.create_model("eat_tiny")
    with pytest.raises(ValueError, match="expected 128 mel bins, got 64"):
        encoder.embed(torch.zeros(1, 1, 32, 64))
    with pytest.raises(ValueError, match="multiple of the patch size 16, got 40"):
        encoder.embed(torch.zeros(1, 1, 40, 128))
    with pytest.raises(ValueError, match="Unsupported model"):
        models.create_model("eat_huge")
    with pytest.raises(ValueError, match="pooling"):
        encoder.embed(torch.zeros(1, 1, 16, 128), pooling="max")


def test_freq_pooling_is_the_time_mean_of_each_frequency_row():
    torch.manual_seed(0)
    encoder = models.create_model("eat_tiny").eval()
    x = torch.randn(2, 1, 64, 128)  # 4 time rows x 8 frequency columns of patches
    with torch.no_grad():
        patches = encoder.forward_features(x)[:, 1:]  # (2, 32, 192), frequency fastest
        got = encoder.embed(x, pooling="freq")
    assert got.shape == (2, encoder.embedding_dim("freq")) == (2, 8 * 192)
    for f in range(8):
        expected = patches[:, f::8].mean(dim=1)  # every time row's patch at frequency f
        torch.testing.assert_close(got[:, f * 192 : (f + 1) * 192], expected)
    assert encoder.embedding_dim("mean") == encoder.embedding_dim("cls") == 192
    with pytest.raises(ValueError, match="Unsupported pooling 'max'.*mean, cls, freq"):
        encoder.embed(x, pooling="max")
