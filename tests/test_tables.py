"""Results tables: group scores are the official score over the right machine types."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hmean

from asdflow import tables


def per_machine():
    rng = np.random.default_rng(0)
    rows = []
    for run in ("a", "b"):
        for role, machine, hidden in [
            ("dev", "m1", False),
            ("dev", "m2", True),
            ("eval", "m3", False),
            ("eval", "m4", True),
        ]:
            rows.append(
                {
                    "run": run,
                    "dataset": role,
                    "role": role,
                    "machine_type": machine,
                    "no_attribute": hidden,
                    **dict(zip(tables.METRIC_COLUMNS, rng.uniform(0.4, 0.9, 3), strict=True)),
                }
            )
    return pd.DataFrame(rows)


def test_group_scores_are_harmonic_means_of_the_group():
    frame = per_machine().assign(seed=0)
    table = tables.seed_scores(frame)
    assert table["run"].tolist() == ["a", "b"]
    part = frame[frame["run"] == "a"]
    values = lambda mask: part.loc[mask, tables.METRIC_COLUMNS].to_numpy().ravel()  # noqa: E731
    row = table.iloc[0]
    assert row["dev"] == pytest.approx(100 * hmean(values(part["role"] == "dev")))
    assert row["eval"] == pytest.approx(100 * hmean(values(part["role"] == "eval")))
    assert row["no_attribute"] == pytest.approx(100 * hmean(values(part["no_attribute"])))
    assert row["all"] == pytest.approx(100 * hmean(values(slice(None))))


def test_paper_table_mean_and_sample_std_over_seeds(tmp_path):
    frames = []
    for seed, shift in enumerate([0.0, 0.02, 0.04]):
        f = per_machine().assign(seed=seed)
        f[tables.METRIC_COLUMNS] += shift
        frames.append(f)
    frame = pd.concat(frames, ignore_index=True)
    table = tables.paper_table(frame, ["b", "a"], {"a": "A_1", "b": "B"})
    assert table["title"].tolist() == ["B", "A_1"] and (table["seeds"] == 3).all()
    per_seed = tables.seed_scores(frame)
    a = per_seed[per_seed["run"] == "a"]["all"]
    assert table.loc[1, "all_mean"] == pytest.approx(a.mean())
    assert table.loc[1, "all_std"] == pytest.approx(a.std(ddof=1)) and table.loc[1, "all_std"] > 0
    tables.write_table(table, tmp_path / "t1", caption="Scores (\\%)")
    md = (tmp_path / "t1.md").read_text()
    assert md.splitlines()[0] == "| System | Dev | Eval | NoAttr | All |" and " ± " in md
    tex = (tmp_path / "t1.tex").read_text()
    assert "\\toprule" in tex and "A\\_1" in tex and "$\\pm$" in tex and tex.count("\\\\") == 3
    assert pd.read_csv(tmp_path / "t1.csv")["all_mean"].notna().all()
    with pytest.raises(ValueError, match=r"no metrics for run\(s\) \['c'\]"):
        tables.paper_table(frame, ["c"], {})


def test_empty_group_is_nan_and_markdown_shows_a_dash():
    frame = per_machine().assign(seed=0)
    frame = frame[frame["role"] == "dev"]
    table = tables.paper_table(frame, ["a"], {})
    assert np.isnan(table.loc[0, "eval_mean"])
    text = tables.to_markdown(tables.formatted(table))
    assert "| - |" in text


def test_a_note_follows_the_markdown_table_and_ends_the_latex_caption(tmp_path):
    table = tables.paper_table(per_machine().assign(seed=0), ["a"], {})
    tables.write_table(table, tmp_path / "t", caption="Scores.", note="DAP-full repeats DAP")
    assert (tmp_path / "t.md").read_text().endswith("\nNote: DAP-full repeats DAP\n")
    assert "\\caption{Scores. Note: DAP-full repeats DAP.}" in (tmp_path / "t.tex").read_text()
    tables.write_table(table, tmp_path / "u", caption="Scores.")
    assert "Note" not in (tmp_path / "u.md").read_text() + (tmp_path / "u.tex").read_text()
