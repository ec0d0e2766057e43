//! Alertmanager API v2, read side, through the router: what `amtool` and
//! karma read. A manual clock decides what is still firing.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Duration;
use fenghuo::clock::Clock;
use serde_json::{Value, json};

mod support;

use support::router::Server;

/// Alerts as Prometheus posts them; they must be accepted.
async fn post(s: &Server, body: Value) {
    let (status, answer) = s.post_json("/api/v2/alerts", &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

fn new_server(yaml: &str) -> Server {
    Server::new(yaml, "2026-11-25T19:00:00Z".parse().unwrap())
}

fn names(list: &Value) -> Vec<String> {
    let mut n: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

const ROUTES: &str = "route:\n  receiver: oncall\n  routes:\n    - matchers: ['team=\"db\"']\n      receiver: db\n      continue: true\n    - matchers: ['severity=\"critical\"']\n      receiver: pager\n\
receivers:\n  - name: oncall\n  - name: db\n  - name: pager\n";

#[tokio::test]
async fn alerts_are_listed_in_alertmanager_shape_until_they_end() {
    let s = new_server(ROUTES);
    let now = s.clock.now();
    // t=0: three alerts; C ends at t+2m.
    post(
        &s,
        json!([
            {"labels": {"alertname": "A", "team": "db", "severity": "critical"}},
            {"labels": {"alertname": "B", "team": "web"}, "annotations": {"summary": "b"}},
            {"labels": {"alertname": "C"}, "endsAt": (now + Duration::minutes(2)).to_rfc3339()},
        ]),
    )
    .await;

    let (status, all) = s.get("/api/v2/alerts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&all), ["A", "B", "C"]);
    let a = all
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "A")
        .unwrap();
    // A goes to db (continue) and then to pager; fingerprint is Alertmanager's.
    assert_eq!(a["receivers"], json!([{"name": "db"}, {"name": "pager"}]));
    assert_eq!(
        a["status"],
        json!({"inhibitedBy": [], "silencedBy": [], "state": "active"})
    );
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(a["startsAt"], "2026-11-25T19:00:00.000Z");

    // (query, alerts listed) — one row per filter.
    let table: &[(&str, &[&str])] = &[
        ("filter=team%3D%22db%22", &["A"]),
        ("filter=team%3D~%22db%7Cweb%22", &["A", "B"]),
        ("filter=alertname%21%3DA&filter=alertname%21%3DB", &["C"]),
        ("receiver=pager", &["A"]),
        ("receiver=oncall", &["B", "C"]),
        ("active=false", &[]),
        ("silenced=false&inhibited=false", &["A", "B", "C"]),
    ];
    for (query, want) in table {
        let (status, list) = s.get(&format!("/api/v2/alerts?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(names(&list), *want, "{query}");
    }

    // t+3m: C's endsAt has passed; it is no longer listed.
    s.clock.advance(Duration::minutes(3));
    let (_, later) = s.get("/api/v2/alerts").await;
    assert_eq!(names(&later), ["A", "B"]);
}

#[tokio::test]
async fn bad_filters_are_refused_by_name() {
    let s = new_server("");
    // (query, param named in the answer)
    let table = [
        ("filter=team%3D~%22%28%22", "filter"), // a regex that does not compile
        ("receiver=%28", "receiver"),
        ("active=maybe", "active"),
    ];
    for (query, param) in table {
        let (status, body) = s.get(&format!("/api/v2/alerts?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["field"], param, "{query}: {body}");
    }
}

#[tokio::test]
async fn status_and_receivers_show_the_config_without_secrets() {
    let yaml = format!(
        "{ROUTES}  - name: hook\n    webhook_configs:\n      - url: http://hooks.invalid/s3cr3t-token\n"
    );
    let yaml = yaml.replace("receiver: oncall\n  routes", "receiver: hook\n  routes");
    let s = new_server(&yaml);
    let (status, receivers) = s.get("/api/v2/receivers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        receivers,
        json!([{"name": "oncall"}, {"name": "db"}, {"name": "pager"}, {"name": "hook"}])
    );
    let (_, st) = s.get("/api/v2/status").await;
    let original = st["config"]["original"].as_str().unwrap();
    assert!(original.contains("receiver: hook"), "{original}");
    assert!(!original.contains("s3cr3t"), "{original}");
    assert_eq!(st["cluster"]["status"], "disabled");
}

impl Server {
    async fn post_silence(&self, body: Value) -> (StatusCode, Value) {
        let req = Request::post("/api/v2/silences")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(req).await
    }

    async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::delete(uri).body(Body::empty()).unwrap())
            .await
    }
}

fn silence(s: &Server, from_min: i64, to_min: i64) -> Value {
    let now = s.clock.now();
    json!({
        "matchers": [{"name": "alertname", "value": "A", "isRegex": false, "isEqual": true}],
        "startsAt": (now + Duration::minutes(from_min)).to_rfc3339(),
        "endsAt": (now + Duration::minutes(to_min)).to_rfc3339(),
        "createdBy": "alice",
        "comment": "maintenance",
    })
}

/// A silence's life on a manual clock: pending, active (muting), changed,
/// expired; each step as Alertmanager's API answers it.
#[tokio::test]
async fn a_silence_mutes_while_active_and_follows_alertmanagers_update_rules() {
    let s = new_server("");
    // Without an endsAt they would end at t+5m (resolve_timeout).
    let ends = (s.clock.now() + Duration::hours(2)).to_rfc3339();
    post(
        &s,
        json!([
            {"labels": {"alertname": "A"}, "endsAt": ends},
            {"labels": {"alertname": "B"}, "endsAt": ends},
        ]),
    )
    .await;

    // t=0: a silence for t+10m..t+60m is pending; A is not muted yet.
    let (status, created) = s.post_silence(silence(&s, 10, 60)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["silenceID"].as_str().unwrap().to_string();
    let (_, got) = s.get(&format!("/api/v2/silence/{id}")).await;
    assert_eq!(got["status"]["state"], "pending");
    let (_, alerts) = s.get("/api/v2/alerts?silenced=false").await;
    assert_eq!(names(&alerts), ["A", "B"]);

    // Pending: changed in place, same id.
    let mut change = silence(&s, 5, 60);
    change["id"] = json!(id);
    let (_, same) = s.post_silence(change).await;
    assert_eq!(same["silenceID"], id.as_str());

    // t+6m: active; A is suppressed and filtered out by silenced=false.
    s.clock.advance(Duration::minutes(6));
    let (_, alerts) = s.get("/api/v2/alerts").await;
    let a = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "A")
        .unwrap();
    assert_eq!(a["status"]["state"], "suppressed");
    assert_eq!(a["status"]["silencedBy"], json!([id]));
    let (_, unsilenced) = s.get("/api/v2/alerts?silenced=false").await;
    assert_eq!(names(&unsilenced), ["B"]);

    // Active: changing the matchers cannot be done in place — the old one
    // expires and a new id is answered.
    let mut other = silence(&s, 0, 60);
    other["id"] = json!(id);
    other["matchers"][0]["value"] = json!("B");
    let (status, replaced) = s.post_silence(other).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    let new_id = replaced["silenceID"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    let (_, old) = s.get(&format!("/api/v2/silence/{id}")).await;
    assert_eq!(old["status"]["state"], "expired");
    let (_, unsilenced) = s.get("/api/v2/alerts?silenced=false").await;
    assert_eq!(names(&unsilenced), ["A"]);

    // DELETE ends it now; a second DELETE is refused; unknown ids are 404.
    let (status, _) = s.delete(&format!("/api/v2/silence/{new_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.delete(&format!("/api/v2/silence/{new_id}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = s.get("/api/v2/silence/no-such-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, alerts) = s.get("/api/v2/alerts?silenced=false").await;
    assert_eq!(names(&alerts), ["A", "B"]);

    // The list holds all three states' history: two silences, both expired.
    let (_, list) = s.get("/api/v2/silences").await;
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["expired", "expired"]);

    // Replay equals live: the views rebuilt from the log show the same.
    let rebuilt = fenghuo::pipeline::Views::new();
    fenghuo::eventlog::replay(&s.pipeline.log, &rebuilt.projections(), |_, _| {}).unwrap();
    let now = s.clock.now();
    let show = |v: &fenghuo::evaluate::silence::SilenceStore| -> Vec<String> {
        v.all()
            .iter()
            .map(|x| format!("{:?} {:?} {}", x.spec, x.state_at(now), x.updated_at))
            .collect()
    };
    assert_eq!(show(&rebuilt.silences), show(&s.pipeline.silences));
    assert_eq!(rebuilt.alerts.all(), s.pipeline.store.all());
}

#[tokio::test]
async fn bad_silences_are_refused_by_field_and_store_nothing() {
    let s = new_server("");
    // (what is wrong, the change, the field named)
    type Change = Box<dyn Fn(&mut Value)>;
    let table: Vec<(&str, Change, &str)> = vec![
        (
            "no matchers",
            Box::new(|v| v["matchers"] = json!([])),
            "matchers",
        ),
        (
            "a matcher that matches everything",
            Box::new(|v| v["matchers"] = json!([{"name": "a", "value": ".*", "isRegex": true}])),
            "matchers",
        ),
        (
            "a regex that does not compile",
            Box::new(|v| v["matchers"][0] = json!({"name": "a", "value": "(", "isRegex": true})),
            "matchers",
        ),
        (
            "ends before it starts",
            Box::new(|v| v["endsAt"] = v["startsAt"].clone()),
            "endsAt",
        ),
        (
            "ends in the past",
            Box::new(|v| {
                v["startsAt"] = json!("2026-11-25T17:00:00Z");
                v["endsAt"] = json!("2026-11-25T18:00:00Z");
            }),
            "endsAt",
        ),
        (
            "no comment",
            Box::new(|v| v["comment"] = json!("")),
            "comment",
        ),
        (
            "no author",
            Box::new(|v| v["createdBy"] = json!(" ")),
            "createdBy",
        ),
        (
            "not a time",
            Box::new(|v| v["endsAt"] = json!("tomorrow")),
            "endsAt",
        ),
        ("an unknown id", Box::new(|v| v["id"] = json!("nope")), ""),
    ];
    for (what, change, field) in table {
        let mut body = silence(&s, 0, 60);
        change(&mut body);
        let (status, answer) = s.post_silence(body).await;
        if field.is_empty() {
            assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {answer}");
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
            assert_eq!(answer["field"], field, "{what}: {answer}");
        }
        let (_, list) = s.get("/api/v2/silences").await;
        assert_eq!(list, json!([]), "{what}: something was stored");
    }
}

/// Inhibition as Alertmanager applies it: a critical alert of a cluster
/// mutes that cluster's warnings with the same alertname, not other
/// clusters'; it stops when the source ends and the rule's grace (default
/// 10m, a Fenghuo addition) is over.
#[tokio::test]
async fn inhibit_rules_suppress_targets_while_the_source_fires() {
    let s = new_server(
        "route:\n  receiver: r\nreceivers:\n  - name: r\n\
         inhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [alertname, cluster]\n",
    );
    let now = s.clock.now();
    post(
        &s,
        json!([
            {"labels": {"alertname": "Down", "cluster": "a", "severity": "critical"},
             "endsAt": (now + Duration::minutes(10)).to_rfc3339()},
            {"labels": {"alertname": "Down", "cluster": "a", "severity": "warning", "x": "1"},
             "endsAt": (now + Duration::hours(1)).to_rfc3339()},
            {"labels": {"alertname": "Down", "cluster": "b", "severity": "warning"},
             "endsAt": (now + Duration::hours(1)).to_rfc3339()},
        ]),
    )
    .await;
    let (_, all) = s.get("/api/v2/alerts").await;
    let by_cluster_severity = |list: &Value, c: &str, sev: &str| -> Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["cluster"] == c && a["labels"]["severity"] == sev)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let source = by_cluster_severity(&all, "a", "critical");
    let target = by_cluster_severity(&all, "a", "warning");
    assert_eq!(target["status"]["state"], "suppressed");
    assert_eq!(
        target["status"]["inhibitedBy"],
        json!([source["fingerprint"]])
    );
    assert_eq!(
        by_cluster_severity(&all, "b", "warning")["status"]["state"],
        "active"
    );
    assert_eq!(source["status"]["state"], "active");
    let (_, visible) = s.get("/api/v2/alerts?inhibited=false").await;
    assert_eq!(visible.as_array().unwrap().len(), 2);

    // t+11m: the critical ended at 10m; its warning stays suppressed by
    // it through the grace, until 20m.
    s.clock.advance(Duration::minutes(11));
    let (_, later) = s.get("/api/v2/alerts").await;
    let target = by_cluster_severity(&later, "a", "warning");
    assert_eq!(target["status"]["state"], "suppressed");
    assert_eq!(
        target["status"]["inhibitedBy"],
        json!([source["fingerprint"]])
    );

    // t+21m: the grace is over; the warning is active again.
    s.clock.advance(Duration::minutes(10));
    let (_, later) = s.get("/api/v2/alerts").await;
    assert_eq!(
        by_cluster_severity(&later, "a", "warning")["status"]["state"],
        "active"
    );
}

/// Flap damping shows in "why": the history says since when an alert is
/// flapping and with which numbers, and the decision is in its events.
#[tokio::test]
async fn history_says_an_alert_is_flapping() {
    let s = new_server("route:\n  receiver: team\nreceivers:\n  - name: team\n");
    // Fired, resolved, fired, resolved: four changes within 10 minutes.
    for i in 0..4 {
        s.clock.advance(Duration::seconds(10));
        let ends = if i % 2 == 0 {
            s.clock.now() + Duration::hours(1)
        } else {
            s.clock.now()
        };
        post(
            &s,
            json!([{"labels": {"alertname": "A"}, "endsAt": ends.to_rfc3339()}]),
        )
        .await;
    }
    s.pipeline.dispatcher.step().await.unwrap();
    let fp = s.pipeline.store.all()[0].0.to_string();
    let (status, why) = s.get(&format!("/api/v1/alerts/{fp}/history")).await;
    assert_eq!(status, StatusCode::OK, "{why}");
    assert_eq!(why["flapping"]["changes"], 4, "{why}");
    assert_eq!(why["flapping"]["window_secs"], 600, "{why}");
    assert_eq!(why["flapping"]["stable_secs"], 600, "{why}");
    let kinds: Vec<&str> = why["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // The decision, then (group_wait over) the one notice.
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["alert.flapping_started", "notification.due"],
        "{kinds:?}"
    );
    assert_eq!(
        why["events"][kinds.len() - 1]["payload"]["flapping"],
        json!([fp])
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fenghuo"))
        .args(["why", &fp, "--data-dir"])
        .arg(&s.pipeline.config().data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("flapping: 4 state changes within 600s; paged again after 600s stable"),
        "{text}"
    );
}

/// "Why was I (not) paged?": an alert's state, its mutes and its history,
/// over HTTP and from `fenghuo why` on the data directory.
#[tokio::test]
async fn history_explains_an_alert() {
    let s = new_server("route:\n  receiver: team\nreceivers:\n  - name: team\n");
    let ends = (s.clock.now() + Duration::hours(1)).to_rfc3339();
    post(
        &s,
        json!([{"labels": {"alertname": "A"}, "annotations": {"summary": "one"}, "endsAt": ends}]),
    )
    .await;
    post(
        &s,
        json!([{"labels": {"alertname": "A"}, "annotations": {"summary": "two"}, "endsAt": ends}]),
    )
    .await;
    // The dispatcher pages it once group_wait (30s) is over, then it is
    // silenced.
    s.pipeline.dispatcher.step().await.unwrap();
    s.clock.advance(Duration::seconds(30));
    s.pipeline.dispatcher.step().await.unwrap();
    let (_, created) = s.post_silence(silence(&s, 0, 30)).await;
    let (_, listed) = s.get("/api/v2/alerts").await;
    let fp = listed[0]["fingerprint"].as_str().unwrap().to_string();

    let (status, why) = s.get(&format!("/api/v1/alerts/{fp}/history")).await;
    assert_eq!(status, StatusCode::OK, "{why}");
    assert_eq!(why["state"], "firing");
    assert_eq!(why["receivers"], json!(["team"]));
    assert_eq!(why["silencedBy"], json!([created["silenceID"]]));
    let kinds: Vec<&str> = why["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "alert.received",
            "alert.fired",
            "alert.received",
            "notification.due"
        ],
        "the decision that it fires (in the commit that brought it), the annotation change and the page are history"
    );
    assert_eq!(why["events"][3]["payload"]["receiver"], "team");

    // (path, status) — unknown and malformed fingerprints.
    for (path, want) in [
        (
            "/api/v1/alerts/0123456789abcdef/history",
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/alerts/xyz/history", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(s.get(path).await.0, want, "{path}");
    }

    // The same history from the command line, reading the data directory.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fenghuo"))
        .args(["why", &fp, "--data-dir"])
        .arg(&s.pipeline.config().data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("alert.received").count(), 2, "{text}");
    assert_eq!(text.matches("notification.due").count(), 1, "{text}");
}

/// Time travel: the state at any past moment, rebuilt from what the log had
/// recorded by then — over HTTP and with `fenghuo replay --at`.
#[tokio::test]
async fn state_at_a_past_time_is_rebuilt_from_the_log() {
    let s = new_server("");
    let t0 = s.clock.now();
    let at = |m: i64| (t0 + Duration::minutes(m)).to_rfc3339();
    // t0: A fires (until t0+1h).
    post(
        &s,
        json!([{"labels": {"alertname": "A"}, "endsAt": at(60)}]),
    )
    .await;
    // t0+10m: A is silenced for 30 minutes.
    s.clock.advance(Duration::minutes(10));
    let (_, created) = s.post_silence(silence(&s, 0, 30)).await;
    let sid = created["silenceID"].clone();
    // t0+20m: B fires.
    s.clock.advance(Duration::minutes(10));
    post(
        &s,
        json!([{"labels": {"alertname": "B"}, "endsAt": at(80)}]),
    )
    .await;
    // t0+30m: A resolves.
    s.clock.advance(Duration::minutes(10));
    post(
        &s,
        json!([{"labels": {"alertname": "A"}, "endsAt": at(30)}]),
    )
    .await;
    s.clock.advance(Duration::minutes(5));

    // (minute, alerts firing then, A silenced then?)
    let table: &[(i64, &[&str], bool)] = &[
        (5, &["A"], false),
        (15, &["A"], true),
        (25, &["A", "B"], true),
        (35, &["B"], false),
    ];
    for (minute, firing, silenced) in table {
        let query = at(*minute).replace('+', "%2B");
        let (status, then) = s.get(&format!("/api/v1/state?at={query}")).await;
        assert_eq!(status, StatusCode::OK, "{then}");
        assert_eq!(names(&then["alerts"]), *firing, "t0+{minute}m");
        let a = then["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["labels"]["alertname"] == "A");
        if let Some(a) = a {
            assert_eq!(
                a["silencedBy"] == json!([sid]),
                *silenced,
                "t0+{minute}m: {a}"
            );
        }
    }
    let (status, body) = s.get("/api/v1/state?at=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "at");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fenghuo"))
        .args(["replay", "--quiet", "--at", &at(15), "--data-dir"])
        .arg(&s.pipeline.config().data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("firing at 2026-11-25 19:15:00 UTC: 1"),
        "{text}"
    );
    assert!(text.contains("silenced by"), "{text}");
}

/// Groups as the routing tree forms them: one per route and `group_by`
/// values. `continue` goes on to later siblings, never back to the parent:
/// the db alerts are not also in the root's group (Alertmanager's Match).
#[tokio::test]
async fn alert_groups_follow_the_routing_tree() {
    let s = new_server(
        "route:\n  receiver: oncall\n  group_by: [cluster]\n  routes:\n    - matchers: ['team=\"db\"']\n      receiver: db\n      group_by: [alertname]\n      continue: true\n\
         receivers:\n  - name: oncall\n  - name: db\n",
    );
    let ends = (s.clock.now() + Duration::hours(1)).to_rfc3339();
    post(
        &s,
        json!([
            {"labels": {"alertname": "Slow", "cluster": "a", "team": "db"}, "endsAt": ends},
            {"labels": {"alertname": "Slow", "cluster": "b", "team": "db"}, "endsAt": ends},
            {"labels": {"alertname": "Down", "cluster": "a"}, "endsAt": ends},
        ]),
    )
    .await;
    let (status, groups) = s.get("/api/v2/alerts/groups").await;
    assert_eq!(status, StatusCode::OK);
    // (receiver, group labels, alerts in it)
    let mut got: Vec<(String, String, usize)> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["receiver"]["name"].as_str().unwrap().to_string(),
                g["labels"].to_string(),
                g["alerts"].as_array().unwrap().len(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("db".to_string(), r#"{"alertname":"Slow"}"#.to_string(), 2),
            ("oncall".to_string(), r#"{"cluster":"a"}"#.to_string(), 1),
        ]
    );
    let (_, only_db) = s.get("/api/v2/alerts/groups?receiver=db").await;
    assert_eq!(only_db.as_array().unwrap().len(), 1);
}
