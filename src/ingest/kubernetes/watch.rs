//! A direct watch of Kubernetes API servers (`kubernetes:` in
//! `fenghuo.yaml`): list, then watch `events.k8s.io/v1` Events from the
//! list's `resourceVersion`, with bookmarks.
//!
//! * The position (`k8s.watch.progressed`, the last `resourceVersion`) is
//!   committed with the events of a batch at bookmarks, after a list, and
//!   otherwise at most every [`PROGRESS_EVERY`]. A restart resumes from the
//!   log: no gap, and what the API server sends again is in the dedup
//!   index, so nothing is stored twice.
//! * `410 Gone` (as the response, or as an `ERROR` watch event with a
//!   `Status` of code 410): the version is too old, so list again.
//! * A dropped connection: watch again from the last version, after a
//!   backoff that doubles with each failure in a row.
//!
//! Owns the HTTP conversation with the API server and nothing else: what
//! is stored is decided by [`KubernetesIngest`], what alerts by the rules.
//! It must never log or record the bearer token.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use chrono::Duration;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::watch as signal;

use super::{KeyedEvent, KubernetesIngest, body};
use crate::config::PromDuration;
use crate::eventlog::K8sWatchProgress;
use crate::notify::secret::Secret;

/// How often the position is written down between bookmarks.
pub const PROGRESS_EVERY: Duration = Duration::seconds(30);

/// Where a pod's service account puts its credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// `kubernetes:` in `fenghuo.yaml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    pub clusters: Vec<ClusterConfig>,
    /// The first wait before reconnecting after a failure; doubled per
    /// failure in a row, up to `max_reconnect_backoff`.
    pub reconnect_backoff: PromDuration,
    pub max_reconnect_backoff: PromDuration,
    /// How long one watch request may stay open (`timeoutSeconds`); the
    /// API server ends it then and the watch reconnects at once.
    pub watch_timeout: PromDuration,
    /// Items per page when listing (`limit`).
    pub list_page_size: u32,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            clusters: Vec::new(),
            reconnect_backoff: PromDuration(Duration::seconds(1)),
            max_reconnect_backoff: PromDuration(Duration::minutes(1)),
            watch_timeout: PromDuration(Duration::minutes(5)),
            list_page_size: 500,
        }
    }
}

/// One cluster to watch.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster's name: `cluster` of its events, and of the alerts.
    pub name: String,
    /// `https://host:6443`. Unset: the pod's own cluster
    /// (`KUBERNETES_SERVICE_HOST`/`_PORT`, with the service account's
    /// token and CA unless given).
    #[serde(default)]
    pub api_server: Option<String>,
    /// A bearer token (inline, `{ file: … }` or `{ env: … }`; read once).
    #[serde(default)]
    pub token: Option<Secret>,
    /// A file holding the bearer token, read again at every connection:
    /// service-account tokens are rotated.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The CA bundle (PEM) that signed the API server's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Namespaces to watch; empty: all of them.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// `FenghuoSourceQuiet` fires when the watch records nothing (no
    /// events, no bookmarks) for this long. `0`: never.
    #[serde(default = "default_quiet_after")]
    pub quiet_after: PromDuration,
}

fn default_quiet_after() -> PromDuration {
    PromDuration(Duration::minutes(10))
}

