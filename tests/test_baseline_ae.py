"""The DCASE baseline autoencoder (asdflow.baseline_ae) against an independent numpy reference
of the public code's formulas, its training, its Mahalanobis statistics and its bad inputs."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import scipy.spatial.distance
import soundfile as sf
import torch

from asdflow import baseline_ae, cli, features
from asdflow.settings import from_mapping

SR = 16000
SETTINGS = baseline_ae.AESettings()  # the public front end: 128 mels, 5 frames, 1024 / 512


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as a workflow job runs: small matrices are slower on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- an independent reference: librosa's formulas in numpy, in float64 --------------------------


def hz_to_mel(f):
    """Slaney's mel scale (librosa.hz_to_mel, htk=False): linear below 1 kHz, log above."""
    f = np.asarray(f, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(
        f < 1000.0, f * 3.0 / 200.0, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / log_step
    )


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp(log_step * (m - 15.0)))


def slaney_filters(sr, n_fft, n_mels):
    """librosa.filters.mel(sr, n_fft, n_mels) defaults: triangles on the Slaney scale from 0 to
    sr / 2, each scaled to unit area (norm="slaney"). (n_mels, 1 + n_fft // 2)."""
    fft_hz = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    weights = np.zeros((n_mels, len(fft_hz)))
    for i in range(n_mels):
        rising = (fft_hz - edges[i]) / (edges[i + 1] - edges[i])
        falling = (edges[i + 2] - fft_hz) / (edges[i + 2] - edges[i + 1])
        weights[i] = np.maximum(0.0, np.minimum(rising, falling)) * 2.0 / (edges[i + 2] - edges[i])
    return weights


