-- The bytes of each user's stored prediction texts, kept up to date as predictions are inserted, changed and deleted,
-- so the API (at submission) and the writer (while a job runs) read the same figure, counted by one definition:
-- prediction_text_bytes (octet_length reads no TOASTed value). One row per user, under forced row-level security
-- like the rows it counts. A statement's trigger adds its rows' bytes to their owner's row in the same transaction,
-- holding that row's lock until the commit: two writer replicas storing the same user's predictions take turns, each
-- counting the other's committed bytes (see docs/limits.md).
CREATE FUNCTION prediction_text_bytes(prompt text, ground_truth text, prediction text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT octet_length(prompt)::bigint + coalesce(octet_length(ground_truth), 0) + octet_length(prediction) $$;

CREATE TABLE prediction_usage (
    owner_id text PRIMARY KEY,
    bytes    bigint NOT NULL DEFAULT 0
);
ALTER TABLE prediction_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE prediction_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY prediction_usage_owner ON prediction_usage
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));

-- One trigger function for the three kinds of statement. An insert adds to its owners' rows in owner order (the
-- writer's batches hold one owner's predictions per statement anyway); the API deletes one user's rows at a time.
CREATE FUNCTION count_prediction_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE prediction_usage AS u SET bytes = u.bytes - d.bytes
        FROM (SELECT owner_id, sum(prediction_text_bytes(prompt, ground_truth, prediction)) AS bytes
              FROM old_rows GROUP BY owner_id ORDER BY owner_id) AS d
        WHERE u.owner_id = d.owner_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO prediction_usage AS u (owner_id, bytes)
        SELECT owner_id, sum(prediction_text_bytes(prompt, ground_truth, prediction))
        FROM new_rows GROUP BY owner_id ORDER BY owner_id
        ON CONFLICT (owner_id) DO UPDATE SET bytes = u.bytes + excluded.bytes;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER prediction_usage_insert AFTER INSERT ON training_predictions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_prediction_bytes();
CREATE TRIGGER prediction_usage_update AFTER UPDATE ON training_predictions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_prediction_bytes();
CREATE TRIGGER prediction_usage_delete AFTER DELETE ON training_predictions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_prediction_bytes();

INSERT INTO prediction_usage (owner_id, bytes)
SELECT owner_id, sum(prediction_text_bytes(prompt, ground_truth, prediction))
FROM training_predictions GROUP BY owner_id;

-- The API reads it at submission and changes it when it deletes predictions (a job, retention); the writer adds to it.
GRANT SELECT, INSERT, UPDATE ON prediction_usage TO epochscope_api;
GRANT SELECT, INSERT, UPDATE ON prediction_usage TO epochscope_writer;
