//! The watch of a Kubernetes API server, against a local HTTP server that
//! answers as a real one does: list and watch responses of
//! `events.k8s.io/v1` Events from `tests/fixtures/kubernetes/watch/`
//! (chunked watch streams, one JSON watch event a line, `BOOKMARK`s, an
//! `ERROR` with a `Status` of code 410, a connection cut mid-event), read
//! as timelines of requests made and events stored.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use fenghuo::clock::ManualClock;
use fenghuo::config::Config;
use fenghuo::eventlog::{Event, EventKind, EventQuery};
use fenghuo::ingest::kubernetes::watch::{ApiServer, ClusterWatch, RoundEnd, WatchError};
use fenghuo::pipeline::Pipeline;
use parking_lot::Mutex;

const TOKEN: &str = "s3cret-bearer-token";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/kubernetes/watch/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the API server answers to one request.
enum Reply {
    /// A whole JSON body with this status.
    Json(u16, Vec<u8>),
    /// A watch stream (200, chunked) that ends cleanly.
    Stream(Vec<u8>),
    /// A watch stream whose connection is cut after these bytes.
    Cut(Vec<u8>),
}

/// The API server: replies in order, one queue for lists and one for
/// watches; a watch with nothing left to say stays open, as a real one
/// does until its timeout.
#[derive(Default)]
struct ApiScript {
    lists: Mutex<VecDeque<Reply>>,
    watches: Mutex<VecDeque<Reply>>,
    /// Each request as `path?query`.
    seen: Mutex<Vec<String>>,
    /// Each request's `Authorization` header.
    auth: Mutex<Vec<String>>,
}

impl ApiScript {
    fn list(&self, reply: Reply) {
        self.lists.lock().push_back(reply);
    }
    fn watch(&self, reply: Reply) {
        self.watches.lock().push_back(reply);
    }
    fn take_seen(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock())
    }
}

async fn answer(State(script): State<Arc<ApiScript>>, uri: Uri, headers: HeaderMap) -> Response {
    script.seen.lock().push(uri.to_string());
    script.auth.lock().push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    );
    let watching = uri.query().is_some_and(|q| q.contains("watch=1"));
    let next = match watching {
        true => script.watches.lock().pop_front(),
        false => script.lists.lock().pop_front(),
    };
    let json = [("content-type", "application/json")];
    match next {
        Some(Reply::Json(status, body)) => {
            (StatusCode::from_u16(status).unwrap(), json, body).into_response()
        }
        Some(Reply::Stream(body)) => (json, Body::from(body)).into_response(),
        Some(Reply::Cut(body)) => {
            use futures::StreamExt;
            // The bytes go out (the server flushes while the body is not
            // ready), then the connection is cut mid-chunk.
            let cut = futures::stream::once(async {
                tokio::task::yield_now().await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "cut",
                ))
            });
            let body = futures::stream::iter([Ok::<_, std::io::Error>(body)]).chain(cut);
            (json, Body::from_stream(body)).into_response()
        }
        None if watching => (
            json,
            Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>()),
        )
            .into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "no reply scripted").into_response(),
    }
}

async fn api_server() -> (Arc<ApiScript>, String) {
    let script = Arc::new(ApiScript::default());
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (script, url)
}

fn t0() -> DateTime<Utc> {
    "2026-11-26T03:00:00Z".parse().unwrap()
}

fn config(dir: &std::path::Path, url: &str, extra: &str) -> Config {
    let mut config = Config::parse(&format!(
        "kubernetes:\n  reconnect_backoff: 10ms\n  max_reconnect_backoff: 40ms\n  clusters:\n    - name: prod\n      api_server: {url}\n      token: {TOKEN}\n{extra}"
    ))
    .unwrap();
    config.data_dir = dir.join("data");
    config
}

fn open(config: &Config, clock: &ManualClock) -> Arc<Pipeline> {
    Arc::new(Pipeline::open(config.clone(), Arc::new(clock.clone())).unwrap())
}

