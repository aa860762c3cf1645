"""The writer keeps the cyclic garbage collector off its hot path: a batch's thousands of decoded predictions are not
tracked, and the heap imported at start is frozen before the first batch, so a collection never walks it again."""

import gc
import sys
import uuid
from collections.abc import Coroutine

import pytest
from test_writer_units import prediction
from writer_fakes import record_of

from epochscope_schemas.events import PredictionScores
from epochscope_schemas.graders import Grade
from epochscope_writer import main
from epochscope_writer.domain.decoding import decode_record
from epochscope_writer.domain.prediction_struct import GradeStruct, PredictionStruct, ScoresStruct


def test_decoded_predictions_are_not_tracked_by_the_cyclic_collector() -> None:
    event = prediction(uuid.uuid4(), "alice", 1, 0).model_copy(
        update={
            "scores": PredictionScores(exact_match=1.0, f1=0.5, rouge_l=0.5),
            "grades": {"exact": Grade(score=1.0, passed=True)},
        }
    )
    decoded = decode_record(record_of(event).topic, record_of(event).value)
    assert isinstance(decoded, PredictionStruct)
    assert isinstance(decoded.scores, ScoresStruct) and isinstance(decoded.grades["exact"], GradeStruct)
    assert not gc.is_tracked(decoded)
    assert not gc.is_tracked(decoded.scores) and not gc.is_tracked(decoded.grades["exact"])


def test_the_writer_freezes_its_imported_heap_before_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_when_serving: list[int] = []

    def serve_now(serving: Coroutine[object, object, None]) -> None:
        """In place of asyncio.run: what the collector holds frozen when serving would begin."""
        frozen_when_serving.append(gc.get_freeze_count())
        serving.close()

    monkeypatch.setenv("EPOCHSCOPE_ENVIRONMENT", "development")
    monkeypatch.setenv("EPOCHSCOPE_JOB_TOKEN_SECRET", "writer-gc-test-job-token-secret-0123456789")
    monkeypatch.setattr(sys, "argv", ["epochscope-writer"])
    monkeypatch.setattr(main.asyncio, "run", serve_now)
    monkeypatch.setattr(main, "configure_logging", lambda *args: None)
    gc.unfreeze()
    try:
        main.run()
    finally:
        gc.unfreeze()
    assert frozen_when_serving and frozen_when_serving[0] > 0
