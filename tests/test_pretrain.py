"""UFO pre-training: masking statistics, EMA arithmetic, targets, the loss falling, resume."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from asdflow import checkpoint, features, models, pretrain, train


def test_inverse_block_mask_keeps_exactly_102_of_512_for_eat_base_shapes():
    g = torch.Generator().manual_seed(0)
    mask = pretrain.inverse_block_mask(256, (64, 8), generator=g)
    assert mask.shape == (256, 512) and mask.dtype == torch.bool
    assert ((~mask).sum(1) == 102).all()
    assert len({tuple(row.tolist()) for row in mask}) == 256  # independent per clone


def test_inverse_block_mask_keeps_blocks_not_scattered_tokens():
    g = torch.Generator().manual_seed(1)
    kept = ~pretrain.inverse_block_mask(512, (64, 8), generator=g).view(512, 64, 8)
    # share of kept tokens whose time-neighbour is kept: blocks give far more than random (~0.2)
    neighbour = (kept[:, 1:] & kept[:, :-1]).sum() / kept[:, 1:].sum()
    assert neighbour > 0.5
    random = torch.rand(512, 64, 8, generator=g) < 0.2
    assert (random[:, 1:] & random[:, :-1]).sum() / random[:, 1:].sum() < 0.3


def test_inverse_block_mask_small_grid_and_determinism():
    a = pretrain.inverse_block_mask(4, (12, 8), generator=torch.Generator().manual_seed(3))
    b = pretrain.inverse_block_mask(4, (12, 8), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and ((~a).sum(1) == int(96 * 0.2)).all()


def test_ema_decay_schedule_and_update_arithmetic():
    assert pretrain.ema_decay_at(0, 0.9998, 0.99999, 100_000) == pytest.approx(0.9998)
    assert pretrain.ema_decay_at(50_000, 0.9998, 0.99999, 100_000) == pytest.approx(0.999895)
    assert pretrain.ema_decay_at(200_000, 0.9998, 0.99999, 100_000) == 0.99999
    settings = pretrain.PretrainSettings(model="eat_tiny", ema_decay=0.5, ema_end_decay=0.5)
    objective = pretrain.UFOObjective(models.create_model("eat_tiny"), settings)
    teacher_before = {k: v.clone() for k, v in objective.teacher.state_dict().items()}
    with torch.no_grad():
        for p in objective.student.parameters():
            p.add_(1.0)
    objective.after_step(0)  # the reference skips update 0
    assert all(torch.equal(v, teacher_before[k]) for k, v in objective.teacher.state_dict().items())
    objective.after_step(1)
    for k, v in objective.teacher.state_dict().items():
        torch.testing.assert_close(v, teacher_before[k] + 0.5)


def test_targets_are_layer_normed_average_of_instance_normed_ffn_outputs():
    objective = pretrain.UFOObjective(
        models.create_model("eat_tiny"), pretrain.PretrainSettings(model="eat_tiny", top_k_layers=2)
    )
    x = torch.randn(2, 1, 32, 128)
    y = objective.targets(x)
    _, ffn = objective.teacher.forward_tokens(objective.teacher.tokens(x))
    inst = [
        (t[:, 1:] - t[:, 1:].mean(1, keepdim=True))
        / (t[:, 1:].var(1, unbiased=False, keepdim=True) + 1e-5).sqrt()
        for t in ffn[-2:]
    ]
    avg = (inst[0] + inst[1]) / 2
    ref = (avg - avg.mean(-1, keepdim=True)) / (
        avg.var(-1, unbiased=False, keepdim=True) + 1e-5
    ).sqrt()
    torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4)


def write_cache(folder, n=48, frames=32, seed=0):
    """A cached split of `n` clips drawn from 4 spectral prototypes plus noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    proto = rng.normal(size=(4, 1, 128)).astype(np.float32)
    arr = np.lib.format.open_memmap(
        folder / "train.npy", mode="w+", dtype=np.float32, shape=(n, frames, 128)
    )
    arr[:] = proto[rng.integers(0, 4, n)] + 0.3 * rng.normal(size=(n, frames, 128)).astype(
        np.float32
    )
    arr.flush()
    pd.DataFrame({"file": [f"clip{i}" for i in range(n)], "n_frames": [frames] * n}).to_csv(
        folder / "train.csv", index=False
    )
    return folder / "train"


