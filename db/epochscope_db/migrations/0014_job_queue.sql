-- The job queue's truth: one row per job, moved queued -> dispatched -> running -> final, each move with its time.
-- Each dispatch is an attempt: a new attempt_id, attempt_no + 1, and the trainer it was addressed to. The writer
-- refuses trainer events whose attempt_id is not the row's current one (fencing).
-- No row-level security: the rows name a job and its owner's id, nothing of the job's content; the dispatcher
-- (in the API, under an advisory lock) must see every user's queued jobs to share trainers fairly. The start
-- event is rebuilt from `start_payload` (stored without the job token; the token is recomputed at dispatch).
CREATE TABLE job_queue (
    job_id           uuid PRIMARY KEY REFERENCES jobs (job_id) ON DELETE CASCADE,
    owner_id         text NOT NULL,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'dispatched', 'running', 'final')),
    start_payload    text,                    -- the job.start event without its token; NULL once final
    token_expires_at timestamptz NOT NULL,
    attempt_id       uuid,
    attempt_no       integer NOT NULL DEFAULT 0,
    trainer_id       text,
    last_error       text,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    dispatched_at    timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX job_queue_waiting ON job_queue (owner_id, queued_at) WHERE state = 'queued';
CREATE INDEX job_queue_active ON job_queue (trainer_id) WHERE state IN ('dispatched', 'running');

-- Every dispatch, for the record (and the benchmark): when it was sent, to whom, and how it ended.
CREATE TABLE job_attempts (
    attempt_id    uuid PRIMARY KEY,
    job_id        uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    attempt_no    integer NOT NULL,
    trainer_id    text NOT NULL,
    dispatched_at timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    ended_at      timestamptz,
    outcome       text
);
CREATE INDEX job_attempts_job ON job_attempts (job_id);

-- Trainers as their heartbeats describe them (written by the writer; read by the API's dispatcher). No user data.
CREATE TABLE trainers (
    trainer_id        text PRIMARY KEY,
    device            text NOT NULL,
    memory_bytes      bigint NOT NULL DEFAULT 0,
    slots             integer NOT NULL,
    free_slots        integer NOT NULL,
    attempt_id        uuid,
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE ON job_queue, job_attempts TO epochscope_api;
GRANT SELECT ON trainers TO epochscope_api;
GRANT SELECT, UPDATE (state, started_at, finished_at, start_payload) ON job_queue TO epochscope_writer;
GRANT SELECT, UPDATE (started_at, ended_at, outcome) ON job_attempts TO epochscope_writer;
GRANT SELECT, INSERT, UPDATE ON trainers TO epochscope_writer;
