-- Graders: each prediction's grades by grader name ({"name": {"score", "passed", "error"}}) and each round's
-- per-grader summary ({"name": {"graded", "passed", "mean_score"}}); empty objects for rows written before.
-- A job's name and metadata tags (from its config), kept as columns so the jobs list filters on them.
ALTER TABLE training_predictions ADD COLUMN grades jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE job_rounds ADD COLUMN graders jsonb NOT NULL DEFAULT '{}'::jsonb;

ALTER TABLE jobs
    ADD COLUMN name text GENERATED ALWAYS AS (config->>'name') STORED,
    ADD COLUMN metadata jsonb GENERATED ALWAYS AS (coalesce(config->'metadata', '{}'::jsonb)) STORED;
CREATE INDEX jobs_owner_name ON jobs (owner_id, name);
CREATE INDEX jobs_metadata ON jobs USING gin (metadata jsonb_path_ops);
