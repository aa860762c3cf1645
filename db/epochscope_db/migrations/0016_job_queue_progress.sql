-- How far the current attempt of a running job is (its latest progress event's step / max_steps), kept in the
-- queue row so that any user's estimated start can count on the running jobs' progress without reading their
-- jobs (row-level security): a fraction, nothing of the job's content. Written by the writer with the progress of
-- the current attempt (fencing refuses the others); cleared by the dispatcher at each dispatch.
ALTER TABLE job_queue ADD COLUMN fraction_done real CHECK (fraction_done BETWEEN 0 AND 1);
GRANT UPDATE (fraction_done) ON job_queue TO epochscope_writer;
