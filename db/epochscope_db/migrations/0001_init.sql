-- Jobs, their predictions, and the API's transactional outbox.
-- Ownership is enforced by row-level security, ENABLED and FORCED, keyed on the user the
-- service sets for its transaction: set_config('app.user_id', <user>, true).
-- Roles epochscope_api and epochscope_writer are created by the migrate step (never superuser,
-- never BYPASSRLS).

CREATE TABLE jobs (
    job_id           uuid PRIMARY KEY,
    owner_id         text NOT NULL,
    config           jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    status_message   text,
    status_at        timestamptz,            -- occurred_at of the status event last applied
    metrics          jsonb NOT NULL DEFAULT '{}'::jsonb,
    token_expires_at timestamptz NOT NULL,   -- the job token itself is never stored
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX jobs_owner_created ON jobs (owner_id, created_at DESC, job_id DESC);

CREATE TABLE training_predictions (
    job_id           uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    seq              bigint GENERATED ALWAYS AS IDENTITY,  -- commit order within a job: the live stream's cursor
    step             integer NOT NULL,
    sample_id        text NOT NULL,
    owner_id         text NOT NULL,
    round_index      integer NOT NULL,
    epoch            double precision NOT NULL,
    sample_index     integer NOT NULL,
    prompt           text NOT NULL,
    ground_truth     text,
    prediction       text NOT NULL,
    tokens_generated integer NOT NULL DEFAULT 0,
    latency_ms       double precision NOT NULL DEFAULT 0,
    event_id         uuid NOT NULL,
    occurred_at      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- The natural key: a redelivered event is a no-op. It also serves keyset pagination.
    PRIMARY KEY (job_id, step, sample_id)
);
CREATE UNIQUE INDEX training_predictions_job_seq ON training_predictions (job_id, seq);

CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        text NOT NULL,
    key          text NOT NULL,
    payload      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
ALTER TABLE training_predictions ENABLE ROW LEVEL SECURITY;
ALTER TABLE training_predictions FORCE ROW LEVEL SECURITY;

-- A user sees and changes only their own rows; new rows must carry the current user.
CREATE POLICY jobs_owner ON jobs
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));
CREATE POLICY predictions_owner ON training_predictions
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));

-- The writer learns a job's owner by naming that one job: set_config('app.job_id', <id>, true).
-- It can read no other job this way, and it writes only with the owner set as app.user_id.
CREATE POLICY jobs_writer_lookup ON jobs FOR SELECT TO epochscope_writer
    USING (job_id::text = current_setting('app.job_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON jobs, training_predictions TO epochscope_api;
GRANT SELECT, INSERT, UPDATE ON outbox TO epochscope_api;
GRANT SELECT, UPDATE (status, status_message, status_at, metrics, updated_at, started_at, finished_at)
    ON jobs TO epochscope_writer;
GRANT SELECT, INSERT ON training_predictions TO epochscope_writer;
