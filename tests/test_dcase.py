"""Tests for asdflow.data.dcase: file-name grammars 2020-2026, attribute and ground-truth files, and
clip tables built from a tiny generated machine folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdflow.data import CLIP_COLUMNS
from asdflow.data.datasets import dcase_datasets
from asdflow.data.dcase import (
    ClipName,
    FileNameError,
    attribute_key_names,
    discover_machine_types,
    machine_clip_table,
    parse_filename,
    read_attributes_csv,
    read_eval_ground_truth,
)

COFFEE_KEYS = ["mic", "mic_pos", "grind", "bkg"]


# --- parse_filename -------------------------------------------------------------------------------


def test_parse_2022_to_2026_train_name() -> None:
    clip = parse_filename("section_00_source_train_normal_0000_car_A2_spd_28V_mic_1_noise_1.wav")
    assert clip == ClipName(
        section="00",
        domain="source",
        split="train",
        label="normal",
        index=0,
        attributes={"car": "A2", "spd": "28V", "mic": "1", "noise": "1"},
        attributes_known=True,
    )


def test_parse_accepts_a_path_and_target_anomaly() -> None:
    clip = parse_filename("/data/fan/test/section_01_target_test_anomaly_0042_m-n_W.wav")
    assert (clip.section, clip.domain, clip.split, clip.label, clip.index) == (
        "01",
        "target",
        "test",
        "anomaly",
        42,
    )
    assert clip.attributes == {"m-n": "W"}


def test_parse_no_attribute_is_hidden() -> None:
    clip = parse_filename("section_00_target_train_normal_0009_noAttribute.wav")
    assert clip.attributes == {} and not clip.attributes_known
    assert (clip.domain, clip.split, clip.label, clip.index) == ("target", "train", "normal", 9)


def test_parse_eval_test_name_knows_only_section_and_index() -> None:
    clip = parse_filename("section_00_0123.wav")
    assert clip == ClipName(section="00", index=123)


def test_parse_2021_eval_test_name_knows_domain_and_split() -> None:
    clip = parse_filename("section_03_source_test_0007.wav")
    assert (clip.section, clip.domain, clip.split, clip.label, clip.index) == (
        "03",
        "source",
        "test",
        "",
        7,
    )


def test_parse_2021_names() -> None:
    clip = parse_filename("section_02_target_test_anomaly_0012.wav")
    assert (clip.domain, clip.split, clip.label, clip.index) == ("target", "test", "anomaly", 12)
    assert not clip.attributes_known
    # 2021 attribute tails need not be pairs: an error unless kept raw.
    name = "section_00_source_train_normal_0000_strength_1_ambient.wav"
    with pytest.raises(FileNameError, match="strength_1_ambient|odd"):
        parse_filename(name)
    raw = parse_filename(name, unpaired="raw")
    assert raw.attributes == {"raw": "strength_1_ambient"} and raw.attributes_known


def test_parse_robotic_arm_without_split_token_is_test() -> None:
    clip = parse_filename("section_00_target_normal_0091_weight35_BckgE.wav")
    assert (clip.domain, clip.split, clip.label, clip.index) == ("target", "test", "normal", 91)
    assert clip.attributes == {"weight35": "BckgE"}


def test_parse_keys_with_underscore_need_attribute_keys() -> None:
    name = "section_00_source_test_anomaly_0003_mic_imp34dt05_mic_pos_A_grind_100_bkg_A.wav"
    clip = parse_filename(name, COFFEE_KEYS)
    assert clip.attributes == {"mic": "imp34dt05", "mic_pos": "A", "grind": "100", "bkg": "A"}
    with pytest.raises(FileNameError, match="odd"):
        parse_filename(name)  # 9 tokens cannot be paired


def test_parse_unknown_key_with_attribute_keys_names_the_file() -> None:
    with pytest.raises(FileNameError, match="section_00_source_train_normal_0001_foo_1.wav"):
        parse_filename("section_00_source_train_normal_0001_foo_1.wav", ["car", "spd"])


def test_parse_2020_names() -> None:
    assert parse_filename("normal_id_00_00000000.wav") == ClipName(
        section="00", domain="source", label="normal", index=0
    )
    anomaly = parse_filename("anomaly_id_02_00000012.wav")
    assert (anomaly.section, anomaly.label, anomaly.index) == ("02", "anomaly", 12)
    unlabeled = parse_filename("id_01_00000003.wav")
    assert (unlabeled.section, unlabeled.label, unlabeled.index) == ("01", "", 3)


@pytest.mark.parametrize(
    "name",
    [
        "fan_0001.wav",
        "section_xx_source_train_normal_0000.wav",
        "section_00_source_train_normal_car_A1.wav",  # no index
        "normal_id_00.wav",
        "section_00.wav",
    ],
)
def test_parse_unknown_grammar_names_the_file(name: str) -> None:
    with pytest.raises(FileNameError) as error:
        parse_filename(name)
    assert name in str(error.value)
    assert isinstance(error.value, ValueError)


# --- attribute and ground-truth files -------------------------------------------------------------


def test_read_attributes_csv(tmp_path: Path) -> None:
    path = tmp_path / "attributes_00.csv"
    path.write_text(
        "file_name,d1p,d1v,d2p,d2v\r\n"
        "CoffeeGrinder/train/section_00_source_train_normal_0000_mic_x_mic_pos_A.wav,mic,x,mic_pos,A\r\n"
        "CoffeeGrinder/train/section_00_target_train_normal_0001_grind_3.wav,grind,3,,\r\n"
        "CoffeeGrinder/train/section_00_source_train_normal_0002_noAttribute.wav,noAttribute,\r\n"
    )
    table = read_attributes_csv(path)
    assert list(table["file_name"]) == [
        "section_00_source_train_normal_0000_mic_x_mic_pos_A.wav",
        "section_00_target_train_normal_0001_grind_3.wav",
        "section_00_source_train_normal_0002_noAttribute.wav",
    ]
    assert list(table["attributes"]) == [{"mic": "x", "mic_pos": "A"}, {"grind": "3"}, {}]
    assert attribute_key_names(table) == ["grind", "mic", "mic_pos"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name,d1p,d1v\na.wav,x,1\n", ":1:"),
        ("file_name,d1p,d1v\na.wav,x,1\nb.wav,x,1,y,2\n", ":3:"),
        ("file_name,d1p,d1v\na.wav,,1\n", ":2:"),
    ],
)
def test_read_attributes_csv_malformed_names_file_and_line(
    tmp_path: Path, text: str, match: str
) -> None:
    path = tmp_path / "attributes_00.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"attributes_00.csv{match}"):
        read_attributes_csv(path)


GROUND_TRUTH = (
    "CoffeeGrinder,,\r\n"
    "section_00_0000.wav,section_00_target_test_anomaly_0012_mic_x_mic_pos_B_grind_1_bkg_A.wav,\r\n"
    "section_00_0001.wav,section_00_source_test_normal_0031_mic_x_mic_pos_A_grind_2_bkg_A.wav,\r\n"
    "Polisher\r\n"
    "section_00_0000.wav,section_00_source_test_normal_0001_noAttribute.wav\r\n"
    "\r\n"
)


def test_read_eval_ground_truth_tolerates_crlf_and_trailing_columns(tmp_path: Path) -> None:
    path = tmp_path / "eval_data_list_2025.csv"
    path.write_bytes(GROUND_TRUTH.encode())
    table = read_eval_ground_truth(path)
    assert list(table["machine_type"]) == ["CoffeeGrinder", "CoffeeGrinder", "Polisher"]
    assert list(table["file_name"]) == [
        "section_00_0000.wav",
        "section_00_0001.wav",
        "section_00_0000.wav",
    ]
    assert list(table["domain"]) == ["target", "source", "source"]
    assert list(table["label"]) == ["anomaly", "normal", "normal"]
    assert list(table["attributes_known"]) == [True, True, False]
    assert table["attributes"].iloc[2] == {}


def test_read_eval_ground_truth_2020_label_column(tmp_path: Path) -> None:
    path = tmp_path / "eval_data_list_2020.csv"
    path.write_text("fan\nid_01_00000000.wav,normal_id_01_00000098.wav,0\n")
    table = read_eval_ground_truth(path)
    assert (table["section"].item(), table["label"].item()) == ("01", "normal")
    path.write_text("fan\nid_01_00000000.wav,normal_id_01_00000098.wav,1\n")
    with pytest.raises(ValueError, match=":2:"):
        read_eval_ground_truth(path)


def test_read_eval_ground_truth_row_before_machine(tmp_path: Path) -> None:
    path = tmp_path / "gt.csv"
    path.write_text("section_00_0000.wav,section_00_source_test_normal_0001_a_1.wav\n")
    with pytest.raises(ValueError, match="gt.csv:1:"):
        read_eval_ground_truth(path)


# --- clip tables from generated folders -----------------------------------------------------------


def write_wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(160, dtype=np.float32), 16000)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A dev machine with attributes_00.csv and supplemental clips, an eval machine with keys that
    contain "_", a noAttribute machine and a 2021-style machine."""
    root = tmp_path / "data"
    fan = root / "fan"
    for name in [
        "train/section_00_source_train_normal_0000_m-n_W_spd_1.wav",
        "train/section_00_target_train_normal_0001_m-n_X_spd_2.wav",
        "test/section_00_source_test_anomaly_0000_m-n_W_spd_1.wav",
        "test/section_00_target_test_normal_0001_m-n_X_spd_2.wav",
        "supplemental/section_00_machine_source_0000_noAttribute.wav",
        "supplemental/section_00_noise_target_0003_noAttribute.wav",
    ]:
        write_wav(fan / name)
    (fan / "attributes_00.csv").write_text(
        "file_name,d1p,d1v,d2p,d2v\n"
        "fan/train/section_00_source_train_normal_0000_m-n_W_spd_1.wav,m-n,W,spd,1\n"
        "fan/train/section_00_target_train_normal_0001_m-n_X_spd_2.wav,m-n,X,spd,2\n"
    )
    coffee = root / "CoffeeGrinder"
    coffee_train = "section_00_source_train_normal_0000_mic_x_mic_pos_A_grind_2_bkg_A.wav"
    write_wav(coffee / "train" / coffee_train)
    write_wav(coffee / "test/section_00_0000.wav")
    write_wav(coffee / "test/section_00_0001.wav")
    (coffee / "attributes_00.csv").write_text(
        "file_name,d1p,d1v,d2p,d2v,d3p,d3v,d4p,d4v\n"
        "CoffeeGrinder/train/section_00_source_train_normal_0000_mic_x_mic_pos_A_grind_2_bkg_A.wav,"
        "mic,x,mic_pos,A,grind,2,bkg,A\n"
    )
    polisher = root / "Polisher"
    write_wav(polisher / "train/section_00_source_train_normal_0000_noAttribute.wav")
    write_wav(polisher / "test/section_00_0000.wav")
    old = root / "ToyTrain"
    write_wav(old / "train/section_00_source_train_normal_0000_strength_1_ambient.wav")
    write_wav(old / "source_test/section_00_source_test_normal_0000.wav")
    write_wav(old / "target_test/section_00_target_test_anomaly_0001.wav")
    (root / "not_a_machine").mkdir()
    (tmp_path / "gt.csv").write_bytes(GROUND_TRUTH.encode())
    return root


