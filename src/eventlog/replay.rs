//! Replay: rebuild projections by folding the stored log from the start.
//!
//! Replay never decides and never sends; it only calls
//! [`Projection::apply`] on events that are already facts.

use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use super::event::Event;
use super::projection::Projection;
use super::store::{EventLog, LogError};

/// Events handed from the reading thread to the folding thread at a time.
const CHUNK: usize = 1024;

/// Resets `projections` and folds every stored event through them. The log is
/// read (and payloads decoded) on a second thread while this one folds, which
/// roughly doubles throughput on a multi-core machine. `progress(done, total)`
/// is called every few thousand events.
pub fn replay(
    log: &EventLog,
    projections: &[Arc<dyn Projection>],
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, LogError> {
    for p in projections {
        p.reset();
    }
    let total = log.last_seq();
    if total == 0 {
        progress(0, 0);
        return Ok(0);
    }
    let (tx, rx) = sync_channel::<Vec<Event>>(8);
    let reader_log = log.clone();
    let reader = std::thread::Builder::new()
        .name("replay-reader".into())
        .spawn(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            let n = reader_log.scan(0, |event| {
                chunk.push(event);
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    // The folder hung up: stop reading, the error is its own.
                    if tx.send(full).is_err() {
                        return Err(LogError::Closed);
                    }
                }
                Ok(())
            });
            if !chunk.is_empty() {
                let _ = tx.send(chunk);
            }
            n
        })
        .expect("spawn replay reader");

    let mut done = 0u64;
    for chunk in rx {
        for event in &chunk {
            for p in projections {
                p.apply(event);
            }
        }
        done += chunk.len() as u64;
        if done % (CHUNK as u64 * 16) < CHUNK as u64 {
            progress(done, total);
        }
    }
    let read = reader.join().expect("replay reader panicked")?;
    progress(done, total);
    debug_assert_eq!(read, done);
    Ok(done)
}
