"""The official DCASE 2023-2025 Task 2 baseline: a dense autoencoder on stacked log-mel frames,
scored by reconstruction error (MSE) or by the selective Mahalanobis distance of that error.

Follows nttcslab/dcase2023_task2_baseline_ae (common.py, datasets/, networks/dcase2023t2_ae/,
networks/criterion/mahala.py, baseline.yaml); the README says where this code departs from it.
One machine type per call: the autoencoder trains on its normal training clips (both domains),
then writes the DCASE submission files of both scores.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from asdflow import features, metrics

# The public feature extractor floors mel energies here before the log (sys.float_info.epsilon).
MEL_FLOOR = sys.float_info.epsilon
MODES = ("mse", "maha")
FORMAT = "asdflow-dcase-ae"


@dataclass(frozen=True)
class AESettings:
    """Front end, training and scoring of the baseline; defaults are the public baseline.yaml."""

    # front end: librosa.feature.melspectrogram defaults with these values (common.py)
    sample_rate: int = 16000
    channel: str = "mix"
    n_mels: int = 128
    frames: int = 5  # consecutive frames stacked into one vector
    n_fft: int = 1024
    hop_length: int = 512
    power: float = 2.0
    # training: Adam, shuffled mini-batches of vectors, a random share held out for validation
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1.0e-3
    validation_split: float = 0.1
    seed: int = 0
    # "batch": the public code's covariance, scatter of each mini-batch around its own mean;
    # "full": the sample covariance around the mean of all training vectors
    covariance: str = "batch"
    decision_quantile: float = 0.9

    def __post_init__(self):
        if self.covariance not in ("batch", "full"):
            raise ValueError(f"Unsupported covariance {self.covariance!r}: use 'batch' or 'full'")
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {self.validation_split}")
        if self.frames < 1 or self.batch_size < 2 or self.epochs < 1:
            raise ValueError("frames >= 1, batch_size >= 2 and epochs >= 1 are required")

    @property
    def input_dim(self) -> int:
        return self.n_mels * self.frames


# --- front end ----------------------------------------------------------------------------------


class MelFrontEnd:
    """Waveform -> log-mel -> stacked frame vectors, as the public `file_to_vectors`.

    torchaudio's MelSpectrogram with Slaney mel scale and Slaney area norm builds the same
    filters as librosa's default `filters.mel`; periodic Hann window, centred frames padded with
    zeros (librosa >= 0.10). Computed in float64, vectors returned in float32: torchaudio builds
    the filters in the default dtype, and in float32 the narrow low filters (about one FFT bin
    wide) come out up to 1e-4 dB off librosa's, which builds them in float64.
    """

    def __init__(self, settings: AESettings):
        import torchaudio

        self.settings = settings
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=settings.sample_rate,
            n_fft=settings.n_fft,
            hop_length=settings.hop_length,
            f_min=0.0,
            f_max=None,
            n_mels=settings.n_mels,
            power=settings.power,
            center=True,
            pad_mode="constant",
            norm="slaney",
            mel_scale="slaney",
        ).to(torch.float64)
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            filters = torchaudio.functional.melscale_fbanks(
                1 + settings.n_fft // 2,
                0.0,
                settings.sample_rate / 2,
                settings.n_mels,
                settings.sample_rate,
                norm="slaney",
                mel_scale="slaney",
            )  # (n_freqs, n_mels)
        finally:
            torch.set_default_dtype(default)
        self.mel.mel_scale.fb.copy_(filters)
        self.audio = features.FbankSettings(
            sample_rate=settings.sample_rate, channel=settings.channel
        )

    def log_mel(self, wav: torch.Tensor) -> np.ndarray:
        """(N,) waveform -> (T, n_mels) float64 log-mel energies in dB (T = 1 + N // hop)."""
        with torch.no_grad():
            mel = self.mel(wav.to(torch.float64))  # (n_mels, T)
        scale = 20.0 / self.settings.power  # 10 log10 of power, 20 log10 of magnitude
        return (scale * torch.log10(torch.clamp(mel, min=MEL_FLOOR))).T.numpy()

    def clip_vectors(self, path: str | Path) -> np.ndarray:
        """(T - frames + 1, frames * n_mels) float32 vectors of one wav file; vector t holds
        frames t .. t + frames - 1, each n_mels wide, earliest first."""
        logmel = self.log_mel(features.load_audio(path, self.audio))
        if logmel.shape[0] < self.settings.frames:
            raise features.AudioError(
                f"{path}: {logmel.shape[0]} log-mel frames, fewer than the "
                f"{self.settings.frames} one vector stacks"
            )
        return stack_frames(logmel, self.settings.frames).astype(np.float32)


def stack_frames(logmel: np.ndarray, frames: int) -> np.ndarray:
    """(T, F) -> (T - frames + 1, frames * F): each row concatenates `frames` consecutive rows."""
    windows = np.lib.stride_tricks.sliding_window_view(logmel, frames, axis=0)  # (V, F, frames)
    return windows.transpose(0, 2, 1).reshape(windows.shape[0], -1)


# --- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AEConfig:
    """networks/dcase2023t2_ae/network.py: 4 hidden layers of 128, bottleneck 8, mirrored."""

    input_dim: int = 640
    hidden_dim: int = 128
    hidden_layers: int = 4
    bottleneck_dim: int = 8
    # the public BatchNorm1d settings (Keras' defaults: momentum 0.99 = torch's 0.01)
    bn_momentum: float = 0.01
    bn_eps: float = 1e-3


def _dense_block(n_in: int, n_out: int, config: AEConfig) -> list[nn.Module]:
    return [
        nn.Linear(n_in, n_out),
        nn.BatchNorm1d(n_out, momentum=config.bn_momentum, eps=config.bn_eps),
        nn.ReLU(),
    ]


class DenseAE(nn.Module):
    """Linear + BatchNorm + ReLU blocks down to the bottleneck and back; a plain Linear output."""

    def __init__(self, config: AEConfig):
        super().__init__()
        self.config = config
        widths = [config.input_dim] + [config.hidden_dim] * config.hidden_layers
        widths.append(config.bottleneck_dim)  # e.g. 640, 128, 128, 128, 128, 8
        self.encoder = nn.Sequential(
            *[m for a, b in pairwise(widths) for m in _dense_block(a, b, config)]
        )
        back = widths[::-1][:-1]  # 8, 128, 128, 128, 128
        self.decoder = nn.Sequential(
            *[m for a, b in pairwise(back) for m in _dense_block(a, b, config)],
            nn.Linear(config.hidden_dim, config.input_dim),
        )

    def forward_encoder(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, D) -> (B, bottleneck)

    def forward_decoder(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, bottleneck) -> (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_decoder(self.forward_encoder(x))  # (B, D) reconstruction


def reconstruction_errors(
    model: DenseAE, vectors: np.ndarray, batch_size: int = 4096
) -> np.ndarray:
    """(N, D) float32 vectors -> (N, D) float32 errors `x - reconstruction` (BatchNorm in eval)."""
    model.eval()
    out = np.empty_like(vectors, dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(vectors), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(vectors[start : start + batch_size]))
            out[start : start + len(x)] = (x - model(x)).numpy()
    return out


# --- scores -------------------------------------------------------------------------------------


def mse_score(errors: np.ndarray) -> float:
    """MSE mode: mean squared reconstruction error over the clip's vectors and dimensions."""
    return float(np.mean(np.square(errors, dtype=np.float64)))


class SelectiveMahalanobis:
    """Covariances of the reconstruction errors of source and of target training vectors; a
    clip's score is the smaller squared Mahalanobis norm of its mean error under the two.

    The public scorer takes the mean of `E P E^T` over all pairs of the clip's error vectors E
    (networks/criterion/mahala.py), which equals `e P e^T` for the clip's mean error e.
    `centering="batch"` reproduces its covariance: shuffled mini-batches of `batch_size`, each
    domain's part of a batch centred on its own mean, scatter summed and divided by the number
    of vectors minus one; batches of one vector are skipped, as in training. "full" centres all
    vectors of a domain on their mean (numpy.cov). Without target vectors the target covariance
    is the source one. Precisions are pseudo-inverses: a domain with fewer vectors than
    dimensions (the demo's eight target clips) has a singular covariance, and its null space
    then does not count.
    """

    def __init__(self, centering: str = "batch", batch_size: int = 256, seed: int = 0):
        self.centering = centering
        self.batch_size = batch_size
        self.seed = seed

    def _scatter(self, errors: np.ndarray, is_target: np.ndarray) -> tuple[list, list]:
        """Summed scatter matrices (float64) and vector counts of the source and target domain."""
        dim = errors.shape[1]
        scatter, count = [np.zeros((dim, dim)), np.zeros((dim, dim))], [0, 0]
        if self.centering == "full":
            batches = [np.arange(len(errors))]
        elif self.centering == "batch":
            order = np.random.default_rng([self.seed, 1]).permutation(len(errors))
            batches = [
                order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)
            ]
        else:
            raise ValueError(f"Unsupported centering {self.centering!r}: use 'batch' or 'full'")
        for batch in batches:
            if len(batch) <= 1:
                continue
            for domain, part in enumerate((batch[~is_target[batch]], batch[is_target[batch]])):
                if len(part) == 0:
                    continue
                centred = errors[part].astype(np.float64)
                centred -= centred.mean(axis=0)
                scatter[domain] += centred.T @ centred
                count[domain] += len(part)
        return scatter, count

    def fit(self, errors: np.ndarray, is_target: np.ndarray) -> SelectiveMahalanobis:
        """errors (N, D) of the training vectors, is_target (N,) bool."""
        is_target = np.asarray(is_target, dtype=bool)
        scatter, count = self._scatter(np.asarray(errors), is_target)
        if count[0] < 2:
            raise ValueError(f"{count[0]} source-domain error vectors: a covariance needs two")
        self.cov_source_ = scatter[0] / (count[0] - 1)
        self.cov_target_ = scatter[1] / (count[1] - 1) if count[1] >= 2 else self.cov_source_
        self.n_vectors_ = tuple(count)
        # rtol: far below any eigenvalue ratio float32 errors can resolve, far above rounding
        self.precision_source_ = np.linalg.pinv(self.cov_source_, rtol=1e-10, hermitian=True)
        self.precision_target_ = np.linalg.pinv(self.cov_target_, rtol=1e-10, hermitian=True)
        return self

    def score(self, errors: np.ndarray) -> float:
        """(V, D) error vectors of one clip -> min over domains of e P e^T, e their mean."""
        e = np.asarray(errors, dtype=np.float64).mean(axis=0)
        return float(min(e @ self.precision_source_ @ e, e @ self.precision_target_ @ e))


# --- training -----------------------------------------------------------------------------------


class NonFiniteLoss(RuntimeError):
    pass


def split_vectors(n: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) vector indices: a random share held out, as sklearn's
    train_test_split(test_size=share) in the public loader (ceil of the share)."""
    order = np.random.default_rng([seed, 0]).permutation(n)
    n_val = math.ceil(validation_split * n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def epoch_batches(indices: np.ndarray, batch_size: int, seed: int, epoch: int) -> list:
    """Shuffled mini-batches of one epoch, drawn from (seed, epoch) alone so a resumed run sees
    the batches an uninterrupted one would."""
    order = indices[np.random.default_rng([seed, 2, epoch]).permutation(len(indices))]
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def train_autoencoder(
    vectors: np.ndarray,
    is_target: np.ndarray,
    settings: AESettings,
    resume_path: Path | None = None,
    metrics_path: Path | None = None,
    progress: bool = True,
) -> tuple[DenseAE, np.ndarray]:
    """Train the autoencoder on (N, D) vectors; returns it and the indices it trained on.

    Adam at a constant lr, mean squared error; batches of one vector are skipped (BatchNorm).
    One JSON line per epoch goes to `metrics_path`; `resume_path` holds model, optimizer and
    epoch after every epoch, and a run with the same settings continues from it.
    """
    torch.manual_seed(settings.seed)
    model = DenseAE(AEConfig(input_dim=vectors.shape[1]))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    train_idx, val_idx = split_vectors(len(vectors), settings.validation_split, settings.seed)
    start = _resume(model, optimizer, resume_path, settings)
    bar = tqdm(
        range(start, settings.epochs), initial=start, total=settings.epochs, disable=not progress
    )
    for epoch in bar:
        tick = time.perf_counter()
        model.train()
        losses, source_sq, target_sq = [], [0.0, 0], [0.0, 0]
        for batch in epoch_batches(train_idx, settings.batch_size, settings.seed, epoch):
            if len(batch) <= 1:
                continue
            x = torch.from_numpy(vectors[batch])  # (B, D)
            per_vector = (model(x) - x).square().mean(dim=1)  # (B,)
            loss = per_vector.mean()
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"loss not finite at epoch {epoch + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            target = torch.from_numpy(is_target[batch])
            for acc, mask in ((source_sq, ~target), (target_sq, target)):
                acc[0] += float(per_vector.detach()[mask].sum())
                acc[1] += int(mask.sum())
        line = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "loss_source": source_sq[0] / max(source_sq[1], 1),
            "loss_target": target_sq[0] / max(target_sq[1], 1) if target_sq[1] else None,
            "val_loss": (
                mse_score(reconstruction_errors(model, vectors[val_idx])) if len(val_idx) else None
            ),
            "seconds": time.perf_counter() - tick,
        }
        if metrics_path is not None:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(line) + "\n")
        bar.set_postfix(loss=f"{line['loss']:.3f}")
        if resume_path is not None:
            _save(
                resume_path,
                _state(model, settings, optimizer=optimizer.state_dict(), epoch=epoch + 1),
            )
    model.eval()
    return model, train_idx


def _state(model: DenseAE, settings: AESettings, **extra) -> dict:
    return {
        "format": FORMAT,
        "model": {"name": "dcase2023t2_ae", "config": asdict(model.config)},
        "weights": model.state_dict(),
        "settings": asdict(settings),
        **extra,
    }


def _save(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume(model, optimizer, path: Path | None, settings: AESettings) -> int:
    """Epochs already done by a resume file made with the same settings, else 0."""
    if path is None or not Path(path).is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("settings") != asdict(settings):
        print(f"{path}: made with other settings, starting afresh")
        return 0
    model.load_state_dict(state["weights"])
    optimizer.load_state_dict(state["optimizer"])
    print(f"{path}: resuming after epoch {state['epoch']}")
    return int(state["epoch"])


def load_model(path: str | Path) -> tuple[DenseAE, dict]:
    """The autoencoder of a `model.pt` written by `run_machine`, in eval mode, and its state."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a DCASE autoencoder checkpoint")
    model = DenseAE(AEConfig(**state["model"]["config"]))
    model.load_state_dict(state["weights"])
    return model.eval(), state


