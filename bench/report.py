"""Print the committed benchmark results (bench/results/*.json) as Markdown tables, for the README.

.venv/bin/python bench/report.py
"""

import json
from pathlib import Path

from common import RESULTS, ResultRow, format_number


def markdown(result: dict) -> str:
    machine = result["machine"]
    where = f"{machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores, GPU: {machine.get('gpu') or 'none'}"
    lines = [
        f"### {result['name']}",
        "",
        f"Measured {result.get('measured_at', '?')} on {where}.",
        "",
        "| metric | unit | ours | peer | peer name | ratio (ours/peer) | better |",
        "| --- | --- | ---: | ---: | --- | ---: | --- |",
    ]
    for raw in result["rows"]:
        row = ResultRow.of(raw)
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        ours, peer = format_number(row.ours), format_number(row.peer)
        lines.append(
            f"| {row.metric} | {row.unit} | {ours} | {peer} | {row.peer_name} | {ratio} | {row.direction or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    for path in sorted(Path(RESULTS).glob("*.json")):
        print(markdown(json.loads(path.read_text())))
        print()


if __name__ == "__main__":
    main()
