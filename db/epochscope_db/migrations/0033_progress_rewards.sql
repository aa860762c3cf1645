-- GRPO progress: each reward component's mean score and pass rate at a logged step ({"<grader>": {"mean": ..,
-- "pass_rate": ..}}, at most the job's reward components) and the mean total reward. Null for SFT jobs and rows
-- written before. The table's RLS and grants already cover new columns.
ALTER TABLE job_progress ADD COLUMN rewards jsonb, ADD COLUMN reward double precision;
