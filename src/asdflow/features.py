"""Log-mel cache: Kaldi fbank features of every clip, computed once and memory-mapped by later
stages.

The cache holds raw log-mel energies (zero-padded at the end, as EAT pads before normalising); the
normalisation statistics live beside it in a small JSON file and are applied when the cache is read,
so a new machine type adds only its own arrays.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

if TYPE_CHECKING:
    import torch

# torch and torchaudio are imported where fbank is computed: stages that only read the cache
# (metrics, tables) start faster without them.

SPLITS = ("train", "test", "supplemental")
# AudioSet statistics of the official EAT weights (its feature extraction normalises with them).
AUDIOSET_MEAN = -4.268
AUDIOSET_STD = 4.569


@dataclass(frozen=True)
class FbankSettings:
    """The EAT front end (Kaldi fbank, 128 mel bins, 25 ms / 10 ms frames); `n_frames`: padded or
    truncated length, a multiple of 16."""

    sample_rate: int = 16000
    n_mels: int = 128
    n_frames: int = 1024
    channel: str = "mix"  # "mix" averages channels; "left"/"right" pick one (DCASE 2026 stereo)

    def __post_init__(self):
        if self.n_frames <= 0 or self.n_frames % 16:
            raise ValueError(f"n_frames must be a positive multiple of 16, got {self.n_frames}")
        if self.channel not in ("mix", "left", "right"):
            raise ValueError(f"Unsupported channel {self.channel!r}: use 'mix', 'left' or 'right'")


@dataclass(frozen=True)
class NormSettings:
    """How log-mel values are normalised (the `features` section): "train" computes the mean and
    std of the training clips; "fixed" takes fixed_mean and fixed_std (by default the AudioSet
    statistics official EAT weights were trained with)."""

    normalization: str = "train"
    fixed_mean: float = AUDIOSET_MEAN
    fixed_std: float = AUDIOSET_STD

    def __post_init__(self):
        if self.normalization not in ("train", "fixed"):
            raise ValueError(
                f"Unsupported normalization {self.normalization!r}: 'train' or 'fixed'"
            )
        if self.fixed_std <= 0:
            raise ValueError(f"fixed_std must be positive, got {self.fixed_std}")


class AudioError(ValueError):
    """A wav file that cannot be used; the message names the file."""


def check_wav_length(path: str | Path) -> None:
    """Raise AudioError when a RIFF/WAVE file's data chunk declares more bytes than the file holds.

    libsndfile reads a truncated wav without complaint (it clamps the length to the bytes that are
    there), so a clip cut short by an interrupted copy would be cached as a shorter clip.
    Files that are not RIFF/WAVE, and streaming headers that leave the size unset (0 or
    0xFFFFFFFF, as RF64 does), are left to soundfile.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        block_align = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return  # no data chunk: soundfile reports it
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"fmt " and chunk_size >= 14:
                fmt = f.read(chunk_size)
                block_align = struct.unpack("<H", fmt[12:14])[0]
                if chunk_size % 2:
                    f.seek(1, os.SEEK_CUR)
                continue
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return
                held = size - f.tell()
                if held < chunk_size:
                    unit, scale = ("samples", block_align) if block_align else ("bytes", 1)
                    raise AudioError(
                        f"{path}: truncated wav: the header declares {chunk_size // scale} "
                        f"{unit} of audio, the file holds {held // scale}"
                    )
                return
            f.seek(chunk_size + chunk_size % 2, os.SEEK_CUR)


def load_audio(path: str | Path, settings: FbankSettings) -> torch.Tensor:
    """Read a wav file as a mono float waveform (N,) at `settings.sample_rate`."""
    import torch
    import torchaudio.functional as AF

    try:
        check_wav_length(path)
    except OSError as err:
        raise AudioError(f"{path}: cannot read audio ({err})") from err
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    except Exception as err:  # soundfile raises several types for corrupt input
        raise AudioError(f"{path}: cannot read audio ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: the audio contains NaN or infinite samples")
    if settings.channel == "mix" or data.shape[1] == 1:
        mono = data.mean(axis=1)
    else:
        mono = data[:, 0 if settings.channel == "left" else 1]
    wav = torch.from_numpy(np.ascontiguousarray(mono))
    if sr != settings.sample_rate:
        wav = AF.resample(wav, sr, settings.sample_rate)
    return wav


def logmel(wav: torch.Tensor, settings: FbankSettings) -> torch.Tensor:
    """Kaldi fbank of a mono waveform (N,) -> (T, n_mels), exactly as EAT computes it."""
    import torch
    import torchaudio.compliance.kaldi as kaldi

    wav = wav - wav.mean()
    min_samples = int(0.025 * settings.sample_rate)  # one 25 ms window
    if wav.numel() < min_samples:
        wav = torch.nn.functional.pad(wav, (0, min_samples - wav.numel()))
    return kaldi.fbank(
        wav.unsqueeze(0),
        htk_compat=True,
        sample_frequency=settings.sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=settings.n_mels,
        dither=0.0,
        frame_shift=10,
    )


