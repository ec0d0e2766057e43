-- Snapshots of the projections, so start-up folds only the events after
-- the newest usable one. A snapshot is a cache: deleting this table loses
-- nothing, and one written by another version of the code is ignored.
CREATE TABLE snapshots (
    seq         INTEGER PRIMARY KEY,   -- the last event folded into it
    version     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    data        TEXT    NOT NULL       -- {"projection name": state, ...}
) STRICT;
