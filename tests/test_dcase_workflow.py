"""The `dcase` data source through the real DAG: folders already on disk, and archives fetched
from a local HTTP server that stands in for Zenodo."""

import functools
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_snakemake, tiny_config, write_workdir

from asdflow.data import synth

# the baseline's metrics: data, features, scores and the official metric, no neural stage
BASELINE_METRICS = "results/metrics/logmel_knn/seed0.csv"
COUNTS = synth.Counts(train_source=12, train_target=2, test_per_quadrant=3, supplemental=1)


def make_machine(root: Path, set_name: str, machine: str) -> Path:
    """A small DCASE-layout machine folder (and its eval truth) written by the factory."""
    return synth.generate_machine(root, set_name, machine, COUNTS, seed=3, clip_seconds=1.0)


def dcase_config(datasets: dict, download: bool = False, base_url: str = "") -> dict:
    config = tiny_config()
    config["data_source"] = "dcase"
    config["dcase"] = {"download": download, "datasets": datasets}
    if base_url:
        config["dcase"]["base_url"] = base_url
    return config


@pytest.mark.slow
def test_folders_on_disk(tmp_path):
    raw = tmp_path / "raw"
    make_machine(raw, "dev", "motor")
    # users' own machine types have underscores: `{dataset}_{machine}` must not split them
    (raw / "dev/motor").rename(raw / "dev/my_motor")
    make_machine(raw, "eval", "spindle")
    truth = raw / "ground_truth/eval/spindle_eval_data_list.csv"
    datasets = {
        "dev2025": {"role": "dev", "roots": [str(raw / "dev")]},
        "eval2025": {"role": "eval", "roots": [str(raw / "eval")], "ground_truth": str(truth)},
    }
    work = write_workdir(tmp_path / "work", dcase_config(datasets))
    plan = run_snakemake(work, "-n", "-p")
    plan_text = plan.stdout + plan.stderr
    assert "results/figures/tsne/dev2025_my_motor.png" in plan_text
    # no "extra" set: DAP-full has DAP's data; said at configuration time and under the tables
    assert "no data set has role 'extra'" in plan_text
    assert "--note" in plan_text
    run_snakemake(work, "--cores", "2", BASELINE_METRICS)
    metrics = pd.read_csv(work / BASELINE_METRICS)
    assert sorted(metrics["machine_type"]) == ["my_motor", "spindle"]
    assert set(metrics["dataset"]) == {"dev2025", "eval2025"}


def test_dcase_source_without_data_sets_fails_at_configuration_time(tmp_path):
    proc = run_snakemake(write_workdir(tmp_path, dcase_config({})), "-n", check=False)
    assert proc.returncode != 0
    assert "dcase.datasets is empty" in proc.stdout + proc.stderr


@pytest.fixture
def zenodo(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields (base_url, www)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", www
    server.shutdown()
    server.server_close()


def zip_folder(folder: Path, zip_path: Path, top: str, only: str | None = None) -> None:
    """Zip `folder` as `<top>/...` (optionally only its sub-folder `only` and attribute files)."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and (only is None or relative.parts[0] == only):
                archive.write(path, f"{top}/{relative.as_posix()}")


@pytest.mark.slow
def test_download_from_a_local_server(tmp_path, zenodo):
    base_url, www = zenodo
    raw = tmp_path / "raw"
    # The factory's folders, renamed to machine types of the real 2025 manifest.
    dev = make_machine(raw, "dev", "motor")
    zip_folder(dev, www / "records/15097779/files/dev_fan.zip", "fan")
    ev = make_machine(raw, "eval", "spindle")
    zip_folder(ev, www / "records/15392814/files/eval_data_Polisher_train.zip", "Polisher", "train")
    zip_folder(ev, www / "records/15519362/files/eval_data_Polisher_test.zip", "Polisher", "test")
    truth = tmp_path / "eval_data_list_2025.csv"
    text = (raw / "ground_truth/eval/spindle_eval_data_list.csv").read_text()
    truth.write_text(text.replace("spindle", "Polisher"))
    datasets = {
        "dev2025": {"role": "dev", "year": 2025, "machine_types": ["fan"]},
        "eval2025": {
            "role": "eval",
            "year": 2025,
            "machine_types": ["Polisher"],
            "ground_truth": str(truth),
        },
    }
    config = dcase_config(datasets, True, base_url)
    # a checksum pinned in the config is checked: a wrong one fails the download ...
    fan_zip = www / "records/15097779/files/dev_fan.zip"
    config["dcase"]["checksums"] = {"2025/dev_fan.zip": "0" * 32}
    work = write_workdir(tmp_path / "work", config)
    shutil.rmtree(raw)  # everything must now come through the server
    failed = run_snakemake(work, "--cores", "1", "resources/dcase/2025/dev_fan", check=False)
    assert failed.returncode != 0
    assert "differs from the expected" in (work / "logs/download/2025/dev_fan.log").read_text()
    # ... and the right one lets it through
    config["dcase"]["checksums"] = {
        "2025/dev_fan.zip": hashlib.md5(fan_zip.read_bytes()).hexdigest()
    }
    write_workdir(tmp_path / "work", config)
    run_snakemake(work, "--cores", "2", BASELINE_METRICS)
    assert (work / "resources/dcase/2025/zips/dev_fan.zip").is_file()
    assert (work / "resources/dcase/2025/eval_data_Polisher_test/Polisher/test").is_dir()
    metrics = pd.read_csv(work / BASELINE_METRICS)
    assert sorted(metrics["machine_type"]) == ["Polisher", "fan"]
    test_index = pd.read_csv(work / "results/features/eval2025/Polisher/test.csv")
    assert len(test_index) == 12 and set(test_index["label"]) == {"normal", "anomaly"}


def test_dcase_2026_sets_keep_the_left_channel_by_default(tmp_path):
    from asdflow.data.datasets import dcase_datasets

    for year in (2025, 2026):
        (tmp_path / str(year) / "fan" / "train").mkdir(parents=True)
    cfg = {
        "download": False,
        "datasets": {
            "a": {"role": "dev", "year": 2025, "roots": [str(tmp_path / "2025")]},
            "b": {"role": "dev", "year": 2026, "roots": [str(tmp_path / "2026")]},
            "c": {"role": "dev", "year": 2026, "roots": [str(tmp_path / "2026")], "channel": "mix"},
        },
    }
    channels = {d.name: d.channel for d in dcase_datasets(cfg)}
    assert channels == {"a": "", "b": "left", "c": "mix"}
