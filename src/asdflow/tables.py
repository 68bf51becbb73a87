"""Evaluation and tables: per-machine metrics of a run, and the results table over runs.

A results table has one row per run and the official score (harmonic mean of AUC_s, AUC_t and
pAUC, in %) over four groups of machine types: dev, eval, no-attribute (either set) and all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from asdflow import features, metrics

METRIC_COLUMNS = list(metrics.METRIC_COLUMNS)  # AUC_source, AUC_target, pAUC
GROUPS = ("dev", "eval", "no_attribute", "all")


@dataclass(frozen=True)
class MachineResult:
    """Where one machine type's cached features and submission files are."""

    dataset: str
    role: str  # "dev" | "eval"
    machine_type: str
    features_dir: Path
    scores_dir: Path


def evaluate_machine(entry: MachineResult) -> dict | None:
    """Metrics of one machine type, or None when its test labels are unknown (no ground truth)."""
    test = features.read_index(Path(entry.features_dir) / "test.csv")
    train = features.read_index(Path(entry.features_dir) / "train.csv")
    if (test["label"] == "").any() or (test["domain"] == "").any():
        return None
    submission = metrics.read_submission(entry.scores_dir, entry.machine_type)
    truth = test.assign(file_name=[Path(f).name for f in test["file"]])
    merged = truth.merge(submission, on="file_name", how="left", validate="one_to_one")
    missing = merged.loc[merged["score"].isna(), "file_name"].tolist()
    if missing:
        raise ValueError(
            f"{entry.scores_dir}: no score for {len(missing)} test clip(s) of "
            f"{entry.machine_type}, e.g. {missing[:3]}"
        )
    values = metrics.machine_metrics(
        merged["domain"], merged["label"], merged["score"].to_numpy(), name=entry.machine_type
    )
    return {
        "dataset": entry.dataset,
        "role": entry.role,
        "machine_type": entry.machine_type,
        "no_attribute": not bool(train["attributes_known"].astype(str).eq("True").any()),
        **{key: float(values[key]) for key in METRIC_COLUMNS},
        "n_test": len(merged),
    }


def evaluate_run(run: str, entries: list[MachineResult]) -> pd.DataFrame:
    """Per-machine metrics of one run: one row per machine type with known test labels."""
    rows = [row for row in (evaluate_machine(e) for e in entries) if row is not None]
    columns = ["run", "dataset", "role", "machine_type", "no_attribute", *METRIC_COLUMNS, "n_test"]
    return pd.DataFrame([{"run": run, **row} for row in rows], columns=columns)


def group_scores(per_machine: pd.DataFrame) -> dict[str, float]:
    """Official score (in %) of each group of machine types; NaN for an empty group."""
    masks = {
        "dev": per_machine["role"] == "dev",
        "eval": per_machine["role"] == "eval",
        "no_attribute": per_machine["no_attribute"].astype(bool),
        "all": pd.Series(True, index=per_machine.index),
    }
    out = {}
    for group, mask in masks.items():
        values = per_machine.loc[mask, METRIC_COLUMNS].to_numpy().ravel()
        out[group] = 100 * metrics.official_score(values) if len(values) else np.nan
    return out


GROUP_TITLES = {"dev": "Dev", "eval": "Eval", "no_attribute": "NoAttr", "all": "All"}
CAPTIONS = {
    "table1": "Official score (\\%) with pseudo-attribute labels from different embeddings; "
    "every run is fine-tuned from the general encoder. Mean $\\pm$ std over seeds.",
    "table2": "Official score (\\%) of pseudo-labels (PL) and model adaptation (MA) on top of "
    "DAP-full. Mean $\\pm$ std over seeds.",
}


def seed_scores(per_machine: pd.DataFrame) -> pd.DataFrame:
    """Official score (%) of each group for every (run, seed)."""
    rows = []
    for (run, seed), part in per_machine.groupby(["run", "seed"], sort=False):
        rows.append({"run": run, "seed": seed, **group_scores(part)})
    return pd.DataFrame(rows, columns=["run", "seed", *GROUPS])