# --- one machine type ---------------------------------------------------------------------------


def clip_table_vectors(
    front_end: MelFrontEnd, clips: pd.DataFrame, desc: str, progress: bool = True
) -> list[np.ndarray]:
    """The (V_i, D) vectors of each clip of a clip table (its `file` column); clip lengths may
    differ."""
    files = tqdm(clips["file"], desc=desc, disable=not progress)
    return [front_end.clip_vectors(path) for path in files]


def score_clips(
    model: DenseAE, scorer: SelectiveMahalanobis, clips: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """Both modes' scores of clips given as lists of vectors."""
    scores = {mode: np.empty(len(clips)) for mode in MODES}
    for i, vectors in enumerate(clips):
        errors = reconstruction_errors(model, vectors)
        scores["mse"][i] = mse_score(errors)
        scores["maha"][i] = scorer.score(errors)
    return scores


def run_machine(
    features_dir: Path,
    out_dirs: dict[str, Path],
    model_path: Path,
    settings: AESettings,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Train on one machine type's normal training clips, fit the Mahalanobis statistics, write
    the submission files of each mode to `out_dirs[mode]` and the model to `model_path`.

    The clips are the wav files the features stage indexed (`<features_dir>/{train,test}.csv`).
    Decision thresholds: the `decision_quantile` of a gamma fitted to the training clips' scores.
    Returns the test scores of each mode.
    """
    features_dir, model_path = Path(features_dir), Path(model_path)
    train = features.read_index(features_dir / "train.csv")
    test = features.read_index(features_dir / "test.csv")
    train = train[train["label"] == "normal"].reset_index(drop=True)
    if train.empty or test.empty:
        raise ValueError(f"{features_dir}: no normal training clips or no test clips")
    machine_type = str(train["machine_type"].iloc[0])
    front_end = MelFrontEnd(settings)
    train_clips = clip_table_vectors(front_end, train, f"{machine_type} train", progress)
    vectors = np.concatenate(train_clips)  # (N, D)
    clip_is_target = (train["domain"] == "target").to_numpy()
    is_target = np.repeat(clip_is_target, [len(v) for v in train_clips])

    resume_path = model_path.with_name(model_path.stem + ".resume.pt")
    metrics_path = model_path.with_name(model_path.stem + ".metrics.jsonl")
    model_path.parent.mkdir(parents=True, exist_ok=True)
    if not resume_path.exists():
        metrics_path.unlink(missing_ok=True)
    model, train_idx = train_autoencoder(
        vectors, is_target, settings, resume_path, metrics_path, progress
    )
    # the public code fits the covariances on the training part of the split only
    errors = reconstruction_errors(model, vectors[train_idx])
    scorer = SelectiveMahalanobis(settings.covariance, settings.batch_size, settings.seed)
    scorer.fit(errors, is_target[train_idx])
    del errors

    train_scores = score_clips(model, scorer, train_clips)
    test_scores = score_clips(
        model, scorer, clip_table_vectors(front_end, test, f"{machine_type} test", progress)
    )
    names = [Path(f).name for f in test["file"]]
    thresholds = {}
    for mode in MODES:
        thresholds[mode] = metrics.gamma_threshold(train_scores[mode], settings.decision_quantile)
        decisions = (test_scores[mode] > thresholds[mode]).astype(int)
        metrics.write_submission(out_dirs[mode], machine_type, names, test_scores[mode], decisions)
    state = _state(
        model,
        settings,
        cov_source=torch.from_numpy(scorer.cov_source_),
        cov_target=torch.from_numpy(scorer.cov_target_),
        thresholds=thresholds,
        vectors={"source": int((~is_target).sum()), "target": int(is_target.sum())},
    )
    _save(model_path, state)
    resume_path.unlink(missing_ok=True)
    return test_scores