impl KubernetesConfig {
    /// Names are set, unique and usable in keys; a token is given one way.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.clusters.iter().enumerate() {
            let at = format!("kubernetes.clusters[{i}]");
            if c.name.is_empty() || c.name.contains('/') {
                return Err(format!("{at}.name: must be set, without '/'"));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(format!("{at}.name: {:?} is configured twice", c.name));
            }
            if c.token.is_some() && c.token_file.is_some() {
                return Err(format!(
                    "{at}: at most one of token and token_file must be configured"
                ));
            }
            // Namespaces go into the URL: DNS labels only.
            if let Some(ns) = c.namespaces.iter().find(|ns| {
                ns.is_empty()
                    || ns.len() > 63
                    || !ns
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            }) {
                return Err(format!(
                    "{at}.namespaces: {ns:?} is not a namespace name (lower-case letters, digits, '-')"
                ));
            }
            if c.quiet_after.0 < Duration::zero() {
                return Err(format!("{at}.quiet_after: must not be negative"));
            }
            if let Some(url) = &c.api_server
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return Err(format!(
                    "{at}.api_server: {url:?} must start with https:// or http://"
                ));
            }
        }
        if self.reconnect_backoff.0 <= Duration::zero()
            || self.max_reconnect_backoff.0 < self.reconnect_backoff.0
        {
            return Err(
                "kubernetes: reconnect_backoff must be more than 0s and at most max_reconnect_backoff"
                    .into(),
            );
        }
        if self.watch_timeout.0 < Duration::seconds(1) || self.list_page_size == 0 {
            return Err(
                "kubernetes: watch_timeout must be at least 1s and list_page_size at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

/// How a watch authenticates.
#[derive(Clone)]
enum Token {
    None,
    Inline(Secret),
    /// Read at each connection.
    File(PathBuf),
}

/// A cluster's API server, ready to talk to.
#[derive(Clone)]
pub struct ApiServer {
    cluster: String,
    base: String,
    token: Token,
    client: reqwest::Client,
}

impl ApiServer {
    /// The API server `config` names (or the pod's own), with its CA.
    /// Relative paths are taken from `dir` (the config file's directory).
    pub fn connect(config: &ClusterConfig, dir: Option<&Path>) -> Result<ApiServer, String> {
        let at = |what: String| format!("kubernetes cluster {:?}: {what}", config.name);
        let resolve = |p: &Path| match dir {
            Some(d) if p.is_relative() => d.join(p),
            _ => p.to_path_buf(),
        };
        let sa = Path::new(SERVICE_ACCOUNT_DIR);
        let (base, in_cluster) = match &config.api_server {
            Some(url) => (url.trim_end_matches('/').to_string(), false),
            None => {
                let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
                    at(
                        "api_server is not set and KUBERNETES_SERVICE_HOST is not either \
                        (not running in a pod): set api_server"
                            .into(),
                    )
                })?;
                let port =
                    std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host
                };
                (format!("https://{host}:{port}"), true)
            }
        };
        let token = match (&config.token, &config.token_file) {
            (Some(t), _) => Token::Inline(t.clone()),
            (None, Some(f)) => Token::File(resolve(f)),
            (None, None) if in_cluster => Token::File(sa.join("token")),
            (None, None) => Token::None,
        };
        let ca = match &config.ca_file {
            Some(f) => Some(resolve(f)),
            None if in_cluster => Some(sa.join("ca.crt")),
            None => None,
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(StdDuration::from_secs(10))
            .user_agent(concat!("fenghuo/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = ca {
            let pem = std::fs::read(&ca)
                .map_err(|e| at(format!("cannot read ca_file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| at(format!("ca_file {} is not PEM: {e}", ca.display())))?;
            builder = builder.tls_certs_only(certs);
        }
        let client = builder
            .build()
            .map_err(|e| at(format!("building the HTTP client: {e}")))?;
        Ok(ApiServer {
            cluster: config.name.clone(),
            base,
            token,
            client,
        })
    }

    fn get(&self, url: String) -> Result<reqwest::RequestBuilder, WatchError> {
        let request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        Ok(match &self.token {
            Token::None => request,
            Token::Inline(t) => request.bearer_auth(t.expose()),
            Token::File(path) => {
                let t = Secret::from_file(path).map_err(WatchError::Token)?;
                request.bearer_auth(t.expose())
            }
        })
    }

    /// The events collection of `namespace` (empty: all namespaces).
    fn events_url(&self, namespace: &str) -> String {
        match namespace {
            "" => format!("{}/apis/events.k8s.io/v1/events", self.base),
            ns => format!("{}/apis/events.k8s.io/v1/namespaces/{ns}/events", self.base),
        }
    }
}

/// Why a watch round ended badly. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("reading the token: {0}")]
    Token(String),
    #[error("request failed: {0}")]
    Request(String),
    #[error("HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("watch ERROR event: {0}")]
    Failure(String),
    #[error("unreadable response: {0}")]
    Body(String),
    #[error("storing events: {0}")]
    Store(String),
}

impl WatchError {
    /// A short, stable reason for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            WatchError::Token(_) => "token",
            WatchError::Request(_) => "disconnected",
            WatchError::Status { .. } => "http_status",
            WatchError::Failure(_) => "error_event",
            WatchError::Body(_) => "malformed",
            WatchError::Store(_) => "storage",
        }
    }
}

fn request_error(e: reqwest::Error) -> WatchError {
    // reqwest's messages name the URL, never headers: no token in them.
    // Its own says only "error sending request"; the causes say why.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    WatchError::Request(message)
}

/// How a watch round ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundEnd {
    /// The server closed the watch (its `timeoutSeconds`, a restart):
    /// watch again from the last version.
    Closed,
    /// `410 Gone`: the version is too old; the next round lists again.
    Gone,
}

