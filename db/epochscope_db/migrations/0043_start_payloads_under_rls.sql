-- A queued job's start event (its config, model source and dataset keys; never a token) moves out of job_queue, which
-- has no row-level security, into a table of its own under forced RLS with the policy every user's table has: a row
-- is read, added and removed only with its owner as app.user_id. The API stores a start in the user's transaction,
-- the dispatcher reads each start as its owner (data/dispatch.py), and the start is removed as the owner when the job
-- ends (by the API, or by the writer applying the final status). The writer can read no start's content. A bug in
-- the API's SQL under one user, or the writer's, shows no other user's start.
-- Safe to run again over a job_queue that has start_payload again (tests/test_db_migrate.py re-runs 0015, which
-- fills that column, on a migrated database and then this).
CREATE TABLE IF NOT EXISTS job_start_payloads (
    job_id   uuid PRIMARY KEY REFERENCES job_queue (job_id) ON DELETE CASCADE,
    owner_id text NOT NULL,
    payload  text NOT NULL  -- the job.start event without its token (the dispatcher mints one per attempt)
);
ALTER TABLE job_start_payloads ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_start_payloads FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS start_payloads_owner ON job_start_payloads;
CREATE POLICY start_payloads_owner ON job_start_payloads
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));

INSERT INTO job_start_payloads (job_id, owner_id, payload)
SELECT job_id, owner_id, start_payload FROM job_queue WHERE start_payload IS NOT NULL AND state <> 'final'
ON CONFLICT (job_id) DO NOTHING;
ALTER TABLE job_queue DROP COLUMN start_payload;

GRANT SELECT, INSERT, DELETE ON job_start_payloads TO epochscope_api;
-- The writer removes a start when its job ends; it may name the row (job_id, owner_id), never read its payload.
GRANT SELECT (job_id, owner_id), DELETE ON job_start_payloads TO epochscope_writer;
