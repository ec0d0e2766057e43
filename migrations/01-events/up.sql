-- The append-only event log. Only src/eventlog/ touches this table.
-- Timestamps are nanoseconds since the Unix epoch, so an event read back is
-- identical to the one appended (replay equals live).
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,   -- assigned by the writer, never reused
    id           TEXT    NOT NULL,
    occurred_at  INTEGER NOT NULL,
    recorded_at  INTEGER NOT NULL,
    source       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    idem_key     TEXT,
    payload      TEXT    NOT NULL
) STRICT;

-- A second delivery with the same idempotency key is stored once.
CREATE UNIQUE INDEX events_idem_key ON events(idem_key) WHERE idem_key IS NOT NULL;
-- Everything about one entity, in order ("why was I paged?").
CREATE INDEX events_key_seq ON events(key, seq);
-- Time-range reads, by kind or across kinds.
CREATE INDEX events_kind_occurred ON events(kind, occurred_at);
CREATE INDEX events_occurred ON events(occurred_at);
