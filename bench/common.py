"""Shared by the benchmarks: what machine ran them, one percentile rule, and one format for their results
(a rich table, a JSON file whose shape bench/result.schema.json describes).

A result row compares ours with a peer on one metric: ratio = ours / peer, and the row says which way
is better ("higher" or "lower"; inferred from the unit when not given: rates such as rows/s are
higher-is-better, times such as ms lower-is-better), so a reader never guesses which way a ratio goes.
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
RESULT_SCHEMA = Path(__file__).resolve().parent / "result.schema.json"
_TIME_UNITS = {"ns", "us", "µs", "ms", "s"}
console = Console(width=None if sys.stdout.isatty() else 140)  # logs: wide enough for a results table


@dataclass(frozen=True)
class ResultRow:
    metric: str
    unit: str
    ours: float
    peer: float
    peer_name: str
    better: str | None = None  # "higher" or "lower"; None: inferred from the unit
    load_average_1m: float | None = None  # the machine's 1-minute load while this row's figures were measured

    @classmethod
    def of(cls, row: "ResultRow | Mapping[str, Any]") -> "ResultRow":
        """A ResultRow from itself or from a dict with the same keys (extra keys such as ratio are ignored)."""
        if isinstance(row, ResultRow):
            return row
        return cls(**{name: row[name] for name in cls.__dataclass_fields__ if name in row})

    @property
    def ratio(self) -> float | None:
        return self.ours / self.peer if self.peer else None

    @property
    def direction(self) -> str | None:
        if self.better:
            return self.better
        if self.unit.endswith("/s"):
            return "higher"
        return "lower" if self.unit in _TIME_UNITS else None

    def as_json(self) -> dict[str, Any]:
        ratio = self.ratio
        fields = {name: value for name, value in asdict(self).items() if name != "load_average_1m" or value is not None}
        return {**fields, "ratio": round(ratio, 3) if ratio is not None else None, "better": self.direction}


Rows = Sequence[ResultRow | Mapping[str, Any]]


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (q in 1..99), by the one rule every benchmark uses.

    `statistics.quantiles` with the inclusive method: linear interpolation between the closest ranks, so
    q=50 is the median and a p99 of few samples lies between the two largest, not on one of them.
    """
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def machine_info() -> dict[str, Any]:
    """CPU model, core count, GPU (None without one), and the load when the results were written."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "gpu": _gpu(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
    )
    names = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return ", ".join(names) if result.returncode == 0 and names else None


def print_table(title: str, rows: Rows, caption: str | None = None) -> None:
    table = Table(title=title, caption=caption)
    for column in ("metric", "unit", "ours", "peer", "peer name", "ours / peer", "better"):
        table.add_column(column, justify="right" if column in ("ours", "peer", "ours / peer") else "left")
    for row in map(ResultRow.of, rows):
        ratio = row.ratio
        table.add_row(
            row.metric,
            row.unit,
            format_number(row.ours),
            format_number(row.peer),
            row.peer_name,
            f"{ratio:.2f}x" if ratio is not None else "-",
            row.direction or "",
        )
    console.print(table)


def format_number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def write_results(name: str, params: dict[str, Any], rows: Rows, results_dir: Path = RESULTS, **extra: Any) -> Path:
    """Write `<results_dir>/<name>.json` and return its path.

    Keys: name, measured_at, machine, params, rows [{metric, unit, ours, peer, peer_name, ratio, better}],
    and any `extra` top-level keys (notes, targets).
    """
    document = {
        "name": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "params": params,
        "rows": [ResultRow.of(row).as_json() for row in rows],
        **extra,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
