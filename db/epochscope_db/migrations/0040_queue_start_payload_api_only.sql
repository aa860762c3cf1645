-- job_queue.start_payload (a queued job's start event: its config and dataset keys, never a token) stays outside
-- row-level security: the API's dispatcher reads every user's queued starts in one pass, under no user, so a
-- per-user policy would hide them from it. What can be narrowed is who reads it: the writer never does (it only
-- ends a queue row, setting the column NULL), so its SELECT on the table becomes SELECT on the columns it reads, and
-- only the API's role can read a start's content. The API never returns the column to a user (only the dispatcher's
-- UPDATE ... RETURNING reads it), and the column is NULL once the job is final.
REVOKE SELECT ON job_queue FROM epochscope_writer;
GRANT SELECT (job_id, owner_id, state, attempt_id, attempt_no, trainer_id, token_expires_at, last_error, queued_at,
              dispatched_at, started_at, finished_at, fraction_done)
    ON job_queue TO epochscope_writer;
