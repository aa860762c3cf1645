-- Which texts of a prediction (prompt, ground_truth, prediction) the trainer cut to its size limit
-- (EPOCHSCOPE_TRAINER_PREDICTION_TEXT_MAX_BYTES); an empty array when none was. Rows written before
-- this migration were never cut, so the default is right for them too.
ALTER TABLE training_predictions ADD COLUMN truncated jsonb NOT NULL DEFAULT '[]'::jsonb;
