//! Replay: rebuild projections by folding the stored log from the start.
//!
//! Replay never decides and never sends; it only calls
//! [`Projection::apply`] on events that are already facts.
//!
//! Decoding payloads is most of the cost, so it runs as a small pipeline: one
//! thread reads rows, a few decode JSON in parallel, and the calling thread
//! folds the decoded chunks strictly in `seq` order.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use super::event::Event;
use super::projection::Projection;
use super::store::{EventLog, LogError, RawEvent};

/// Events handed between the threads at a time.
const CHUNK: usize = 2048;

/// Resets `projections` and folds every stored event through them.
/// `progress(done, total)` is called every few thousand events.
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
    let decoders = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);

    std::thread::scope(|scope| {
        let (raw_tx, raw_rx) = sync_channel::<(usize, Vec<RawEvent>)>(decoders * 2);
        let (dec_tx, dec_rx) = sync_channel::<(usize, Result<Vec<Event>, LogError>)>(decoders * 2);

        let reader = std::thread::Builder::new()
            .name("replay-read".into())
            .spawn_scoped(scope, move || {
                let mut chunk = Vec::with_capacity(CHUNK);
                let mut n = 0usize;
                let read = log.scan_raw(0, |raw| {
                    chunk.push(raw);
                    if chunk.len() == CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        raw_tx.send((n, full)).map_err(|_| LogError::Closed)?;
                        n += 1;
                    }
                    Ok(())
                });
                if !chunk.is_empty() {
                    let _ = raw_tx.send((n, chunk));
                }
                read
            })
            .expect("spawn replay reader");

        // Folded chunks go back to the decoders to be freed: freeing a
        // chunk's few thousand strings would otherwise cost the folding
        // thread, the one that cannot be parallel, almost as much as folding.
        let (trash_tx, trash_rx) = std::sync::mpsc::channel::<Vec<Event>>();
        let trash_rx = Arc::new(Mutex::new(trash_rx));
        let raw_rx = Arc::new(Mutex::new(raw_rx));
        for i in 0..decoders {
            let raw_rx = raw_rx.clone();
            let dec_tx = dec_tx.clone();
            let trash_rx = trash_rx.clone();
            std::thread::Builder::new()
                .name(format!("replay-decode-{i}"))
                .spawn_scoped(scope, move || decode_chunks(&raw_rx, &dec_tx, &trash_rx))
                .expect("spawn replay decoder");
        }
        // Only the decoders hold the queue now: when they stop (the fold
        // failed and hung up), the reader's next send fails and it stops too.
        drop(raw_rx);
        drop(dec_tx);

        // Fold in order: chunks may arrive out of order from the decoders.
        let mut waiting: BTreeMap<usize, Vec<Event>> = BTreeMap::new();
        let mut next = 0usize;
        let mut done = 0u64;
        let mut failure = None;
        for (i, decoded) in dec_rx {
            match decoded {
                Ok(events) => {
                    waiting.insert(i, events);
                }
                Err(e) => {
                    failure.get_or_insert(e);
                    break;
                }
            }
            while let Some(events) = waiting.remove(&next) {
                for event in &events {
                    for p in projections {
                        p.apply(event);
                    }
                }
                done += events.len() as u64;
                let _ = trash_tx.send(events);
                next += 1;
                if next.is_multiple_of(8) {
                    progress(done, total);
                }
            }
        }
        let read = reader.join().expect("replay reader panicked");
        if let Some(e) = failure {
            return Err(e);
        }
        read?;
        progress(done, total);
        Ok(done)
    })
}

fn decode_chunks(
    raw_rx: &Mutex<Receiver<(usize, Vec<RawEvent>)>>,
    dec_tx: &std::sync::mpsc::SyncSender<(usize, Result<Vec<Event>, LogError>)>,
    trash_rx: &Mutex<Receiver<Vec<Event>>>,
) {
    loop {
        while let Ok(done) = trash_rx.lock().expect("replay trash").try_recv() {
            drop(done);
        }
        let next = raw_rx.lock().expect("replay queue").recv();
        let Ok((i, raws)) = next else { return };
        let decoded: Result<Vec<Event>, LogError> =
            raws.into_iter().map(RawEvent::decode).collect();
        if dec_tx.send((i, decoded)).is_err() {
            return;
        }
    }
}