/// The `metadata` of a List or a `Status`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<String>,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

#[derive(Deserialize)]
struct EventList {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<serde_json::Value>,
}

/// A `Status` (`kind: Status`): what the API server says went wrong.
#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    code: u16,
}

/// One line of a watch response.
#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    object: serde_json::Value,
}

/// The watch of one namespace (or all) of one cluster.
pub struct ClusterWatch {
    api: ApiServer,
    namespace: String,
    sink: KubernetesIngest,
    settings: KubernetesConfig,
    /// Where the next watch starts; `None`: list first.
    resource_version: Option<String>,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// The current round read at least one watch event.
    heard: bool,
    /// When this watch last wrote its position down (by the clock).
    recorded_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ClusterWatch {
    /// A watch that resumes where the log says it got.
    pub fn new(
        api: ApiServer,
        namespace: &str,
        sink: KubernetesIngest,
        settings: KubernetesConfig,
    ) -> ClusterWatch {
        let resource_version = sink
            .watches()
            .position(&api.cluster, namespace)
            .map(|p| p.resource_version);
        ClusterWatch {
            api,
            namespace: namespace.to_string(),
            sink,
            settings,
            resource_version,
            failures: 0,
            heard: false,
            recorded_at: None,
        }
    }

    /// Where the next watch starts (`None`: it lists first).
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    fn labels(&self) -> [(&'static str, String); 2] {
        [
            ("cluster", self.api.cluster.clone()),
            ("namespace", self.namespace.clone()),
        ]
    }

    fn progress(&self, resource_version: &str, by: &str) -> K8sWatchProgress {
        K8sWatchProgress {
            cluster: self.api.cluster.clone(),
            namespace: self.namespace.clone(),
            resource_version: resource_version.to_string(),
            by: by.to_string(),
        }
    }

    fn source(&self) -> String {
        format!("kubernetes-watch/{}", self.api.cluster)
    }

    async fn store(
        &self,
        events: Vec<KeyedEvent>,
        progress: Option<K8sWatchProgress>,
    ) -> Result<(), WatchError> {
        let n = events.len();
        self.sink
            .store(&self.source(), events, progress)
            .await
            .map_err(|e| WatchError::Store(e.to_string()))?;
        metrics::counter!(crate::metrics::K8S_WATCH_EVENTS, &self.labels()).increment(n as u64);
        Ok(())
    }

    /// One round: a list if there is no version to resume from, then one
    /// watch request read to its end.
    pub async fn round(&mut self) -> Result<RoundEnd, WatchError> {
        self.heard = false;
        if self.resource_version.is_none() {
            self.list().await?;
        }
        let Some(from) = self.resource_version.clone() else {
            return Err(WatchError::Body(
                "the list carried no metadata.resourceVersion".into(),
            ));
        };
        self.watch(&from).await
    }

    /// Lists every event, page by page, stores what is new, and records
    /// the list's version as where the watch starts.
    async fn list(&mut self) -> Result<(), WatchError> {
        let url = self.api.events_url(&self.namespace);
        let mut continue_token: Option<String> = None;
        let mut version = None;
        loop {
            let mut query = vec![("limit", self.settings.list_page_size.to_string())];
            if let Some(c) = &continue_token {
                query.push(("continue", c.clone()));
            }
            let response = self
                .api
                .get(url.clone())?
                .query(&query)
                .send()
                .await
                .map_err(request_error)?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await.map_err(request_error)?;
            if status != 200 {
                return Err(status_error(status, &bytes));
            }
            let list: EventList = serde_json::from_slice(&bytes)
                .map_err(|e| WatchError::Body(format!("list: {e}")))?;
            let events = self.normalize(list.items.iter());
            // Versions of a paginated list are the first page's.
            if version.is_none() {
                version = list.metadata.resource_version.filter(|v| !v.is_empty());
            }
            continue_token = list.metadata.continue_token.filter(|c| !c.is_empty());
            let Some(at) = version.clone() else {
                return Err(WatchError::Body("list: no metadata.resourceVersion".into()));
            };
            if continue_token.is_none() {
                self.store(events, Some(self.progress(&at, "list"))).await?;
                self.recorded_at = Some(self.sink.clock().now());
                self.resource_version = Some(at);
                return Ok(());
            }
            // A page before the last: its events, but no position yet.
            self.store(events, None).await?;
        }
    }

    /// Normalizes event objects; one that cannot be read is skipped and
    /// counted, not allowed to stop the watch.
    fn normalize<'a>(&self, items: impl Iterator<Item = &'a serde_json::Value>) -> Vec<KeyedEvent> {
        items
            .filter_map(|item| {
                match body::one(item, body::Shape::EventsV1, &self.api.cluster, "") {
                    Ok(e) => Some(e),
                    Err(e) => {
                        tracing::warn!(cluster = %self.api.cluster, error = %e,
                            "skipping a Kubernetes event that cannot be read");
                        metrics::counter!(crate::metrics::K8S_WATCH_SKIPPED, &self.labels())
                            .increment(1);
                        None
                    }
                }
            })
            .collect()
    }

    /// Watches from `from` until the server ends the response.
    async fn watch(&mut self, from: &str) -> Result<RoundEnd, WatchError> {
        let timeout = self.settings.watch_timeout.0.num_seconds().max(1);
        let response = self
            .api
            .get(self.api.events_url(&self.namespace))?
            .query(&[
                ("watch", "1"),
                ("allowWatchBookmarks", "true"),
                ("resourceVersion", from),
                ("timeoutSeconds", &timeout.to_string()),
            ])
            .send()
            .await
            .map_err(request_error)?;
        let status = response.status().as_u16();
        if status == 410 {
            self.resource_version = None;
            return Ok(RoundEnd::Gone);
        }
        if status != 200 {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(status_error(status, &bytes));
        }
        let up = metrics::gauge!(crate::metrics::K8S_WATCH_UP, &self.labels());
        up.set(1.0);
        let ended = self.read_stream(response).await;
        up.set(0.0);
        ended
    }

    async fn read_stream(&mut self, response: reqwest::Response) -> Result<RoundEnd, WatchError> {
        let mut stream = response.bytes_stream();
        let mut pending: Vec<u8> = Vec::new();
        loop {
            // Everything that has arrived is one batch: one commit under
            // load, one per event when events are rare. The whole events
            // that arrived before a cut are stored before it is reported.
            let (mut failed, mut closed) = (None, false);
            match stream.next().await {
                None => return Ok(RoundEnd::Closed),
                Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                Some(Err(e)) => failed = Some(e),
            }
            while failed.is_none() && !closed && pending.len() < 4 << 20 {
                match futures::FutureExt::now_or_never(stream.next()) {
                    Some(Some(Ok(chunk))) => pending.extend_from_slice(&chunk),
                    Some(Some(Err(e))) => failed = Some(e),
                    Some(None) => closed = true,
                    None => break,
                }
            }
            if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                let lines: Vec<u8> = pending.drain(..=end).collect();
                if let Some(done) = self.apply_lines(&lines).await? {
                    return Ok(done);
                }
            }
            if let Some(e) = failed {
                return Err(request_error(e));
            }
            if closed {
                return Ok(RoundEnd::Closed);
            }
        }
    }