fn watch_of(p: &Pipeline) -> ClusterWatch {
    let api = ApiServer::connect(&p.config().kubernetes.clusters[0], None).unwrap();
    ClusterWatch::new(api, "", p.kubernetes.clone(), p.config().kubernetes.clone())
}

async fn events_after(p: &Pipeline, after: u64) -> Vec<Event> {
    let log = p.log.clone();
    tokio::task::spawn_blocking(move || {
        log.read(&EventQuery {
            after,
            ..EventQuery::default()
        })
        .unwrap()
    })
    .await
    .unwrap()
}

/// One line per Kubernetes event or watch position stored.
fn line(e: &Event) -> Option<String> {
    match &e.kind {
        EventKind::K8sEvent(k) => Some(format!(
            "k8s.event {} {}/{} {} x{}",
            k.cluster, k.namespace, k.involved_object.name, k.reason, k.count
        )),
        EventKind::K8sWatchProgressed(w) => Some(format!(
            "k8s.watch.progressed {} at {} by {}",
            w.cluster, w.resource_version, w.by
        )),
        _ => None,
    }
}

/// What was stored since the last call.
struct Seen(u64);

impl Seen {
    async fn news(&mut self, p: &Pipeline) -> Vec<String> {
        let events = events_after(p, self.0).await;
        if let Some(last) = events.last() {
            self.0 = last.seq;
        }
        events.iter().filter_map(line).collect()
    }
}

fn lines(want: &[&str]) -> Vec<String> {
    want.iter().map(|s| s.to_string()).collect()
}

const LIST: &str = "/apis/events.k8s.io/v1/events?limit=500";

fn watch_from(rv: &str) -> String {
    format!(
        "/apis/events.k8s.io/v1/events?watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=300"
    )
}