def test_machine_clip_table_dev_machine(data_root: Path) -> None:
    table = machine_clip_table(data_root / "fan")
    assert list(table.columns) == CLIP_COLUMNS
    assert list(table["split"]) == ["supplemental"] * 2 + ["test"] * 2 + ["train"] * 2
    assert (table["machine_type"] == "fan").all()
    assert table["index"].dtype == np.int64 and table["attributes_known"].dtype == bool
    train = table[table["split"] == "train"]
    assert list(train["attributes"]) == ['{"m-n": "W", "spd": "1"}', '{"m-n": "X", "spd": "2"}']
    test = table[table["split"] == "test"]
    assert list(test["label"]) == ["anomaly", "normal"]
    assert list(test["domain"]) == ["source", "target"]
    supplemental = table[table["split"] == "supplemental"]
    assert list(supplemental["label"]) == ["normal", "normal"]
    assert list(supplemental["domain"]) == ["source", "target"]
    assert list(supplemental["index"]) == [0, 3]
    assert list(supplemental["attributes"]) == ["{}", "{}"]
    assert all(Path(f).is_file() for f in table["file"])


def test_machine_clip_table_eval_machine_with_ground_truth(data_root: Path) -> None:
    unlabeled = machine_clip_table(data_root / "CoffeeGrinder")
    test = unlabeled[unlabeled["split"] == "test"]
    assert list(test["label"]) == ["", ""] and list(test["domain"]) == ["", ""]
    assert list(test["attributes"]) == ["{}", "{}"] and not test["attributes_known"].any()

    truth = read_eval_ground_truth(data_root.parent / "gt.csv")
    table = machine_clip_table(data_root / "CoffeeGrinder", truth)
    test = table[table["split"] == "test"]
    assert list(test["label"]) == ["anomaly", "normal"]
    assert list(test["domain"]) == ["target", "source"]
    assert list(test["index"]) == [0, 1]  # the distributed name's index
    # Keys with "_" are split using the machine's attributes_00.csv.
    assert json.loads(test["attributes"].iloc[0]) == {
        "bkg": "A",
        "grind": "1",
        "mic": "x",
        "mic_pos": "B",
    }
    assert test["attributes_known"].all()


