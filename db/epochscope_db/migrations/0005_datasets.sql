-- Uploaded datasets, owned like jobs, and which datasets each job reads.
-- The file itself lives in the object store under object_key; this row holds its validation report.

CREATE TABLE datasets (
    dataset_id   uuid PRIMARY KEY,
    owner_id     text NOT NULL,
    filename     text NOT NULL,
    file_type    text NOT NULL CHECK (file_type IN ('jsonl', 'csv', 'parquet')),
    row_format   text NOT NULL CHECK (row_format IN ('chat', 'prompt_completion', 'conversational', 'text')),
    object_key   text NOT NULL,
    bytes        bigint NOT NULL,
    sha256       text NOT NULL,
    rows         integer NOT NULL,
    usable_rows  integer NOT NULL CHECK (usable_rows > 0),
    report       jsonb NOT NULL,       -- malformed rows (the first few), counts by reason, token counts per model
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX datasets_owner_created ON datasets (owner_id, created_at DESC, dataset_id DESC);

CREATE TABLE job_datasets (
    job_id      uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    dataset_id  uuid NOT NULL REFERENCES datasets (dataset_id) ON DELETE CASCADE,
    owner_id    text NOT NULL,
    role        text NOT NULL CHECK (role IN ('train', 'eval', 'samples')),
    PRIMARY KEY (job_id, role)
);
CREATE INDEX job_datasets_dataset ON job_datasets (dataset_id);

ALTER TABLE datasets ENABLE ROW LEVEL SECURITY;
ALTER TABLE datasets FORCE ROW LEVEL SECURITY;
ALTER TABLE job_datasets ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_datasets FORCE ROW LEVEL SECURITY;

CREATE POLICY datasets_owner ON datasets
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));
CREATE POLICY job_datasets_owner ON job_datasets
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));

GRANT SELECT, INSERT, DELETE ON datasets, job_datasets TO epochscope_api;
