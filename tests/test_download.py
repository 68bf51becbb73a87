"""Tests for asdflow.data.download: the archive manifest, and fetch, safe_extract and
download_archive end to end against a local HTTP server on 127.0.0.1 (Range, truncation)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdflow import cli
from asdflow.data.dcase import machine_clip_table
from asdflow.data.download import (
    ARCHIVES,
    COMPLETE_MARKER,
    Archive,
    ArchiveError,
    ChecksumError,
    DownloadError,
    download_archive,
    fetch,
    find_archive,
    safe_extract,
    select_archives,
)

# --- manifest -------------------------------------------------------------------------------------


def test_manifest_urls_and_names() -> None:
    names = {(a.year, a.kind, a.machine_type): a for a in ARCHIVES}
    assert (
        names[2025, "dev", "fan"].url() == "https://zenodo.org/records/15097779/files/dev_fan.zip"
    )
    assert names[2025, "eval_test", "CoffeeGrinder"].zip_name == "eval_data_CoffeeGrinder_test.zip"
    assert names[2025, "eval_train", "ToyPet"].record == "15392814"
    assert names[2024, "eval_train", "RoboticArm"].zip_name == "eval_data_RoboticArm_train_r2.zip"
    assert names[2024, "eval_train", "3DPrinter"].zip_name == "eval_data_3DPrinter_train_r2.zip"
    assert names[2024, "eval_test", "RoboticArm"].zip_name == "eval_data_RoboticArm_test.zip"
    assert names[2026, "dev", "ToyCar"].zip_name == "dev_ToyCar_r2.zip"
    assert names[2026, "dev", "valveEmu"].zip_name == "dev_valveEmu.zip"
    assert names[2020, "dev", "ToyConveyor"].zip_name == "dev_data_ToyConveyor.zip"
    assert names[2020, "eval_train", "pump"].zip_name == "eval_data_train_pump.zip"
    assert names[2020, "eval_test", "pump"].zip_name == "eval_data_test_pump.zip"
    assert names[2021, "dev", "gearbox"].zip_name == "dev_data_gearbox.zip"
    assert names[2021, "eval_test", "gearbox"].zip_name == "eval_data_gearbox_test.zip"
    assert names[2022, "dev", "bearing"].zip_name == "dev_bearing.zip"
    assert names[2023, "eval_test", "Vacuum"].record == "7860847"
    assert all(a.md5 is None for a in ARCHIVES)
    assert len(set(ARCHIVES)) == len(ARCHIVES)
    local = names[2025, "dev", "fan"].url("http://127.0.0.1:8000/")
    assert local == "http://127.0.0.1:8000/records/15097779/files/dev_fan.zip"


def test_find_archive() -> None:
    assert find_archive(2024, "eval_data_RoboticArm_train_r2.zip").kind == "eval_train"
    with pytest.raises(ValueError, match="dev_toaster.zip"):
        find_archive(2025, "dev_toaster.zip")


def test_select_archives() -> None:
    dev_2025 = select_archives([2025], ["dev"])
    assert [a.machine_type for a in dev_2025] == [
        "ToyCar",
        "ToyTrain",
        "bearing",
        "fan",
        "gearbox",
        "slider",
        "valve",
    ]
    assert len(select_archives([2025])) == 7 + 8 + 8
    assert len(select_archives([2026])) == 7 + 5  # no eval test set yet
    assert len(select_archives([2024], ["eval_train", "eval_test"])) == 18
    picked = select_archives([2023, 2024], ["dev"], ["fan"])
    assert [(a.year, a.machine_type) for a in picked] == [(2023, "fan"), (2024, "fan")]


@pytest.mark.parametrize(
    ("years", "kinds", "machines", "match"),
    [
        ([2019], ["dev"], None, "year"),
        ([2025], ["train"], None, "kind"),
        ([2025], ["dev"], ["toaster"], "toaster"),
        ([2026], ["eval_test"], None, "No archives"),
    ],
)
def test_select_archives_errors(years, kinds, machines, match) -> None:
    with pytest.raises(ValueError, match=match):
        select_archives(years, kinds, machines)


# --- a local HTTP server --------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """Serves server.files; server.modes[path] may be "truncate_first", "truncate_always" (send half
    the announced bytes, then close) or "ignore_range" (always answer 200 with the whole file)."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server = self.server
        body = server.files.get(self.path)
        requested = self.headers.get("Range")
        server.hits.setdefault(self.path, []).append(requested)
        if body is None:
            self.send_error(404)
            return
        mode = server.modes.get(self.path, "normal")
        start = 0
        if requested and mode != "ignore_range":
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        first = len(server.hits[self.path]) == 1
        if mode == "truncate_always" or (mode == "truncate_first" and first):
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.modes, httpd.hits = {}, {}, {}
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(160, dtype=np.float32), 16000, format="WAV")
    return buffer.getvalue()


