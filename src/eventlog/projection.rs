//! Views are folds: a [`Projection`] is state built only by applying events in
//! `seq` order. The writer applies each event of a batch to every registered
//! projection inside the batch's transaction (so the [`Decider`](super::Decider)
//! can decide on it before the commit), answers the append once committed,
//! and rebuilds the views from the log if the commit fails; start-up replay
//! applies the stored events, so a view built live equals a view built by
//! replay.

use super::event::Event;

/// Serialises a copy of a view's state, off the writer thread.
pub type SnapshotFn = Box<dyn FnOnce() -> serde_json::Value + Send>;

/// Writes a copy of a view's state as JSON text to what it is given, off
/// the writer thread. The log streams it into the snapshot in pieces, so
/// views serialise straight into it (`serde_json::to_writer`) rather than
/// building a text of their own.
pub type SnapshotWriter = Box<dyn FnOnce(&mut dyn std::io::Write) -> serde_json::Result<()> + Send>;

/// The snapshot of a view whose state is one serialisable value: `copy`,
/// taken under the view's lock, is serialised later, off the writer thread.
pub fn snapshot_of<T: serde::Serialize + Send + 'static>(copy: T) -> Option<SnapshotFn> {
    Some(Box::new(move || {
        serde_json::to_value(copy).unwrap_or_default()
    }))
}

/// A view's state read back from what [`snapshot_of`] wrote.
pub fn restored<T: serde::de::DeserializeOwned>(state: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(state).map_err(|e| e.to_string())
}

/// A fold over the log. Implementations keep their state behind interior
/// mutability so handlers can read them while the writer applies events.
///
/// `apply` must be deterministic and must not decide, send or append anything:
/// replay calls it again for events decided long ago.
pub trait Projection: Send + Sync {
    /// A short stable name, for progress output and errors.
    fn name(&self) -> &'static str;

    /// Folds one event into the view (its batch commits right after, or
    /// the views are rebuilt).
    fn apply(&self, event: &Event);

    /// Folds `events` in order, as [`apply`](Self::apply) on each would.
    /// Replay hands views its events a few dozen at a time: a view that
    /// locks per event can lock once for all of them, and its table
    /// lookups for one event need not wait for the last one's lock release.
    fn apply_all(&self, events: &[&Event]) {
        for event in events {
            self.apply(event);
        }
    }

    /// Everything through `seq` is committed. The writer folds a batch
    /// before committing it (see [`Decider`](super::Decider)), so a view
    /// that acts outside the process acts only on what this has covered.
    fn committed(&self, _seq: u64) {}

    /// Forgets everything, so a replay can rebuild the view from the log.
    fn reset(&self);

    /// The version of the entity `key` (the `seq` of the last event that
    /// changed it, 0 if none), for appends that expect one. `None`: this
    /// projection does not version such keys. Called on the writer thread.
    fn version(&self, _key: &str) -> Option<u64> {
        None
    }

    /// The whole state, for a snapshot: copy it now (the writer waits for
    /// this) and return how to serialise the copy, which runs on another
    /// thread. `None`: this view cannot be snapshotted, so no snapshot is
    /// taken at all.
    fn snapshot(&self) -> Option<SnapshotFn> {
        None
    }

    /// Replaces the state with a snapshot's. On error the caller resets and
    /// replays the whole log instead.
    fn restore(&self, _state: serde_json::Value) -> Result<(), String> {
        Err(format!(
            "{} cannot be restored from a snapshot",
            self.name()
        ))
    }

    /// The snapshot as the log takes it: like [`snapshot`](Self::snapshot),
    /// but the copy writes JSON text. Views with large states implement this
    /// one and serialise straight to text: a `serde_json::Value` tree of
    /// 100,000 alerts costs several times their memory. By default, the
    /// tree from `snapshot`, written out.
    fn snapshot_json(&self) -> Option<SnapshotWriter> {
        let copy = self.snapshot()?;
        Some(Box::new(move |out: &mut dyn std::io::Write| {
            serde_json::to_writer(out, &copy())
        }))
    }

    /// How many items (alerts, groups, …) the state holds, about as many as
    /// a snapshot writes: the log spaces snapshots by the state's size.
    /// 0: small, whatever it holds.
    fn snapshot_items(&self) -> usize {
        0
    }

    /// Restores from the JSON text [`snapshot_json`](Self::snapshot_json)
    /// wrote. By default, through a tree and [`restore`](Self::restore).
    fn restore_json(&self, state: &str) -> Result<(), String> {
        let state = serde_json::from_str(state).map_err(|e| e.to_string())?;
        self.restore(state)
    }
}

/// `into` restored from the snapshot text `from` writes, as the log does
/// at a restart (for views' tests).
#[cfg(test)]
pub(crate) fn restore_from_snapshot(from: &dyn Projection, into: &dyn Projection) {
    let mut text = Vec::new();
    from.snapshot_json().expect("a view with a snapshot")(&mut text).unwrap();
    into.restore_json(std::str::from_utf8(&text).unwrap())
        .unwrap();
}
