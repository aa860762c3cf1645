"""The README's list of limits is docs/limits.md's, row for row: a limit added or changed in one is in the other."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def limit_rows(text: str) -> list[tuple[str, str, str]]:
    """(what is bounded, setting, default) of each row of the text's limits table."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith(("| what is bounded", "| ---")):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_the_readme_lists_every_limit_of_docs_limits_with_its_setting_and_default() -> None:
    documented = limit_rows((ROOT / "docs" / "limits.md").read_text())
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Limits and guarantees\n", 1)[1].split("\n## ", 1)[0]
    assert len(documented) > 40
    assert limit_rows(section) == documented
