-- The per-round summary aggregates the predictions of the rounds the trainer has not summarized
-- yet (the newest one, or a gap); this index finds them without reading a job's whole history.
CREATE INDEX training_predictions_job_round ON training_predictions (job_id, round_index);
