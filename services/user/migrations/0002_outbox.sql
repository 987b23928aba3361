-- Events waiting to be published. A row is written in the same transaction as the change it
-- announces, published by the relay, and marked sent only once the broker has confirmed it.
CREATE TABLE outbox (
    id            UUID        PRIMARY KEY,
    exchange      TEXT        NOT NULL,
    routing_key   TEXT        NOT NULL,
    payload       TEXT        NOT NULL,
    -- The request's trace context, so the publish joins the request's trace.
    trace_context TEXT        NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    sent_at       TIMESTAMPTZ
);

CREATE INDEX outbox_pending ON outbox (created_at) WHERE sent_at IS NULL;

-- Wakes the relay as soon as events are committed; it also polls, in case a notification is
-- missed while it reconnects.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
