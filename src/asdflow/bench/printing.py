"""The figures of a benchmark, one per line: `name  value`, floats to three decimals (three
significant digits below 0.001)."""

from __future__ import annotations


def print_figures(result: dict) -> None:
    width = max(map(len, result))
    for key, value in result.items():
        text = str(value)
        if isinstance(value, float):
            text = f"{value:.3g}" if 0 < abs(value) < 1e-3 else f"{value:.3f}"
        print(f"{key:<{width}}  {text}")
