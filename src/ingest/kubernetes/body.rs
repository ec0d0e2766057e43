//! Kubernetes Event bodies → [`K8sEvent`]s. Pure: bytes in, normalized
//! events (with their keys) or an [`IngestError`] naming the field out.
//!
//! Shapes taken, as the API reference and kubernetes-event-exporter define
//! them:
//!
//! * a core/v1 `Event` (`kind: Event`, `apiVersion: v1`): `involvedObject`,
//!   `message`, `count`, `firstTimestamp`/`lastTimestamp`, `source`, and
//!   the newer `eventTime`, `series`, `reportingComponent`;
//! * an `events.k8s.io/v1` `Event`: `regarding`, `note`, `series.count`,
//!   `eventTime`, `reportingController`, `deprecated*` fields;
//! * an `EventList` of either (its items carry no `kind`/`apiVersion`;
//!   the list's `apiVersion` says which shape they are), or the `List`
//!   that `kubectl get events -o json` prints (items typed one by one);
//! * the body kubernetes-event-exporter's webhook sink posts: a core/v1
//!   Event inline (no `kind`), plus `clusterName` and, on
//!   `involvedObject`, the object's `labels`, `annotations`,
//!   `ownerReferences` and `deleted`.
//!
//! Fields Kubernetes adds later are ignored, not refused: an API server
//! upgrade must not break ingest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::eventlog::{InvolvedObject, K8sEvent, LabelSet, OwnerReference};
use crate::ingest::IngestError;

/// One normalized event and the key of the Kubernetes Event object it
/// came from (`k8s/{cluster}/{namespace}/{name}`).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedEvent {
    pub key: String,
    pub event: K8sEvent,
    /// The Event object's `metadata.resourceVersion` (a watch resumes
    /// from the last one).
    pub resource_version: String,
}

/// The key of a Kubernetes Event object: stable across its re-emissions
/// (Kubernetes updates the same object, raising `count`).
pub fn event_key(cluster: &str, namespace: &str, name: &str) -> String {
    format!("k8s/{cluster}/{namespace}/{name}")
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    /// kubernetes-event-exporter adds the object's labels.
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    /// … its owners (a pod's ReplicaSet: where topology learns its
    /// workload) …
    #[serde(default)]
    owner_references: Option<Vec<OwnerRef>>,
    /// … and whether it saw the object deleted.
    #[serde(default)]
    deleted: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OwnerRef {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Series {
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    last_observed_time: Option<String>,
}

#[derive(Deserialize, Default)]
struct Source {
    #[serde(default)]
    component: Option<String>,
    /// The node of a kubelet's event.
    #[serde(default)]
    host: Option<String>,
}

/// core/v1 `Event`, and kubernetes-event-exporter's body (the same fields
/// inline, plus `clusterName`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CoreEvent {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    involved_object: Option<ObjectRef>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    source: Option<Source>,
    #[serde(default)]
    first_timestamp: Option<String>,
    #[serde(default)]
    last_timestamp: Option<String>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default, rename = "type")]
    event_type: Option<String>,
    #[serde(default)]
    event_time: Option<String>,
    #[serde(default)]
    series: Option<Series>,
    #[serde(default)]
    reporting_component: Option<String>,
    #[serde(default)]
    reporting_instance: Option<String>,
    #[serde(default)]
    cluster_name: Option<String>,
}

/// `events.k8s.io/v1` `Event`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventsV1Event {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    regarding: Option<ObjectRef>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default, rename = "type")]
    event_type: Option<String>,
    #[serde(default)]
    event_time: Option<String>,
    #[serde(default)]
    series: Option<Series>,
    #[serde(default)]
    reporting_controller: Option<String>,
    #[serde(default)]
    reporting_instance: Option<String>,
    #[serde(default)]
    deprecated_source: Option<Source>,
    #[serde(default)]
    deprecated_first_timestamp: Option<String>,
    #[serde(default)]
    deprecated_last_timestamp: Option<String>,
    #[serde(default)]
    deprecated_count: Option<u64>,
}

/// Which shape a body (or a list's items) has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Core,
    EventsV1,
}

fn shape_of(api_version: &str, field: &str) -> Result<Shape, IngestError> {
    match api_version {
        "v1" => Ok(Shape::Core),
        "events.k8s.io/v1" | "events.k8s.io/v1beta1" => Ok(Shape::EventsV1),
        other => Err(IngestError::new(
            field,
            format!("{other:?} is not an Event API version: use v1 or events.k8s.io/v1"),
        )),
    }
}