def reference_vectors(path, n_mels=128, frames=5, n_fft=1024, hop=512, power=2.0):
    """common.file_to_vectors: centred STFT (zero padding, periodic Hann), |X|^power, mel,
    20 / power * log10(max(mel, eps)), then `frames` consecutive frames per vector."""
    y, sr = sf.read(str(path), dtype="float64")
    padded = np.pad(y, n_fft // 2)
    n_frames = 1 + (len(padded) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    spectrum = np.stack(
        [
            np.abs(np.fft.rfft(padded[t * hop : t * hop + n_fft] * window)) ** power
            for t in range(n_frames)
        ]
    )
    mel = spectrum @ slaney_filters(sr, n_fft, n_mels).T  # (T, n_mels)
    logmel = 20.0 / power * np.log10(np.maximum(mel, np.finfo(np.float64).eps))
    n_vectors = n_frames - frames + 1
    out = np.zeros((n_vectors, n_mels * frames))
    for t in range(frames):
        out[:, n_mels * t : n_mels * (t + 1)] = logmel[t : t + n_vectors]
    return out


def numpy_forward(model, x):
    """The autoencoder in numpy (float64) from its weights, BatchNorm with running statistics."""
    h = x
    for layer in [*model.encoder, *model.decoder]:
        if isinstance(layer, torch.nn.Linear):
            h = h @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
        elif isinstance(layer, torch.nn.BatchNorm1d):
            mean, var = layer.running_mean.double().numpy(), layer.running_var.double().numpy()
            gamma, beta = (
                layer.weight.detach().double().numpy(),
                layer.bias.detach().double().numpy(),
            )
            h = (h - mean) / np.sqrt(var + layer.eps) * gamma + beta
        else:
            h = np.maximum(h, 0.0)
    return h


# --- fixtures -----------------------------------------------------------------------------------


def write_clip(path, seconds, seed, sr=SR):
    """Noise through a random resonance plus a hum: a machine-like clip, 16-bit PCM."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    noise = np.convolve(rng.standard_normal(n), rng.standard_normal(32) / 8.0, mode="same")
    hum = np.sin(2 * np.pi * rng.uniform(80, 400) * t) * rng.uniform(0.05, 0.3)
    sf.write(path, (0.1 * noise + hum).clip(-1, 1) * 0.8, sr, subtype="PCM_16")
    return path


def random_autoencoder(seed=0):
    """A fixed random autoencoder whose BatchNorm layers do something in eval mode."""
    torch.manual_seed(seed)
    model = baseline_ae.DenseAE(baseline_ae.AEConfig())
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, torch.nn.BatchNorm1d):
                n = layer.num_features
                layer.running_mean.copy_(torch.randn(n, generator=gen) * 5)
                layer.running_var.copy_(torch.rand(n, generator=gen) * 50 + 1)
                layer.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                layer.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model.eval()


# --- (a) differential: the same scores as the public formulas in numpy --------------------------


def test_scores_match_an_independent_numpy_reference_of_the_public_formulas(tmp_path):
    train = {
        domain: [write_clip(tmp_path / f"{domain}_{i}.wav", 2.0, 100 * k + i) for i in range(24)]
        for k, domain in enumerate(("source", "target"))
    }
    test_clip = write_clip(tmp_path / "test.wav", 2.5, 999)
    model = random_autoencoder()
    front_end = baseline_ae.MelFrontEnd(SETTINGS)

    # front end: 2 s at 16 kHz -> 1 + 32000 // 512 = 63 frames -> 59 vectors of 640
    ours = front_end.clip_vectors(test_clip)
    ref = reference_vectors(test_clip)
    assert ours.shape == ref.shape == (1 + 40000 // 512 - 4, 640)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5)  # float32 vectors: 7e-6 measured

    # covariances of the training errors per domain ("full": numpy.cov), as the reference does
    clips = {d: [front_end.clip_vectors(p) for p in paths] for d, paths in train.items()}
    errors = np.concatenate(
        [baseline_ae.reconstruction_errors(model, v) for d in clips for v in clips[d]]
    )
    is_target = np.repeat([False, True], [sum(map(len, clips[d])) for d in clips])
    scorer = baseline_ae.SelectiveMahalanobis(centering="full").fit(errors, is_target)
    ours = baseline_ae.score_clips(model, scorer, [front_end.clip_vectors(test_clip)])

    precision = {}
    for domain, paths in train.items():
        errs = np.concatenate([v - numpy_forward(model, v) for v in map(reference_vectors, paths)])
        precision[domain] = np.linalg.inv(np.cov(errs, rowvar=False))  # ddof 1, as the public code
    x = reference_vectors(test_clip)
    recon = numpy_forward(model, x)
    mse = np.mean((recon - x) ** 2)
    # The public scorer averages (recon - x) P (recon - x)^T over all pairs of the clip's vectors
    # (networks/criterion/mahala.py), the squared distance between the clip means.
    pairs = {d: np.mean((recon - x) @ p @ (recon - x).T) for d, p in precision.items()}
    distances = {
        d: scipy.spatial.distance.mahalanobis(recon.mean(0), x.mean(0), p) ** 2
        for d, p in precision.items()
    }
    for d in precision:
        assert distances[d] == pytest.approx(pairs[d], rel=1e-9)
    # measured: 2e-8 (MSE) and 6e-8 (Mahalanobis) relative
    assert ours["mse"][0] == pytest.approx(mse, rel=1e-6)
    assert ours["maha"][0] == pytest.approx(min(distances.values()), rel=1e-6)
    assert distances["source"] != pytest.approx(distances["target"], rel=1e-3)  # min is a choice


# --- the Mahalanobis statistics ------------------------------------------------------------------


def test_batch_covariance_is_the_public_per_batch_scatter():
    rng = np.random.default_rng(0)
    errors = rng.normal(size=(10, 3)) + np.arange(10)[:, None]  # batch means differ
    is_target = np.array([0, 0, 1, 0, 1, 0, 0, 1, 0, 0], dtype=bool)
    scorer = baseline_ae.SelectiveMahalanobis("batch", batch_size=4, seed=3).fit(errors, is_target)
    order = np.random.default_rng([3, 1]).permutation(10)
    expected = {False: np.zeros((3, 3)), True: np.zeros((3, 3))}
    counts = {False: 0, True: 0}
    for batch in (order[0:4], order[4:8], order[8:10]):
        for domain in (False, True):
            part = errors[batch[is_target[batch] == domain]]
            if len(part):
                centred = part - part.mean(axis=0)
                expected[domain] += centred.T @ centred
                counts[domain] += len(part)
    np.testing.assert_allclose(scorer.cov_source_, expected[False] / (counts[False] - 1))
    np.testing.assert_allclose(scorer.cov_target_, expected[True] / (counts[True] - 1))
    # one batch holding everything is numpy's sample covariance
    whole = baseline_ae.SelectiveMahalanobis("batch", batch_size=10).fit(errors, is_target)
    np.testing.assert_allclose(whole.cov_source_, np.cov(errors[~is_target], rowvar=False))
    full = baseline_ae.SelectiveMahalanobis("full").fit(errors, is_target)
    np.testing.assert_allclose(full.cov_target_, np.cov(errors[is_target], rowvar=False))


def test_no_target_vectors_use_the_source_covariance_and_singular_ones_a_pseudo_inverse():
    rng = np.random.default_rng(1)
    errors = rng.normal(size=(50, 4))
    scorer = baseline_ae.SelectiveMahalanobis("full").fit(errors, np.zeros(50, bool))
    np.testing.assert_array_equal(scorer.cov_target_, scorer.cov_source_)
    # 3 target vectors in 4 dimensions: rank 2, finite scores, nothing counted off the span
    is_target = np.zeros(50, bool)
    is_target[:3] = True
    scorer = baseline_ae.SelectiveMahalanobis("full").fit(errors, is_target)
    assert np.isfinite(scorer.precision_target_).all()
    null = np.linalg.svd(errors[:3] - errors[:3].mean(0))[2][-1]  # orthogonal to the spread
    assert null @ scorer.precision_target_ @ null == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="source-domain"):
        baseline_ae.SelectiveMahalanobis("full").fit(errors, np.ones(50, bool))


# --- (b) training ---------------------------------------------------------------------------------


def low_rank_vectors(n=600, dim=640, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)) @ rng.normal(size=(6, dim)) + 0.3 * rng.normal(size=(n, dim)) - 5
    return x.astype(np.float32), rng.random(n) < 0.2


def test_training_reduces_the_reconstruction_loss_and_is_seeded(tmp_path):
    vectors, is_target = low_rank_vectors()
    settings = baseline_ae.AESettings(epochs=10, batch_size=32, seed=1)
    log = tmp_path / "metrics.jsonl"
    model, train_idx = baseline_ae.train_autoencoder(
        vectors, is_target, settings, metrics_path=log, progress=False
    )
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(1, 11))
    assert lines[-1]["loss"] < 0.25 * lines[0]["loss"]  # about 27 -> 4
    assert lines[-1]["val_loss"] < 0.5 * lines[0]["val_loss"]  # held-out vectors: 31 -> 10
    assert len(train_idx) == 600 - 60  # validation_split 0.1
    again, _ = baseline_ae.train_autoencoder(vectors, is_target, settings, progress=False)
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_killed_training_resumes_from_its_last_epoch(tmp_path, monkeypatch):
    vectors, is_target = low_rank_vectors(n=200)
    settings = baseline_ae.AESettings(epochs=4, batch_size=32)
    straight, _ = baseline_ae.train_autoencoder(vectors, is_target, settings, progress=False)
    batches = baseline_ae.epoch_batches

    def killed_at_epoch_3(indices, batch_size, seed, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return batches(indices, batch_size, seed, epoch)

    resume = tmp_path / "model.resume.pt"
    monkeypatch.setattr(baseline_ae, "epoch_batches", killed_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        baseline_ae.train_autoencoder(vectors, is_target, settings, resume, progress=False)
    monkeypatch.setattr(baseline_ae, "epoch_batches", batches)
    assert torch.load(resume, weights_only=True)["epoch"] == 2
    resumed, _ = baseline_ae.train_autoencoder(vectors, is_target, settings, resume, progress=False)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_every_parameter_gets_a_gradient_and_shapes_hold():
    model = baseline_ae.DenseAE(baseline_ae.AEConfig()).train()
    x = torch.randn(16, 640)
    z = model.forward_encoder(x)
    assert z.shape == (16, 8) and model(x).shape == (16, 640)
    (model(x) - x).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    n_norm = sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    assert (n_linear, n_norm) == (10, 9)


# --- one machine type end to end, and bad input ---------------------------------------------------


def write_machine(root, lengths=(1.0, 1.5), sr_of_first=8000):
    """A DCASE-like machine type: clip lengths vary, one clip at another sample rate."""
    rows = []
    for split, domain, label, count in [
        ("train", "source", "normal", 10),
        ("train", "target", "normal", 3),
        ("test", "source", "normal", 3),
        ("test", "source", "anomaly", 3),
        ("test", "target", "normal", 3),
        ("test", "target", "anomaly", 3),
    ]:
        for i in range(count):
            name = f"section_00_{domain}_{split}_{label}_{i:04d}.wav"
            sr = sr_of_first if not rows else SR
            path = write_clip(root / name, lengths[i % 2], len(rows), sr=sr)
            rows.append(dict(file=str(path), machine_type="pump", split=split, domain=domain,
                             label=label))  # fmt: skip
    table = pd.DataFrame(rows)
    out = root / "features"
    out.mkdir()
    for split in ("train", "test"):
        table[table["split"] == split].to_csv(out / f"{split}.csv", index=False)
    return out


def test_run_machine_writes_both_submissions_and_a_self_describing_model(tmp_path):
    features_dir = write_machine(tmp_path)
    out = {mode: tmp_path / mode for mode in baseline_ae.MODES}
    settings = baseline_ae.AESettings(epochs=2, batch_size=64)
    scores = baseline_ae.run_machine(features_dir, out, tmp_path / "ae/model.pt", settings, False)
    test = features.read_index(features_dir / "test.csv")
    for mode in baseline_ae.MODES:
        written = pd.read_csv(out[mode] / "anomaly_score_pump_section_00_test.csv", header=None)
        assert written[0].tolist() == [p.rsplit("/", 1)[1] for p in test["file"]]
        np.testing.assert_allclose(written[1], scores[mode])
        decisions = pd.read_csv(out[mode] / "decision_result_pump_section_00_test.csv", header=None)
        assert set(decisions[1]) <= {0, 1}
    model, state = baseline_ae.load_model(tmp_path / "ae/model.pt")
    assert state["settings"] == settings.__dict__ and set(state["thresholds"]) == {"mse", "maha"}
    assert state["cov_source"].shape == (640, 640)
    # 1 s -> 28 vectors, 1.5 s -> 43: 10 source clips hold 5 * 28 + 5 * 43 vectors
    assert state["vectors"] == {"source": 355, "target": 2 * 28 + 43}
    assert not (tmp_path / "ae/model.resume.pt").exists()
    lines = (tmp_path / "ae/model.metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2


@pytest.mark.parametrize("damage", ["missing", "garbage", "too_short"])
def test_a_bad_wav_is_an_error_naming_the_file(tmp_path, damage, capsys):
    features_dir = write_machine(tmp_path)
    bad = pd.read_csv(features_dir / "train.csv")["file"].iloc[4]
    if damage == "missing":
        (tmp_path / bad).unlink()
    elif damage == "garbage":
        (tmp_path / bad).write_bytes(b"RIFF but not a wav file")
    else:
        sf.write(bad, np.zeros(1500), SR)  # 3 frames, fewer than the 5 of one vector
    settings = baseline_ae.AESettings(epochs=1)
    with pytest.raises(features.AudioError, match=re.escape(bad)):
        baseline_ae.run_machine(features_dir, {"mse": tmp_path, "maha": tmp_path},
                                tmp_path / "model.pt", settings, False)  # fmt: skip
    code = cli.main(
        ["baseline-ae", "--features-dir", str(features_dir), "--settings", '{"epochs": 1}',
         "--out-mse", str(tmp_path / "a"), "--out-maha", str(tmp_path / "b"),
         "--model", str(tmp_path / "m.pt"), "--quiet"]
    )  # fmt: skip
    assert code == 1 and bad in capsys.readouterr().err


def test_unknown_or_bad_settings_are_errors():
    with pytest.raises(ValueError, match="epoch"):
        from_mapping(baseline_ae.AESettings, {"epoch": 3})
    with pytest.raises(ValueError, match="covariance"):
        baseline_ae.AESettings(covariance="diagonal")
