"""The estimated start of queued jobs from the running jobs' progress (pure arithmetic), worked by hand."""

from epochscope_api.queue.start_estimate import RunningJob, estimated_starts, remaining_s

TYPICAL = 600.0  # a typical run: 10 min


def test_a_job_with_progress_frees_its_slot_at_its_pace() -> None:
    # A quarter done after 5 min: the other three quarters take 15 min.
    assert remaining_s(RunningJob(elapsed_s=300, fraction_done=0.25), TYPICAL) == 900
    assert remaining_s(RunningJob(elapsed_s=300, fraction_done=1.0), TYPICAL) == 0


def test_a_job_without_progress_frees_its_slot_after_a_typical_run() -> None:
    assert remaining_s(RunningJob(elapsed_s=60, fraction_done=None), TYPICAL) == 540
    assert remaining_s(RunningJob(elapsed_s=60, fraction_done=0.0), TYPICAL) == 540  # no step done: no pace yet
    assert remaining_s(RunningJob(elapsed_s=700, fraction_done=None), TYPICAL) == 0  # overdue: any moment now


def test_the_jobs_in_line_take_the_slots_as_they_free() -> None:
    running = [RunningJob(300, 0.25), RunningJob(60, None)]  # free in 900 s and in 540 s
    # 1st: the slot freed at 540; 2nd: the one freed at 900; 3rd: the first again, after a typical run of the 1st.
    assert estimated_starts(running, slots=2, typical_run_s=TYPICAL, count=3) == [540, 900, 1140]


def test_an_idle_slot_starts_the_first_in_line_now() -> None:
    assert estimated_starts([RunningJob(120, 0.5)], slots=2, typical_run_s=TYPICAL, count=3) == [0, 120, 600]


def test_more_running_jobs_than_live_slots_take_the_soonest_to_free() -> None:
    running = [RunningJob(100, 0.5), RunningJob(0, None), RunningJob(450, 0.9)]  # 100, 600 and 50 s left
    assert estimated_starts(running, slots=2, typical_run_s=TYPICAL, count=2) == [50, 100]


def test_no_live_slot_no_estimate() -> None:
    assert estimated_starts([RunningJob(10, 0.5)], slots=0, typical_run_s=TYPICAL, count=3) == []
