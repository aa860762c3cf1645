-- Per-user rate of write requests (POST, DELETE), shared by every API replica: one row per user holding the
-- generic cell rate algorithm's "theoretical arrival time" (a token bucket in one timestamp). A request is
-- admitted when allowed_at - now() stays within the burst, and moves allowed_at one interval later; both in one
-- atomic UPSERT, so concurrent requests on any replica serialize on the row.
CREATE TABLE api_write_rate (
    owner_id    text PRIMARY KEY,
    allowed_at  timestamptz NOT NULL
);

ALTER TABLE api_write_rate ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_write_rate FORCE ROW LEVEL SECURITY;

CREATE POLICY api_write_rate_owner ON api_write_rate
    USING (owner_id = current_setting('app.user_id', true))
    WITH CHECK (owner_id = current_setting('app.user_id', true));

GRANT SELECT, INSERT, UPDATE ON api_write_rate TO epochscope_api;
