//! The store: one SQLite file in WAL mode, one writer thread with group commit,
//! a small pool of read connections, and a live broadcast for tails.
//!
//! Owns the `events` table and the snapshots (`snapshots`, `snapshot_parts`);
//! nothing outside `src/eventlog/` may touch them.
//! Appends are answered only once their batch is committed (and synced, with
//! `synchronous = full`), so an answered append survives `kill -9`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use chrono::{DateTime, Utc};
use include_dir::{Dir, include_dir};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use rusqlite_migration::Migrations;
use serde::Deserialize;
use tokio::sync::{broadcast, oneshot};

use super::decider::Decider;
use super::event::{CompactText, Event, EventKind, NewEvent};
use super::projection::Projection;
use crate::clock::SharedClock;

static MIGRATIONS_DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/migrations");

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged event survives power loss.
    #[default]
    Full,
    /// WAL default: survives a process crash, may lose the last commits on
    /// power loss.
    Normal,
}

#[derive(Debug, Clone)]
pub struct LogOptions {
    pub synchronous: Synchronous,
    /// The most events one transaction takes; more wait for the next one.
    pub max_batch: usize,
    /// Events a slow live subscriber may fall behind before it re-reads from
    /// disk.
    pub tail_buffer: usize,
    /// Snapshot the projections every this many events, so start-up folds
    /// only what came after the newest snapshot. 0: never.
    pub snapshot_every: u64,
    /// The largest piece of a snapshot's text stored in one row
    /// ([`SNAPSHOT_PART_BYTES`]; smaller in tests).
    pub snapshot_part_bytes: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            synchronous: Synchronous::Full,
            max_batch: 4096,
            tail_buffer: 8192,
            snapshot_every: 100_000,
            snapshot_part_bytes: SNAPSHOT_PART_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log storage: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("event log migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("stored event {seq} has an unreadable payload: {source}")]
    Corrupt {
        seq: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("event log is closed")]
    Closed,
    #[error("too many concurrent changes to the same entities; retry")]
    Contended,
}

/// The answer to one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// Nothing was stored: the idempotency key was already stored (`seq` is
    /// the original's), or the expected version no longer held (`seq` is the
    /// current version; plan again from the projections).
    pub duplicate: bool,
}

/// What to read. Empty filters match everything.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Events with `seq > after`.
    pub after: u64,
    pub limit: usize,
    pub kinds: Vec<String>,
    pub key: Option<String>,
    /// `occurred_at >= since`.
    pub since: Option<DateTime<Utc>>,
    /// `occurred_at < until`.
    pub until: Option<DateTime<Utc>>,
    /// Events whose payload mentions this text (an alert fingerprint inside
    /// a group's decisions). A scan: combine it with `kinds`.
    pub mentions: Option<String>,
}

/// Work the writer runs between two batches.
type BetweenBatches = Box<dyn FnOnce() + Send>;

struct AppendRequest {
    /// Runs on the writer thread after every batch sent before it has been
    /// committed and folded, and before any batch sent after it: a swap of
    /// what the views and deciders run on, made where no fold or decision
    /// is under way. Requests carrying it carry no events.
    between: Option<BetweenBatches>,
    /// Each event with its payload already serialised by the caller, so the
    /// one writer thread spends its time in SQLite only.
    events: Vec<(NewEvent, String)>,
    /// Asks for a decider pass in this batch whatever it holds; answered
    /// with the decisions the batch committed.
    decide: Option<oneshot::Sender<Vec<Arc<Event>>>>,
    reply: oneshot::Sender<Result<Vec<Appended>, Arc<LogError>>>,
}

struct Shared {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    /// Taken (and so closed) by `close`, which ends every live tail.
    live: Mutex<Option<broadcast::Sender<Arc<Event>>>>,
    last_seq: AtomicU64,
    closed: AtomicBool,
    /// Held for writing while a committed batch is folded into the views,
    /// so a reader that takes it sees every batch whole: the dispatcher must
    /// not group half of one request's alerts and leave the rest for the
    /// next flush.
    views: parking_lot::RwLock<()>,
    /// Weak: the decider holds the log, and the log must be able to go.
    decider: Mutex<Option<std::sync::Weak<dyn Decider>>>,
    /// The thread writing a snapshot, while one is (one at a time). Here
    /// rather than in the writer so [`EventLog::wait_for_snapshot`] can
    /// join it; the writer takes the lock only at a commit that is due a
    /// snapshot.
    snapshotting: Mutex<Option<JoinHandle<()>>>,
}

/// Handle to the event log. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    shared: Arc<Shared>,
    writer_tx: Arc<Mutex<Option<mpsc::Sender<AppendRequest>>>>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
    checkpointer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

