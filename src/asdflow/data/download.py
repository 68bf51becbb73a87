"""Download and unpack the DCASE Task 2 archives (2020-2026) from Zenodo, resumably and safely.

`ARCHIVES` lists every archive; `download_archive` fetches one (HTTP Range resume, retries, optional
md5) and extracts it with zip-slip and symlink checks, so a folder that exists is a complete one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

ZENODO = "https://zenodo.org"
KINDS = ("dev", "eval_train", "eval_test")
COMPLETE_MARKER = ".complete"
CHUNK_BYTES = 1 << 20
# Zip-bomb limits. DCASE's largest archive unpacks to a few GB, and wav audio compresses by a
# factor of about 1-3, so these are far beyond any real archive (settings dcase.max_unpacked_gb,
# dcase.max_compression_ratio).
MAX_UNPACKED_BYTES = 64 * 10**9
MAX_COMPRESSION_RATIO = 100.0
# entries smaller than this are not held to the ratio (text lists compress well)
RATIO_MIN_BYTES = 1 << 20

# Zenodo record per year and kind (dev set / additional training set / evaluation test set).
RECORDS: dict[int, dict[str, str]] = {
    2020: {"dev": "3678171", "eval_train": "3727685", "eval_test": "3841772"},
    2021: {"dev": "4562016", "eval_train": "4660992", "eval_test": "4884786"},
    2022: {"dev": "6355122", "eval_train": "6462969", "eval_test": "6586456"},
    2023: {"dev": "7882613", "eval_train": "7830345", "eval_test": "7860847"},
    2024: {"dev": "10902294", "eval_train": "11259435", "eval_test": "11363076"},
    2025: {"dev": "15097779", "eval_train": "15392814", "eval_test": "15519362"},
    # 2026: the evaluation test set is not published yet.
    2026: {"dev": "19336329", "eval_train": "20151556"},
}

_DEV_2023 = ("ToyCar", "ToyTrain", "bearing", "fan", "gearbox", "slider", "valve")
# Machine types per year and kind ("eval" covers eval_train and eval_test).
MACHINE_TYPES: dict[int, dict[str, tuple[str, ...]]] = {
    2020: dict.fromkeys(
        ("dev", "eval"), ("ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve")
    ),
    2021: dict.fromkeys(
        ("dev", "eval"), ("ToyCar", "ToyTrain", "fan", "gearbox", "pump", "slider", "valve")
    ),
    2022: dict.fromkeys(
        ("dev", "eval"), ("bearing", "fan", "gearbox", "slider", "ToyCar", "ToyTrain", "valve")
    ),
    2023: {
        "dev": _DEV_2023,
        "eval": ("ToyDrone", "ToyNscale", "ToyTank", "Vacuum", "bandsaw", "grinder", "shaker"),
    },
    2024: {
        "dev": _DEV_2023,
        "eval": (
            "3DPrinter",
            "AirCompressor",
            "BrushlessMotor",
            "HairDryer",
            "HoveringDrone",
            "RoboticArm",
            "Scanner",
            "ToothBrush",
            "ToyCircuit",
        ),
    },
    2025: {
        "dev": _DEV_2023,
        "eval": (
            "ToyRCCar",
            "ToyPet",
            "HomeCamera",
            "AutoTrash",
            "Polisher",
            "ScrewFeeder",
            "BandSealer",
            "CoffeeGrinder",
        ),
    },
    2026: {
        "dev": ("ToyCar", "ToyCarEmu", "bearingEmu", "fan", "gearboxEmu", "sliderEmu", "valveEmu"),
        "eval": ("ToyDrone", "ToothBrush", "SewingMachine", "BlowerDustCollector", "Sander"),
    },
}

# Re-released archives: the r2 zip replaces the first one.
REVISED_ZIPS = {
    (2024, "eval_train", "3DPrinter"): "eval_data_3DPrinter_train_r2.zip",
    (2024, "eval_train", "RoboticArm"): "eval_data_RoboticArm_train_r2.zip",
    (2026, "dev", "ToyCar"): "dev_ToyCar_r2.zip",
}


@dataclass(frozen=True)
class Archive:
    """One downloadable zip of one machine type."""

    year: int
    kind: str  # "dev" | "eval_train" | "eval_test"
    machine_type: str
    record: str  # Zenodo record id
    zip_name: str
    md5: str | None = None  # checked after download when set

    def url(self, base: str = ZENODO) -> str:
        return f"{base.rstrip('/')}/records/{self.record}/files/{self.zip_name}"


def zip_name(year: int, kind: str, machine_type: str) -> str:
    """The archive's file name, following each year's naming."""
    if (year, kind, machine_type) in REVISED_ZIPS:
        return REVISED_ZIPS[year, kind, machine_type]
    if kind == "dev":
        return f"dev_data_{machine_type}.zip" if year <= 2021 else f"dev_{machine_type}.zip"
    part = kind.removeprefix("eval_")
    if year == 2020:
        return f"eval_data_{part}_{machine_type}.zip"
    return f"eval_data_{machine_type}_{part}.zip"


def _build_archives() -> tuple[Archive, ...]:
    archives = []
    for year, records in RECORDS.items():
        for kind, record in records.items():
            group = "dev" if kind == "dev" else "eval"
            for machine_type in MACHINE_TYPES[year][group]:
                name = zip_name(year, kind, machine_type)
                archives.append(Archive(year, kind, machine_type, record, name))
    return tuple(archives)


ARCHIVES = _build_archives()


def select_archives(
    years: Iterable[int],
    kinds: Iterable[str] = KINDS,
    machine_types: Iterable[str] | None = None,
) -> list[Archive]:
    """The archives of the given years, kinds and (optionally) machine types, in manifest order."""
    years, kinds = list(years), list(kinds)
    unknown_years = [y for y in years if y not in RECORDS]
    if unknown_years:
        raise ValueError(f"Unsupported DCASE year(s) {unknown_years}: known {sorted(RECORDS)}")
    unknown_kinds = [k for k in kinds if k not in KINDS]
    if unknown_kinds:
        raise ValueError(f"Unsupported archive kind(s) {unknown_kinds}: known {list(KINDS)}")
    chosen = [a for a in ARCHIVES if a.year in years and a.kind in kinds]
    if machine_types is not None:
        machine_types = list(machine_types)
        available = sorted({a.machine_type for a in chosen}, key=str.lower)
        unknown = [m for m in machine_types if m not in available]
        if unknown:
            raise ValueError(
                f"Unsupported machine type(s) {unknown} for years {years}, kinds {kinds}: "
                f"known {available}"
            )
        chosen = [a for a in chosen if a.machine_type in machine_types]
    if not chosen:
        raise ValueError(f"No archives for years {years}, kinds {kinds} (not published yet?)")
    return chosen


class DownloadError(RuntimeError):
    """A download that still failed after all retries."""


class ChecksumError(ValueError):
    """A downloaded file whose md5 differs from the expected one."""


class ArchiveError(ValueError):
    """A zip that is corrupt or holds entries that would escape the destination folder."""


class _Truncated(Exception):
    """The server closed the connection before sending all the bytes it announced."""


def md5sum(path: Path) -> str:
    """Hex md5 of a file, read in chunks (archives are several GB)."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    url: str,
    dest: Path | str,
    md5: str | None = None,
    retries: int = 3,
    timeout: float = 60,
    progress: bool = True,
    backoff: float = 1.0,
) -> Path:
    """Download url to dest, resuming a partial `<dest>.part` with HTTP Range requests.

    Retries up to `retries` times after the first attempt, waiting backoff, 2 * backoff, ...
    seconds in between; a transfer cut short of its Content-Length is resumed. dest appears only
    when complete (and, with md5, verified); an existing dest is kept if it passes the md5 check.
    """
    dest = Path(dest)
    if dest.exists():
        if md5 is None or md5sum(dest) == md5:
            return dest
        dest.unlink()  # a stale or damaged copy: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    last_error: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch_once(url, part, timeout, progress)
            break
        except urllib.error.HTTPError as error:
            # 4xx other than timeouts / rate limits will not change on retry.
            if 400 <= error.code < 500 and error.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
            last_error = error
        except (_Truncated, urllib.error.URLError, http.client.HTTPException, OSError) as error:
            last_error = error
    else:
        raise DownloadError(
            f"{url}: failed after {retries + 1} attempts ({last_error}); "
            f"partial file kept at {part}"
        ) from last_error
    if md5 is not None:
        got = md5sum(part)
        if got != md5:
            part.unlink()
            raise ChecksumError(
                f"{dest}: md5 {got} differs from the expected {md5} ({url}); deleted the "
                "download, so the next run fetches it again"
            )
    os.replace(part, dest)
    return dest


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One request: append to part from where it ends; start over if the server ignores Range."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url)
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            # Range past the end: part may already be whole (cut before the rename) or be junk.
            total = _content_range_total(error.headers.get("Content-Range", ""))
            if total == have:
                return
            part.unlink()
            raise _Truncated(f"{url}: range {have}- not satisfiable; restarting") from error
        raise
    with response:
        start = 0
        if response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != have:
                part.unlink()
                raise _Truncated(f"{url}: server resumed at byte {start}, not {have}; restarting")
        length = response.headers.get("Content-Length")
        expected = start + int(length) if length is not None else None
        mode = "ab" if start else "wb"  # a 200 answer to a Range request restarts the file
        got = start
        with (
            part.open(mode) as handle,
            tqdm(
                total=expected,
                initial=start,
                unit="B",
                unit_scale=True,
                desc=part.name,
                disable=not progress,
            ) as bar,
        ):
            while True:
                try:
                    block = response.read(CHUNK_BYTES)
                except http.client.IncompleteRead as error:
                    handle.write(error.partial)
                    got += len(error.partial)
                    raise _Truncated(f"{url}: got {got} of {expected} bytes") from error
                if not block:
                    break
                handle.write(block)
                got += len(block)
                bar.update(len(block))
    if expected is not None and got < expected:
        raise _Truncated(f"{url}: got {got} of {expected} bytes")