def make_zip(entries: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


FAN_ZIP_ENTRIES = {
    "fan/": b"",
    "fan/train/section_00_source_train_normal_0000_m-n_W.wav": wav_bytes(),
    "fan/test/section_00_source_test_anomaly_0000_m-n_W.wav": wav_bytes(),
    "fan/attributes_00.csv": b"file_name,d1p,d1v\n"
    b"fan/train/section_00_source_train_normal_0000_m-n_W.wav,m-n,W\n",
}
FAN = Archive(2025, "dev", "fan", "15097779", "dev_fan.zip")


def serve(server, archive: Archive, data: bytes, mode: str = "normal") -> str:
    path = archive.url("")
    server.files[path] = data
    server.modes[path] = mode
    return path


# --- fetch ----------------------------------------------------------------------------------------


def test_fetch_downloads_and_is_idempotent(server, tmp_path: Path) -> None:
    data = bytes(range(256)) * 400
    server.files["/f.bin"] = data
    md5 = hashlib.md5(data).hexdigest()
    dest = fetch(f"{server.base}/f.bin", tmp_path / "f.bin", md5=md5, progress=False)
    assert dest.read_bytes() == data
    assert not (tmp_path / "f.bin.part").exists()
    fetch(f"{server.base}/f.bin", dest, md5=md5, progress=False)
    assert server.hits["/f.bin"] == [None]  # already present and verified: no request


def test_fetch_resumes_a_truncated_transfer(server, tmp_path: Path) -> None:
    data = bytes(range(256)) * 400
    server.files["/f.bin"] = data
    server.modes["/f.bin"] = "truncate_first"
    dest = fetch(
        f"{server.base}/f.bin", tmp_path / "f.bin", retries=2, backoff=0, timeout=5, progress=False
    )
    assert dest.read_bytes() == data
    assert server.hits["/f.bin"] == [None, f"bytes={len(data) // 2}-"]


def test_fetch_gives_up_after_retries_and_keeps_the_part(server, tmp_path: Path) -> None:
    server.files["/f.bin"] = b"x" * 4096
    server.modes["/f.bin"] = "truncate_always"
    with pytest.raises(DownloadError, match="3 attempts"):
        fetch(
            f"{server.base}/f.bin",
            tmp_path / "f.bin",
            retries=2,
            backoff=0,
            timeout=5,
            progress=False,
        )
    assert not (tmp_path / "f.bin").exists()
    assert (tmp_path / "f.bin.part").stat().st_size > 0
    assert len(server.hits["/f.bin"]) == 3


def test_fetch_restarts_when_the_server_ignores_range(server, tmp_path: Path) -> None:
    data = b"0123456789" * 1000
    server.files["/f.bin"] = data
    server.modes["/f.bin"] = "ignore_range"
    (tmp_path / "f.bin.part").write_bytes(b"junk-from-an-older-try")
    dest = fetch(f"{server.base}/f.bin", tmp_path / "f.bin", progress=False)
    assert dest.read_bytes() == data
    assert server.hits["/f.bin"] == ["bytes=22-"]


def test_fetch_finishes_a_part_that_is_already_whole(server, tmp_path: Path) -> None:
    data = b"abc" * 100
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data)
    dest = fetch(f"{server.base}/f.bin", tmp_path / "f.bin", progress=False)
    assert dest.read_bytes() == data
    assert server.hits["/f.bin"] == [f"bytes={len(data)}-"]


