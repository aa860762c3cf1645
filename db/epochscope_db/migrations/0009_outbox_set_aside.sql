-- An outbox row the broker refuses for its content (too large, an invalid topic) is set aside with its reason
-- instead of being retried forever in front of every later row. published_at is set too, so it leaves the
-- pending index; set_aside_reason tells the two apart.
ALTER TABLE outbox ADD COLUMN set_aside_reason text;
