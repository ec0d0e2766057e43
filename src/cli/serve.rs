//! `fenghuo serve`: open the log, replay it, serve HTTP until SIGTERM or
//! Ctrl-C, then stop accepting, commit what is pending and exit 0.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::ConfigArgs;
use crate::api::{self, AppState};
use crate::clock::SystemClock;
use crate::config::{Config, LogFormat};
use crate::pipeline::Pipeline;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on (default 127.0.0.1:9797; port 0 picks one).
    #[arg(long, env = "FENGHUO_LISTEN")]
    pub listen: Option<String>,
    /// Log format on stderr.
    #[arg(long, env = "FENGHUO_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = args.config.load()?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    super::init_tracing(config.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // A worker with nothing to do hands back what it freed (`memory`).
        .on_thread_park(crate::memory::worker_parked)
        .build()?
        .block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let listen = config.listen.clone();
    let pipeline =
        tokio::task::spawn_blocking(move || Pipeline::open(config, Arc::new(SystemClock)))
            .await??;
    let pipeline = Arc::new(pipeline);
    tracing::info!(
        events = pipeline.log.last_seq(),
        alerts = pipeline.alerts.len(),
        data_dir = %pipeline.config().data_dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "event log replayed"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let background = pipeline.spawn_background(shutdown_rx.clone());
    // Kubernetes watches end with the shutdown signal; a cluster that
    // cannot be set up (no CA file, not in a pod) refuses the start.
    let config = pipeline.config();
    let _watches = crate::ingest::kubernetes::watch::spawn(
        &config.kubernetes,
        config.dir.as_deref(),
        pipeline.kubernetes.clone(),
        shutdown_rx.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    reload_on_sighup(pipeline.clone(), shutdown_rx.clone())?;
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let stop = stop_signal()?;
    // Scripts and tests read the bound address (port 0 picks one) from here.
    println!("listening on http://{addr}");
    std::io::stdout().flush().ok();
    tracing::info!(%addr, "serving");

    let app = api::app(AppState::new(pipeline.clone(), shutdown_rx));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.await;
            tracing::info!("shutting down: no new requests, committing what is pending");
            let _ = shutdown_tx.send(true);
        })
        .await?;
    let _ = background.await;
    let closing = pipeline.clone();
    tokio::task::spawn_blocking(move || closing.close()).await?;
    tracing::info!(last_seq = pipeline.log.last_seq(), "stopped");
    Ok(())
}

/// Reloads the rules and config on each SIGHUP, as Prometheus does. A
/// refused set is logged with every problem; the running one stays.
fn reload_on_sighup(
    pipeline: Arc<Pipeline>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    got = hup.recv() => if got.is_none() { return },
                    _ = shutdown.changed() => return,
                }
                match pipeline.reload("SIGHUP").await {
                    Ok(r) => tracing::info!(rules = r.rules, hash = %r.hash, "SIGHUP: reloaded"),
                    Err(problems) => {
                        for p in &problems {
                            tracing::error!(problem = %p, "SIGHUP: reload refused");
                        }
                        tracing::error!(
                            problems = problems.len(),
                            "SIGHUP: reload refused; the running rules and config stay in force"
                        );
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (pipeline, shutdown);
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is
/// called, not when it is first polled, so call it before announcing the
/// address: a SIGTERM right after must still mean a clean exit.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}
