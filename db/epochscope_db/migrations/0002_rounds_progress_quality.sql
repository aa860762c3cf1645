-- Prediction quality (validators, scores), one row per prediction round, the training progress
-- history (progress bar, loss chart) and warnings the trainer reported. All owner-scoped under RLS.

ALTER TABLE training_predictions
    ADD COLUMN valid            boolean,   -- null: no validators configured
    ADD COLUMN validation_error text,
    ADD COLUMN exact_match      double precision,
    ADD COLUMN f1               double precision,
    ADD COLUMN rouge_l          double precision;

ALTER TABLE jobs
    ADD COLUMN progress jsonb;  -- the latest progress event: step, max_steps, epoch, loss, ...

CREATE TABLE job_rounds (
    job_id           uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    round_index      integer NOT NULL,
    owner_id         text NOT NULL,
    epoch            double precision NOT NULL,
    step             integer NOT NULL,
    trigger          text NOT NULL,
    predictions      integer NOT NULL,
    validated        integer NOT NULL,
    valid            integer NOT NULL,
    scored           integer NOT NULL,
    mean_exact_match double precision,
    mean_f1          double precision,
    mean_rouge_l     double precision,
    tokens_generated integer NOT NULL,
    wall_ms          double precision NOT NULL,
    stall_ms         double precision NOT NULL,
    occurred_at      timestamptz NOT NULL,
    PRIMARY KEY (job_id, round_index)
);

CREATE TABLE job_progress (
    job_id             uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    step               integer NOT NULL,
    owner_id           text NOT NULL,
    max_steps          integer NOT NULL,
    epoch              double precision NOT NULL,
    loss               double precision,
    learning_rate      double precision,
    samples_per_second double precision,
    occurred_at        timestamptz NOT NULL,
    PRIMARY KEY (job_id, step)
);

CREATE TABLE job_warnings (
    event_id    uuid PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    owner_id    text NOT NULL,
    code        text NOT NULL,
    message     text NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX job_warnings_job ON job_warnings (job_id, occurred_at);

ALTER TABLE job_rounds ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_rounds FORCE ROW LEVEL SECURITY;
ALTER TABLE job_progress ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_progress FORCE ROW LEVEL SECURITY;
ALTER TABLE job_warnings ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_warnings FORCE ROW LEVEL SECURITY;

CREATE POLICY rounds_owner ON job_rounds
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));
CREATE POLICY progress_owner ON job_progress
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));
CREATE POLICY warnings_owner ON job_warnings
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));

GRANT SELECT, DELETE ON job_rounds, job_progress, job_warnings TO epochscope_api;
GRANT SELECT, INSERT ON job_rounds, job_progress, job_warnings TO epochscope_writer;
GRANT UPDATE (progress) ON jobs TO epochscope_writer;