def test_fetch_md5_mismatch_leaves_nothing(server, tmp_path: Path) -> None:
    server.files["/f.bin"] = b"payload"
    with pytest.raises(ChecksumError, match="f.bin"):
        fetch(f"{server.base}/f.bin", tmp_path / "f.bin", md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_fetch_missing_file_does_not_retry(server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="404"):
        fetch(
            f"{server.base}/none.bin", tmp_path / "none.bin", retries=3, backoff=0, progress=False
        )
    assert len(server.hits["/none.bin"]) == 1


# --- safe_extract ---------------------------------------------------------------------------------


def test_safe_extract_is_atomic_and_marks_completion(tmp_path: Path) -> None:
    zip_path = tmp_path / "dev_fan.zip"
    zip_path.write_bytes(make_zip(FAN_ZIP_ENTRIES))
    out = safe_extract(zip_path, tmp_path / "out" / "dev_fan", top_dir="fan")
    assert (out / "fan/train/section_00_source_train_normal_0000_m-n_W.wav").is_file()
    assert (out / COMPLETE_MARKER).is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dev_fan"]  # no temp left
    assert safe_extract(zip_path, out) == out  # complete: left as it is
    (tmp_path / "empty").mkdir()
    assert (safe_extract(zip_path, tmp_path / "empty") / COMPLETE_MARKER).is_file()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "user-file").write_text("keep me")
    with pytest.raises(FileExistsError, match="half"):
        safe_extract(zip_path, tmp_path / "half")


def test_safe_extract_puts_a_flat_zip_under_top_dir(tmp_path: Path) -> None:
    zip_path = tmp_path / "flat.zip"
    zip_path.write_bytes(make_zip({"train/a.wav": b"1", "attributes_00.csv": b"file_name\n"}))
    out = safe_extract(zip_path, tmp_path / "out", top_dir="fan")
    assert (out / "fan/train/a.wav").is_file() and (out / "fan/attributes_00.csv").is_file()


@pytest.mark.parametrize(
    ("entries", "symlinks", "match"),
    [
        ({"ok.txt": b"1", "../evil.txt": b"x"}, (), r"'\.\.'"),
        ({"ok.txt": b"1", "a/../../evil.txt": b"x"}, (), r"'\.\.'"),
        ({"ok.txt": b"1", "/tmp/evil.txt": b"x"}, (), "absolute"),
        ({"ok.txt": b"1", "C:/evil.txt": b"x"}, (), "absolute"),
        ({"ok.txt": b"1", "..\\evil.txt": b"x"}, (), r"'\.\.'"),
        ({"ok.txt": b"1"}, ("link",), "symlink"),
    ],
)
def test_safe_extract_refuses_escaping_entries(tmp_path: Path, entries, symlinks, match) -> None:
    zip_path = tmp_path / "zips" / "evil.zip"
    zip_path.parent.mkdir()
    zip_path.write_bytes(make_zip(entries, symlinks))
    with pytest.raises(ArchiveError, match=match):
        safe_extract(zip_path, tmp_path / "out" / "dest")
    # Refused before writing anything, inside or outside the destination.
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["evil.zip", "zips"]