def tiny_settings(steps=40, **loop):
    return pretrain.PretrainSettings(
        model="eat_tiny",
        clone_batch=4,
        loop=train.LoopSettings(
            steps=steps,
            batch_size=8,
            lr=5e-4,
            warmup_steps=5,
            log_every=loop.pop("log_every", 5),
            checkpoint_every=loop.pop("checkpoint_every", 100),
            **loop,
        ),
    )


STATS = features.NormStats(0.0, 0.5, "fixed")


def test_ufo_loss_falls_on_a_tiny_run(tmp_path):
    prefix = write_cache(tmp_path / "cache")
    out = pretrain.pretrain(
        tiny_settings(40), [prefix], tmp_path / "model.pt", STATS, progress=False
    )
    lines = [
        json.loads(line) for line in (tmp_path / "model.metrics.jsonl").read_text().splitlines()
    ]
    assert lines[-1]["step"] == 40
    assert lines[-1]["frame_loss"] < 0.7 * lines[0]["frame_loss"]
    state = checkpoint.load_checkpoint(out)
    assert state["model"]["name"] == "eat_tiny" and state["step"] == 40
    assert state["settings"]["clone_batch"] == 4 and state["normalization"]["std"] == 0.5
    assert set(state) >= {"encoder", "teacher", "decoder"}
    encoder, _ = checkpoint.encoder_from_checkpoint(out)  # rebuilt from the file alone
    assert encoder.embed(torch.zeros(1, 1, 32, 128)).shape == (1, 192)
    # target and prediction spreads are logged (targets are layer-normed: spread near 1)
    assert all(0.1 < line["target_var"] < 2 and line["pred_var"] > 0 for line in lines)


def test_spread_is_the_mean_channel_standard_deviation():
    x = torch.randn(4, 50, 3) * torch.tensor([1.0, 2.0, 0.0])
    expected = np.mean([x[..., c].std().item() for c in range(3)])
    assert abs(pretrain.spread(x).item() - expected) < 1e-2  # the 1e-6 floor of a dead channel
    assert pretrain.spread(torch.ones(10, 8)).item() < 2e-3


def test_collapse_guard_stops_a_run_after_its_first_updates(tmp_path):
    prefix = write_cache(tmp_path / "cache")
    floor = {"min_target_var": 5.0, "collapse_after": 3}
    settings = pretrain.PretrainSettings(**{**tiny_settings(10).__dict__, **floor})
    collapsed = r"step 3: target spread [\d.]+ \(floor 5\)"
    with pytest.raises(pretrain.RepresentationCollapse, match=collapsed):
        pretrain.pretrain(settings, [prefix], tmp_path / "model.pt", STATS, progress=False)
    # before `collapse_after` updates the guard is quiet
    quiet = pretrain.PretrainSettings(**{**settings.__dict__, "collapse_after": 100})
    pretrain.pretrain(quiet, [prefix], tmp_path / "quiet.pt", STATS, progress=False)


