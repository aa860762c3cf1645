-- A job's predictions page in one round trip: the API's hottest read used to take three (BEGIN with the user, the
-- page, COMMIT). This function sets the user for the current transaction and then runs the page; PL/pgSQL runs its
-- statements in order, so the row-level security policies of every table the page reads (jobs,
-- training_predictions, prediction_verdicts: forced, keyed on app.user_id) see that user. In one SQL statement the
-- planner promises no such order. Called as one statement, it runs in that statement's implicit transaction, and the
-- setting (set_config(..., true): transaction-local) ends with it: a pooled connection keeps no user.
-- SECURITY INVOKER: the page is read with the caller's role and its policies, never the owner's; only the API's role
-- may call it.
--
-- Arguments: $1 the user, $2 the job, ($3, $4) the (step, sample_id) the page starts after, $5 only this epoch,
-- $6 only this step, $7 at most this many rows, $8 the page's bound in bytes (always one row at least), $9 only
-- predictions this grader graded and failed (epoch, step and grader: NULL for all).
-- Rows: (step, sample_id, item, followed), item a prediction as the JSON of the API's Prediction model (the user's
-- verdict as the `human` grade, non-finite numbers as null, created_at as pydantic writes a UTC time), followed
-- whether another row comes after it. No row: the user has no such job; one row of NULLs: nothing past the cursor.
CREATE OR REPLACE FUNCTION prediction_page(text, uuid, int, text, float8, int, int, bigint, text)
RETURNS TABLE (step int, sample_id text, item text, followed boolean)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $function$
#variable_conflict use_column
BEGIN
    PERFORM set_config('app.user_id', $1, true);
    RETURN QUERY
    SELECT page.step, page.sample_id, page.item, page.followed FROM jobs LEFT JOIN LATERAL (
        SELECT * FROM (
            SELECT *, sum(row_bytes) OVER w - row_bytes AS bytes_before, lead(true, 1, false) OVER w AS followed
            FROM (
                SELECT p.step, p.sample_id, json_build_object(
                    'round_index', p.round_index,
                    'epoch', CASE WHEN p.epoch IN ('Infinity', '-Infinity', 'NaN') THEN NULL ELSE p.epoch END,
                    'step', p.step, 'sample_id', p.sample_id, 'sample_index', p.sample_index, 'prompt', p.prompt,
                    'ground_truth', p.ground_truth, 'prediction', p.prediction,
                    'tokens_generated', p.tokens_generated,
                    'latency_ms',
                    CASE WHEN p.latency_ms IN ('Infinity', '-Infinity', 'NaN') THEN NULL ELSE p.latency_ms END,
                    'valid', p.valid, 'validation_error', p.validation_error,
                    'scores', CASE WHEN p.exact_match IS NULL OR p.f1 IS NULL OR p.rouge_l IS NULL THEN NULL
                        ELSE json_build_object(
                            'exact_match', CASE WHEN p.exact_match IN ('Infinity', '-Infinity', 'NaN') THEN NULL
                                ELSE p.exact_match END,
                            'f1', CASE WHEN p.f1 IN ('Infinity', '-Infinity', 'NaN') THEN NULL ELSE p.f1 END,
                            'rouge_l', CASE WHEN p.rouge_l IN ('Infinity', '-Infinity', 'NaN') THEN NULL
                                ELSE p.rouge_l END) END,
                    'grades', (p.grades || coalesce((SELECT jsonb_build_object('human', jsonb_build_object('score',
                        CASE WHEN v.good THEN 1.0 ELSE 0.0 END, 'passed', v.good, 'error', NULL))
                        FROM prediction_verdicts v
                        WHERE v.job_id = p.job_id AND v.step = p.step AND v.sample_id = p.sample_id), '{}'::jsonb)),
                    'truncated', p.truncated,
                    'created_at', CASE WHEN extract(microseconds FROM p.created_at)::bigint % 1000000 = 0
                        THEN to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                        ELSE to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END
                )::text AS item,
                coalesce(octet_length(p.sample_id), 0) + coalesce(octet_length(p.prompt), 0)
                    + coalesce(octet_length(p.ground_truth), 0) + coalesce(octet_length(p.prediction), 0)
                    + coalesce(octet_length(p.validation_error), 0)
                    + coalesce(octet_length(p.grades::text), 0)
                    + 400 AS row_bytes  -- page_bytes.py's ROW_ALLOWANCE_BYTES
                FROM training_predictions p
                WHERE p.job_id = $2 AND (p.step, p.sample_id) > ($3, $4)
                    AND ($5 IS NULL OR p.epoch = $5) AND ($6 IS NULL OR p.step = $6)
                    AND ($9 IS NULL OR (p.grades || coalesce((SELECT jsonb_build_object('human', jsonb_build_object('score',
                        CASE WHEN v.good THEN 1.0 ELSE 0.0 END, 'passed', v.good, 'error', NULL))
                        FROM prediction_verdicts v
                        WHERE v.job_id = p.job_id AND v.step = p.step AND v.sample_id = p.sample_id), '{}'::jsonb)) -> $9 ->> 'passed' = 'false')
                ORDER BY p.step, p.sample_id LIMIT $7
            ) scanned WINDOW w AS (ORDER BY step, sample_id)
        ) measured WHERE bytes_before < $8 ORDER BY step, sample_id
    ) page ON true WHERE jobs.job_id = $2;
END
$function$;

REVOKE ALL ON FUNCTION prediction_page(text, uuid, int, text, float8, int, int, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prediction_page(text, uuid, int, text, float8, int, int, bigint, text) TO epochscope_api;
