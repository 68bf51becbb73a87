"""Read unpacked DCASE Task 2 (2020-2026) machine folders into the clip table.

The file-name grammars of all years are parsed token by token (never by fixed position), attributes
come from `attributes_00.csv` where a machine has one, and the labels of evaluation test clips come
from the published `eval_data_list_20XX.csv` ground truth.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from asdflow.data import CLIP_COLUMNS

DOMAINS = ("source", "target")
SPLITS = ("train", "test")
LABELS = ("normal", "anomaly")
NO_ATTRIBUTE = "noAttribute"
# Key under which an attribute tail that is not key/value pairs is kept whole (2021's
# `strength_1_ambient`), so it still separates conditions without guessing its structure.
RAW_ATTRIBUTE_KEY = "raw"

# Folder -> split. 2021 dev sets keep test clips in source_test/ and target_test/.
SPLIT_FOLDERS = {
    "train": "train",
    "test": "test",
    "source_test": "test",
    "target_test": "test",
    "supplemental": "supplemental",
}
FOLDER_DOMAINS = {"source_test": "source", "target_test": "target"}

GRAMMARS = (
    "section_NN[_source|target][_train|test][_normal|anomaly]_INDEX[_<key>_<value>...|_noAttribute]"
    " (2021-2026) or [normal_|anomaly_]id_NN_INDEX (2020)"
)


class FileNameError(ValueError):
    """A DCASE file name that fits none of the known grammars."""


@dataclass(frozen=True)
class ClipName:
    """What a DCASE file name says about its clip; "" / -1 where the name does not say."""

    section: str
    domain: str = ""
    split: str = ""
    label: str = ""
    index: int = -1
    attributes: dict[str, str] = field(default_factory=dict, hash=False)
    attributes_known: bool = False


def parse_filename(
    name: str,
    attribute_keys: Sequence[str] | None = None,
    *,
    unpaired: str = "error",
) -> ClipName:
    """Parse a DCASE clip file name (a path is fine: only its last component is read).

    attribute_keys: the attribute names of this machine (see `attribute_key_names`); with them,
    keys that contain "_" (CoffeeGrinder's `mic_pos`) are matched greedily. Without them,
    attribute tokens are paired two by two. unpaired="raw" keeps an attribute tail that cannot
    be split that way whole, under the key "raw", instead of raising FileNameError.
    """
    if unpaired not in ("error", "raw"):
        raise ValueError(f"Unsupported unpaired={unpaired!r}: expected 'error' or 'raw'")
    file_name = Path(name).name
    stem = file_name[:-4] if file_name.lower().endswith(".wav") else file_name
    tokens = stem.split("_")
    shown = str(name)  # errors name the file as it was given: the whole path when there is one
    if tokens[0] == "section":
        return _parse_section_grammar(shown, tokens, attribute_keys, unpaired)
    if tokens[0] == "id" or (tokens[0] in LABELS and tokens[1:2] == ["id"]):
        return _parse_2020_grammar(shown, tokens)
    raise FileNameError(f"{shown}: unknown DCASE file-name grammar; expected {GRAMMARS}")


def _parse_2020_grammar(file_name: str, tokens: list[str]) -> ClipName:
    label = tokens[0] if tokens[0] in LABELS else ""
    rest = tokens[1:] if label else tokens
    if len(rest) != 3 or not rest[1].isdigit() or not rest[2].isdigit():
        raise FileNameError(
            f"{file_name}: a 2020 name must be [normal_|anomaly_]id_NN_INDEX, got {rest!r}"
        )
    # 2020 has no domain shift: every clip comes from the one (source) condition.
    return ClipName(section=rest[1], domain="source", label=label, index=int(rest[2]))


def _parse_section_grammar(
    file_name: str,
    tokens: list[str],
    attribute_keys: Sequence[str] | None,
    unpaired: str,
) -> ClipName:
    if len(tokens) < 3 or not tokens[1].isdigit():
        raise FileNameError(f"{file_name}: expected 'section_NN_...'; expected {GRAMMARS}")
    section, pos = tokens[1], 2
    domain = split = label = ""
    if tokens[pos] in DOMAINS:
        domain, pos = tokens[pos], pos + 1
    if pos < len(tokens) and tokens[pos] in SPLITS:
        split, pos = tokens[pos], pos + 1
    if pos < len(tokens) and tokens[pos] in LABELS:
        label, pos = tokens[pos], pos + 1
        # 2024 RoboticArm test names drop the split token: section_00_source_normal_0035_...
        if domain and not split:
            split = "test"
    if pos >= len(tokens) or not tokens[pos].isdigit():
        found = tokens[pos] if pos < len(tokens) else "end of name"
        raise FileNameError(
            f"{file_name}: expected the clip index (digits) at token {pos}, found {found!r}; "
            f"expected {GRAMMARS}"
        )
    index = int(tokens[pos])
    tail = tokens[pos + 1 :]
    if not tail or tail == [NO_ATTRIBUTE]:
        # No attribute tokens: hidden (noAttribute), unlabeled eval test, or 2021 test clips.
        return ClipName(section, domain, split, label, index, {}, False)
    attributes = _parse_attributes(file_name, tail, attribute_keys, unpaired)
    return ClipName(section, domain, split, label, index, attributes, True)


def _parse_attributes(
    file_name: str,
    tail: list[str],
    attribute_keys: Sequence[str] | None,
    unpaired: str,
) -> dict[str, str]:
    try:
        if attribute_keys:
            return _match_keys(file_name, tail, attribute_keys)
        if len(tail) % 2:
            raise FileNameError(
                f"{file_name}: attribute tokens {tail!r} are an odd number, so they are not "
                "key/value pairs; pass attribute_keys (from attributes_00.csv)"
            )
        return dict(zip(tail[::2], tail[1::2], strict=True))
    except FileNameError:
        if unpaired == "raw":
            return {RAW_ATTRIBUTE_KEY: "_".join(tail)}
        raise


def _match_keys(file_name: str, tail: list[str], attribute_keys: Sequence[str]) -> dict[str, str]:
    # Longest key first, so `mic_pos` wins over `mic` at the same position.
    keys = sorted({tuple(k.split("_")) for k in attribute_keys}, key=len, reverse=True)

    def key_at(pos: int) -> tuple[str, ...] | None:
        for key in keys:
            # A key must leave at least one token for its value.
            if tuple(tail[pos : pos + len(key)]) == key and pos + len(key) < len(tail):
                return key
        return None

    attributes: dict[str, str] = {}
    pos = 0
    while pos < len(tail):
        key = key_at(pos)
        if key is None:
            raise FileNameError(
                f"{file_name}: attribute token {tail[pos]!r} starts none of the keys "
                f"{sorted(attribute_keys)}"
            )
        pos += len(key)
        value = [tail[pos]]
        pos += 1
        # A value runs on until the next key (values may contain "_" too).
        while pos < len(tail) and key_at(pos) is None:
            value.append(tail[pos])
            pos += 1
        attributes["_".join(key)] = "_".join(value)
    return attributes


def read_attributes_csv(path: Path | str) -> pd.DataFrame:
    """Read `attributes_00.csv` (header `file_name,d1p,d1v[,d2p,d2v,...]`).

    Returns one row per clip: file_name (the base name) and attributes (dict key -> value). Rows may
    carry fewer pairs than the header; "noAttribute" pairs are dropped (those stay hidden).
    """
    path = Path(path)
    rows: list[dict[str, object]] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = _strip_trailing_empty(next(reader, []))
        if not header or header[0] != "file_name" or len(header) % 2 != 1:
            raise ValueError(
                f"{path}:1: expected the header 'file_name,d1p,d1v[,d2p,d2v,...]', got {header!r}"
            )
        for cells in reader:
            line = reader.line_num
            cells = _strip_trailing_empty(cells)
            if not cells:
                continue
            if len(cells) > len(header):
                raise ValueError(f"{path}:{line}: {len(cells)} cells, header has {len(header)}")
            if not cells[0]:
                raise ValueError(f"{path}:{line}: empty file_name")
            pairs = cells[1:] + [""] * (len(cells[1:]) % 2)
            attributes: dict[str, str] = {}
            for key, value in zip(pairs[::2], pairs[1::2], strict=True):
                if not key and value:
                    raise ValueError(f"{path}:{line}: value {value!r} without a parameter name")
                if key and key != NO_ATTRIBUTE:
                    attributes[key] = value
            rows.append(
                {"file_name": cells[0].replace("\\", "/").split("/")[-1], "attributes": attributes}
            )
    table = pd.DataFrame(rows, columns=["file_name", "attributes"])
    duplicated = table["file_name"][table["file_name"].duplicated()]
    if len(duplicated):
        raise ValueError(f"{path}: file names listed twice: {sorted(set(duplicated))[:5]}")
    return table


def attribute_key_names(attributes_table: pd.DataFrame) -> list[str]:
    """The attribute names used in an attributes table (for parse_filename's attribute_keys)."""
    return sorted({key for attributes in attributes_table["attributes"] for key in attributes})


def read_eval_ground_truth(path: Path | str) -> pd.DataFrame:
    """Read a published `eval_data_list_20XX.csv` (2020-2025) into a table.

    A line with only a machine name starts that machine's block; rows are `<distributed name>,
    <relabeled name>[,<0|1>]`. Returns machine_type, file_name (distributed), relabeled_name,
    section, domain, label, attributes (dict) and attributes_known, read from the relabeled name.
    Attribute tails that are not plain pairs are kept whole under "raw"; machine_clip_table
    re-reads them with the machine's attribute keys.
    """
    path = Path(path)
    rows: list[dict[str, object]] = []
    machine_type = ""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for cells in reader:
            line = reader.line_num
            cells = [cell.strip() for cell in _strip_trailing_empty(cells)]
            if not cells:
                continue
            if len(cells) == 1:
                machine_type = cells[0]
                continue
            if not machine_type:
                raise ValueError(f"{path}:{line}: a clip row before any machine-name line")
            if len(cells) > 3:
                raise ValueError(f"{path}:{line}: expected 2 or 3 cells, got {len(cells)}")
            try:
                clip = parse_filename(cells[1], unpaired="raw")
            except FileNameError as error:
                raise ValueError(f"{path}:{line}: {error}") from error
            if not clip.label:
                raise ValueError(f"{path}:{line}: relabeled name {cells[1]!r} carries no label")
            # 2020 lists add the label as 0/1; it must agree with the name.
            if len(cells) == 3 and cells[2] != str(LABELS.index(clip.label)):
                raise ValueError(
                    f"{path}:{line}: label column {cells[2]!r} contradicts {cells[1]!r}"
                )
            rows.append(
                {
                    "machine_type": machine_type,
                    "file_name": cells[0],
                    "relabeled_name": cells[1],
                    "section": clip.section,
                    "domain": clip.domain,
                    "label": clip.label,
                    "attributes": clip.attributes,
                    "attributes_known": clip.attributes_known,
                }
            )
    table = pd.DataFrame(
        rows,
        columns=[
            "machine_type",
            "file_name",
            "relabeled_name",
            "section",
            "domain",
            "label",
            "attributes",
            "attributes_known",
        ],
    )
    duplicated = table.duplicated(["machine_type", "file_name"])
    if duplicated.any():
        first = table[duplicated].iloc[0]
        raise ValueError(f"{path}: {first.machine_type}/{first.file_name} is listed twice")
    return table


def _strip_trailing_empty(cells: list[str]) -> list[str]:
    cells = list(cells)
    while cells and not cells[-1].strip():
        cells.pop()
    return cells


def machine_clip_table(
    machine_dir: Path | str,
    ground_truth: pd.DataFrame | None = None,
    attribute_keys: Sequence[str] = (),
) -> pd.DataFrame:
    """The clip table (columns CLIP_COLUMNS) of one unpacked machine folder.

    Scans `<machine_dir>/{train,test,supplemental}/*.wav` (and 2021's source_test/, target_test/);
    machine_type is the folder's name. Attributes come from `attributes_*.csv` where present, else
    from the file names. Unlabeled test clips take domain, label and attributes from ground_truth
    (a read_eval_ground_truth table) when it lists this machine. `attribute_keys` adds key names
    known from elsewhere (the train half of an eval machine, when its test half comes apart).
    """
    machine_dir = Path(machine_dir)
    machine_type = machine_dir.name
    wavs = [(folder, wav) for folder in SPLIT_FOLDERS for wav in wav_files(machine_dir / folder)]
    if not wavs:
        raise FileNotFoundError(
            f"{machine_dir}: no wav files in any of {', '.join(f'{f}/' for f in SPLIT_FOLDERS)}"
        )
    if (machine_dir / "train").is_dir() and not wav_files(machine_dir / "train"):
        raise FileNotFoundError(f"{machine_dir / 'train'}: the folder holds no wav files")
    listed = _read_machine_attributes(machine_dir)
    keys = list(dict.fromkeys([*attribute_key_names(listed), *attribute_keys]))
    listed_attributes = dict(zip(listed["file_name"], listed["attributes"], strict=True))
    truth = _ground_truth_for(ground_truth, machine_type)

    rows = []
    for folder, wav in wavs:
        split = SPLIT_FOLDERS[folder]
        if split == "supplemental":
            clip = _parse_supplemental(str(wav), keys)
        else:
            clip = parse_filename(wav, keys, unpaired="raw")
            if clip.split and clip.split != split:
                raise FileNameError(
                    f"{wav}: the name says split {clip.split!r}, the folder {folder}/"
                )
        domain = clip.domain or FOLDER_DOMAINS.get(folder, "")
        label = clip.label
        attributes, known = clip.attributes, clip.attributes_known
        if known and wav.name in listed_attributes:
            # attributes_00.csv spells the pairs out; prefer it to splitting the name.
            attributes = listed_attributes[wav.name]
        if split == "test" and not label and truth is not None:
            if wav.name not in truth.index:
                raise ValueError(f"{wav}: not listed in the ground truth for {machine_type}")
            row = truth.loc[wav.name]
            relabeled = parse_filename(row["relabeled_name"], keys, unpaired="raw")
            domain, label = row["domain"], row["label"]
            attributes, known = relabeled.attributes, relabeled.attributes_known
        rows.append(
            {
                "file": str(wav),
                "machine_type": machine_type,
                "section": clip.section,
                "domain": domain,
                "split": split,
                "label": label,
                "index": clip.index,
                "attributes": json.dumps(attributes, sort_keys=True) if known else "{}",
                "attributes_known": known,
            }
        )
    table = pd.DataFrame(rows, columns=CLIP_COLUMNS)
    table = table.astype({"index": "int64", "attributes_known": "bool"})
    return table.sort_values(["split", "file"], ignore_index=True)


def wav_files(folder: Path) -> list[Path]:
    """The wav files of one folder, sorted; the extension in any case (`.wav`, `.WAV`)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file())


def machine_attribute_keys(machine_dirs: Sequence[Path | str]) -> list[str]:
    """Attribute key names listed in the attributes files of any of these machine folders."""
    return list(
        dict.fromkeys(
            k for d in machine_dirs for k in attribute_key_names(_read_machine_attributes(Path(d)))
        )
    )


def _read_machine_attributes(machine_dir: Path) -> pd.DataFrame:
    # 2022 machines have one attributes_NN.csv per section.
    tables = [read_attributes_csv(path) for path in sorted(machine_dir.glob("attributes_*.csv"))]
    if not tables:
        return pd.DataFrame({"file_name": [], "attributes": []})
    return pd.concat(tables, ignore_index=True)


def _ground_truth_for(ground_truth: pd.DataFrame | None, machine_type: str) -> pd.DataFrame | None:
    if ground_truth is None:
        return None
    rows = ground_truth[ground_truth["machine_type"] == machine_type]
    return rows.set_index("file_name") if len(rows) else None


def _parse_supplemental(file_name: str, attribute_keys: Sequence[str]) -> ClipName:
    """Supplemental clips are clean machine sound or noise only, so always normal.

    Their names vary (`section_00_machine_source_0000_noAttribute.wav`): read what the strict
    grammar gives, else pick out the section, domain and index tokens.
    """
    try:
        clip = parse_filename(file_name, attribute_keys, unpaired="raw")
    except FileNameError:
        tokens = Path(file_name).stem.split("_")
        section = tokens[1] if len(tokens) > 1 and tokens[0] == "section" else "00"
        domain = next((t for t in tokens if t in DOMAINS), "")
        digits = [t for t in tokens[2:] if t.isdigit()]
        index = int(digits[0]) if digits else -1
        return ClipName(section, domain, "supplemental", "normal", index, {}, False)
    return ClipName(
        clip.section,
        clip.domain,
        "supplemental",
        "normal",
        clip.index,
        clip.attributes,
        clip.attributes_known,
    )


def discover_machine_types(root: Path | str) -> list[str]:
    """Names of the machine folders under root: subfolders holding a train/ or test/ folder.

    A subfolder that holds wav files but neither folder is an error naming it, so that a
    machine folder missing its train/ and test/ folders is not silently left out of the data
    set; folders without audio are passed over.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such data folder")
    found, other = [], []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if any((child / folder).is_dir() for folder in SPLIT_FOLDERS):
            found.append(child.name)
        elif any(p.suffix.lower() == ".wav" for p in child.rglob("*")):
            other.append(str(child))
    if other:
        raise FileNotFoundError(
            f"{', '.join(other)}: wav files but no train/ or test/ folder; put the clips in "
            "<machine>/train/ and <machine>/test/, or list the data set's machine types"
        )
    return found
