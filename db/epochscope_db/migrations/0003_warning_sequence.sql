-- Warnings in the order they were stored, per job: the live stream's cursor for the warning feed
-- (as training_predictions.seq is for predictions). The writer holds the job's row lock while it
-- inserts, so within one job the sequence follows commit order.

ALTER TABLE job_warnings ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
DROP INDEX job_warnings_job;
CREATE UNIQUE INDEX job_warnings_job_seq ON job_warnings (job_id, seq);
