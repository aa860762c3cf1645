-- Each trainer's X25519 public key, from its signed heartbeat (written by the writer): the API's dispatcher seals
-- the job token of each start to the addressed trainer's key, and sends no start to a trainer without one. A public
-- key, not a secret; the table's grants already cover a new column.
ALTER TABLE trainers ADD COLUMN sealing_key text CHECK (sealing_key ~ '^[A-Za-z0-9_-]{43}$');
