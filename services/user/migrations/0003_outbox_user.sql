-- An outbox row names the user its event is about; the relay builds the event from the stored
-- user when it publishes (the wire format lives in the code, once), instead of keeping a
-- serialized copy. Rows already waiting keep their user.
ALTER TABLE outbox ADD COLUMN user_id BIGINT;
UPDATE outbox SET user_id = (payload::jsonb -> 'user' ->> 'id')::bigint;
ALTER TABLE outbox ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE outbox DROP COLUMN payload, DROP COLUMN exchange, DROP COLUMN routing_key;