fn text<'a>(v: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(serde_json::Value::as_str)
}

/// Parses a `POST /ingest/kubernetes` body. `cluster` names the cluster
/// when the body does not (`clusterName` of the exporter wins).
pub fn parse(body: &[u8], cluster: &str) -> Result<Vec<KeyedEvent>, IngestError> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| IngestError::new("", e.to_string()))?;
    if !doc.is_object() {
        return Err(IngestError::new(
            "",
            "expected a JSON object: an Event, an EventList or a kubernetes-event-exporter body",
        ));
    }
    match (text(&doc, "kind"), text(&doc, "apiVersion")) {
        (Some("EventList"), api) => {
            let shape = shape_of(api.unwrap_or(""), "apiVersion")?;
            let items = doc
                .get("items")
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| IngestError::new("items", "an EventList needs an items array"))?;
            items
                .iter()
                .enumerate()
                .map(|(i, item)| one(item, shape, cluster, &format!("items[{i}].")))
                .collect()
        }
        // `kubectl get events -o json`: a `List` whose items carry their
        // own `kind` and `apiVersion`.
        (Some("List"), _) => {
            let items = doc
                .get("items")
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| IngestError::new("items", "a List needs an items array"))?;
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let prefix = format!("items[{i}].");
                    if text(item, "kind") != Some("Event") {
                        return Err(IngestError::new(
                            format!("{prefix}kind"),
                            "a List may hold only Events",
                        ));
                    }
                    let api = text(item, "apiVersion").unwrap_or("");
                    let shape = shape_of(api, &format!("{prefix}apiVersion"))?;
                    one(item, shape, cluster, &prefix)
                })
                .collect()
        }
        (Some("Event"), api) => {
            let shape = shape_of(api.unwrap_or(""), "apiVersion")?;
            Ok(vec![one(&doc, shape, cluster, "")?])
        }
        (Some(other), _) => Err(IngestError::new(
            "kind",
            format!("{other:?} is not taken: post an Event or an EventList"),
        )),
        // No kind: kubernetes-event-exporter (core/v1 inline), or an
        // events.k8s.io object stripped of its type.
        (None, _) if doc.get("involvedObject").is_some() => {
            Ok(vec![one(&doc, Shape::Core, cluster, "")?])
        }
        (None, _) if doc.get("regarding").is_some() => {
            Ok(vec![one(&doc, Shape::EventsV1, cluster, "")?])
        }
        (None, _) => Err(IngestError::new(
            "kind",
            "missing: expected an Event (core/v1 or events.k8s.io/v1), an EventList, \
             or a kubernetes-event-exporter body with involvedObject",
        )),
    }
}

/// Deserialises one item, naming the failing field with `prefix`.
fn typed<T: DeserializeOwned>(item: &serde_json::Value, prefix: &str) -> Result<T, IngestError> {
    serde_path_to_error::deserialize(item).map_err(|e| {
        let mut e = IngestError::from_json(e);
        e.field = format!("{prefix}{}", e.field);
        e
    })
}