def test_resume_reaches_the_same_state_as_an_uninterrupted_run(tmp_path, monkeypatch):
    prefix = write_cache(tmp_path / "cache")
    full = pretrain.pretrain(
        tiny_settings(12), [prefix], tmp_path / "a/model.pt", STATS, progress=False
    )

    # Interrupted: dies in step 9 (metric lines up to step 8 written) with its last checkpoint
    # at step 6, then runs again.
    settings = tiny_settings(12, checkpoint_every=6, log_every=2)
    calls = {"n": 0}
    original = pretrain.UFOObjective.after_step

    def dying(self, step):
        original(self, step)
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(pretrain.UFOObjective, "after_step", dying)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain(settings, [prefix], tmp_path / "b/model.pt", STATS, progress=False)
    monkeypatch.setattr(pretrain.UFOObjective, "after_step", original)
    assert checkpoint.load_checkpoint(tmp_path / "b/model.resume.pt")["step"] == 6
    assert not (tmp_path / "b/model.pt").exists()
    resumed = pretrain.pretrain(settings, [prefix], tmp_path / "b/model.pt", STATS, progress=False)
    # the line of step 8 was cut before the rerun wrote it again
    lines = (tmp_path / "b/model.metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4, 6, 8, 10, 12]

    a, b = checkpoint.load_checkpoint(full), checkpoint.load_checkpoint(resumed)
    for part in ("encoder", "teacher", "decoder"):
        for key in a[part]:
            torch.testing.assert_close(
                a[part][key], b[part][key], rtol=0, atol=0, msg=f"{part}.{key}"
            )


def test_a_finished_run_deletes_its_resume_file_and_a_kill_before_the_output_resumes(
    tmp_path, monkeypatch, capsys
):
    prefix = write_cache(tmp_path / "cache")
    out = pretrain.pretrain(
        tiny_settings(4), [prefix], tmp_path / "a/model.pt", STATS, progress=False
    )
    assert out.exists() and not (tmp_path / "a/model.resume.pt").exists()

    # Killed after the last step, before the output was written: the resume file stays ...
    original = checkpoint.save_checkpoint

    def dying(path, state):
        if Path(path).name == "model.pt":
            raise KeyboardInterrupt("killed")
        original(path, state)

    monkeypatch.setattr(checkpoint, "save_checkpoint", dying)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain(
            tiny_settings(4), [prefix], tmp_path / "b/model.pt", STATS, progress=False
        )
    monkeypatch.setattr(checkpoint, "save_checkpoint", original)
    assert checkpoint.load_checkpoint(tmp_path / "b/model.resume.pt")["step"] == 4
    # ... and the rerun trains no step again, writes the output and then deletes it.
    capsys.readouterr()
    again = pretrain.pretrain(
        tiny_settings(4), [prefix], tmp_path / "b/model.pt", STATS, progress=False
    )
    assert "resuming at step 4" in capsys.readouterr().out
    assert not (tmp_path / "b/model.resume.pt").exists()
    a, b = checkpoint.load_checkpoint(out), checkpoint.load_checkpoint(again)
    for key in a["encoder"]:
        torch.testing.assert_close(a["encoder"][key], b["encoder"][key], rtol=0, atol=0)


def test_dap_continues_from_a_checkpoint_and_keeps_its_normalisation(tmp_path):
    prefix = write_cache(tmp_path / "cache")
    general = pretrain.pretrain(
        tiny_settings(4), [prefix], tmp_path / "g/model.pt", STATS, progress=False
    )
    dap = tiny_settings(4)
    out = pretrain.pretrain(dap, [prefix], tmp_path / "d/model.pt", None, False, init=general)
    state = checkpoint.load_checkpoint(out)
    assert state["normalization"]["std"] == 0.5 and state["settings"]["init"] == str(general)
    wrong = pretrain.PretrainSettings(**{**dap.__dict__, "model": "eat_small"})
    with pytest.raises(ValueError, match="holds a eat_tiny encoder"):
        pretrain.pretrain(wrong, [prefix], tmp_path / "e/model.pt", None, False, init=general)


def test_training_reads_the_cache_memory_mapped_never_whole(tmp_path):
    prefix = write_cache(tmp_path / "c", n=8)
    stats = features.NormStats(mean=0.0, std=1.0, source="fixed")
    data = train.CachedClips([prefix], stats)
    assert all(isinstance(a, np.memmap) for a in data.arrays)  # pages read on demand
    batch = data.batch(np.array([3, 5]))["x"]
    expected = stats.apply(np.load(f"{prefix}.npy")[[3, 5]])
    np.testing.assert_array_equal(batch[:, 0].numpy(), expected)
