-- A checkpoint's stall_ms is how long training waited for its save, measured where the save ran in training's
-- thread (an inline round, the final weights). A background round's save runs beside training: its stall is not
-- measured there (any wait shows in the next round's stall_ms), so it is NULL, not a zero. Rows stored before this
-- held 0 for such saves; an inline save's stall equals its save_ms, so a 0 beside a positive save_ms was one.
ALTER TABLE job_checkpoints ALTER COLUMN stall_ms DROP NOT NULL;
UPDATE job_checkpoints SET stall_ms = NULL WHERE stall_ms = 0 AND save_ms > 0;