/// One Event object, normalized.
pub(crate) fn one(
    item: &serde_json::Value,
    shape: Shape,
    cluster: &str,
    prefix: &str,
) -> Result<KeyedEvent, IngestError> {
    let field = |f: &str| format!("{prefix}{f}");
    let time = |v: &Option<String>, f: &str| timestamp(v.as_deref(), &field(f));
    let (meta, object, object_field, mut event) = match shape {
        Shape::Core => {
            let e: CoreEvent = typed(item, prefix)?;
            let series = e.series.unwrap_or_default();
            let event_time = time(&e.event_time, "eventTime")?;
            let event = K8sEvent {
                cluster: e
                    .cluster_name
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| cluster.to_string()),
                namespace: String::new(),
                involved_object: blank_object(),
                reason: e.reason.unwrap_or_default(),
                message: e.message.unwrap_or_default(),
                event_type: e.event_type.unwrap_or_default(),
                count: e.count.or(series.count).unwrap_or(1).max(1),
                first_seen: time(&e.first_timestamp, "firstTimestamp")?.or(event_time),
                last_seen: match time(&e.last_timestamp, "lastTimestamp")? {
                    Some(t) => Some(t),
                    None => {
                        time(&series.last_observed_time, "series.lastObservedTime")?.or(event_time)
                    }
                },
                host: kubelet_host(
                    e.reporting_component.as_deref(),
                    e.reporting_instance.as_deref(),
                    e.source.as_ref(),
                ),
                reporting_controller: e
                    .reporting_component
                    .filter(|c| !c.is_empty())
                    .or(e.source.and_then(|s| s.component))
                    .unwrap_or_default(),
                labels: LabelSet::new(),
            };
            (e.metadata, e.involved_object, "involvedObject", event)
        }
        Shape::EventsV1 => {
            let e: EventsV1Event = typed(item, prefix)?;
            let series = e.series.unwrap_or_default();
            let event_time = time(&e.event_time, "eventTime")?;
            let event = K8sEvent {
                cluster: cluster.to_string(),
                namespace: String::new(),
                involved_object: blank_object(),
                reason: e.reason.unwrap_or_default(),
                message: e.note.unwrap_or_default(),
                event_type: e.event_type.unwrap_or_default(),
                count: series.count.or(e.deprecated_count).unwrap_or(1).max(1),
                first_seen: time(&e.deprecated_first_timestamp, "deprecatedFirstTimestamp")?
                    .or(event_time),
                last_seen: match time(&series.last_observed_time, "series.lastObservedTime")? {
                    Some(t) => Some(t),
                    None => time(&e.deprecated_last_timestamp, "deprecatedLastTimestamp")?
                        .or(event_time),
                },
                host: kubelet_host(
                    e.reporting_controller.as_deref(),
                    e.reporting_instance.as_deref(),
                    e.deprecated_source.as_ref(),
                ),
                reporting_controller: e
                    .reporting_controller
                    .filter(|c| !c.is_empty())
                    .or(e.deprecated_source.and_then(|s| s.component))
                    .unwrap_or_default(),
                labels: LabelSet::new(),
            };
            (e.metadata, e.regarding, "regarding", event)
        }
    };
    let object = object.ok_or_else(|| {
        IngestError::new(
            field(object_field),
            "required: the object the event is about",
        )
    })?;
    let required = |v: Option<String>, f: &str| {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| IngestError::new(field(f), "required"))
    };
    event.involved_object = InvolvedObject {
        kind: required(object.kind, &format!("{object_field}.kind"))?,
        name: required(object.name, &format!("{object_field}.name"))?,
        uid: object.uid.unwrap_or_default(),
        owner_references: object
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| {
                Some(OwnerReference {
                    kind: o.kind.filter(|k| !k.is_empty())?,
                    name: o.name.filter(|n| !n.is_empty())?,
                    controller: o.controller.unwrap_or(false),
                })
            })
            .collect(),
        deleted: object.deleted.unwrap_or(false),
    };
    let meta_namespace = meta.namespace.unwrap_or_default();
    // The object's namespace; events about cluster-scoped objects (nodes)
    // live in `default` but are about no namespace.
    event.namespace = object.namespace.unwrap_or_default();
    event.labels = object.labels.unwrap_or_default().into_iter().collect();
    let name = required(meta.name, "metadata.name")?;
    Ok(KeyedEvent {
        key: event_key(&event.cluster, &meta_namespace, &name),
        event,
        resource_version: meta.resource_version.unwrap_or_default(),
    })
}

fn blank_object() -> InvolvedObject {
    InvolvedObject::default()
}

/// The node a kubelet reported from: `source.host`, or the
/// `reportingInstance` of a kubelet (other controllers' instances name
/// their own pod, not a node). Empty otherwise.
fn kubelet_host(
    component: Option<&str>,
    instance: Option<&str>,
    source: Option<&Source>,
) -> String {
    if let Some(host) = source
        .and_then(|s| s.host.as_deref())
        .filter(|h| !h.is_empty())
    {
        return host.to_string();
    }
    let kubelet = component == Some("kubelet")
        || source.and_then(|s| s.component.as_deref()) == Some("kubelet");
    match instance {
        Some(i) if kubelet && !i.is_empty() => i.to_string(),
        _ => String::new(),
    }
}

/// A Kubernetes `Time` (`2026-11-26T03:00:00Z`) or `MicroTime`
/// (`2026-11-26T03:00:00.123456Z`); `null` and empty are unset.
fn timestamp(v: Option<&str>, field: &str) -> Result<Option<DateTime<Utc>>, IngestError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let t = DateTime::parse_from_rfc3339(v).map_err(|e| {
        IngestError::new(
            field,
            format!("{v:?} is not an RFC 3339 time (as Kubernetes writes them): {e}"),
        )
    })?;
    crate::ingest::validate::timestamp(Some(t), field)
}
