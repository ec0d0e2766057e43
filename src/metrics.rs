//! Fenghuo's own metrics, served at `GET /metrics` in the Prometheus text
//! format. Names live here so a dashboard author finds them in one place.
//! Labels never carry secrets or unbounded values (no alert labels, no keys).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const EVENTS_APPENDED: &str = "fenghuo_events_appended_total";
pub const BATCH_EVENTS: &str = "fenghuo_append_batch_events";
pub const COMMIT_SECONDS: &str = "fenghuo_commit_duration_seconds";
pub const INGEST_REQUESTS: &str = "fenghuo_ingest_requests_total";
pub const INGEST_REJECTED: &str = "fenghuo_ingest_rejected_total";
pub const INGEST_ALERTS: &str = "fenghuo_ingest_alerts_total";
pub const LEASES_WRITTEN: &str = "fenghuo_alert_leases_written_total";
pub const ALERTS_INDEXED: &str = "fenghuo_alerts_indexed";
/// Labels: `integration` (receiver type), `receiver`.
pub const NOTIFY_SENT: &str = "fenghuo_notifications_sent_total";
/// Labels: `integration`, `receiver`, `reason` (failure class).
pub const NOTIFY_FAILED: &str = "fenghuo_notifications_failed_total";
/// From the decision (`notification.due`) to the far end's acceptance.
pub const NOTIFY_LATENCY_SECONDS: &str = "fenghuo_notification_latency_seconds";
/// One delivery attempt, request to response.
pub const NOTIFY_ATTEMPT_SECONDS: &str = "fenghuo_notification_attempt_duration_seconds";
/// Due notifications still owed to at least one receiver.
pub const NOTIFY_QUEUE_DEPTH: &str = "fenghuo_notification_queue_depth";
/// CEL errors and template failures seen by the running rules (a rule that
/// errors on every event never fires; this says so).
pub const RULE_ERRORS: &str = "fenghuo_rule_evaluation_errors";
/// Rule set loads. Labels: `outcome` (`loaded`, `refused`).
pub const RULE_LOADS: &str = "fenghuo_rule_loads_total";
/// Remediation hook attempts. Labels: `action`, `outcome` (`succeeded`,
/// `failed`).
pub const REMEDIATION_CALLS: &str = "fenghuo_remediation_calls_total";

/// Whether a probe's last run succeeded (1) or not (0). Labels: `probe`.
pub const PROBE_UP: &str = "fenghuo_probe_up";
/// How long a probe's last run took. Labels: `probe`.
pub const PROBE_DURATION_SECONDS: &str = "fenghuo_probe_duration_seconds";
/// Probe runs. Labels: `probe`, `result` (`ok`, `fail`).
pub const PROBE_RUNS: &str = "fenghuo_probe_runs_total";
/// Runs not started because the previous run was still going. Labels: `probe`.
pub const PROBE_RUNS_SKIPPED: &str = "fenghuo_probe_runs_skipped_total";
/// Probe runs stored as `probe.result`. Labels: `reason` (`first`, `state`,
/// `status`, `error`, `values`, `summary`); runs minus stored is what
/// compaction saved.
pub const PROBE_RESULTS_STORED: &str = "fenghuo_probe_results_stored_total";
/// Kubernetes watch events received. Labels: `cluster`, `namespace`.
pub const K8S_WATCH_EVENTS: &str = "fenghuo_kubernetes_watch_events_total";
/// Watch events or list items that could not be read and were skipped.
pub const K8S_WATCH_SKIPPED: &str = "fenghuo_kubernetes_watch_skipped_total";
/// 1 while a watch request is open. Labels: `cluster`, `namespace`.
pub const K8S_WATCH_UP: &str = "fenghuo_kubernetes_watch_up";
/// Watch rounds ended. Labels: `cluster`, `namespace`, `reason` (`closed`,
/// `gone`, `disconnected`, `http_status`, `error_event`, `token`, …).
pub const K8S_WATCH_RESTARTS: &str = "fenghuo_kubernetes_watch_restarts_total";
/// Unix time of the last progress a cluster's watch recorded (events or a
/// bookmark). Labels: `cluster`.
pub const K8S_WATCH_LAST_PROGRESS: &str =
    "fenghuo_kubernetes_watch_last_progress_timestamp_seconds";
/// Seconds since a configured cluster's watch last recorded progress.
pub const K8S_WATCH_QUIET_SECONDS: &str = "fenghuo_kubernetes_watch_quiet_seconds";
/// Kubernetes Event objects the dedup index holds.
pub const K8S_EVENTS_INDEXED: &str = "fenghuo_kubernetes_events_indexed";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(COMMIT_SECONDS.into()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
                    ],
                )
                .expect("static buckets are valid")
                .set_buckets_for_metric(
                    Matcher::Full(NOTIFY_LATENCY_SECONDS.into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0,
                        600.0,
                    ],
                )
                .expect("static buckets are valid")
                .set_buckets_for_metric(
                    Matcher::Full(NOTIFY_ATTEMPT_SECONDS.into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ],
                )
                .expect("static buckets are valid")
                .set_buckets_for_metric(
                    Matcher::Full(BATCH_EVENTS.into()),
                    &[1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 4096.0],
                )
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist in tests that embed the library; the
            // handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