#[tokio::test]
async fn list_then_watch_with_bookmarks_then_410_relist_and_a_cut_connection_store_each_change_once()
 {
    let dir = tempfile::tempdir().unwrap();
    let (api, url) = api_server().await;
    let clock = ManualClock::new(t0());
    let config = config(dir.path(), &url, "");
    let mut seen = Seen(0);

    // First start: nothing to resume from, so list, then watch from the
    // list's version. The watch brings a new event, a change to a listed
    // one, and a bookmark, then the server ends it.
    {
        let p = open(&config, &clock);
        api.list(Reply::Json(200, fixture("list.json")));
        api.watch(Reply::Stream(fixture(
            "watch-added-modified-bookmark.jsonl",
        )));
        let mut w = watch_of(&p);
        assert_eq!(w.resource_version(), None);
        assert_eq!(w.round().await.unwrap(), RoundEnd::Closed);
        assert_eq!(api.take_seen(), vec![LIST.to_string(), watch_from("1000")]);
        assert_eq!(
            seen.news(&p).await,
            lines(&[
                "k8s.event prod shop/web-7d4b9c6f5-x2x9k BackOff x7",
                "k8s.event prod jobs/batch-worker-0 FailedScheduling x4",
                "k8s.watch.progressed prod at 1000 by list",
                "k8s.event prod shop/api-5b6c7d8e9f-k4m2p Pulled x1",
                "k8s.event prod shop/web-7d4b9c6f5-x2x9k BackOff x8",
                "k8s.watch.progressed prod at 1005 by events",
            ])
        );
        assert_eq!(w.resource_version(), Some("1005"));
        p.close();
    }

    // A restart resumes at the bookmark from the log: no list. The server
    // has compacted past it: an ERROR watch event with a 410 Status.
    let p = open(&config, &clock);
    api.watch(Reply::Stream(fixture("watch-error-410.jsonl")));
    let mut w = watch_of(&p);
    assert_eq!(w.resource_version(), Some("1005"));
    assert_eq!(w.round().await.unwrap(), RoundEnd::Gone);
    assert_eq!(api.take_seen(), vec![watch_from("1005")]);
    assert_eq!(w.resource_version(), None, "a 410 means list again");
    assert_eq!(seen.news(&p).await, Vec::<String>::new());

    // The relist holds two events the log has unchanged and one that
    // changed meanwhile: only the change is stored. The watch from the
    // new list's version is cut mid-event: the whole event before the cut
    // is stored, the half one is not. No bookmark came and the list's
    // position is fresh: the position is not written down with it.
    api.list(Reply::Json(200, fixture("relist.json")));
    api.watch(Reply::Cut(fixture("watch-dropped.jsonl")));
    let err = w.round().await.unwrap_err();
    assert!(matches!(err, WatchError::Request(_)), "{err}");
    assert_eq!(api.take_seen(), vec![LIST.to_string(), watch_from("2000")]);
    assert_eq!(
        seen.news(&p).await,
        lines(&[
            "k8s.event prod shop/web-7d4b9c6f5-x2x9k BackOff x9",
            "k8s.watch.progressed prod at 2000 by list",
            "k8s.event prod shop/web-7d4b9c6f5-x2x9k BackOff x10",
        ])
    );

    // Reconnected, it resumes after the last whole event: the one cut in
    // half arrives whole, once.
    api.watch(Reply::Stream(fixture("watch-after-drop.jsonl")));
    assert_eq!(w.round().await.unwrap(), RoundEnd::Closed);
    assert_eq!(api.take_seen(), vec![watch_from("2001")]);
    assert_eq!(
        seen.news(&p).await,
        lines(&[
            "k8s.event prod shop/web-7d4b9c6f5-x2x9k BackOff x11",
            "k8s.watch.progressed prod at 2010 by events",
        ])
    );

    // Restarted now, the watch resumes from the bookmark the log holds.
    p.close();
    drop((w, p));
    let p = open(&config, &clock);
    assert_eq!(watch_of(&p).resource_version(), Some("2010"));

    // Every request carried the token; nothing stored does.
    assert!(
        api.auth
            .lock()
            .iter()
            .all(|a| a == &format!("Bearer {TOKEN}"))
    );
    let all = events_after(&p, 0).await;
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(TOKEN));
    p.close();
}

#[tokio::test]
async fn a_410_answer_to_the_watch_request_lists_again() {
    let dir = tempfile::tempdir().unwrap();
    let (api, url) = api_server().await;
    let clock = ManualClock::new(t0());
    let p = open(&config(dir.path(), &url, ""), &clock);
    let mut seen = Seen(0);
    api.list(Reply::Json(200, fixture("list.json")));
    api.watch(Reply::Json(410, fixture("status-410.json")));
    let mut w = watch_of(&p);
    assert_eq!(w.round().await.unwrap(), RoundEnd::Gone);
    assert_eq!(w.resource_version(), None);
    // Listing again stores nothing new but the position.
    api.list(Reply::Json(200, fixture("list.json")));
    api.watch(Reply::Stream(Vec::new()));
    assert_eq!(w.round().await.unwrap(), RoundEnd::Closed);
    assert_eq!(
        api.take_seen(),
        vec![
            LIST.to_string(),
            watch_from("1000"),
            LIST.to_string(),
            watch_from("1000")
        ]
    );
    assert_eq!(
        seen.news(&p).await,
        lines(&[
            "k8s.event prod shop/web-7d4b9c6f5-x2x9k BackOff x7",
            "k8s.event prod jobs/batch-worker-0 FailedScheduling x4",
            "k8s.watch.progressed prod at 1000 by list",
            "k8s.watch.progressed prod at 1000 by list",
        ])
    );
    // A refusal (403) is an error naming the status and the server's
    // message, not a relist.
    api.watch(Reply::Json(
        403,
        br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"events.events.k8s.io is forbidden: User \"system:serviceaccount:monitoring:fenghuo\" cannot watch resource \"events\" in API group \"events.k8s.io\" at the cluster scope","reason":"Forbidden","details":{"group":"events.k8s.io","kind":"events"},"code":403}"#.to_vec(),
    ));
    let err = w.round().await.unwrap_err().to_string();
    assert!(
        err.contains("HTTP 403") && err.contains("forbidden"),
        "{err}"
    );
    assert_eq!(w.resource_version(), Some("1000"));
    p.close();
}