def test_safe_extract_corrupt_zip(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"this is not a zip file" * 50)
    with pytest.raises(ArchiveError, match="garbage.zip"):
        safe_extract(garbage, tmp_path / "out")
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(make_zip({"a.bin": b"A" * 1000}).replace(b"A" * 1000, b"B" * 1000))
    with pytest.raises(ArchiveError, match="damaged.zip"):
        safe_extract(damaged, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.zip", "garbage.zip"]


# --- download_archive and the CLI -----------------------------------------------------------------


def test_download_archive_end_to_end(server, tmp_path: Path) -> None:
    path = serve(server, FAN, make_zip(FAN_ZIP_ENTRIES), mode="truncate_first")
    out = download_archive(FAN, tmp_path, base_url=server.base, progress=False)
    assert out == tmp_path / "2025" / "dev_fan"
    assert (out / COMPLETE_MARKER).is_file()
    assert (tmp_path / "2025" / "zips" / "dev_fan.zip").is_file()
    table = machine_clip_table(out / "fan")
    assert list(table["split"]) == ["test", "train"]
    assert table["attributes"].iloc[1] == '{"m-n": "W"}'
    again = download_archive(FAN, tmp_path, base_url=server.base, progress=False)
    assert again == out
    assert len(server.hits[path]) == 2  # the truncated try and its resume; none for the rerun


def test_download_archive_garbage_is_moved_aside_and_the_rerun_fetches_again(
    server, tmp_path: Path
) -> None:
    path = serve(server, FAN, b"<html>rate limited</html>" * 20)
    with pytest.raises(ArchiveError, match=r"dev_fan.zip.*moved it aside to .*dev_fan.zip.bad"):
        download_archive(FAN, tmp_path, base_url=server.base, progress=False)
    assert not (tmp_path / "2025" / "dev_fan").exists()
    assert not (tmp_path / "2025/zips/dev_fan.zip").exists()
    assert (tmp_path / "2025/zips/dev_fan.zip.bad").is_file()
    # the server recovers: the next run downloads the zip again and extracts it
    serve(server, FAN, make_zip(FAN_ZIP_ENTRIES))
    out = download_archive(FAN, tmp_path, base_url=server.base, progress=False)
    assert (out / COMPLETE_MARKER).is_file() and len(server.hits[path]) == 2


def test_checksum_from_the_config_is_checked(server, tmp_path: Path) -> None:
    data = make_zip(FAN_ZIP_ENTRIES)
    serve(server, FAN, data)
    with pytest.raises(ChecksumError, match="deleted the download"):
        download_archive(FAN, tmp_path, server.base, progress=False, md5="0" * 32)
    assert not list((tmp_path / "2025/zips").iterdir())
    md5 = hashlib.md5(data).hexdigest()
    out = download_archive(FAN, tmp_path, server.base, progress=False, md5=md5)
    assert (out / COMPLETE_MARKER).is_file()


def deflated_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_safe_extract_refuses_zip_bombs(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(deflated_zip({"fan/zeros.wav": bytes(8 << 20)}))  # 8 MiB, ~1000x smaller
    with pytest.raises(ArchiveError, match=r"bomb.zip: entry 'fan/zeros.wav' unpacks \d+x"):
        safe_extract(bomb, tmp_path / "out")
    big = tmp_path / "big.zip"
    big.write_bytes(make_zip({"fan/a.bin": bytes(3000)}))
    with pytest.raises(ArchiveError, match=r"declares 3000 unpacked bytes, over the limit of 2000"):
        safe_extract(big, tmp_path / "out", max_bytes=2000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.zip", "bomb.zip"]
    # the limits are settings: a generous one lets the same archive through
    safe_extract(bomb, tmp_path / "out", max_ratio=1e6)
    assert (tmp_path / "out/fan/zeros.wav").stat().st_size == 8 << 20


def test_safe_extract_refuses_an_entry_that_lies_about_its_size(tmp_path: Path) -> None:
    data = bytearray(make_zip({"fan/a.bin": bytes(range(256)) * 20}))
    # declare 100 unpacked bytes in the local header (offset 22) and the central directory
    # entry (offset 24): the bytes that come out must not exceed what was declared
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 22 : local + 26] = (100).to_bytes(4, "little")
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    liar = tmp_path / "liar.zip"
    liar.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="liar.zip"):
        safe_extract(liar, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_main_download_writes_the_done_marker(server, tmp_path: Path) -> None:
    serve(server, FAN, make_zip(FAN_ZIP_ENTRIES))
    done = tmp_path / "done" / "download.done"
    code = cli.main(
        [
            "download",
            "--year",
            "2025",
            "--kind",
            "dev",
            "--machine-type",
            "fan",
            "--dest",
            str(tmp_path / "d"),
            "--settings",
            json.dumps({"base_url": server.base, "retries": 1}),
            "--done",
            str(done),
            "--quiet",
        ]
    )
    assert code == 0
    assert done.read_text() == f"{tmp_path / 'd' / '2025' / 'dev_fan'}\n"
    assert (tmp_path / "d/2025/dev_fan/fan/train").is_dir()