    /// Handles complete watch lines; `Some` when the watch must end.
    async fn apply_lines(&mut self, lines: &[u8]) -> Result<Option<RoundEnd>, WatchError> {
        let mut objects = Vec::new();
        let mut version = None;
        let mut by = "events";
        let mut bookmarked = false;
        let mut end = None;
        for line in lines.split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: WatchEvent = match serde_json::from_slice(line) {
                Ok(e) => {
                    self.heard = true;
                    e
                }
                Err(e) => {
                    tracing::warn!(cluster = %self.api.cluster, error = %e,
                        "skipping a watch line that is not a watch event");
                    metrics::counter!(crate::metrics::K8S_WATCH_SKIPPED, &self.labels())
                        .increment(1);
                    continue;
                }
            };
            let object_version = event
                .object
                .pointer("/metadata/resourceVersion")
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            match event.event_type.as_str() {
                "ADDED" | "MODIFIED" => {
                    objects.push(event.object);
                    version = object_version.or(version);
                }
                // An event object expired: nothing to record but the version.
                "DELETED" => version = object_version.or(version),
                "BOOKMARK" => {
                    if object_version.is_some() {
                        version = object_version;
                        bookmarked = true;
                        if objects.is_empty() {
                            by = "bookmark";
                        }
                    }
                }
                "ERROR" => {
                    let status: Status = serde_json::from_value(event.object).unwrap_or_default();
                    if status.code == 410 || status.reason == "Expired" || status.reason == "Gone" {
                        end = Some(Ok(RoundEnd::Gone));
                    } else {
                        end = Some(Err(WatchError::Failure(format!(
                            "{} ({}, code {})",
                            status.message, status.reason, status.code
                        ))));
                    }
                    break;
                }
                other => {
                    tracing::warn!(cluster = %self.api.cluster, kind = other,
                        "skipping a watch event of an unknown type");
                }
            }
        }
        let events = self.normalize(objects.iter());
        if let Some(at) = version {
            // The position is written down at bookmarks and at most every
            // PROGRESS_EVERY otherwise: a restart that resumes a little
            // early gets events the index already holds, which are not
            // stored again, and a quiet cluster's events cost one entry
            // each rather than two.
            let now = self.sink.clock().now();
            let due = bookmarked || self.recorded_at.is_none_or(|t| now - t >= PROGRESS_EVERY);
            let progress = due.then(|| self.progress(&at, by));
            self.store(events, progress).await?;
            if due {
                self.recorded_at = Some(now);
            }
            self.resource_version = Some(at);
            // Something arrived: the connection works.
            self.failures = 0;
        }
        match end {
            Some(Ok(RoundEnd::Gone)) => {
                self.resource_version = None;
                Ok(Some(RoundEnd::Gone))
            }
            Some(other) => other.map(Some),
            None => Ok(None),
        }
    }

    /// The wait before the next round after `failures` failures in a row.
    pub fn backoff(&self, failures: u32) -> Duration {
        reconnect_backoff(
            failures,
            self.settings.reconnect_backoff.0,
            self.settings.max_reconnect_backoff.0,
        )
    }

    /// Rounds until `shutdown`: reconnects at once after a `410` or a
    /// watch the server ended after saying something, after a growing
    /// backoff after a failure or an empty answer.
    pub async fn run(mut self, mut shutdown: signal::Receiver<bool>) {
        loop {
            let ended = tokio::select! {
                ended = self.round() => ended,
                _ = shutdown.changed() => return,
            };
            let reason = match &ended {
                Ok(RoundEnd::Closed) => "closed",
                Ok(RoundEnd::Gone) => "gone",
                Err(e) => e.reason(),
            };
            metrics::counter!(crate::metrics::K8S_WATCH_RESTARTS,
                "cluster" => self.api.cluster.clone(),
                "namespace" => self.namespace.clone(),
                "reason" => reason)
            .increment(1);
            let wait = match ended {
                Ok(RoundEnd::Gone) => StdDuration::ZERO,
                Ok(RoundEnd::Closed) if self.heard => StdDuration::ZERO,
                // Closed without a word (a proxy that answers and hangs
                // up): not a reason to hammer the API server.
                Ok(RoundEnd::Closed) => {
                    self.failures += 1;
                    self.backoff(self.failures)
                        .to_std()
                        .unwrap_or(StdDuration::from_secs(1))
                }
                Err(e) => {
                    self.failures += 1;
                    let wait = self.backoff(self.failures);
                    tracing::warn!(cluster = %self.api.cluster, namespace = %self.namespace,
                        error = %e, failures = self.failures,
                        retry_in_ms = wait.num_milliseconds(), "Kubernetes watch failed");
                    wait.to_std().unwrap_or(StdDuration::from_secs(1))
                }
            };
            // The edge where real time passes.
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// Exponential backoff: `initial`, doubled per failure in a row after the
/// first, at most `max`.
pub fn reconnect_backoff(failures: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 1i64 << failures.saturating_sub(1).min(20);
    let ms = initial.num_milliseconds().saturating_mul(factor);
    Duration::milliseconds(ms).min(max)
}

fn status_error(status: u16, body: &[u8]) -> WatchError {
    let message = serde_json::from_slice::<Status>(body)
        .map(|s| s.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    WatchError::Status { status, message }
}

/// Starts a watch per configured cluster and namespace. A cluster whose
/// API server cannot be set up (no CA file, not in a pod) refuses the
/// start, naming the cluster.
pub fn spawn(
    config: &KubernetesConfig,
    dir: Option<&Path>,
    sink: KubernetesIngest,
    shutdown: signal::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let mut watches = Vec::new();
    for cluster in &config.clusters {
        let api = ApiServer::connect(cluster, dir)?;
        let namespaces = match cluster.namespaces.is_empty() {
            true => vec![String::new()],
            false => cluster.namespaces.clone(),
        };
        for ns in namespaces {
            watches.push(ClusterWatch::new(
                api.clone(),
                &ns,
                sink.clone(),
                config.clone(),
            ));
        }
    }
    Ok(watches
        .into_iter()
        .map(|w| tokio::spawn(w.run(shutdown.clone())))
        .collect())
}

/// Where the quiet-source check gets its clusters: name and `quiet_after`.
pub fn quiet_after(config: &KubernetesConfig) -> Vec<(String, Duration)> {
    config
        .clusters
        .iter()
        .filter(|c| c.quiet_after.0 > Duration::zero())
        .map(|c| (c.name.clone(), c.quiet_after.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap() {
        let s = Duration::seconds;
        // (failures in a row, wait)
        let table = [
            (1, s(1)),
            (2, s(2)),
            (3, s(4)),
            (6, s(32)),
            (7, s(60)),
            (40, s(60)),
        ];
        for (failures, want) in table {
            assert_eq!(reconnect_backoff(failures, s(1), s(60)), want, "{failures}");
        }
    }

    #[test]
    fn config_mistakes_are_refused_naming_the_cluster() {
        let parse = |y: &str| -> Result<KubernetesConfig, String> {
            let c: KubernetesConfig = yaml_serde::from_str(y).map_err(|e| e.to_string())?;
            c.check().map(|_| c)
        };
        let ok = parse(
            "clusters:\n  - name: prod\n    api_server: https://10.0.0.1:6443\n    token_file: t\n    namespaces: [shop]\n    quiet_after: 15m\n",
        )
        .unwrap();
        assert_eq!(ok.clusters[0].quiet_after.0, Duration::minutes(15));
        // (yaml, what the refusal mentions)
        let table = [
            ("clusters:\n  - name: a\n  - name: a\n", "configured twice"),
            ("clusters:\n  - name: ''\n", "clusters[0].name"),
            (
                "clusters:\n  - name: a\n    token: x\n    token_file: t\n",
                "at most one of token and token_file",
            ),
            (
                "clusters:\n  - name: a\n    api_server: 10.0.0.1:6443\n",
                "api_server",
            ),
            ("clusters:\n  - name: a\n    tokn: x\n", "tokn"),
            (
                "clusters:\n  - name: a\n    namespaces: [shop, ../secrets]\n",
                "namespaces",
            ),
            (
                "clusters:\n  - name: a\n    quiet_after: soon\n",
                "invalid duration",
            ),
        ];
        for (yaml, mention) in table {
            let err = parse(yaml).expect_err(yaml);
            assert!(err.contains(mention), "{yaml}: {err}");
        }
    }
}
