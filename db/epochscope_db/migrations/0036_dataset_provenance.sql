-- Where a dataset the API built came from: the preference pairs of a job's rounds (POST /v1/jobs/{id}/preference-
-- pairs), with the rounds and the rule that chose them. One row per built dataset, deleted with it; the job id is
-- kept without a foreign key, so the pairs outlive a deleted job. Owner-scoped under forced RLS.
CREATE TABLE dataset_provenance (
    dataset_id   uuid PRIMARY KEY REFERENCES datasets (dataset_id) ON DELETE CASCADE,
    owner_id     text NOT NULL,
    job_id       uuid NOT NULL,
    rounds       integer[] NOT NULL,
    rule         jsonb NOT NULL,
    pairs        integer NOT NULL,
    regressions  integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE dataset_provenance ENABLE ROW LEVEL SECURITY;
ALTER TABLE dataset_provenance FORCE ROW LEVEL SECURITY;
CREATE POLICY dataset_provenance_owner ON dataset_provenance
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));

GRANT SELECT, INSERT ON dataset_provenance TO epochscope_api;
