-- GRPO rollouts on the live stream: a per-row commit sequence, the stream's cursor over a job's rollouts (as
-- training_predictions.seq is for predictions). The writer holds the job's row lock while it inserts, so within one
-- job the sequence follows commit order.
ALTER TABLE training_rollouts ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;

CREATE UNIQUE INDEX training_rollouts_job_seq ON training_rollouts (job_id, seq);
