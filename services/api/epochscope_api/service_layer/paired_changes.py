"""Two sides of a comparison (two rounds, or two jobs' latest rounds), each a sample's grader verdicts: per grader
present on both, the fixes and regressions, the exact McNemar p-value and paired bootstrap intervals."""

from epochscope_api.data.timeline import Verdicts
from epochscope_api.service_layer.answer_flips import paired_flips
from epochscope_api.service_layer.significance import (
    CONFIDENCE,
    SIGNIFICANCE_LEVEL,
    change_sentence,
    mcnemar_exact,
    paired_bootstrap,
)
from epochscope_api.timeline_models import GraderChange, Interval, PairedComparison


def paired_comparison(
    before_label: str,
    after_label: str,
    before: dict[str, Verdicts],
    after: dict[str, Verdicts],
    resamples: int,
    seed: int,
) -> PairedComparison:
    shared = sorted(before.keys() & after.keys())
    graders = sorted(
        {name for sample_id in shared for name in before[sample_id]}
        & {name for sample_id in shared for name in after[sample_id]}
    )
    return PairedComparison(
        before=before_label,
        after=after_label,
        shared_samples=len(shared),
        confidence=CONFIDENCE,
        resamples=resamples,
        graders=[
            _grader_change(grader, before_label, after_label, before, after, shared, resamples, seed)
            for grader in graders
        ],
    )


def _grader_change(
    grader: str,
    before_label: str,
    after_label: str,
    before: dict[str, Verdicts],
    after: dict[str, Verdicts],
    shared: list[str],
    resamples: int,
    seed: int,
) -> GraderChange:
    graded = [s for s in shared if grader in before[s] and grader in after[s]]
    passed_before = {s: bool(before[s][grader]["passed"]) for s in graded}
    passed_after = {s: bool(after[s][grader]["passed"]) for s in graded}
    fixes, regressions = paired_flips(passed_before, passed_after)
    p_value = mcnemar_exact(len(fixes), len(regressions))
    scores_before = [float(before[s][grader]["score"]) for s in graded]
    scores_after = [float(after[s][grader]["score"]) for s in graded]
    intervals = paired_bootstrap(scores_before, scores_after, resamples, seed)
    return GraderChange(
        grader=grader,
        graded=len(graded),
        passed_before=sum(passed_before.values()),
        passed_after=sum(passed_after.values()),
        fixes=fixes,
        regressions=regressions,
        p_value=p_value,
        significant=p_value < SIGNIFICANCE_LEVEL,
        mean_score_before=sum(scores_before) / len(graded) if graded else None,
        mean_score_after=sum(scores_after) / len(graded) if graded else None,
        interval_before=Interval(low=intervals.before[0], high=intervals.before[1]) if intervals else None,
        interval_after=Interval(low=intervals.after[0], high=intervals.after[1]) if intervals else None,
        interval_difference=Interval(low=intervals.difference[0], high=intervals.difference[1]) if intervals else None,
        summary=f"{grader}: " + change_sentence(before_label, after_label, len(fixes), len(regressions), p_value),
    )
