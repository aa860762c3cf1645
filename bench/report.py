"""Render the committed benchmark results (bench/results/*.json) as Markdown.

.venv/bin/python bench/report.py           print every result's table
.venv/bin/python bench/report.py --write   rewrite docs/performance.md's "Every recorded result" and the README's
                                           performance section (the headline rows below) from the JSON files
"""

import argparse
import json
import re
from pathlib import Path

from common import RESULTS, ResultRow, format_number

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "performance.md"
README = ROOT / "README.md"
ALL_RESULTS = "## Every recorded result"
README_START, README_END = "<!-- performance: start (bench/report.py --write) -->", "<!-- performance: end -->"

# The rows the README shows: (result name, the metric's start, the goal as a ratio, which way the goal bounds it).
HEADLINES: tuple[tuple[str, str, float | None, str], ...] = (
    ("api_read", "requests/s first page, 1 client", 0.7, "at least"),
    ("api_read", "requests/s first page, 10 clients", 0.7, "at least"),
    ("api_read", "requests/s first page, 50 clients", 0.7, "at least"),
    ("api_read", "p99 first page, 10 clients", 2.0, "at most"),
    ("writer_throughput", "1 writer vs raw COPY, empty table", 0.5, "at least"),
    ("upload", "upload MB/s, 105 MB", 0.5, "at least"),
    ("upload", "upload MB/s, 5 MB, tokens counted with", 0.25, "at least"),
    ("upload", "upload MB/s, 5 MB, tokens counted, against the tokenizer alone", None, "near"),
    ("prediction_round_tokens", "generated tokens/s in a round, ours inline", None, "near"),
    ("prediction_round_tokens", "round time (training waits), ours inline", 0.5, "at most"),
)


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _where(result: dict) -> str:
    machine = result["machine"]
    return f"{machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores, GPU: {machine.get('gpu') or 'none'}"


def markdown(result: dict) -> str:
    load = result["machine"].get("load_average_1m")
    rows = [ResultRow.of(raw) for raw in result["rows"]]
    with_load = any(row.load_average_1m is not None for row in rows)
    measured = f"Measured {result.get('measured_at', '?')} on {_where(result)}"
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


def headline_table(results: dict[str, dict]) -> str:
    """The README's table: one row per headline metric found, its ratio beside the goal, with date and load."""
    lines = [
        "| benchmark | metric | ours | floor or peer | ratio | goal | met | measured (UTC), load |",
        "| --- | --- | ---: | --- | ---: | --- | --- | --- |",
    ]
    for name, start, goal, bound in HEADLINES:
        result = results.get(name)
        raw = next((row for row in result["rows"] if row["metric"].startswith(start)), None) if result else None
        if raw is None:
            continue
        row = ResultRow.of(raw)
        ratio = row.ratio or 0.0
        if goal is None:
            aim, met = f"{bound} 1x", "-"
        else:
            aim, met = f"{bound} {goal}x", "yes" if (ratio >= goal if bound == "at least" else ratio <= goal) else "no"
        load = row.load_average_1m if row.load_average_1m is not None else result["machine"].get("load_average_1m")
        peer = f"{format_number(row.peer)} {row.unit} ({row.peer_name})"
        lines.append(
            f"| {name} | {row.metric} | {format_number(row.ours)} {row.unit} | {peer} | {ratio:.2f}x |"
            f" {aim} | {met} | {result.get('measured_at', '?')[:16]}, {load} |"
        )
    return "\n".join(lines)


def _replace_between(text: str, start: str, end: str | None, body: str) -> str:
    pattern = re.escape(start) + (r".*?" + re.escape(end) if end else r".*\Z")
    replacement = start + "\n\n" + body + ("\n\n" + end if end else "\n")
    updated, count = re.subn(pattern, lambda _: replacement, text, count=1, flags=re.S)
    if count != 1:
        raise SystemExit(f"marker {start!r} not found")
    return updated


def write() -> None:
    paths = sorted(Path(RESULTS).glob("*.json"))
    results = {path.stem: _load(path) for path in paths}
    rendered = "\n\n".join(markdown(result) for result in results.values())
    intro = "The tables below are `bench/report.py --write`'s rendering of `bench/results/*.json`."
    DOCS.write_text(_replace_between(DOCS.read_text(), ALL_RESULTS, None, intro + "\n\n" + rendered))
    README.write_text(_replace_between(README.read_text(), README_START, README_END, headline_table(results)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite docs/performance.md and the README's section")
    if parser.parse_args().write:
        write()
        return
    for path in sorted(Path(RESULTS).glob("*.json")):
        print(markdown(_load(path)))
        print()


if __name__ == "__main__":
    main()
