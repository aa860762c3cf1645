-- Retention (the API's clean-up loop, data/retention.py): the API may delete trainers gone silent and the attempts
-- of jobs long finished. Predictions and progress it could already delete, each user's under row-level security.
GRANT DELETE ON job_attempts, trainers TO epochscope_api;