/// The watch loop on its own: a cut connection is retried after the
/// backoff, from the last version, without anyone calling it again.
#[tokio::test]
async fn the_running_watch_reconnects_by_itself_after_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (api, url) = api_server().await;
    let clock = ManualClock::new(t0());
    let p = open(&config(dir.path(), &url, ""), &clock);
    api.list(Reply::Json(200, fixture("relist.json")));
    api.watch(Reply::Cut(fixture("watch-dropped.jsonl")));
    api.watch(Reply::Stream(fixture("watch-after-drop.jsonl")));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(watch_of(&p).run(stopped));
    // Real I/O at the edge: wait, with a deadline, for the bookmark after
    // the reconnection to be recorded.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while p
        .kubernetes
        .watches()
        .position("prod", "")
        .map(|w| w.resource_version)
        != Some("2010".into())
    {
        assert!(tokio::time::Instant::now() < deadline, "never resumed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap();
    let seen = api.take_seen();
    assert_eq!(
        seen[..3],
        [LIST.to_string(), watch_from("2000"), watch_from("2001")]
    );
    p.close();
}

/// A list too long for one page is read page by page (`continue`), and
/// the watch starts from the first page's version; a service-account token
/// rotated on disk is read again for the next request.
#[tokio::test]
async fn a_paged_list_and_a_rotated_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let (api, url) = api_server().await;
    let clock = ManualClock::new(t0());
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let mut config = Config::parse(&format!(
        "kubernetes:\n  list_page_size: 1\n  clusters:\n    - name: prod\n      api_server: {url}\n      token_file: {}\n",
        token.display()
    ))
    .unwrap();
    config.data_dir = dir.path().join("data");
    let p = open(&config, &clock);
    let mut seen = Seen(0);
    // The list fixture, split into two pages as the API server does.
    let list: serde_json::Value = serde_json::from_slice(&fixture("list.json")).unwrap();
    let page = |i: usize, meta: serde_json::Value| {
        let mut doc = list.clone();
        doc["items"] = serde_json::json!([list["items"][i].clone()]);
        doc["metadata"] = meta;
        serde_json::to_vec(&doc).unwrap()
    };
    api.list(Reply::Json(
        200,
        page(
            0,
            serde_json::json!({"resourceVersion": "1000", "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTAwMCwic3RhcnQiOiJzaG9wL3dlYiJ9", "remainingItemCount": 1}),
        ),
    ));
    api.list(Reply::Json(
        200,
        page(1, serde_json::json!({"resourceVersion": "1000"})),
    ));
    api.watch(Reply::Stream(Vec::new()));
    let mut w = watch_of(&p);
    assert_eq!(w.round().await.unwrap(), RoundEnd::Closed);
    // The token rotates; the next connection reads it again.
    std::fs::write(&token, "second-token\n").unwrap();
    api.watch(Reply::Stream(Vec::new()));
    assert_eq!(w.round().await.unwrap(), RoundEnd::Closed);
    assert_eq!(
        api.take_seen(),
        vec![
            "/apis/events.k8s.io/v1/events?limit=1".to_string(),
            "/apis/events.k8s.io/v1/events?limit=1&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTAwMCwic3RhcnQiOiJzaG9wL3dlYiJ9".to_string(),
            watch_from("1000"),
            watch_from("1000"),
        ]
    );
    assert_eq!(
        *api.auth.lock(),
        vec![
            "Bearer first-token",
            "Bearer first-token",
            "Bearer first-token",
            "Bearer second-token"
        ]
    );
    assert_eq!(
        seen.news(&p).await,
        lines(&[
            "k8s.event prod shop/web-7d4b9c6f5-x2x9k BackOff x7",
            "k8s.event prod jobs/batch-worker-0 FailedScheduling x4",
            "k8s.watch.progressed prod at 1000 by list",
        ])
    );
    p.close();
}

