//! A `tcp` probe, run once: connect, optionally send a line and wait for
//! an answer matching `expect`. Pure of scheduling and of storing: it
//! answers an [`Outcome`].

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Outcome;
use super::config::TcpCheck;

/// The most read while waiting for `expect`.
pub const MAX_READ: usize = 64 << 10;

/// Runs `check` once; the caller bounds it with the probe's timeout.
pub async fn run(check: &TcpCheck) -> Outcome {
    let started = Instant::now();
    let mut stream = match TcpStream::connect(&check.address).await {
        Ok(s) => s,
        Err(e) => return Outcome::failed(started.elapsed(), None, format!("connect failed: {e}")),
    };
    let connected = started.elapsed();
    if let Some(send) = &check.send
        && let Err(e) = stream.write_all(send.as_bytes()).await
    {
        return Outcome::failed(started.elapsed(), None, format!("send failed: {e}"));
    }
    if let Some(pattern) = &check.expect {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if pattern.0.is_match(&String::from_utf8_lossy(&got)) {
                break;
            }
            if got.len() >= MAX_READ {
                return Outcome::failed(
                    started.elapsed(),
                    None,
                    format!(
                        "no answer matching {:?} in {MAX_READ} bytes",
                        pattern.0.as_str()
                    ),
                );
            }
            match stream.read(&mut buf).await {
                Ok(0) => {
                    return Outcome::failed(
                        started.elapsed(),
                        None,
                        format!(
                            "connection closed before an answer matching {:?}",
                            pattern.0.as_str()
                        ),
                    );
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    return Outcome::failed(started.elapsed(), None, format!("read failed: {e}"));
                }
            }
        }
        return Outcome::up(started.elapsed(), None);
    }
    Outcome::up(connected, None)
}
