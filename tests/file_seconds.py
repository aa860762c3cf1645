"""How long each test file took in a full run, read from that run's JUnit XML (`make test` writes
test-artifacts/junit.xml). tests/conftest.py hands pytest-xdist the slowest files first from tests/file_seconds.json;
after a full run, refresh that table with `.venv/bin/python tests/file_seconds.py test-artifacts/junit.xml`."""

import json
import math
import sys
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

TABLE = Path(__file__).with_name("file_seconds.json")


def file_of(classname: str) -> str:
    """`tests.test_x` or `tests.test_x.TestClass` (a JUnit classname) -> `tests/test_x.py` (a pytest node id's file)."""
    parts = classname.split(".")
    module = next(index for index, part in enumerate(parts) if part.startswith("test_"))
    return "/".join(parts[: module + 1]) + ".py"


def seconds_per_file(junit: Path) -> dict[str, float]:
    """Each file's seconds: its tests' setup, call and teardown (JUnit's `time`), module fixtures included."""
    totals: Counter[str] = Counter()
    for case in ElementTree.parse(junit).iter("testcase"):
        totals[file_of(case.get("classname", ""))] += float(case.get("time", 0))
    return {name: round(seconds, 1) for name, seconds in sorted(totals.items(), key=lambda item: -item[1])}


def load() -> dict[str, float]:
    return json.loads(TABLE.read_text())


def slowest_first(node_ids: list[str], seconds: dict[str, float]) -> list[int]:
    """The order (indexes into `node_ids`) that runs the slowest files first, a file missing from `seconds` (new, never
    timed) before them all; each file's tests stay together and in their order."""
    return sorted(range(len(node_ids)), key=lambda index: -seconds.get(node_ids[index].split("::")[0], math.inf))


def main() -> None:
    TABLE.write_text(json.dumps(seconds_per_file(Path(sys.argv[1])), indent=1) + "\n")
    print(f"{TABLE}: {len(load())} files")


if __name__ == "__main__":
    main()
