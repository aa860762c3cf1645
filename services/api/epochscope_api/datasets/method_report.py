"""The upload report's per-method part: for each training method (sft, dpo, grpo), how many rows it can use and,
by reason, how many it cannot and the first of them. A malformed row is unusable for every method with its own
reason; a usable row is asked `method_rows.method_problem`, the rule the job check applies too."""

from collections import Counter

from epochscope_api.response_models import MethodRows, UnusableRows
from epochscope_runtime.dataset_rows import Example, Malformed
from epochscope_runtime.method_rows import METHOD_PROBLEMS, method_problem

FIRST_LINES = 5  # row numbers kept per method and reason


class MethodTally:
    """Counts, per method, the usable rows and the unusable ones by reason, as the scan reads them."""

    def __init__(self) -> None:
        self._usable: Counter[str] = Counter()
        self._reasons: dict[str, Counter[str]] = {method: Counter() for method in METHOD_PROBLEMS}
        self._lines: dict[str, dict[str, list[int]]] = {method: {} for method in METHOD_PROBLEMS}

    def add(self, item: Example | Malformed) -> None:
        for method in METHOD_PROBLEMS:
            reason = item.reason if isinstance(item, Malformed) else method_problem(method, item)
            if reason is None:
                self._usable[method] += 1
                continue
            self._reasons[method][reason] += 1
            lines = self._lines[method].setdefault(reason, [])
            if len(lines) < FIRST_LINES:
                lines.append(item.row + 1)

    def result(self) -> dict[str, MethodRows]:
        return {
            method: MethodRows(
                usable=self._usable[method],
                unusable={
                    reason: UnusableRows(rows=count, first_lines=self._lines[method][reason])
                    for reason, count in reasons.most_common()
                },
            )
            for method, reasons in self._reasons.items()
        }
