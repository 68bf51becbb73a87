"""The figures of a benchmark, one per line: `name  value`, floats to three decimals."""

from __future__ import annotations


def print_figures(result: dict) -> None:
    width = max(map(len, result))
    for key, value in result.items():
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {text}")
