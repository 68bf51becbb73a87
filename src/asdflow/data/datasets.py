"""The data sets of a workflow run, resolved from configuration: which machine types, where their
folders are (or which rule makes them), and where eval ground truth lives.

A data set has a role: "dev" and "eval" sets are scored and tabulated; "extra" sets (earlier years)
only feed pre-training.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("dev", "eval", "extra")


@dataclass(frozen=True)
class Dataset:
    name: str
    role: str
    machine_types: tuple[str, ...]
    # machine type -> folders holding <machine>/{train,test,...}: several when the train and test
    # halves of an eval set come in separate archives.
    machine_dirs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # machine type -> eval ground-truth list ("" when none: labels come from the file names)
    ground_truth: dict[str, str] = field(default_factory=dict)
    # machine type -> archive stems to download first ("" entries: nothing to download)
    archives: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # stereo handling for this set ("" = features.channel): DCASE 2026 defaults to "left"
    channel: str = ""


def synthetic_datasets(cfg: dict) -> list[Dataset]:
    """The synthetic factory's dev and eval sets (and `earlier` as an extra set)."""
    root = cfg["root"]
    out = []
    for name, role in (("dev", "dev"), ("eval", "eval"), ("earlier", "extra")):
        machines = tuple(cfg["sets"].get(name, []))
        if not machines:
            continue
        _check_synthetic_names(f"synthetic.sets.{name}", machines, cfg.get("machine_types") or {})
        gt = {
            m: f"{root}/ground_truth/{name}/{m}_eval_data_list.csv" if role == "eval" else ""
            for m in machines
        }
        dirs = {m: (f"{root}/{name}/{m}",) for m in machines}
        out.append(Dataset(name, role, machines, dirs, gt))
    return out


def _check_synthetic_names(key: str, machines: tuple[str, ...], defined: dict) -> None:
    """Every name must be in the factory's catalog or defined in synthetic.machine_types."""
    from asdflow.data.synth import MACHINE_TYPES

    known = sorted({*MACHINE_TYPES, *defined})
    for machine in machines:
        if machine in known:
            continue
        close = difflib.get_close_matches(machine, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"{key}: unknown machine type {machine!r}{hint}; the catalog has {', '.join(known)}, "
            "and synthetic.machine_types can define new ones"
        )


def _discover(roots: list[str]) -> list[str]:
    """Machine types found in any of the roots (the data layer's folder scan)."""
    from asdflow.data.dcase import discover_machine_types

    found = set()
    for root in roots:
        if not Path(root).is_dir():
            raise ValueError(f"dcase data root {root!r} is not a folder")
        found.update(discover_machine_types(root))
    if not found:
        raise ValueError(f"no machine folders (<machine>/train or <machine>/test) under {roots}")
    return sorted(found)


def dcase_datasets(cfg: dict, resources: str = "resources/dcase") -> list[Dataset]:
    """Real DCASE sets: downloaded archives (`download: true`) or folders already on disk."""
    from asdflow.data import download

    if not cfg.get("datasets"):
        raise ValueError(
            "data_source is 'dcase' but dcase.datasets is empty: name at least a dev or eval set "
            "(see config/dcase2025.yaml)"
        )
    out = []
    for name, spec in cfg["datasets"].items():
        role = spec["role"]
        if role not in ROLES:
            raise ValueError(f"dcase.datasets.{name}.role must be one of {ROLES}, got {role!r}")
        wanted = spec.get("machine_types")
        gt_path = spec.get("ground_truth") or ""
        if cfg.get("download", False):
            # which archives: the set's own kind, or for an "extra" set its `archives` key
            kind = spec.get("archives") or ("dev" if role == "dev" else "eval")
            kinds = ["dev"] if kind == "dev" else ["eval_train", "eval_test"]
            archives = download.select_archives([spec["year"]], kinds, wanted)
            machines = sorted({a.machine_type for a in archives})
            stems = {
                m: tuple(Path(a.zip_name).stem for a in archives if a.machine_type == m)
                for m in machines
            }
            dirs = {
                m: tuple(f"{resources}/{spec['year']}/{s}/{m}" for s in stems[m]) for m in machines
            }
            archive_ids = {m: tuple(f"{spec['year']}/{s}" for s in stems[m]) for m in machines}
        else:
            roots = list(spec.get("roots") or [])
            if not roots:
                raise ValueError(
                    f"dcase.datasets.{name}: give `roots` (folders) or set download: true"
                )
            machines = list(wanted) if wanted else _discover(roots)
            dirs = {m: tuple(f"{r}/{m}" for r in roots if Path(r, m).is_dir()) for m in machines}
            for m, found in dirs.items():
                if not found:
                    raise ValueError(
                        f"dcase.datasets.{name}: machine type {m!r} not found in {roots}"
                    )
            archive_ids = {}
        gt = {m: gt_path for m in machines}
        # 2026 clips are stereo (near mic left, far mic right); the baseline keeps the left one.
        channel = spec.get("channel") or ("left" if spec.get("year") == 2026 else "")
        out.append(Dataset(name, role, tuple(machines), dirs, gt, archive_ids, channel))
    return out


def resolve_datasets(config: dict) -> list[Dataset]:
    """All data sets of a run, from the validated workflow configuration."""
    source = config["data_source"]
    if source == "synthetic":
        datasets = synthetic_datasets(config["synthetic"])
    elif source == "dcase":
        datasets = dcase_datasets(config["dcase"])
    else:
        raise ValueError(f"Unsupported data_source {source!r}: use 'synthetic' or 'dcase'")
    return datasets


def missing_extra_note() -> str:
    """Why DAP-full equals DAP when a run has no "extra" (earlier years) data set."""
    return (
        "no data set has role 'extra' (earlier years): DAP-full pre-trains on exactly DAP's "
        "data, so its rows repeat DAP's"
    )