def _content_range_start(header: str) -> int:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", header.strip())
    return int(match.group(1)) if match else -1


def _content_range_total(header: str) -> int:
    match = re.match(r"bytes (?:\*|\d+-\d+)/(\d+)", header.strip())
    return int(match.group(1)) if match else -1


def _check_entry(zip_path: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    """The entry's relative path, or ArchiveError when it could land outside the destination."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{zip_path}: refusing symlink entry {info.filename!r}")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"{zip_path}: refusing absolute path entry {info.filename!r}")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise ArchiveError(f"{zip_path}: refusing entry with '..' {info.filename!r}")
    return path


def _check_sizes(
    zip_path: Path, infos: list[zipfile.ZipInfo], max_bytes: int, max_ratio: float
) -> None:
    """ArchiveError when the declared unpacked size or an entry's compression ratio is too big."""
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise ArchiveError(
            f"{zip_path}: declares {total} unpacked bytes, over the limit of {max_bytes} "
            "(setting dcase.max_unpacked_gb)"
        )
    for info in infos:
        if info.file_size >= RATIO_MIN_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > max_ratio:
                raise ArchiveError(
                    f"{zip_path}: entry {info.filename!r} unpacks {ratio:.0f}x its packed size, "
                    f"over the limit of {max_ratio:g}x (setting dcase.max_compression_ratio)"
                )


def _copy_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Write one entry, counting the bytes actually produced: a zip may lie about its sizes."""
    written = 0
    with archive.open(info) as source, target.open("wb") as sink:
        while chunk := source.read(CHUNK_BYTES):
            written += len(chunk)
            if written > info.file_size or written > budget:
                raise ArchiveError(
                    f"{archive.filename}: entry {info.filename!r} unpacks to more bytes than "
                    "the archive declares, or over the unpacked-size limit"
                )
            sink.write(chunk)
    return written


def safe_extract(
    zip_path: Path | str,
    dest_dir: Path | str,
    top_dir: str | None = None,
    max_bytes: int = MAX_UNPACKED_BYTES,
    max_ratio: float = MAX_COMPRESSION_RATIO,
) -> Path:
    """Extract zip_path into dest_dir, which appears (with a `.complete` marker) only when done.

    Every entry is checked before anything is written: absolute paths, drive letters, ".."
    components and symlinks are refused, and so are archives that declare more than max_bytes
    unpacked or an entry compressed more than max_ratio times; the bytes actually written are
    counted against the same limits. With top_dir, entries that do not all lie under
    `<top_dir>/` are put there, so the machine folder is the same whatever the zip's layout.
    An existing complete dest_dir is left as it is.
    """
    zip_path, dest_dir = Path(zip_path), Path(dest_dir)
    if (dest_dir / COMPLETE_MARKER).exists():
        return dest_dir
    if dest_dir.is_dir() and not any(dest_dir.iterdir()):
        dest_dir.rmdir()  # an empty folder made by someone else (a workflow engine): harmless
    if dest_dir.exists():
        raise FileExistsError(f"{dest_dir}: exists without {COMPLETE_MARKER}; remove it first")
    tmp = dest_dir.parent / f".{dest_dir.name}.extracting"
    try:
        with zipfile.ZipFile(zip_path) as archive:
            entries = [(info, _check_entry(zip_path, info)) for info in archive.infolist()]
            _check_sizes(zip_path, [info for info, _ in entries], max_bytes, max_ratio)
            if top_dir is not None and not all(p.parts[:1] == (top_dir,) for _, p in entries):
                entries = [(info, PurePosixPath(top_dir, path)) for info, path in entries]
            if tmp.exists():
                shutil.rmtree(tmp)  # left over by an interrupted extraction of ours
            tmp.mkdir(parents=True)
            budget = max_bytes
            for info, relative in entries:
                target = tmp.joinpath(*relative.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                budget -= _copy_entry(archive, info, target, budget)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArchiveError(f"{zip_path}: corrupt zip archive ({error})") from error
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # The marker goes in before the rename, so dest_dir never exists without it.
    (tmp / COMPLETE_MARKER).write_text(f"{zip_path.name}\n")
    os.replace(tmp, dest_dir)
    return dest_dir


def find_archive(year: int, zip_name: str) -> Archive:
    """The manifest entry of one archive, by year and zip name (e.g. 2025, "dev_fan.zip")."""
    for archive in ARCHIVES:
        if archive.year == year and archive.zip_name == zip_name:
            return archive
    known = [a.zip_name for a in ARCHIVES if a.year == year]
    raise ValueError(f"Unsupported archive {zip_name!r} for {year}: known {known}")


def download_archive(
    archive: Archive,
    dest_root: Path | str,
    base_url: str = ZENODO,
    retries: int = 3,
    progress: bool = True,
    md5: str | None = None,
    max_bytes: int = MAX_UNPACKED_BYTES,
    max_ratio: float = MAX_COMPRESSION_RATIO,
) -> Path:
    """Fetch and extract one archive into `<dest_root>/<year>/<zip stem>/<machine_type>/...`.

    The zip is kept in `<dest_root>/<year>/zips/`. Returns `<dest_root>/<year>/<zip stem>`, which
    exists only once complete; a complete one is returned without any download. `md5` (from
    the config) overrides the manifest's checksum. A zip that cannot be extracted is moved aside
    to `<name>.bad`, so the next run downloads it again.
    """
    year_dir = Path(dest_root) / str(archive.year)
    out = year_dir / Path(archive.zip_name).stem
    if (out / COMPLETE_MARKER).exists():
        return out
    zip_path = year_dir / "zips" / archive.zip_name
    md5 = md5 or archive.md5
    fetch(archive.url(base_url), zip_path, md5=md5, retries=retries, progress=progress)
    try:
        return safe_extract(zip_path, out, archive.machine_type, max_bytes, max_ratio)
    except ArchiveError as error:
        bad = zip_path.with_name(zip_path.name + ".bad")
        os.replace(zip_path, bad)
        raise ArchiveError(
            f"{error}; moved it aside to {bad}, so the next run downloads it again"
        ) from error


@dataclass(frozen=True)
class DownloadSettings:
    """Where archives come from and what an archive may unpack to (the `dcase` section's
    base_url, max_unpacked_gb and max_compression_ratio)."""

    base_url: str = ZENODO
    max_unpacked_gb: float = MAX_UNPACKED_BYTES / 1e9
    max_compression_ratio: float = MAX_COMPRESSION_RATIO
    retries: int = 3


def download_archives(
    archives: Sequence[Archive],
    dest_root: Path,
    settings: DownloadSettings,
    md5: str | None = None,
    done: Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """Fetch and extract `archives` (download_archive); write the `done` marker, listing the
    extracted folders, once all are there. `md5` pins the checksum of a single archive."""
    if md5 and len(archives) != 1:
        raise ValueError("an md5 checksum needs exactly one archive")
    folders = [
        download_archive(
            a,
            dest_root,
            settings.base_url,
            settings.retries,
            progress=progress,
            md5=md5,
            max_bytes=int(settings.max_unpacked_gb * 1e9),
            max_ratio=settings.max_compression_ratio,
        )
        for a in archives
    ]
    if done is not None:
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text("".join(f"{folder}\n" for folder in folders))
    return folders
