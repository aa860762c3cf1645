-- DPO: datasets of preference rows (prompt, chosen, rejected as text or as messages), and a DPO job's metrics at a
-- logged step (the mean implicit rewards of the chosen and rejected answers, their margin, and the fraction of pairs
-- whose chosen answer out-rewards the rejected one). Null for other methods and rows written before. The tables'
-- RLS and grants already cover new columns.
-- The row formats' check only widens, so every stored row already meets it: NOT VALID skips re-reading the table
-- under the ALTER's lock; new and updated rows are checked as before.
ALTER TABLE datasets DROP CONSTRAINT datasets_row_format_check,
    ADD CONSTRAINT datasets_row_format_check CHECK (row_format IN (
        'chat', 'prompt_completion', 'conversational', 'text', 'preference', 'conversational_preference')) NOT VALID;
ALTER TABLE job_progress ADD COLUMN chosen_reward double precision, ADD COLUMN rejected_reward double precision,
    ADD COLUMN reward_margin double precision, ADD COLUMN reward_accuracy double precision;
