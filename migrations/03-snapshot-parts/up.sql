-- A snapshot's views as pieces of JSON text of bounded size, written one
-- piece at a time, so that no text of every view (130 MB for 100,000
-- alerts) is ever held in memory, and the writer is never kept waiting
-- for the whole of it. A snapshot counts only once its row in `snapshots`
-- exists (written last, with `data` empty); pieces of a snapshot that never
-- got that far are deleted by the next one.
CREATE TABLE snapshot_parts (
    seq   INTEGER NOT NULL,   -- the snapshot's seq
    view  TEXT    NOT NULL,   -- the projection's name
    part  INTEGER NOT NULL,   -- 0, 1, …: the view's text is the pieces in order
    data  BLOB    NOT NULL,
    PRIMARY KEY (seq, view, part)
) STRICT;
