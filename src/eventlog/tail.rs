//! A tail: every event after a given `seq`, first from disk, then live, with
//! no gap and no duplicate at the switch.
//!
//! The live subscription is taken *before* the catch-up read, so an event
//! committed during catch-up is either read from disk or received live (or
//! both, and then dropped by its `seq`). A subscriber that falls behind the
//! live buffer re-reads the missed range from disk.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::event::Event;
use super::store::{EventLog, EventQuery, LogError};

const PAGE: usize = 1000;

/// Streams every event with `seq > after` that passes `filter`, forever (until
/// the receiver is dropped or the log closes).
pub fn tail(
    log: &EventLog,
    after: u64,
    filter: impl Fn(&Event) -> bool + Send + Sync + 'static,
) -> ReceiverStream<Result<Arc<Event>, Arc<LogError>>> {
    let (tx, rx) = mpsc::channel(256);
    let log = log.clone();
    tokio::spawn(async move {
        let mut live = log.subscribe();
        let mut last = after;
        // Catch up from disk until a short page says we are at the head.
        if catch_up(&log, &mut last, u64::MAX, &filter, &tx)
            .await
            .is_err()
        {
            return;
        }
        loop {
            match live.recv().await {
                Ok(event) => {
                    if event.seq <= last {
                        continue; // already delivered from disk
                    }
                    if event.seq > last + 1
                        && catch_up(&log, &mut last, event.seq - 1, &filter, &tx)
                            .await
                            .is_err()
                    {
                        return;
                    }
                    last = event.seq;
                    if filter(&event) && tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    if catch_up(&log, &mut last, u64::MAX, &filter, &tx)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Sends stored events with `last < seq <= upto`, advancing `last`. Err means
/// the receiver is gone or the log failed (the error was sent).
async fn catch_up(
    log: &EventLog,
    last: &mut u64,
    upto: u64,
    filter: &(impl Fn(&Event) -> bool + Send + Sync),
    tx: &mpsc::Sender<Result<Arc<Event>, Arc<LogError>>>,
) -> Result<(), ()> {
    loop {
        let query = EventQuery {
            after: *last,
            limit: PAGE,
            ..Default::default()
        };
        let reader = log.clone();
        let page = tokio::task::spawn_blocking(move || reader.read(&query))
            .await
            .map_err(|_| ())?;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(Arc::new(e))).await;
                return Err(());
            }
        };
        let short = page.len() < PAGE;
        for event in page {
            if event.seq > upto {
                return Ok(());
            }
            *last = event.seq;
            if filter(&event) && tx.send(Ok(Arc::new(event))).await.is_err() {
                return Err(());
            }
        }
        if short || *last >= upto {
            return Ok(());
        }
    }
}
