-- Checkpoints stored before the writer checked what a checkpoint event names (0017's release): one whose key is not
-- the one built from its job id and round (jobs/<job_id>/checkpoints/round-<n> or final), or with a file whose name
-- is only dots or not a plain file name, is marked deleted, so the API never streams it.
UPDATE job_checkpoints SET deleted_at = now()
WHERE deleted_at IS NULL
  AND (key <> 'jobs/' || job_id::text || '/checkpoints/'
              || CASE WHEN round_index IS NULL THEN 'final' ELSE 'round-' || round_index::text END
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(files) AS f
                  WHERE f->>'name' IS NULL OR f->>'name' !~ '^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$'));