pub(crate) fn nanos(t: DateTime<Utc>) -> i64 {
    // Out of range (before 1677 or after 2262) cannot come from validated
    // input; clamp rather than panic in the writer.
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

pub(crate) fn from_nanos(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(n)
}

fn configure(conn: &Connection, sync: Synchronous) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// At most so many rounds of decisions on decisions in one batch.
const DECIDE_ROUNDS: usize = 4;

/// Snapshots written by another version of the code are ignored (their
/// views may have another shape): bump the suffix when a view's state
/// changes shape.
///
/// views-4: each view's text in `snapshot_parts`, in pieces.
/// views-5: the flap view's `fired_once` table; no `dedup_key` in the
/// alert index's entries.
/// views-6: the alert store holds the index's alerts and dedup keys (the
/// index writes `null`); `fired_once` times in nanoseconds.
pub const SNAPSHOT_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "/views-6");

/// The largest piece of a view's text in `snapshot_parts`: what the
/// snapshot thread holds at a time, and the most one of its transactions
/// writes while the log's writer may be waiting for the lock.
pub const SNAPSHOT_PART_BYTES: usize = 1 << 20;

/// Restores every projection from the newest snapshot this code wrote; the
/// `seq` it covers, or `None` (nothing restored, projections reset).
fn restore_snapshot(
    conn: &Connection,
    projections: &[Arc<dyn Projection>],
    last_seq: u64,
) -> Option<u64> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT seq FROM snapshots WHERE version = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1",
            params![SNAPSHOT_VERSION, last_seq as i64],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten();
    let seq = found?;
    let restored = (|| -> Result<(), String> {
        // One view's text at a time, put together from its pieces.
        let mut parts = conn
            .prepare(
                "SELECT part, data FROM snapshot_parts WHERE seq = ?1 AND view = ?2 ORDER BY part",
            )
            .map_err(|e| e.to_string())?;
        for p in projections {
            let mut text = Vec::new();
            let mut rows = parts
                .query(params![seq, p.name()])
                .map_err(|e| e.to_string())?;
            let mut expected = 0i64;
            while let Some(row) = rows.next().map_err(|e| e.to_string())? {
                let part: i64 = row.get(0).map_err(|e| e.to_string())?;
                if part != expected {
                    return Err(format!("{}: piece {expected} missing", p.name()));
                }
                let data = row.get_ref(1).map_err(|e| e.to_string())?;
                text.extend_from_slice(data.as_blob().map_err(|e| e.to_string())?);
                expected += 1;
            }
            if expected == 0 {
                return Err(format!("no state for {}", p.name()));
            }
            let text = String::from_utf8(text).map_err(|e| e.to_string())?;
            p.restore_json(&text)?;
        }
        Ok(())
    })();
    match restored {
        Ok(()) => {
            tracing::info!(seq, "projections restored from a snapshot");
            Some(seq as u64)
        }
        Err(e) => {
            tracing::warn!(seq, error = %e, "snapshot unusable; replaying the whole log");
            for p in projections {
                p.reset();
            }
            None
        }
    }
}

/// KiB of pages the writer keeps cached: the key and idempotency indexes
/// take random inserts. The pages it does not keep are read again from the
/// OS's file cache (the WAL or the database), not from disk. 32 MiB held
/// 10 MB with 100,000 alerts; with 4 MiB, ingest of new alerts measured
/// the same within a busy machine's noise (README, Memory).
const WRITER_CACHE_KIB: i64 = 4 * 1024;
/// How much of the file a reader maps (address space, not memory).
const READER_MMAP_BYTES: i64 = 1 << 34;
/// Events committed between two WAL checkpoints.
const CHECKPOINT_EVERY: usize = 16 * 1024;

/// Copies the WAL back into the database on its own thread and connection,
/// so the writer does little of that work itself. PASSIVE checkpoints never
/// block the writer or readers. Under steady load this one never quite
/// catches up (the writer keeps appending), so the writer finishes each round
/// with a short checkpoint of its own, which lets the WAL start over instead
/// of growing.
fn spawn_checkpointer(path: &Path) -> Result<(mpsc::SyncSender<()>, JoinHandle<()>), LogError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    let handle = std::thread::Builder::new()
        .name("eventlog-checkpoint".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries");
                }
            }
            // The writer is gone: leave a small WAL behind.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        })
        .expect("spawn checkpoint thread");
    Ok((tx, handle))
}

/// A read-only connection, as every reader uses.
fn open_reader(path: &Path) -> Result<Connection, LogError> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    // Map the file rather than copy pages through read(2): long scans
    // (replay, tails) read every page once.
    c.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
    Ok(c)
}

const SELECT_COLUMNS: &str =
    "SELECT seq, id, occurred_at, recorded_at, source, kind, key, idem_key, payload FROM events";

/// A stored row whose payload is not decoded yet.
pub struct RawEvent {
    seq: i64,
    id: CompactText,
    occurred_at: i64,
    recorded_at: i64,
    source: CompactText,
    kind: String,
    key: CompactText,
    idempotency_key: Option<String>,
    payload: String,
}

