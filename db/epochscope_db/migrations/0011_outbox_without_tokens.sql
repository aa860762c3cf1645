-- Job tokens leave the outbox once their event is published: the relay removes `job_token` from a row's payload
-- in the transaction that marks it published (or set aside), and deletes published rows after a retention
-- (EPOCHSCOPE_OUTBOX_RETENTION_HOURS). This removes the tokens rows published before now still hold, and lets
-- the API role delete published rows.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id, payload FROM outbox WHERE published_at IS NOT NULL AND payload LIKE '%"job_token"%' LOOP
        BEGIN
            UPDATE outbox SET payload = (r.payload::jsonb - 'job_token')::text WHERE id = r.id;
        EXCEPTION WHEN invalid_text_representation THEN
            NULL;  -- not JSON: no token field to remove
        END;
    END LOOP;
END
$$;

GRANT DELETE ON outbox TO epochscope_api;
