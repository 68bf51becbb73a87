"""Fine-tuning on machine attribute classes: ArcFace arithmetic, augmentation, a tiny run."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from test_pretrain import STATS, tiny_settings, write_cache

from asdflow import checkpoint, embed, finetune, pretrain, train
from asdflow.settings import from_mapping


def test_arcface_adds_the_margin_to_the_true_class_only():
    head = finetune.ArcFace(dim=4, classes=3, scale=10.0, margin=0.3)
    emb = torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 1, 0])
    cos = (
        torch.nn.functional.normalize(emb, dim=1)
        @ torch.nn.functional.normalize(head.weight, dim=1).T
    )
    plain = head(emb)
    torch.testing.assert_close(plain, 10.0 * cos)
    margin = head(emb, y)
    for i in range(5):
        for j in range(3):
            expected = 10.0 * (
                math.cos(math.acos(cos[i, j].item()) + 0.3) if j == y[i] else cos[i, j].item()
            )
            assert margin[i, j].item() == pytest.approx(expected, abs=1e-5)


def test_arcface_logits_stay_float32_under_bf16_autocast():
    # CUDA autocast runs acos in float32 while the matmul gives bf16: the head must not mix them
    # (it raised in scatter on an H200), and the margins need float32 angles anyway.
    head = finetune.ArcFace(dim=8, classes=3, scale=10.0, margin=0.3)
    emb = torch.randn(4, 8)
    y = torch.tensor([0, 1, 2, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(torch.nn.functional.linear(emb, torch.eye(8)), y)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, head(emb, y), rtol=0.02, atol=0.05)


def test_subcenter_arcface_takes_the_closest_centre():
    head = finetune.ArcFace(dim=2, classes=2, subcenters=2, scale=1.0, margin=0.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
    cos = head.cosine(torch.tensor([[0.0, 1.0], [0.0, -1.0]]))
    torch.testing.assert_close(cos, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


def test_specaugment_masks_bands_and_keeps_shape():
    settings = finetune.FinetuneSettings(specaug_freq=0.25, specaug_time=0.25)
    objective = finetune.MACObjective(pretrain.models.create_model("eat_tiny"), 2, settings)
    torch.manual_seed(0)
    x = torch.ones(4, 1, 32, 128)
    out = objective.specaugment(x)
    assert out.shape == x.shape and (out == 0).any() and (out == 1).any()


def test_layer_scale_decays_towards_the_input():
    scale = finetune.layer_scale(depth=4, decay=0.5)
    assert scale("head.weight") == 1.0
    assert scale("encoder.blocks.3.mlp.fc1.weight") == 0.5
    assert scale("encoder.blocks.0.mlp.fc1.weight") == 0.5**4
    assert scale("encoder.patch_embed.proj.weight") == 0.5**5


def test_tiny_finetune_learns_the_classes_and_embeds(tmp_path):
    prefix = write_cache(tmp_path / "cache", n=48, seed=0)
    init = pretrain.pretrain(
        tiny_settings(2), [prefix], tmp_path / "p/model.pt", STATS, progress=False
    )
    # the cached clips come from 4 prototypes: recover them as the class labels
    rng = np.random.default_rng(0)  # replays write_cache's draws
    rng.normal(size=(4, 1, 128))
    proto = rng.integers(0, 4, 48)
    index = pd.read_csv(f"{prefix}.csv")
    labels = pd.DataFrame(
        {"file": index["file"], "class_index": proto, "class_name": [f"c{p}" for p in proto]}
    )
    settings = from_mapping(
        finetune.FinetuneSettings,
        {
            "steps": 30,
            "batch_size": 8,
            "lr": 1e-3,
            "warmup_steps": 3,
            "log_every": 10,
        },
    )
    out = finetune.finetune(
        settings, [prefix], labels, tmp_path / "f/model.pt", init, progress=False
    )
    lines = [json.loads(x) for x in (tmp_path / "f/model.metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["ce"] < lines[0]["ce"]
    state = checkpoint.load_checkpoint(out)
    assert state["settings"]["classes"] == sorted(
        set(labels["class_name"]), key=lambda c: int(c[1:])
    )
    assert "head" in state and state["normalization"]["std"] == 0.5
    embed.embed_machine(out, tmp_path / "cache", tmp_path / "emb", ("train",))
    emb = np.load(tmp_path / "emb/train.npy")
    assert emb.shape == (48, 192) and np.isfinite(emb).all()


def test_holdout_split_keeps_a_share_of_each_class_and_a_training_clip():
    labels = np.array([0] * 20 + [1] * 10 + [2] * 1 + [3] * 2)
    rows, held = finetune.holdout_split(labels, 0.2, seed=0)
    assert np.array_equal(np.sort(np.concatenate([rows, held])), np.arange(len(labels)))
    assert [int((labels[held] == c).sum()) for c in range(4)] == [4, 2, 0, 0]
    assert all((labels[rows] == c).any() for c in range(4))
    again, held_again = finetune.holdout_split(labels, 0.2, seed=0)
    assert np.array_equal(held, held_again) and np.array_equal(rows, again)
    assert not np.array_equal(held, finetune.holdout_split(labels, 0.2, seed=1)[1])
    with pytest.raises(ValueError, match="holdout must be in"):
        finetune.holdout_split(labels, 1.0, seed=0)


def test_holdout_logs_heldout_figures_and_trains_on_the_rest(tmp_path):
    prefix = write_cache(tmp_path / "cache", n=40, seed=0)
    init = pretrain.pretrain(
        tiny_settings(1), [prefix], tmp_path / "p/model.pt", STATS, progress=False
    )
    index = pd.read_csv(f"{prefix}.csv")
    classes = np.arange(40) % 2
    labels = pd.DataFrame(
        {"file": index["file"], "class_index": classes, "class_name": [f"c{c}" for c in classes]}
    )
    common = {"steps": 4, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1}
    common["log_every"] = 2
    for holdout, clips in ((0.25, 30), (0.0, 40)):
        settings = from_mapping(finetune.FinetuneSettings, {**common, "holdout": holdout})
        out = finetune.finetune(
            settings, [prefix], labels, tmp_path / f"h{holdout}/model.pt", init, progress=False
        )
        lines = [json.loads(x) for x in out.with_suffix(".metrics.jsonl").read_text().splitlines()]
        assert [x["step"] for x in lines] == [2, 4]
        assert checkpoint.load_checkpoint(out)["settings"]["clips"] == clips
        if holdout:
            for line in lines:
                assert 0 <= line["heldout_accuracy"] <= 1 and line["heldout_ce"] > 0
                # 10 held-back clips: accuracy in tenths
                assert round(line["heldout_accuracy"] * 10, 6) == round(
                    line["heldout_accuracy"] * 10
                )
        else:
            assert all("heldout_ce" not in line for line in lines)
    # a share outside [0, 1) is an error, not silently "no holdout"
    for bad in (-0.1, 1.0):
        settings = from_mapping(finetune.FinetuneSettings, {**common, "holdout": bad})
        with pytest.raises(ValueError, match="holdout must be in"):
            finetune.finetune(
                settings, [prefix], labels, tmp_path / "bad/model.pt", init, progress=False
            )


def test_training_loop_evaluates_in_eval_mode_without_gradients(tmp_path):
    prefix = write_cache(tmp_path / "cache", n=8)
    data = train.CachedClips([prefix], STATS)
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, batch, generator):
            seen.append(("train", self.training))
            return ((batch["x"].mean() - self.w) ** 2).sum(), {}

    def evaluate(objective):
        seen.append(("eval", objective.training, torch.is_grad_enabled()))
        return {"probe": 1}

    loop = train.LoopSettings(steps=4, batch_size=2, lr=0.1, warmup_steps=1, log_every=2)
    train.run_training(
        Probe(),
        data,
        loop,
        tmp_path / "r.pt",
        tmp_path / "m.jsonl",
        lambda o: {"settings": {}},
        progress=False,
        evaluate=evaluate,
    )
    assert seen == [("train", True)] * 2 + [("eval", False, False)] + [("train", True)] * 2 + [
        ("eval", False, False)
    ]
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [x["probe"] for x in lines] == [1.0, 1.0]


def test_unlabelled_clip_is_an_error(tmp_path):
    prefix = write_cache(tmp_path / "cache", n=8)
    labels = pd.DataFrame({"file": ["x"], "class_index": [0], "class_name": ["a"]})
    with pytest.raises(ValueError, match="8 cached clip"):
        finetune.labels_for_cache([prefix], labels)