/// Decodes a row in place: the kind and payload are read as borrowed text.
fn decode_row(row: &rusqlite::Row<'_>) -> Result<Event, LogError> {
    let seq = row.get::<_, i64>(0)? as u64;
    let kind = row.get_ref(5)?.as_str().map_err(rusqlite::Error::from)?;
    let payload = row.get_ref(8)?.as_str().map_err(rusqlite::Error::from)?;
    let kind =
        EventKind::decode(kind, payload).map_err(|source| LogError::Corrupt { seq, source })?;
    Ok(Event {
        seq,
        id: row.get(1)?,
        occurred_at: from_nanos(row.get(2)?),
        recorded_at: from_nanos(row.get(3)?),
        source: row.get(4)?,
        key: row.get(6)?,
        idempotency_key: row.get(7)?,
        kind,
    })
}

impl RawEvent {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEvent> {
        Ok(RawEvent {
            seq: row.get(0)?,
            id: row.get(1)?,
            occurred_at: row.get(2)?,
            recorded_at: row.get(3)?,
            source: row.get(4)?,
            kind: row.get(5)?,
            key: row.get(6)?,
            idempotency_key: row.get(7)?,
            payload: row.get(8)?,
        })
    }

    pub fn decode(self) -> Result<Event, LogError> {
        let seq = self.seq as u64;
        let kind = EventKind::decode(&self.kind, &self.payload)
            .map_err(|source| LogError::Corrupt { seq, source })?;
        Ok(Event {
            seq,
            id: self.id,
            occurred_at: from_nanos(self.occurred_at),
            recorded_at: from_nanos(self.recorded_at),
            source: self.source,
            key: self.key,
            idempotency_key: self.idempotency_key,
            kind,
        })
    }
}

impl EventLog {
    /// Opens (creating and migrating) the log at `path`, folds every stored
    /// event through `projections`, then starts the writer, which keeps them
    /// current from then on.
    pub fn open(
        path: &Path,
        options: LogOptions,
        clock: SharedClock,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<EventLog, LogError> {
        let mut conn = Connection::open(path)?;
        configure(&conn, options.synchronous)?;
        Migrations::from_directory(&MIGRATIONS_DIR)
            .expect("migrations/ is well-formed")
            .to_latest(&mut conn)?;
        let last_seq: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;

        let (live, _) = broadcast::channel(options.tail_buffer.max(16));
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
            live: Mutex::new(Some(live)),
            last_seq: AtomicU64::new(last_seq as u64),
            closed: AtomicBool::new(false),
            views: parking_lot::RwLock::new(()),
            decider: Mutex::new(None),
            snapshotting: Mutex::new(None),
        });
        let log = EventLog {
            shared: shared.clone(),
            writer_tx: Arc::new(Mutex::new(None)),
            writer: Arc::new(Mutex::new(None)),
            checkpointer: Arc::new(Mutex::new(None)),
        };

        let snapshot_seq = match projections.is_empty() {
            true => 0,
            false => match restore_snapshot(&conn, &projections, last_seq as u64) {
                Some(seq) => {
                    super::replay::replay_after(&log, &projections, seq)?;
                    seq
                }
                None => {
                    super::replay::replay(&log, &projections, |_, _| {})?;
                    0
                }
            },
        };

