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
