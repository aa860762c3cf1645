-- A user's verdict on one prediction: good or bad, an optional note and an optional corrected answer. It reads as
-- the `human` grader beside the trainer's (pass = good). One row per prediction, keyed like the prediction and
-- deleted with it; owner-scoped under forced RLS. Only the API writes verdicts: the writer has no grant.
CREATE TABLE prediction_verdicts (
    job_id      uuid NOT NULL,
    step        integer NOT NULL,
    sample_id   text NOT NULL,
    owner_id    text NOT NULL,
    good        boolean NOT NULL,
    note        text,
    correction  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, step, sample_id),
    FOREIGN KEY (job_id, step, sample_id) REFERENCES training_predictions (job_id, step, sample_id) ON DELETE CASCADE
);

ALTER TABLE prediction_verdicts ENABLE ROW LEVEL SECURITY;
ALTER TABLE prediction_verdicts FORCE ROW LEVEL SECURITY;
CREATE POLICY verdicts_owner ON prediction_verdicts
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON prediction_verdicts TO epochscope_api;