def paper_table(per_machine: pd.DataFrame, runs: list[str], titles: dict[str, str]) -> pd.DataFrame:
    """One row per run (in the given order): mean and std over seeds of each group's official
    score (%). The std is the sample standard deviation (ddof 1), 0 for a single seed."""
    scores = seed_scores(per_machine)
    missing = [r for r in runs if r not in set(scores["run"])]
    if missing:
        raise ValueError(f"no metrics for run(s) {missing}")
    rows = []
    for run in runs:
        part = scores[scores["run"] == run]
        row = {"run": run, "title": titles.get(run, run), "seeds": len(part)}
        for group in GROUPS:
            values = part[group].to_numpy(dtype=float)
            row[f"{group}_mean"] = values.mean()
            row[f"{group}_std"] = values.std(ddof=1) if len(values) > 1 else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def formatted(table: pd.DataFrame, pm: str = " ± ", digits: int = 2) -> pd.DataFrame:
    """The display form of a paper table: title and "mean ± std" cells."""
    out = {"System": table["title"]}
    for group in GROUPS:
        out[GROUP_TITLES[group]] = [
            "-" if np.isnan(m) else f"{m:.{digits}f}{pm}{s:.{digits}f}"
            for m, s in zip(table[f"{group}_mean"], table[f"{group}_std"], strict=True)
        ]
    return pd.DataFrame(out)


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table ready to paste into a paper (needs \\usepackage{booktabs})."""
    shown = formatted(table, pm=" $\\pm$ ")
    escape = str.maketrans({"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#"})
    lines = [
        r"\begin{table}[t]",
        r"  \centering",
        f"  \\caption{{{caption}}}",
        f"  \\label{{{label}}}",
        r"  \begin{tabular}{l" + "c" * len(GROUPS) + "}",
        r"    \toprule",
        "    " + " & ".join(shown.columns) + r" \\",
        r"    \midrule",
    ]
    for row in shown.itertuples(index=False):
        cells = [str(row[0]).translate(escape), *row[1:]]
        lines.append("    " + " & ".join(cells) + r" \\")
    lines += [r"    \bottomrule", r"  \end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, prefix: Path, caption: str, note: str = "") -> None:
    """`<prefix>.csv` (numbers), `<prefix>.md` and `<prefix>.tex` (mean ± std cells).

    `note` (e.g. why two rows are equal) follows the Markdown table and ends the LaTeX caption.
    """
    prefix = Path(prefix)
    table.to_csv(prefix.with_suffix(".csv"), index=False, float_format="%.4f")
    markdown = to_markdown(formatted(table))
    prefix.with_suffix(".md").write_text(markdown + (f"\nNote: {note}\n" if note else ""))
    if note:
        caption = f"{caption} Note: {note}."
    prefix.with_suffix(".tex").write_text(to_latex(table, caption, f"tab:{prefix.name}"))


def machine_table(per_machine: pd.DataFrame, titles: dict[str, str]) -> pd.DataFrame:
    """Per run and machine type: AUC_s, AUC_t and pAUC (%) averaged over seeds."""
    grouped = per_machine.groupby(["run", "dataset", "machine_type"], sort=False)
    table = (100 * grouped[METRIC_COLUMNS].mean()).reset_index()
    table.insert(0, "system", [titles.get(r, r) for r in table["run"]])
    return table.drop(columns="run")


def _cell(value, digits: int) -> str:
    if isinstance(value, float):
        return "-" if np.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def to_markdown(table: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub Markdown table, numbers rounded to `digits`, "-" for an empty group."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|---|" + "---:|" * (len(table.columns) - 1)
    rows = [
        "| " + " | ".join(_cell(v, digits) for v in row) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows]) + "\n"


# --- pseudo-label quality -----------------------------------------------------------------------


def true_attribute_sets(index: pd.DataFrame, truth_csv: str | Path | None) -> pd.Series | None:
    """The true attribute set (JSON text) of each training clip: from the clip table where the
    machine type has attribute labels, else from a hidden-truth file; None when unknown."""
    from asdflow import pseudolabel

    known = index["attributes_known"].astype(str).eq("True")
    if known.all():
        return index["attributes"].reset_index(drop=True)
    if truth_csv and Path(truth_csv).is_file():
        return pseudolabel._truth_by_file(Path(truth_csv), index["file"]).reset_index(drop=True)
    return None


def pseudolabel_quality(entries: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """NMI, ARI and purity of each (encoder, machine type)'s clusters against true attributes.

    entries: (encoder, pseudo-label CSV, training index CSV, hidden-truth CSV or "-").
    Machine types whose true attributes are unknown are left out.
    """
    from asdflow import pseudolabel

    rows = []
    for encoder, pseudo_csv, index_csv, truth_csv in entries:
        index = features.read_index(index_csv)
        truth = true_attribute_sets(index, None if truth_csv == "-" else truth_csv)
        if truth is None:
            continue
        clusters = pd.read_csv(pseudo_csv, keep_default_na=False)
        by_file = dict(zip(clusters["file"], clusters["pseudo_attribute"], strict=True))
        labels = [by_file[f] for f in index["file"]]
        quality = pseudolabel.cluster_quality(truth.to_numpy(), np.asarray(labels))
        rows.append(
            {
                "encoder": encoder,
                "dataset": Path(index_csv).parent.parent.name,
                "machine_type": index["machine_type"].iloc[0],
                "hidden": not index["attributes_known"].astype(str).eq("True").all(),
                **quality,
            }
        )
    return pd.DataFrame(rows)


def pseudolabel_summary(quality: pd.DataFrame) -> pd.DataFrame:
    """Mean NMI / ARI / purity per encoder over the hidden-attribute machine types and over all."""
    rows = []
    for encoder, part in quality.groupby("encoder", sort=False):
        hidden = part[part["hidden"]]
        rows.append(
            {
                "encoder": encoder,
                "nmi_hidden": hidden["nmi"].mean(),
                "ari_hidden": hidden["ari"].mean(),
                "purity_hidden": hidden["purity"].mean(),
                "nmi_all": part["nmi"].mean(),
                "ari_all": part["ari"].mean(),
                "purity_all": part["purity"].mean(),
                "clusters_per_machine": part["n_clusters"].mean(),
            }
        )
    return pd.DataFrame(rows)


# --- the stages' file outputs (called by the CLI) -----------------------------------------------


def write_run_metrics(run: str, seed: int, entries: list[MachineResult], out: Path) -> pd.DataFrame:
    """The `evaluate` stage: per-machine metrics of one run and seed as a CSV."""
    frame = evaluate_run(run, entries).assign(seed=seed)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, float_format="%.6f")
    return frame


def write_paper_tables(
    metrics_files: list[Path],
    table_runs: dict[str, list[str]],
    titles: dict[str, str],
    out_dir: Path,
    figure: Path,
    note: str = "",
) -> str:
    """The `tables` stage: Tables 1 and 2 (Markdown, CSV, LaTeX), the per-machine table and the
    bar chart of the runs, from the metrics of every run and seed. Returns the printed text."""
    from asdflow import figures

    per_machine = pd.concat([pd.read_csv(p) for p in metrics_files], ignore_index=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = []
    for name, runs in table_runs.items():
        table = paper_table(per_machine, runs, titles)
        write_table(table, out_dir / name, caption=CAPTIONS[name], note=note)
        text += [f"{name}: official score (%), mean +- std over seeds\n", to_markdown(table)]
        if note:
            text.append(f"Note: {note}\n")
    machines = machine_table(per_machine, titles)
    machines.to_csv(out_dir / "machines.csv", index=False, float_format="%.2f")
    (out_dir / "machines.md").write_text(to_markdown(machines, 1))
    figures.run_bars(seed_scores(per_machine), titles, Path(figure))
    return "\n".join(text)


def write_pseudolabel_quality(
    entries: list[tuple[str, str, str, str]], out_csv: Path, out_md: Path
) -> str:
    """The `pseudolabel-quality` stage: the quality CSV and a Markdown summary (returned)."""
    quality = pseudolabel_quality(entries)
    summary = pseudolabel_summary(quality)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    quality.to_csv(out_csv, index=False, float_format="%.4f")
    per_machine = quality.pivot_table(
        index=["dataset", "machine_type", "hidden"], columns="encoder", values="nmi", sort=False
    ).reset_index()
    text = (
        "Mean over machine types (hidden: the no-attribute ones, clustered for fine-tuning):\n\n"
        + to_markdown(summary, 3)
        + "\nNMI per machine type:\n\n"
        + to_markdown(per_machine, 3)
    )
    Path(out_md).write_text(text)
    return text
