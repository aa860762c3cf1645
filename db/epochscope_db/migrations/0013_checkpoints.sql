-- Checkpoints tied to prediction rounds: one row per checkpoint the trainer uploaded (a round's weights, or the
-- final weights with round_index NULL), its files and the round's metrics; deleted_at once pruned from the store.
-- Owner-scoped under RLS like the rounds.
CREATE TABLE job_checkpoints (
    checkpoint_id uuid PRIMARY KEY,
    job_id        uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    owner_id      text NOT NULL,
    round_index   integer,
    step          integer NOT NULL,
    epoch         double precision NOT NULL,
    final         boolean NOT NULL,
    key           text NOT NULL,
    files         jsonb NOT NULL,
    bytes         bigint NOT NULL,
    sha256        text NOT NULL,
    metrics       jsonb NOT NULL,
    save_ms       double precision NOT NULL,
    stall_ms      double precision NOT NULL,
    upload_ms     double precision NOT NULL,
    occurred_at   timestamptz NOT NULL,
    deleted_at    timestamptz
);
CREATE INDEX job_checkpoints_job ON job_checkpoints (job_id, round_index);

ALTER TABLE job_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY checkpoints_owner ON job_checkpoints
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));

GRANT SELECT, DELETE ON job_checkpoints TO epochscope_api;
GRANT SELECT, INSERT ON job_checkpoints TO epochscope_writer;
GRANT UPDATE (deleted_at) ON job_checkpoints TO epochscope_writer;
