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
    frame = per_machine()
    table = tables.results_table(frame)
    assert table["run"].tolist() == ["a", "b"]
    part = frame[frame["run"] == "a"]
    values = lambda mask: part.loc[mask, tables.METRIC_COLUMNS].to_numpy().ravel()  # noqa: E731
    row = table.iloc[0]
    assert row["dev"] == pytest.approx(100 * hmean(values(part["role"] == "dev")))
    assert row["eval"] == pytest.approx(100 * hmean(values(part["role"] == "eval")))
    assert row["no_attribute"] == pytest.approx(100 * hmean(values(part["no_attribute"])))
    assert row["all"] == pytest.approx(100 * hmean(values(slice(None))))


def test_empty_group_is_nan_and_markdown_shows_a_dash():
    frame = per_machine()
    frame = frame[frame["role"] == "dev"]
    table = tables.results_table(frame)
    assert np.isnan(table.loc[0, "eval"])
    text = tables.to_markdown(table)
    assert text.splitlines()[0] == "| run | dev | eval | no_attribute | all |"
    assert "| - |" in text
