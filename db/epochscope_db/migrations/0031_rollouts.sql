-- GRPO rollouts: each completion a training step generated, its prompt, each reward component's score (by grader
-- name), the total and the advantage. One row per (job, step, completion); owner-scoped under forced RLS like the
-- predictions. Texts are bounded by the trainer as predictions are.
CREATE TABLE training_rollouts (
    job_id           uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    step             integer NOT NULL,
    completion_index integer NOT NULL,
    owner_id         text NOT NULL,
    prompt           text NOT NULL,
    completion       text NOT NULL,
    rewards          jsonb NOT NULL,
    reward           double precision,
    advantage        double precision NOT NULL,
    truncated        jsonb NOT NULL,
    event_id         uuid NOT NULL,
    occurred_at      timestamptz NOT NULL,
    PRIMARY KEY (job_id, step, completion_index)
);

ALTER TABLE training_rollouts ENABLE ROW LEVEL SECURITY;
ALTER TABLE training_rollouts FORCE ROW LEVEL SECURITY;
CREATE POLICY rollouts_owner ON training_rollouts
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));

GRANT SELECT ON training_rollouts TO epochscope_api;
GRANT SELECT, INSERT ON training_rollouts TO epochscope_writer;
