-- The relay deletes an outbox row in the transaction that holds it across the broker's
-- confirms, instead of marking it sent and pruning it later: one statement a batch. The event
-- id that tells, later, who stored a user (an idempotency key's, a command's) moves to the
-- user itself, which outlives its outbox row.
ALTER TABLE users ADD COLUMN event_id UUID;
UPDATE users SET event_id = outbox.id FROM outbox WHERE outbox.user_id = users.id;
CREATE UNIQUE INDEX users_event_id_key ON users (event_id);

DELETE FROM outbox WHERE sent_at IS NOT NULL;
DROP INDEX outbox_pending;
ALTER TABLE outbox DROP COLUMN sent_at;
CREATE INDEX outbox_created_at ON outbox (created_at);