def test_machine_clip_table_no_attribute_stays_hidden(data_root: Path) -> None:
    truth = read_eval_ground_truth(data_root.parent / "gt.csv")
    table = machine_clip_table(data_root / "Polisher", truth)
    assert list(table["attributes"]) == ["{}", "{}"]
    assert not table["attributes_known"].any()
    assert list(table["label"]) == ["normal", "normal"]


def test_machine_clip_table_2021_layout(data_root: Path) -> None:
    table = machine_clip_table(data_root / "ToyTrain")
    assert list(table["split"]) == ["test", "test", "train"]
    assert list(table["domain"]) == ["source", "target", "source"]
    assert list(table["label"]) == ["normal", "anomaly", "normal"]
    assert table["attributes"].iloc[2] == '{"raw": "strength_1_ambient"}'


def test_machine_clip_table_missing_ground_truth_row(data_root: Path) -> None:
    truth = read_eval_ground_truth(data_root.parent / "gt.csv")
    write_wav(data_root / "CoffeeGrinder/test/section_00_0002.wav")
    with pytest.raises(ValueError, match="section_00_0002.wav"):
        machine_clip_table(data_root / "CoffeeGrinder", truth)


def test_machine_clip_table_without_wavs(tmp_path: Path) -> None:
    (tmp_path / "fan" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no wav files"):
        machine_clip_table(tmp_path / "fan")


def test_upper_case_wav_extension_is_read(tmp_path: Path) -> None:
    write_wav(tmp_path / "fan/train/section_00_source_train_normal_0000_a_1.WAV")
    write_wav(tmp_path / "fan/train/section_00_source_train_normal_0001_a_1.wav")
    table = machine_clip_table(tmp_path / "fan")
    assert sorted(Path(f).suffix for f in table["file"]) == [".WAV", ".wav"]


def test_empty_train_folder_fails_where_the_data_set_is_read(tmp_path: Path) -> None:
    (tmp_path / "fan/train").mkdir(parents=True)
    write_wav(tmp_path / "fan/test/section_00_source_test_normal_0000_a_1.wav")
    with pytest.raises(FileNotFoundError, match=r"fan/train: the folder holds no wav files"):
        machine_clip_table(tmp_path / "fan")


def test_machine_folder_without_train_or_test_is_named_not_dropped(data_root: Path) -> None:
    write_wav(data_root / "pump/section_00_source_train_normal_0000_a_1.wav")
    with pytest.raises(FileNotFoundError, match=r"pump: wav files but no train/ or test/"):
        discover_machine_types(data_root)
    config = {"datasets": {"d": {"role": "dev", "roots": [str(data_root)]}}}
    with pytest.raises(FileNotFoundError, match="pump"):
        dcase_datasets(config)
    # listed machine types are read without looking at the others
    config["datasets"]["d"]["machine_types"] = ["fan"]
    assert dcase_datasets(config)[0].machine_types == ("fan",)


def test_bad_file_name_error_gives_the_whole_path(tmp_path: Path) -> None:
    write_wav(tmp_path / "fan/train/recording_01.wav")
    bad = re.escape(str(tmp_path / "fan/train/recording_01.wav"))
    with pytest.raises(FileNameError, match=f"^{bad}: unknown"):
        machine_clip_table(tmp_path / "fan")


def test_machine_clip_table_split_mismatch(tmp_path: Path) -> None:
    write_wav(tmp_path / "fan/test/section_00_source_train_normal_0000_a_1.wav")
    with pytest.raises(FileNameError, match="folder test/"):
        machine_clip_table(tmp_path / "fan")


def test_clip_tables_of_a_data_set(data_root: Path) -> None:
    machines = discover_machine_types(data_root)
    assert machines == ["CoffeeGrinder", "Polisher", "ToyTrain", "fan"]
    truth = read_eval_ground_truth(data_root.parent / "gt.csv")
    tables = {m: machine_clip_table(data_root / m, truth) for m in machines}
    assert all(list(t.columns) == CLIP_COLUMNS for t in tables.values())
    assert {m: len(t) for m, t in tables.items()} == {
        "fan": 6,
        "CoffeeGrinder": 3,
        "ToyTrain": 3,
        "Polisher": 2,
    }
    assert (tables["CoffeeGrinder"]["label"] != "").all()


def test_key_names_reach_a_test_half_without_attributes_file(tmp_path):
    """Eval archives split train and test: the test half learns key names from the train half."""
    from asdflow.data import dcase

    train = tmp_path / "train_half" / "Grinder"
    test = tmp_path / "test_half" / "Grinder"
    (train / "train").mkdir(parents=True)
    (test / "test").mkdir(parents=True)
    name = "section_00_source_train_normal_0000_mic_pos_A_grind_100.wav"
    sf.write(train / "train" / name, np.zeros(1600, dtype=np.float32), 16000)
    (train / "attributes_00.csv").write_text(
        f"file_name,d1p,d1v,d2p,d2v\nGrinder/train/{name},mic_pos,A,grind,100\n"
    )
    sf.write(test / "test" / "section_00_0000.wav", np.zeros(1600, dtype=np.float32), 16000)
    gt = tmp_path / "gt.csv"
    gt.write_text(
        "Grinder\nsection_00_0000.wav,section_00_target_test_anomaly_0000_mic_pos_B_grind_200.wav\n"
    )
    truth = dcase.read_eval_ground_truth(gt)
    keys = dcase.machine_attribute_keys([train, test])
    assert sorted(keys) == ["grind", "mic_pos"]
    table = dcase.machine_clip_table(test, truth, attribute_keys=keys)
    assert json.loads(table.loc[0, "attributes"]) == {"grind": "200", "mic_pos": "B"}
    assert table.loc[0, "label"] == "anomaly" and table.loc[0, "domain"] == "target"


def test_missing_attributes_file_falls_back_to_the_names(tmp_path):
    """Without attributes_00.csv, attribute pairs are read from the names, two tokens a pair."""
    from asdflow.data import dcase

    machine = tmp_path / "fan"
    (machine / "train").mkdir(parents=True)
    name = "section_00_source_train_normal_0000_spd_28V_mic_1.wav"
    sf.write(machine / "train" / name, np.zeros(1600, dtype=np.float32), 16000)
    table = dcase.machine_clip_table(machine)
    assert json.loads(table.loc[0, "attributes"]) == {"mic": "1", "spd": "28V"}
    # an odd number of attribute tokens cannot be paired without the key list: kept whole
    odd = "section_00_source_train_normal_0001_mic_pos_A_grind_100.wav"
    sf.write(machine / "train" / odd, np.zeros(1600, dtype=np.float32), 16000)
    table = dcase.machine_clip_table(machine)
    assert json.loads(table.loc[1, "attributes"]) == {"raw": "mic_pos_A_grind_100"}
