-- Jobs queued before the job queue (0014) have no job_queue row, so the dispatcher never sees them, and the start
-- event they were given (job.start v2, addressed to no trainer) is one no trainer runs any more. Each gets its row
-- now, its start rebuilt from that event: the newest job.start of the job still in the outbox, without its token
-- (recomputed at dispatch), as v3 (v2 plus the dispatch fields, which the dispatcher fills). Queued in the order
-- the jobs were created. A start not yet published is set aside (the dispatcher sends the job's start now).
-- A queued job whose start event is gone (published rows are deleted after EPOCHSCOPE_OUTBOX_RETENTION_HOURS)
-- cannot be rebuilt here (its inputs' object keys and model source were only in the event): it fails, saying so.
CREATE FUNCTION pg_temp.as_jsonb(value text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    RETURN value::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;  -- not JSON: not a start event
END
$$;

CREATE TEMPORARY TABLE old_starts ON COMMIT DROP AS
SELECT DISTINCT ON (o.key) o.id, o.key, pg_temp.as_jsonb(o.payload) AS event
FROM outbox o
WHERE o.topic = 'jobs.commands' AND o.payload LIKE '%"job.start"%'
  AND pg_temp.as_jsonb(o.payload) ->> 'type' = 'job.start'
ORDER BY o.key, o.id DESC;

INSERT INTO job_queue (job_id, owner_id, start_payload, token_expires_at, queued_at)
SELECT j.job_id, j.owner_id, ((s.event - 'job_token') || '{"schema_version": 3}'::jsonb)::text, j.token_expires_at,
       j.created_at
FROM jobs j
JOIN old_starts s ON s.key = j.job_id::text
WHERE j.status = 'queued' AND NOT EXISTS (SELECT 1 FROM job_queue q WHERE q.job_id = j.job_id);

UPDATE outbox o SET published_at = now(), payload = (s.event - 'job_token')::text,
       set_aside_reason = 'superseded by the job queue (migration 0015): the dispatcher sends this job''s start'
FROM old_starts s
WHERE o.id = s.id AND o.published_at IS NULL AND s.event ->> 'schema_version' IS DISTINCT FROM '3'
  AND EXISTS (SELECT 1 FROM job_queue q WHERE q.job_id::text = s.key);

UPDATE jobs j SET status = 'failed', finished_at = now(), updated_at = now(),
       status_message = 'queued before the job queue existed, and its start event is no longer kept: submit it again'
WHERE j.status = 'queued' AND NOT EXISTS (SELECT 1 FROM job_queue q WHERE q.job_id = j.job_id);