        for p in &projections {
            p.committed(last_seq as u64);
        }

        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        // Checkpoints are driven by the writer and its helper thread below.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A WAL that grew under a burst is cut back once it restarts.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        let (checkpoint, checkpointer) = spawn_checkpointer(path)?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            snapshot_every: options.snapshot_every,
            snapshot_spacing: snapshot_spacing(options.snapshot_every, &projections),
            snapshot_part_bytes: options.snapshot_part_bytes,
            last_snapshot: snapshot_seq,
            checkpoint,
            since_checkpoint: 0,
            conn,
            rx,
            shared,
            clock,
            projections,
            max_batch: options.max_batch.max(1),
            next_seq: last_seq as u64 + 1,
        };
        let handle = std::thread::Builder::new()
            .name("eventlog-writer".into())
            .spawn(move || writer.run())
            .expect("spawn writer thread");
        *log.writer_tx.lock() = Some(tx);
        *log.writer.lock() = Some(handle);
        *log.checkpointer.lock() = Some(checkpointer);
        Ok(log)
    }

    /// Opens an existing log for reading only (no writer, no migrations), as
    /// `fenghuo events` and `fenghuo replay` do beside a running server.
    pub fn open_read_only(path: &Path) -> Result<EventLog, LogError> {
        let conn = open_reader(path)?;
        let last_seq: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            readers: Mutex::new(vec![conn]),
            live: Mutex::new(None),
            last_seq: AtomicU64::new(last_seq as u64),
            closed: AtomicBool::new(true),
            views: parking_lot::RwLock::new(()),
            decider: Mutex::new(None),
            snapshotting: Mutex::new(None),
        });
        Ok(EventLog {
            shared,
            writer_tx: Arc::new(Mutex::new(None)),
            writer: Arc::new(Mutex::new(None)),
            checkpointer: Arc::new(Mutex::new(None)),
        })
    }

    /// Holds off the folding of new batches while the guard lives: what the
    /// views show meanwhile is a whole number of committed batches. Keep it
    /// short; appends wait for it.
    pub fn consistent_views(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        self.shared.views.read()
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The highest committed `seq` (0 for an empty log).
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }

    /// Appends `events` atomically (all or none) and answers once they are
    /// committed. Events whose idempotency key is already stored answer the
    /// original `seq`.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, Arc<LogError>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let events = events
            .into_iter()
            .map(|e| {
                let payload = e.kind.payload_json();
                (e, payload)
            })
            .collect();
        let (reply, rx) = oneshot::channel();
        self.send(AppendRequest {
            between: None,
            events,
            decide: None,
            reply,
        })?;
        rx.await.map_err(|_| Arc::new(LogError::Closed))?
    }

    fn send(&self, request: AppendRequest) -> Result<(), Arc<LogError>> {
        let tx = self.writer_tx.lock();
        let tx = tx.as_ref().ok_or_else(|| Arc::new(LogError::Closed))?;
        tx.send(request).map_err(|_| Arc::new(LogError::Closed))
    }

    /// Makes `decider` decide inside the commits of the batches it wants,
    /// and in those [`decide`](Self::decide) asks for. Held weakly: it
    /// stops deciding once its owner drops it.
    pub fn set_decider(&self, decider: &Arc<dyn Decider>) {
        *self.shared.decider.lock() = Some(Arc::downgrade(decider));
    }

    /// Runs a decider pass now (for timers: nothing arrived, but time
    /// passed) and answers with the decisions it committed.
    pub async fn decide(&self) -> Result<Vec<Arc<Event>>, Arc<LogError>> {
        let (reply, rx) = oneshot::channel();
        let (decided, decisions) = oneshot::channel();
        self.send(AppendRequest {
            between: None,
            events: Vec::new(),
            decide: Some(decided),
            reply,
        })?;
        rx.await.map_err(|_| Arc::new(LogError::Closed))??;
        Ok(decisions.await.unwrap_or_default())
    }

    /// Runs `f` on the writer thread between two batches: everything
    /// appended before this call is committed and folded, nothing after it
    /// is folded yet, and no decider pass is under way. For swapping what
    /// the views and deciders run on (a reloaded rule set and config) so
    /// that no batch sees half of each. Keep `f` short: appends wait.
    pub async fn between_batches<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Arc<LogError>> {
        let (reply, rx) = oneshot::channel();
        let (out_tx, out_rx) = oneshot::channel();
        self.send(AppendRequest {
            between: Some(Box::new(move || {
                let _ = out_tx.send(f());
            })),
            events: Vec::new(),
            decide: None,
            reply,
        })?;
        rx.await.map_err(|_| Arc::new(LogError::Closed))??;
        out_rx.await.map_err(|_| Arc::new(LogError::Closed))
    }

    /// Blocking [`append`](Self::append), for threads outside the runtime.
    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, Arc<LogError>> {
        futures::executor::block_on(self.append(events))
    }

    /// Waits until the snapshot being written (if any) is stored. A commit
    /// due a snapshot skips it while the one before is still being written
    /// (it is tried again at the next commit), so where snapshots fall
    /// depends on how fast they are written; tests that want them where the
    /// spacing puts them wait for each here. A commit due a snapshot waits
    /// for this to return.
    pub fn wait_for_snapshot(&self) {
        let mut snapshotting = self.shared.snapshotting.lock();
        if let Some(running) = snapshotting.take() {
            let _ = running.join();
        }
    }

    /// Stops taking appends, commits what is queued, and waits for the writer.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        drop(self.writer_tx.lock().take());
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
        // The writer's exit hung up on the checkpointer: let it truncate.
        if let Some(handle) = self.checkpointer.lock().take() {
            let _ = handle.join();
        }
        // Every committed event has been broadcast; closing the channel ends
        // the tails once they have drained it.
        drop(self.shared.live.lock().take());
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Live events committed from now on, in `seq` order.
    /// On a closed (or read-only) log the receiver is already closed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        match &*self.shared.live.lock() {
            Some(live) => live.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let conn = self.shared.readers.lock().pop();
        let conn = match conn {
            Some(c) => c,
            None => open_reader(&self.shared.path)?,
        };
        let out = f(&conn);
        let mut pool = self.shared.readers.lock();
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }

    /// Reads events matching `query`, in `seq` order. Blocking; call from a
    /// blocking context (`spawn_blocking`) inside the runtime.
    pub fn read(&self, query: &EventQuery) -> Result<Vec<Event>, LogError> {
        let mut sql = format!("{SELECT_COLUMNS} WHERE seq > ?");
        let mut args: Vec<rusqlite::types::Value> = vec![(query.after as i64).into()];
        if let Some(key) = &query.key {
            sql.push_str(" AND key = ?");
            args.push(key.clone().into());
        }
        if !query.kinds.is_empty() {
            sql.push_str(" AND kind IN (");
            for (i, k) in query.kinds.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ",?" });
                args.push(k.clone().into());
            }
            sql.push(')');
        }
        if let Some(since) = query.since {
            sql.push_str(" AND occurred_at >= ?");
            args.push(nanos(since).into());
        }
        if let Some(until) = query.until {
            sql.push_str(" AND occurred_at < ?");
            args.push(nanos(until).into());
        }
        if let Some(text) = &query.mentions {
            sql.push_str(" AND instr(payload, ?) > 0");
            args.push(text.clone().into());
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        let limit = if query.limit == 0 {
            i64::MAX
        } else {
            query.limit as i64
        };
        args.push(limit.into());
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), RawEvent::from_row)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row?.decode()?);
            }
            Ok(out)
        })
    }

    /// Calls `f` for every stored event with `seq > after`, in order and
    /// undecoded, without holding them all in memory. Returns how many.
    pub fn scan_raw(
        &self,
        after: u64,
        mut f: impl FnMut(RawEvent) -> Result<(), LogError>,
    ) -> Result<u64, LogError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare(&format!("{SELECT_COLUMNS} WHERE seq > ? ORDER BY seq"))?;
            let mut rows = stmt.query(params![after as i64])?;
            let mut n = 0;
            while let Some(row) = rows.next()? {
                f(RawEvent::from_row(row)?)?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Decodes every stored event with `after < seq <= upto`, in order,
    /// straight from SQLite's row buffers (no intermediate copies). Replay
    /// runs several of these over disjoint ranges at once.
    pub fn read_range(&self, after: u64, upto: u64) -> Result<Vec<Event>, LogError> {
        let mut out = Vec::new();
        self.read_range_into(after, upto, &mut out)?;
        Ok(out)
    }

    /// [`read_range`](Self::read_range) appending to `out`, so a caller that
    /// reads range after range reuses one buffer: replay's workers keep
    /// theirs, rather than the allocator handing back (and the kernel
    /// zeroing) a fresh megabyte-sized block for every range.
    pub fn read_range_into(
        &self,
        after: u64,
        upto: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), LogError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{SELECT_COLUMNS} WHERE seq > ?1 AND seq <= ?2 ORDER BY seq"
            ))?;
            let mut rows = stmt.query(params![after as i64, upto.min(i64::MAX as u64) as i64])?;
            out.reserve(upto.saturating_sub(after).min(65_536) as usize);
            while let Some(row) = rows.next()? {
                out.push(decode_row(row)?);
            }
            Ok(())
        })
    }

    /// Number of stored events (for status output and tests).
    pub fn count(&self) -> Result<u64, LogError> {
        self.with_reader(|conn| {
            Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as u64)
        })
    }

    /// The `seq` stored under an idempotency key, if any.
    pub fn seq_of_idempotency_key(&self, idem: &str) -> Result<Option<u64>, LogError> {
        self.with_reader(|conn| {
            Ok(conn
                .query_row(
                    "SELECT seq FROM events WHERE idem_key = ?",
                    params![idem],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .map(|s| s as u64))
        })
    }
}

