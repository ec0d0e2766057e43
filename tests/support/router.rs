//! A pipeline on a manual clock in a temporary data directory, with the
//! HTTP router over it: for tests that go through the API without a
//! process (`oneshot`), reading status and JSON answers.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use fenghuo::api::{AppState, app};
use fenghuo::clock::ManualClock;
use fenghuo::config::Config;
use fenghuo::pipeline::Pipeline;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::watch;
use tower::ServiceExt;

pub struct Server {
    pub clock: ManualClock,
    pub pipeline: Arc<Pipeline>,
    pub router: axum::Router,
    _shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// A server on `yaml` whose clock starts at `t0`.
    pub fn new(yaml: &str, t0: DateTime<Utc>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::parse(yaml).unwrap();
        config.data_dir = dir.path().to_path_buf();
        let clock = ManualClock::new(t0);
        let pipeline = Arc::new(Pipeline::open(config, Arc::new(clock.clone())).unwrap());
        let (tx, rx) = watch::channel(false);
        Server {
            clock,
            router: app(AppState::new(pipeline.clone(), rx)),
            pipeline,
            _shutdown: tx,
            _dir: dir,
        }
    }

    /// The answer's status and its body as JSON (`null` when not JSON).
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    /// POSTs `body` as `application/json`.
    pub async fn post_json(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }
}