#[test]
fn a_cluster_whose_ca_file_is_missing_is_refused_naming_it() {
    let config = Config::parse(
        "kubernetes:\n  clusters:\n    - name: staging\n      api_server: https://10.0.0.1:6443\n      ca_file: /nonexistent/ca.crt\n",
    )
    .unwrap();
    let err = ApiServer::connect(&config.kubernetes.clusters[0], None)
        .err()
        .expect("refused");
    assert!(
        err.contains("\"staging\"") && err.contains("/nonexistent/ca.crt"),
        "{err}"
    );
}

/// With `namespaces:`, each namespace is its own watch with its own
/// position in the log, written down at most every 30 s between bookmarks.
#[tokio::test]
async fn a_namespace_watch_keeps_its_own_position_written_down_every_30s() {
    let dir = tempfile::tempdir().unwrap();
    let (api, url) = api_server().await;
    let clock = ManualClock::new(t0());
    let p = open(
        &config(dir.path(), &url, "      namespaces: [shop]\n"),
        &clock,
    );
    api.list(Reply::Json(200, fixture("list.json")));
    api.watch(Reply::Stream(Vec::new()));
    let server = ApiServer::connect(&p.config().kubernetes.clusters[0], None).unwrap();
    let mut w = ClusterWatch::new(
        server,
        "shop",
        p.kubernetes.clone(),
        p.config().kubernetes.clone(),
    );
    assert_eq!(w.round().await.unwrap(), RoundEnd::Closed);
    assert_eq!(
        api.take_seen(),
        vec![
            "/apis/events.k8s.io/v1/namespaces/shop/events?limit=500".to_string(),
            "/apis/events.k8s.io/v1/namespaces/shop/events?watch=1&allowWatchBookmarks=true&resourceVersion=1000&timeoutSeconds=300".to_string(),
        ]
    );
    let watches = p.kubernetes.watches();
    assert_eq!(
        watches.position("prod", "shop").map(|w| w.resource_version),
        Some("1000".to_string())
    );
    assert_eq!(watches.position("prod", ""), None);

    // Between bookmarks, the position is written down at most every 30 s
    // of the clock: not with an event 10 s after the list, but with one
    // 40 s after it.
    let stream = fixture("watch-added-modified-bookmark.jsonl");
    let stream: Vec<&[u8]> = stream.split_inclusive(|b| *b == b'\n').collect();
    let mut seen = Seen(p.log.last_seq());
    clock.set(t0() + chrono::Duration::seconds(10));
    api.watch(Reply::Stream(stream[0].to_vec()));
    assert_eq!(w.round().await.unwrap(), RoundEnd::Closed);
    clock.set(t0() + chrono::Duration::seconds(40));
    api.watch(Reply::Stream(stream[1].to_vec()));
    assert_eq!(w.round().await.unwrap(), RoundEnd::Closed);
    assert_eq!(
        seen.news(&p).await,
        lines(&[
            "k8s.event prod shop/api-5b6c7d8e9f-k4m2p Pulled x1",
            "k8s.event prod shop/web-7d4b9c6f5-x2x9k BackOff x8",
            "k8s.watch.progressed prod at 1002 by events",
        ])
    );
    assert_eq!(
        api.take_seen()[1],
        "/apis/events.k8s.io/v1/namespaces/shop/events?watch=1&allowWatchBookmarks=true&resourceVersion=1001&timeoutSeconds=300",
        "the second watch resumes after the first's event, written down or not"
    );
    p.close();
}