/// Events from one snapshot to the next: `storage.snapshot_every`, or
/// twice the items the views hold if that is more. A snapshot writes every
/// item, so spacing them by twice the state's size keeps its cost at half
/// an item written per event folded however large the state grows (with
/// 100,000 alerts a fixed spacing of 100,000 events wrote two items per
/// event); the price is a start-up that may fold up to that many events
/// after the snapshot it restores.
fn snapshot_spacing(every: u64, projections: &[Arc<dyn Projection>]) -> u64 {
    let items: usize = projections.iter().map(|p| p.snapshot_items()).sum();
    every.max(2 * items as u64)
}

/// One view's JSON text, streamed into `snapshot_parts` in pieces of at
/// most `limit` bytes, each inserted in a transaction of its own.
struct PartWriter<'c> {
    conn: &'c Connection,
    seq: i64,
    view: &'static str,
    part: i64,
    piece: Vec<u8>,
    limit: usize,
    written: usize,
}

impl PartWriter<'_> {
    fn store_piece(&mut self) -> std::io::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO snapshot_parts (seq, view, part, data) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    self.seq,
                    self.view,
                    self.part,
                    self.piece.as_slice()
                ])
            })
            .map_err(std::io::Error::other)?;
        self.written += self.piece.len();
        self.part += 1;
        self.piece.clear();
        Ok(())
    }

    /// Stores what is left: the view's last piece.
    fn finish(mut self) -> std::io::Result<usize> {
        if !self.piece.is_empty() || self.part == 0 {
            self.store_piece()?;
        }
        Ok(self.written)
    }
}