def fit_length(fbank: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Zero-pad at the end of time, or keep the first `n_frames` frames: (T, F) -> (n_frames, F)."""
    import torch

    t = fbank.shape[0]
    if t >= n_frames:
        return fbank[:n_frames]
    return torch.nn.functional.pad(fbank, (0, 0, 0, n_frames - t))


def clip_features(path: str | Path, settings: FbankSettings) -> tuple[np.ndarray, int]:
    """(n_frames, n_mels) float32 log-mel of one file, and its frame count before padding."""
    features, frames, _ = _clip_features(path, settings)
    return features, frames


def _clip_features(path: str | Path, settings: FbankSettings) -> tuple[np.ndarray, int, bool]:
    """clip_features, and whether the clip is digital silence (every sample zero)."""
    wav = load_audio(path, settings)
    fb = logmel(wav, settings)
    frames = int(min(fb.shape[0], settings.n_frames))
    return fit_length(fb, settings.n_frames).numpy(), frames, not bool(wav.abs().max() > 0)


def cache_split(
    clips: pd.DataFrame,
    out_npy: Path,
    out_csv: Path,
    settings: FbankSettings,
    progress: bool = True,
) -> None:
    """Write the (N, n_frames, n_mels) float32 array of `clips` and its index CSV.

    Both are written under temporary names and renamed at the end, so an interrupted run never
    leaves a cache that looks complete.
    """
    out_npy, out_csv = Path(out_npy), Path(out_csv)
    out_npy.parent.mkdir(parents=True, exist_ok=True)
    tmp_npy = out_npy.with_name(out_npy.name + ".tmp.npy")
    shape = (len(clips), settings.n_frames, settings.n_mels)
    array = np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.float32, shape=shape)
    valid = np.zeros(len(clips), dtype=np.int64)
    rows = tqdm(
        clips["file"], desc=f"fbank {out_npy.parent.name}/{out_npy.stem}", disable=not progress
    )
    silent = 0
    for i, path in enumerate(rows):
        array[i], valid[i], is_silent = _clip_features(path, settings)
        silent += is_silent
    if silent:
        # Digital silence has no machine sound in it: a bad recording or an export error.
        warnings.warn(
            f"{out_npy.parent.name} ({out_npy.stem}): {silent} of {len(clips)} clips are "
            "digital silence (every sample zero)",
            stacklevel=2,
        )
    array.flush()
    del array
    index = clips.reset_index(drop=True).copy()
    index["n_frames"] = valid
    tmp_csv = out_csv.with_name(out_csv.name + ".tmp")
    index.to_csv(tmp_csv, index=False)
    os.replace(tmp_npy, out_npy)
    os.replace(tmp_csv, out_csv)


def cache_machine(
    clips: pd.DataFrame, out_dir: Path, settings: FbankSettings, progress: bool = True
) -> None:
    """Cache every split of one machine type's clip table into `out_dir/<split>.{npy,csv}`."""
    unknown = set(clips["split"]) - set(SPLITS)
    if unknown:
        raise ValueError(f"{out_dir}: unknown split(s) {sorted(unknown)} in the clip table")
    counts = clips["split"].value_counts()
    print(
        f"{out_dir}: " + ", ".join(f"{split} {counts.get(split, 0)}" for split in SPLITS) + " clips"
    )
    for split in SPLITS:
        part = clips[clips["split"] == split]
        cache_split(part, out_dir / f"{split}.npy", out_dir / f"{split}.csv", settings, progress)


def plain_clip_table(folder: Path) -> pd.DataFrame:
    """A clip table of every wav under `folder` (no labels): the general-audio corpus."""
    from asdflow.data import CLIP_COLUMNS

    files = sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() == ".wav")
    if not files:
        raise FileNotFoundError(f"{folder}: no wav files")
    table = pd.DataFrame({"file": files})
    table = table.assign(
        machine_type=Path(folder).name,
        section="00",
        domain="",
        split="train",
        label="normal",
        index=-1,
        attributes="{}",
        attributes_known=False,
    )
    return table[CLIP_COLUMNS]


def read_index(csv_path: str | Path) -> pd.DataFrame:
    """The clip table of a cached split (empty strings kept as strings, not NaN)."""
    return pd.read_csv(csv_path, dtype={"section": str}, keep_default_na=False)


def open_cache(npy_path: str | Path) -> np.ndarray:
    """Memory-map a cached split: (N, n_frames, n_mels) float32, read-only."""
    return np.load(npy_path, mmap_mode="r")


@dataclass(frozen=True)
class NormStats:
    mean: float
    std: float
    source: str  # "train" (computed here) or "fixed" (e.g. AudioSet, for official weights)

    def apply(self, x: np.ndarray | torch.Tensor):
        """(x - mean) / (2 std), the EAT normalisation."""
        return (x - self.mean) / (2 * self.std)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> NormStats:
        return cls(**json.loads(Path(path).read_text()))


def compute_norm_stats(cache_prefixes: list[Path]) -> NormStats:
    """Mean and std of the log-mel values of the unpadded frames of cached training splits.

    `cache_prefixes` are paths without suffix (`.../train`): each has `.npy` and `.csv`.
    Accumulated in float64 per clip, so memory stays one clip.
    """
    total, total_sq, count = 0.0, 0.0, 0
    for prefix in cache_prefixes:
        array = open_cache(f"{prefix}.npy")
        valid = read_index(f"{prefix}.csv")["n_frames"].to_numpy()
        for i in range(array.shape[0]):
            x = np.asarray(array[i, : valid[i]], dtype=np.float64)
            total += x.sum()
            total_sq += np.square(x).sum()
            count += x.size
    if count == 0:
        raise ValueError("no training frames to compute normalisation statistics from")
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean**2, 1e-12)))
    return NormStats(mean=float(mean), std=std, source="train")
