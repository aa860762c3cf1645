"""Reward hacking made visible: one reward component's mean score climbing while another's falls (a format reward
passing more while the content reward passes less) over a window of training steps."""

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from epochscope_schemas.methods import DivergenceWatch


@dataclass(frozen=True)
class Divergence:
    """Across steps `first_step`..`last_step`, `rising`'s mean score rose by `rise` while `falling`'s fell by
    `fall`."""

    rising: str
    falling: str
    first_step: int
    last_step: int
    rise: float
    fall: float

    def message(self) -> str:
        return (
            f"reward component {self.rising!r} rose by {self.rise:.3f} while {self.falling!r} fell by "
            f"{self.fall:.3f} over steps {self.first_step}-{self.last_step}: the policy may be satisfying one "
            "reward at the other's expense"
        )


class DivergenceDetector:
    """Fed each training step's mean score per component; reports a divergence once per episode (it reports again
    only after a window without one). A component's change is its last mean in the window minus its first; one
    without a mean at either end (nothing graded) is left out."""

    def __init__(self, watch: DivergenceWatch) -> None:
        self.watch = watch
        self._steps: deque[tuple[int, Mapping[str, float | None]]] = deque(maxlen=watch.window)
        self._in_episode = False

    def observe(self, step: int, means: Mapping[str, float | None]) -> Divergence | None:
        self._steps.append((step, dict(means)))
        if len(self._steps) < self.watch.window:
            return None
        found = self._divergence()
        first_of_episode = found is not None and not self._in_episode
        self._in_episode = found is not None
        return found if first_of_episode else None

    def _divergence(self) -> Divergence | None:
        (first_step, first), (last_step, last) = self._steps[0], self._steps[-1]
        changes = {
            name: last[name] - first[name]  # type: ignore[operator]
            for name in first.keys() & last.keys()
            if first[name] is not None and last[name] is not None
        }
        if not changes:
            return None
        rising = max(sorted(changes), key=lambda name: changes[name])
        falling = min(sorted(changes), key=lambda name: changes[name])
        if changes[rising] < self.watch.min_change or -changes[falling] < self.watch.min_change:
            return None
        return Divergence(rising, falling, first_step, last_step, changes[rising], -changes[falling])
