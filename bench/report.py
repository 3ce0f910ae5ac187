"""Rows of results, the plain-text table and the JSON file."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Row:
    """One figure: a measured value against a reference measured in the same run."""

    figure: str  # "1", "2a", ...: the figure of bench/README.md
    name: str
    value: float
    reference: float
    unit: str  # unit of value and reference
    meaning: str  # one line: how to read the ratio
    details: dict[str, Any] = field(default_factory=dict)  # what else was measured

    @property
    def ratio(self) -> float:
        return self.value / self.reference if self.reference else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values)


def _num(value: float, unit: str) -> str:
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text} {unit}".strip()


def table(rows: list[Row]) -> str:
    """Aligned columns: figure, name, value, reference, ratio, meaning."""
    head = ("#", "figure", "measured", "reference", "ratio", "meaning")
    body = [
        (
            r.figure,
            r.name,
            _num(r.value, r.unit),
            _num(r.reference, r.unit),
            f"{r.ratio:.2f}",
            r.meaning,
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    right = {2, 3, 4}

    def fmt(line: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), rule, *(fmt(line) for line in body)])


def details(rows: list[Row]) -> str:
    """One line per figure with everything else it measured."""
    out = []
    for r in rows:
        if r.details:
            parts = ", ".join(f"{k}={_short(v)}" for k, v in r.details.items())
            out.append(f"  {r.figure:<3} {parts}")
    return "\n".join(out)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_json(path: Path, rows: list[Row], meta: dict[str, Any]) -> None:
    data = {
        "meta": meta,
        "figures": [{**asdict(r), "ratio": r.ratio} for r in rows],
    }
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
