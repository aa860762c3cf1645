"""The upload report's per-method part: for each training method (sft, dpo, grpo), how many rows it can use and,
by reason, how many it cannot and the first of them. A malformed row is unusable for every method with its own
reason; a usable row is asked each of `method_rows.METHOD_PROBLEMS`, the rule the job check applies too."""

from collections import Counter
from collections.abc import Sequence

from epochscope_api.response_models import MethodRows, UnusableRows
from epochscope_runtime.dataset_rows import Example, Malformed
from epochscope_runtime.method_rows import METHOD_PROBLEMS

FIRST_LINES = 5  # row numbers kept per method and reason

Verdicts = tuple[str | None, ...]  # one reason (None: usable) per method, in METHOD_PROBLEMS' order


class MethodTally:
    """Counts, per method, the usable rows and the unusable ones by reason, as the scan reads them.

    A row costs one count of its verdicts (the reasons of every method together) and, among the first FIRST_LINES
    rows with those verdicts, its line: the first lines of a method's reason are among the first lines of the
    verdicts that hold it, so result() finds them there."""

    def __init__(self) -> None:
        self._verdicts: Counter[Verdicts] = Counter()
        self._lines: dict[Verdicts, list[int]] = {}

    def add(self, item: Example | Malformed) -> None:
        if isinstance(item, Malformed):
            verdicts: Verdicts = (item.reason,) * len(METHOD_PROBLEMS)
        else:
            verdicts = tuple([problem(item) for problem in METHOD_PROBLEMS.values()])
        self._count(verdicts, [item.row])

    def add_alike(self, example: Example, rows: Sequence[int]) -> None:
        """Usable rows (their row numbers, in file order) that every method judges as it judges `example`."""
        self._count(tuple([problem(example) for problem in METHOD_PROBLEMS.values()]), rows)

    def _count(self, verdicts: Verdicts, rows: Sequence[int]) -> None:
        seen = self._verdicts[verdicts]
        self._verdicts[verdicts] += len(rows)
        if seen < FIRST_LINES and any(reason is not None for reason in verdicts):
            self._lines.setdefault(verdicts, []).extend(int(row) + 1 for row in rows[: FIRST_LINES - seen])

    def result(self) -> dict[str, MethodRows]:
        return {method: self._method_rows(position) for position, method in enumerate(METHOD_PROBLEMS)}

    def _method_rows(self, position: int) -> MethodRows:
        rows: Counter[str] = Counter()
        lines: dict[str, list[int]] = {}
        usable = 0
        for verdicts, count in self._verdicts.items():
            reason = verdicts[position]
            if reason is None:
                usable += count
                continue
            rows[reason] += count
            lines.setdefault(reason, []).extend(self._lines[verdicts])
        return MethodRows(
            usable=usable,
            unusable={
                reason: UnusableRows(rows=count, first_lines=sorted(lines[reason])[:FIRST_LINES])
                for reason, count in rows.most_common()
            },
        )
