"""Print the committed benchmark results (bench/results/*.json) as Markdown tables, for the README.

.venv/bin/python bench/report.py
"""

import json
from pathlib import Path

from common import RESULTS, ResultRow, format_number


def markdown(result: dict) -> str:
    machine = result["machine"]
    where = f"{machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores, GPU: {machine.get('gpu') or 'none'}"
    load = machine.get("load_average_1m")
    rows = [ResultRow.of(raw) for raw in result["rows"]]
    with_load = any(row.load_average_1m is not None for row in rows)
    measured = f"Measured {result.get('measured_at', '?')} on {where}"
    header = "| metric | unit | ours | peer | peer name | ratio (ours/peer) | better |"
    lines = [
        f"### {result['name']}",
        "",
        measured + (f"; 1-minute load when written: {load}." if load else "."),
        *([f"Edited: {result['edited']}"] if "edited" in result else []),
        "",
        header + (" load (1 min) |" if with_load else ""),
        "| --- | --- | ---: | ---: | --- | ---: | --- |" + (" ---: |" if with_load else ""),
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        ours, peer = format_number(row.ours), format_number(row.peer)
        line = f"| {row.metric} | {row.unit} | {ours} | {peer} | {row.peer_name} | {ratio} | {row.direction or '-'} |"
        lines.append(line + (f" {row.load_average_1m} |" if with_load else ""))
    return "\n".join(lines)


def main() -> None:
    for path in sorted(Path(RESULTS).glob("*.json")):
        print(markdown(json.loads(path.read_text())))
        print()


if __name__ == "__main__":
    main()
