-- A job's status follows its attempts, not a trainer's clock: the writer applies a status event only when its
-- attempt (attempt_no in job_attempts; 0 for an event that names none) is the one whose status was applied last,
-- or a later one, and never leaves a final status. Within one attempt the broker's order decides (a job's events
-- share one partition). status_at stays the producer's time of that status, shown but never compared.
ALTER TABLE jobs ADD COLUMN status_attempt_no integer NOT NULL DEFAULT 0;
GRANT UPDATE (status_attempt_no) ON jobs TO epochscope_writer;