impl std::io::Write for PartWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let taken = data.len().min(self.limit - self.piece.len());
        self.piece.extend_from_slice(&data[..taken]);
        if self.piece.len() >= self.limit {
            self.store_piece()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a snapshot at `seq` from the views' copies, piece by piece (none
/// larger than `part_bytes`), then the row in `snapshots` that makes it
/// count, and deletes the older ones. The bytes written.
fn write_snapshot(
    path: &Path,
    seq: u64,
    at: DateTime<Utc>,
    copies: Vec<(&'static str, super::projection::SnapshotWriter)>,
    part_bytes: usize,
) -> Result<usize, Box<dyn std::error::Error>> {
    let seq = seq as i64;
    let conn = Connection::open(path)?;
    // Under a burst the log's writer holds the lock almost all the time;
    // SQLite's own busy handler backs off to 100 ms sleeps and a snapshot
    // then took 15 s, holding the views' copies all along. Retrying every
    // millisecond takes the lock between two of the writer's commits, and
    // the writer still waits for one piece at most.
    conn.busy_handler(Some(|attempt| {
        std::thread::sleep(std::time::Duration::from_millis(1));
        attempt < 60_000
    }))?;
    // The pieces are not synced one by one: the commit of the row that
    // makes the snapshot count syncs the WAL, and with it every piece
    // before it.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Left by an attempt at the same seq that did not finish.
    conn.execute("DELETE FROM snapshot_parts WHERE seq = ?1", params![seq])?;
    let mut bytes = 0;
    for (view, write) in copies {
        let mut out = PartWriter {
            conn: &conn,
            seq,
            view,
            part: 0,
            piece: Vec::with_capacity(part_bytes.min(1 << 16)),
            limit: part_bytes.max(1),
            written: 0,
        };
        write(&mut out)?;
        bytes += out.finish()?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute(
        "INSERT OR REPLACE INTO snapshots (seq, version, created_at, data) VALUES (?1, ?2, ?3, '')",
        params![seq, SNAPSHOT_VERSION, nanos(at)],
    )?;
    // The older ones, a few pieces per transaction: freeing a piece reads
    // its pages, and the log's writer waits for the lock meanwhile.
    conn.execute("DELETE FROM snapshots WHERE seq < ?1", params![seq])?;
    while conn.execute(
        "DELETE FROM snapshot_parts WHERE rowid IN (SELECT rowid FROM snapshot_parts WHERE seq <> ?1 LIMIT 8)",
        params![seq],
    )? > 0
    {}
    Ok(bytes)
}

struct Writer {
    snapshot_every: u64,
    /// Events between two snapshots: see [`snapshot_spacing`].
    snapshot_spacing: u64,
    snapshot_part_bytes: usize,
    last_snapshot: u64,
    checkpoint: mpsc::SyncSender<()>,
    since_checkpoint: usize,
    conn: Connection,
    rx: mpsc::Receiver<AppendRequest>,
    shared: Arc<Shared>,
    clock: SharedClock,
    projections: Vec<Arc<dyn Projection>>,
    max_batch: usize,
    next_seq: u64,
}

impl Writer {
    fn run(mut self) {
        // Runs until every sender is gone; queued requests are still committed.
        let mut next = None;
        // A commit since the writer last went idle: the burst's freed
        // memory is handed back once the queue stays empty (`memory`).
        let mut busy = false;
        while let Some(first) = next.take().or_else(|| self.next_request(&mut busy)) {
            busy = true;
            if let Some(between) = first.between {
                between();
                let _ = first.reply.send(Ok(Vec::new()));
                continue;
            }
            let mut batch = vec![first];
            let mut n = batch[0].events.len();
            while n < self.max_batch {
                match self.rx.try_recv() {
                    // Work between batches ends this one; it runs next.
                    Ok(req) if req.between.is_some() => {
                        next = Some(req);
                        break;
                    }
                    Ok(req) => {
                        n += req.events.len();
                        batch.push(req);
                    }
                    Err(_) => break,
                }
            }
            self.commit_batch(batch, n);
        }
        // Closing waits for a snapshot being written.
        let running = self.shared.snapshotting.lock().take();
        if let Some(running) = running {
            let _ = running.join();
        }
    }

    /// The next request; `None` once every sender is gone. When the queue
    /// stays empty for `memory::WRITER_IDLE` after work, the writer is idle:
    /// it hands back freed memory once, then waits.
    fn next_request(&self, busy: &mut bool) -> Option<AppendRequest> {
        if std::mem::take(busy) {
            match self.rx.recv_timeout(crate::memory::WRITER_IDLE) {
                Ok(req) => return Some(req),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => crate::memory::writer_idle(),
            }
        }
        self.rx.recv().ok()
    }

    fn commit_batch(&mut self, batch: Vec<AppendRequest>, n: usize) {
        let started = Instant::now();
        let recorded_at = self.clock.now();
        let first_seq = self.next_seq;
        let mut events = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut deciders = Vec::new();
        for r in batch {
            events.push(r.events);
            replies.push(r.reply);
            deciders.extend(r.decide);
        }
        let mut folded = false;
        match self.write(events, recorded_at, !deciders.is_empty(), &mut folded) {
            Ok((answers, committed, decided)) => {
                let elapsed = started.elapsed().as_secs_f64();
                metrics::histogram!(crate::metrics::COMMIT_SECONDS).record(elapsed);
                metrics::histogram!(crate::metrics::BATCH_EVENTS).record(n as f64);
                metrics::counter!(crate::metrics::EVENTS_APPENDED)
                    .increment(committed.len() as u64);
                if let Some(last) = committed.last() {
                    self.shared.last_seq.store(last.seq, Ordering::Release);
                }
                let before = self.since_checkpoint;
                self.since_checkpoint += committed.len();
                if before < CHECKPOINT_EVERY / 2 && self.since_checkpoint >= CHECKPOINT_EVERY / 2 {
                    // Full means one is already pending: that one will do.
                    let _ = self.checkpoint.try_send(());
                }
                if self.since_checkpoint >= CHECKPOINT_EVERY {
                    self.since_checkpoint = 0;
                    if let Err(e) =
                        self.conn
                            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries");
                    }
                }
                let head = self.next_seq - 1;
                for p in &self.projections {
                    p.committed(head);
                }
                // A snapshot skipped because the last one is still being
                // written is tried again at the next commit.
                if self.snapshot_every > 0
                    && head - self.last_snapshot >= self.snapshot_spacing
                    && self.take_snapshot(head, recorded_at)
                {
                    self.last_snapshot = head;
                }
                if let Some(live) = &*self.shared.live.lock() {
                    for event in committed {
                        let _ = live.send(event);
                    }
                }
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
                for decider in deciders {
                    let _ = decider.send(decided.clone());
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = n, "commit failed; batch refused");
                self.next_seq = first_seq;
                if folded {
                    self.rebuild_views();
                }
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Copies every projection's state as of `seq` (the writer has applied
    /// everything up to it) and writes the snapshot from another thread and
    /// connection, replacing older ones. The writer pauses only for the
    /// copy; one snapshot at a time.
    fn take_snapshot(&mut self, seq: u64, at: DateTime<Utc>) -> bool {
        if self.projections.is_empty() {
            return false;
        }
        let mut snapshotting = self.shared.snapshotting.lock();
        if let Some(running) = snapshotting.take() {
            if !running.is_finished() {
                *snapshotting = Some(running);
                return false;
            }
            let _ = running.join();
        }
        let mut copies = Vec::with_capacity(self.projections.len());
        for p in &self.projections {
            match p.snapshot_json() {
                Some(copy) => copies.push((p.name(), copy)),
                // One view that cannot be snapshotted makes the rest useless.
                None => return false,
            }
        }
        let path = self.shared.path.clone();
        let part_bytes = self.snapshot_part_bytes;
        let handle = std::thread::Builder::new()
            .name("eventlog-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                match write_snapshot(&path, seq, at, copies, part_bytes) {
                    Ok(bytes) => tracing::info!(
                        seq,
                        bytes,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "projections snapshotted"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "snapshot not written; start-up replays more")
                    }
                }
            })
            .expect("spawn snapshot thread");
        *snapshotting = Some(handle);
        self.snapshot_spacing = snapshot_spacing(self.snapshot_every, &self.projections);
        true
    }

    /// The views were folded from a batch whose commit then failed: they
    /// are rebuilt from what the log holds, so views never run ahead of it.
    fn rebuild_views(&mut self) {
        let log = EventLog {
            shared: self.shared.clone(),
            writer_tx: Arc::new(Mutex::new(None)),
            writer: Arc::new(Mutex::new(None)),
            checkpointer: Arc::new(Mutex::new(None)),
        };
        let _whole = self.shared.views.write();
        match super::replay::replay(&log, &self.projections, |_, _| {}) {
            Ok(_) => tracing::warn!("views rebuilt from the log after a failed commit"),
            Err(e) => tracing::error!(error = %e, "rebuilding views after a failed commit failed"),
        }
    }

    /// Writes a batch in one transaction: its events, folded into the
    /// views, then the decider's decisions on them, folded too, then the
    /// commit. `folded` tells the caller the views moved, should the commit
    /// fail. Answers per request, every event stored, and the decisions.
    #[allow(clippy::type_complexity)]
    fn write(
        &mut self,
        batch: Vec<Vec<(NewEvent, String)>>,
        recorded_at: DateTime<Utc>,
        decide: bool,
        folded: &mut bool,
    ) -> Result<(Vec<Vec<Appended>>, Vec<Arc<Event>>, Vec<Arc<Event>>), LogError> {
        let decider = self
            .shared
            .decider
            .lock()
            .as_ref()
            .and_then(|d| d.upgrade());
        let tx = self.conn.transaction()?;
        let mut answers = Vec::with_capacity(batch.len());
        let mut committed = Vec::new();
        let mut decided = Vec::new();
        {
            let mut rows = Rows {
                insert: tx.prepare_cached(
                    "INSERT INTO events (seq, id, occurred_at, recorded_at, source, kind, key, idem_key, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT(idem_key) WHERE idem_key IS NOT NULL DO NOTHING",
                )?,
                lookup: tx.prepare_cached("SELECT seq FROM events WHERE idem_key = ?1")?,
                recorded_nanos: nanos(recorded_at),
                touched: HashMap::new(),
            };
            for events in batch {
                let mut answer = Vec::with_capacity(events.len());
                for (ev, payload) in events {
                    answer.push(rows.put(
                        &mut self.next_seq,
                        &self.projections,
                        ev,
                        payload,
                        &mut committed,
                    )?);
                }
                answers.push(answer);
            }
            // Projections see every event, in `seq` order, before any caller
            // is answered, so an answered append is visible in every view.
            // Whole batches: a reader holding the views lock never sees half
            // of a request's alerts.
            if !committed.is_empty() {
                *folded = true;
                let _whole = self.shared.views.write();
                for event in &committed {
                    for p in &self.projections {
                        p.apply(event);
                    }
                }
            }
            if let Some(decider) = decider {
                // Stages decide on each other's decisions (an incident
                // opened by a notification gets its first page): a few
                // rounds, each folded before the next.
                let mut from = 0;
                for round in 0..DECIDE_ROUNDS {
                    let decisions = decider.decide(
                        recorded_at,
                        self.next_seq - 1,
                        &committed[from..],
                        decide && round == 0,
                    );
                    if decisions.is_empty() {
                        break;
                    }
                    from = committed.len();
                    for ev in decisions {
                        let payload = ev.kind.payload_json();
                        rows.put(
                            &mut self.next_seq,
                            &self.projections,
                            ev,
                            payload,
                            &mut committed,
                        )?;
                    }
                    if committed.len() == from {
                        break;
                    }
                    *folded = true;
                    let _whole = self.shared.views.write();
                    for event in &committed[from..] {
                        for p in &self.projections {
                            p.apply(event);
                        }
                    }
                    decided.extend_from_slice(&committed[from..]);
                }
            }
        }
        tx.commit()?;
        Ok((answers, committed, decided))
    }
}

/// The statements a batch writes with, and the versions it has changed.
struct Rows<'tx> {
    insert: rusqlite::CachedStatement<'tx>,
    lookup: rusqlite::CachedStatement<'tx>,
    recorded_nanos: i64,
    /// Versions of keys this batch changed before the views fold them.
    touched: HashMap<String, u64>,
}

impl Rows<'_> {
    /// Stores one event unless its idempotency key is stored or its expected
    /// version no longer holds; what was stored joins `committed`.
    fn put(
        &mut self,
        next_seq: &mut u64,
        projections: &[Arc<dyn Projection>],
        ev: NewEvent,
        payload: String,
        committed: &mut Vec<Arc<Event>>,
    ) -> Result<Appended, LogError> {
        let seq = *next_seq;
        if let Some(expected) = ev.expected_version {
            let current = self.touched.get(&ev.key).copied().unwrap_or_else(|| {
                projections
                    .iter()
                    .find_map(|p| p.version(&ev.key))
                    .unwrap_or(0)
            });
            if current != expected {
                return Ok(Appended {
                    seq: current,
                    duplicate: true,
                });
            }
        }
        let inserted = self.insert.execute(params![
            seq as i64,
            ev.id,
            nanos(ev.occurred_at),
            self.recorded_nanos,
            ev.source,
            ev.kind.name(),
            ev.key,
            ev.idempotency_key,
            payload,
        ])?;
        if inserted == 1 {
            *next_seq += 1;
            self.touched.insert(ev.key.clone(), seq);
            // Moved, not cloned: the event as committed, with times at the
            // precision the table keeps.
            committed.push(Arc::new(Event {
                seq,
                id: ev.id.into(),
                occurred_at: from_nanos(nanos(ev.occurred_at)),
                recorded_at: from_nanos(self.recorded_nanos),
                source: ev.source.into(),
                key: ev.key.into(),
                idempotency_key: ev.idempotency_key,
                kind: ev.kind,
            }));
            Ok(Appended {
                seq,
                duplicate: false,
            })
        } else {
            let original: i64 = self
                .lookup
                .query_row(params![ev.idempotency_key], |r| r.get(0))?;
            Ok(Appended {
                seq: original as u64,
                duplicate: true,
            })
        }
    }
}
