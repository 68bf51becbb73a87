"""Log-mel cache: the EAT front end, bad audio, atomic cache files, normalisation statistics."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as kaldi

from asdflow import features

SR = 16000


def tone(seconds=1.0, sr=SR, f=440.0, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * f * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write(path, data, sr=SR, subtype="FLOAT"):
    sf.write(path, data, sr, subtype=subtype)
    return path


def test_logmel_matches_eat_reference_call(tmp_path):
    settings = features.FbankSettings(n_frames=112)
    path = write(tmp_path / "a.wav", tone(1.0) + 0.1)
    got, valid = features.clip_features(path, settings)
    wav = torch.from_numpy(sf.read(path, dtype="float32")[0])
    ref = kaldi.fbank(
        (wav - wav.mean()).unsqueeze(0),
        htk_compat=True,
        sample_frequency=16000,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=128,
        dither=0.0,
        frame_shift=10,
    )
    assert valid == ref.shape[0] == 98
    assert got.shape == (112, 128)
    np.testing.assert_allclose(got[:98], ref.numpy(), rtol=1e-5, atol=1e-5)
    assert np.all(got[98:] == 0)  # zero padding at the end of time


def test_ten_second_clip_gives_998_frames_truncated_to_setting(tmp_path):
    path = write(tmp_path / "a.wav", tone(10.0))
    got, valid = features.clip_features(path, features.FbankSettings(n_frames=512))
    assert got.shape == (512, 128) and valid == 512
    full, valid = features.clip_features(path, features.FbankSettings(n_frames=1024))
    assert valid == 998
    np.testing.assert_array_equal(full[:512], got)


def test_wrong_sample_rate_is_resampled(tmp_path):
    a = write(tmp_path / "16k.wav", tone(1.0, SR))
    b = write(tmp_path / "32k.wav", tone(1.0, 32000), sr=32000)
    settings = features.FbankSettings(n_frames=112)
    x, nx = features.clip_features(a, settings)
    y, ny = features.clip_features(b, settings)
    assert nx == ny
    assert np.abs(x - y)[:nx, :100].mean() < 0.5  # the same tone after resampling


def test_stereo_is_mixed_down_or_channel_selected(tmp_path):
    left, right = tone(1.0, f=300), tone(1.0, f=3000)
    path = write(tmp_path / "st.wav", np.stack([left, right], axis=1))
    mono = write(tmp_path / "mix.wav", (left + right) / 2)
    s = dict(n_frames=112)
    mixed, _ = features.clip_features(path, features.FbankSettings(**s))
    ref, _ = features.clip_features(mono, features.FbankSettings(**s))
    np.testing.assert_allclose(mixed, ref, atol=1e-3)
    only_left, _ = features.clip_features(path, features.FbankSettings(channel="left", **s))
    ref_left, _ = features.clip_features(
        write(tmp_path / "l.wav", left), features.FbankSettings(**s)
    )
    np.testing.assert_allclose(only_left, ref_left, atol=1e-4)


def test_too_short_clip_is_padded(tmp_path):
    path = write(tmp_path / "short.wav", tone(0.01))
    x, valid = features.clip_features(path, features.FbankSettings(n_frames=32))
    assert x.shape == (32, 128) and valid == 1
    assert np.all(x[1:] == 0)


def test_empty_and_corrupt_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), SR)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    settings = features.FbankSettings(n_frames=32)
    with pytest.raises(features.AudioError, match="empty.wav.*no samples"):
        features.clip_features(empty, settings)
    with pytest.raises(features.AudioError, match="corrupt.wav"):
        features.clip_features(corrupt, settings)


@pytest.mark.parametrize("subtype, channels", [("PCM_16", 1), ("FLOAT", 2)])
def test_truncated_wav_is_an_error_naming_the_file_and_lengths(tmp_path, subtype, channels):
    whole = write(tmp_path / "whole.wav", tone(1.0, channels=channels), subtype=subtype)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:1000])
    settings = features.FbankSettings(n_frames=32)
    with pytest.raises(
        features.AudioError, match=r"cut.wav: truncated wav.* 16000 samples.* holds"
    ):
        features.clip_features(cut, settings)
    features.clip_features(whole, settings)  # the whole file is fine


def test_silent_clips_are_counted_in_a_warning(tmp_path):
    paths = [
        str(write(tmp_path / "a.wav", tone(0.5))),
        str(write(tmp_path / "z.wav", np.zeros(8000))),
    ]
    clips = pd.DataFrame({"file": paths, "split": "train"})
    with pytest.warns(UserWarning, match=r"fan \(train\): 1 of 2 clips are digital silence"):
        features.cache_split(
            clips,
            tmp_path / "fan/train.npy",
            tmp_path / "fan/train.csv",
            features.FbankSettings(n_frames=32),
            False,
        )


def test_cache_machine_prints_clip_counts_per_split(tmp_path, capsys):
    paths = [str(write(tmp_path / f"{i}.wav", tone(0.2, f=300 + i))) for i in range(3)]
    clips = pd.DataFrame({"file": paths, "split": ["train", "train", "test"]})
    features.cache_machine(clips, tmp_path / "fan", features.FbankSettings(n_frames=16), False)
    assert "train 2, test 1, supplemental 0 clips" in capsys.readouterr().out


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="multiple of 16"):
        features.FbankSettings(n_frames=100)
    with pytest.raises(ValueError, match="channel"):
        features.FbankSettings(channel="both")


def test_cache_split_writes_memmap_and_index_atomically(tmp_path):
    paths = [str(write(tmp_path / f"c{i}.wav", tone(0.5, f=200 + 100 * i))) for i in range(3)]
    clips = pd.DataFrame({"file": paths, "split": "train", "label": "normal", "section": "00"})
    settings = features.FbankSettings(n_frames=64)
    features.cache_split(
        clips, tmp_path / "out/train.npy", tmp_path / "out/train.csv", settings, False
    )
    array = features.open_cache(tmp_path / "out/train.npy")
    index = features.read_index(tmp_path / "out/train.csv")
    assert array.shape == (3, 64, 128) and array.dtype == np.float32
    assert list(index["file"]) == paths and list(index["n_frames"]) == [48, 48, 48]
    assert index["section"].iloc[0] == "00"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train.csv", "train.npy"]


def test_interrupted_cache_leaves_no_complete_looking_output(tmp_path):
    good = str(write(tmp_path / "good.wav", tone(0.5)))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    clips = pd.DataFrame({"file": [good, str(bad)], "split": "train"})
    with pytest.raises(features.AudioError, match="bad.wav"):
        features.cache_split(
            clips,
            tmp_path / "o/train.npy",
            tmp_path / "o/train.csv",
            features.FbankSettings(n_frames=64),
            False,
        )
    assert not (tmp_path / "o/train.npy").exists() and not (tmp_path / "o/train.csv").exists()


def test_norm_stats_use_unpadded_frames_only(tmp_path):
    paths = [str(write(tmp_path / f"c{i}.wav", tone(0.3 + 0.2 * i))) for i in range(2)]
    clips = pd.DataFrame({"file": paths, "split": "train"})
    settings = features.FbankSettings(n_frames=96)
    features.cache_split(clips, tmp_path / "train.npy", tmp_path / "train.csv", settings, False)
    stats = features.compute_norm_stats([tmp_path / "train"])
    frames = np.concatenate(
        [
            features.clip_features(p, settings)[0][: features.clip_features(p, settings)[1]]
            for p in paths
        ]
    )
    assert stats.mean == pytest.approx(frames.mean(), rel=1e-5)
    assert stats.std == pytest.approx(frames.std(), rel=1e-4)
    stats.save(tmp_path / "s.json")
    assert features.NormStats.load(tmp_path / "s.json") == stats
    assert json.loads((tmp_path / "s.json").read_text())["source"] == "train"
    np.testing.assert_allclose(stats.apply(np.array([stats.mean + 2 * stats.std])), [1.0])
