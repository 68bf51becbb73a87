"""Self-describing checkpoints: round trip, and clear errors for bad files."""

import pytest
import torch

from asdflow import checkpoint, models


def write(tmp_path, name="eat_tiny", **extra):
    encoder = models.create_model(name)
    state = checkpoint.make_state(
        name, encoder.cfg, encoder.state_dict(), {"stage": "test"}, **extra
    )
    path = tmp_path / "model.pt"
    checkpoint.save_checkpoint(path, state)
    return path, encoder


def test_round_trip_rebuilds_the_same_function(tmp_path):
    path, encoder = write(tmp_path, normalization={"mean": 1.0, "std": 2.0, "source": "fixed"})
    rebuilt, state = checkpoint.encoder_from_checkpoint(path)
    x = torch.randn(2, 1, 32, 128)
    torch.testing.assert_close(rebuilt.embed(x), encoder.embed(x))
    assert state["settings"] == {"stage": "test"} and state["normalization"]["std"] == 2.0
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    with_drop_path, _ = checkpoint.encoder_from_checkpoint(path, drop_path=0.1)
    assert with_drop_path.cfg.drop_path == 0.1


def test_corrupted_and_foreign_files_are_named(tmp_path):
    path, _ = write(tmp_path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(checkpoint.CheckpointError, match="truncated.pt: not a readable"):
        checkpoint.load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {"blocks.0.attn.qkv.weight": torch.zeros(3)}}, foreign)
    with pytest.raises(checkpoint.CheckpointError, match="foreign.pt: not an asdflow checkpoint"):
        checkpoint.load_checkpoint(foreign)
    with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "missing.pt")


def test_weights_of_the_wrong_size_list_what_does_not_fit(tmp_path):
    small = models.create_model("eat_small")
    tiny_cfg = models.model_config("eat_tiny")
    state = checkpoint.make_state("eat_tiny", tiny_cfg, small.state_dict(), {})
    path = tmp_path / "wrong.pt"
    checkpoint.save_checkpoint(path, state)
    with pytest.raises(checkpoint.CheckpointError, match=r"wrong.pt: .*unexpected \['blocks.10"):
        checkpoint.encoder_from_checkpoint(path)
    with pytest.raises(
        checkpoint.CheckpointError, match=r"wrong shapes \['blocks.0.attn.proj.bias: \(384,\)"
    ):
        checkpoint.encoder_from_checkpoint(path)


def test_pickled_code_in_a_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "version": 1, "payload": Evil()}, path)
    with pytest.raises(checkpoint.CheckpointError, match="evil.pt"):
        checkpoint.load_checkpoint(path)
    assert not marker.exists()
