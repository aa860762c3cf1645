"""Every benchmark, run tiny (--smoke): it still starts, measures both sides and writes its results. Here the
benchmarks that train without a stack; the stack's are in tests/test_bench_smoke_*.py (split so that pytest-xdist
can run them on different workers), and the runner in tests/bench_smoke.py.

Every result file, written now or committed, must match bench/result.schema.json: each row has ours, peer,
their ratio and which way is better.
"""

import json
import statistics
from pathlib import Path

import jsonschema
import pytest
from bench_smoke import BENCH, check_schema, run_smoke


@pytest.mark.parametrize("path", sorted((BENCH / "results").glob("*.json")), ids=lambda path: path.stem)
def test_committed_results_match_the_schema(path: Path) -> None:
    check_schema(json.loads(path.read_text()))


def test_the_schema_refuses_a_row_without_its_direction() -> None:
    document = json.loads((BENCH / "results" / "writer_throughput.json").read_text())
    del document["rows"][0]["better"]
    with pytest.raises(jsonschema.ValidationError, match="better"):
        check_schema(document)


def test_prediction_round_smoke(tmp_path: Path) -> None:
    """The cost of rounds is whole training runs' wall time at equal work, never the time inside a hook: each row
    is recomputed here from the runs, and the variants must have generated the same tokens at the same steps."""
    document = run_smoke("prediction_round.py", tmp_path)
    assert document["name"] == "prediction_round"
    params = document["params"]
    assert params["model"] == "tiny"
    runs = document["runs"]
    variants = {run["variant"] for run in runs}
    assert len(runs) == len(variants) * params["repeats"]
    for run in runs:
        assert run["rounds"] == (0 if run["variant"] == "none" else params["rounds"]), run
        assert run["wall_s"] > 0 and run["load_1m_start"] >= 0
    tokens = document["tokens_per_run"]
    assert tokens["ours_inline"] == tokens["ours_background"] == tokens["naive"] == tokens["ours_inline_ckpt"]
    assert tokens["ours_inline"][0] > 0

    def added(variant: str) -> float:
        walls = {(run["variant"], run["repeat"]): run["wall_s"] for run in runs}
        return statistics.median(walls[(variant, r)] - walls[("none", r)] for r in range(params["repeats"]))

    rows = {(row["metric"], row["peer_name"]): row for row in document["rows"]}
    trl = "TRL LogCompletionsCallback"
    background = rows[(f"training time added by {params['rounds']} rounds, ours background", trl)]
    assert background["ours"] == pytest.approx(added("ours_background"))
    assert background["peer"] == pytest.approx(added("trl"))
    checkpoints = (f"training time added by {params['rounds']} rounds and their checkpoints, ours background",)
    assert rows[(*checkpoints, trl + " + save_pretrained each round")]["ours"] == pytest.approx(
        added("ours_background_ckpt")
    )
    assert not any("stall" in metric and "background" in metric for metric, _ in rows)
    for row in rows.values():
        assert row["unit"] == "s" and row["better"] == "lower" and row["load_average_1m"] >= 0


def test_prediction_round_tokens_smoke(tmp_path: Path) -> None:
    """Each round is set against its floor at the rates measured beside it; rows are the medians of the runs."""
    document = run_smoke("prediction_round_tokens.py", tmp_path)
    assert document["name"] == "prediction_round_tokens"
    assert document["params"]["model"] == "tiny"
    runs = document["runs"]
    sides = ["ours", "ours_unfolded", "trl"]
    assert sorted(run["side"] for run in runs) == sorted(sides * document["params"]["repeats"])
    for run in runs:
        assert 0 < run["floor_s"] < run["round_s"] and run["matmul_gflops"] > 0 and run["copy_gbytes_per_s"] > 0
    rows = {(row["metric"], row["peer_name"]): row for row in document["rows"]}
    floor = "this CPU's floor for the model (roofline of measured matmul and copy rates)"
    ours = rows[("generated tokens/s in a round, ours inline", floor)]
    assert ours["ours"] == pytest.approx(
        statistics.median(r["tokens"] / r["round_s"] for r in runs if r["side"] == "ours")
    )
    assert ours["peer"] == pytest.approx(
        statistics.median(r["tokens"] / r["floor_s"] for r in runs if r["side"] == "ours")
    )
    assert ours["ours"] > 0 and ours["ratio"] < 1 and ours["better"] == "higher"
    for peer in ("TRL LogCompletionsCallback", "ours with the LoRA adapters unfolded (as before issue 27)"):
        round_time = rows[("round time (training waits), ours inline", peer)]
        assert round_time["better"] == "lower" and round_time["ours"] > 0 and round_time["peer"] > 0
    cpu = rows[("round CPU-seconds (the process, all threads), ours inline", "TRL LogCompletionsCallback")]
    assert all(run["cpu_s"] > 0 for run in runs)
    for side, figure in (("ours", "ours"), ("trl", "peer")):
        assert cpu[figure] == pytest.approx(statistics.median(r["cpu_s"] for r in runs if r["side"] == side))
    assert document["params"]["answers_identical"] is True  # folded adapters, unfolded ones and TRL: one answer


def test_grpo_smoke(tmp_path: Path) -> None:
    """Every step is split into generation, reward and update that add up to it; the rows are the medians of the
    steps after the first; every step rewarded every completion; TRL's completions log was timed in the same run."""
    document = run_smoke("grpo.py", tmp_path)
    assert document["name"] == "grpo" and document["params"]["smoke"] is True
    steps = document["steps"]
    assert len(steps) == document["params"]["steps"]
    for step in steps:
        parts = step["generation"] + step["reward"] + step["rollout_logging"] + step["update"]
        assert parts == pytest.approx(step["step"]) and step["generation"] > 0 and step["update"] > 0, step
        assert step["trl_log_completions"] > 0 and step["rollout_logging"] > 0, step
    rows = {row["metric"]: row for row in document["rows"]}
    median = {part: statistics.median(step[part] for step in steps[1:]) for part in steps[0]}
    assert rows["generation per step, share of the step"]["ours"] == pytest.approx(median["generation"], abs=1e-4)
    assert rows["generation per step, share of the step"]["peer"] == pytest.approx(median["step"], abs=1e-4)
    stall = rows["training stall per step from rollout logging"]
    assert stall["ours"] == pytest.approx(median["rollout_logging"], abs=1e-4)
    assert stall["peer"] == pytest.approx(median["trl_log_completions"], abs=1e-4)
    assert [point["step"] for point in document["reward_per_step"]] == list(range(1, len(steps) + 1))
