//! People: who can be on call, and how to reach them.
//!
//! `people:` in `fenghuo.yaml` names each person once, with the contact
//! points the notifiers need to reach them or `@`-mention them in a group
//! chat:
//!
//! ```yaml
//! people:
//!   - name: alice
//!     email: alice@example.org
//!     time_zone: Asia/Shanghai
//!     dingtalk: { mobile: "13800000000", user_id: "manager4211" }
//!     wecom: { user_id: ZhangSan }
//!     feishu: { open_id: ou_7d8a6e6df7621556ce0d21922b676706ccs, user_id: 3e3cf96b }
//!     slack: { user_id: U024BE7LH }
//! ```
//!
//! Everything here is a contact point, none of it a secret: the API shows it
//! as it is. Schedules refer to people by name; a name that is not defined
//! here refuses the config (see `schedule.rs`).

use std::fmt;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A person's name as written in `people:`, the key schedules refer to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonName(pub String);

impl PersonName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for PersonName {
    fn from(s: &str) -> Self {
        PersonName(s.to_owned())
    }
}

/// One entry of `people:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: PersonName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Where the person lives, for showing them their shifts in their own
    /// time; handoffs follow the schedule's zone, never this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<Zone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dingtalk: Option<DingTalkIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom: Option<WeComIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feishu: Option<FeishuIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackIds>,
}

/// DingTalk robots mention by mobile number (`at.atMobiles`) or by user id
/// (`at.atUserIds`); either may be given, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingTalkIds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// WeCom group robots mention by user id (`mentioned_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeComIds {
    pub user_id: String,
}

/// Feishu/Lark mentions take an `open_id` (`<at user_id="ou_…">`) or, in
/// apps with the permission, a `user_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuIds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// Slack mentions take the member id (`<@U024BE7LH>`), not the display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackIds {
    pub user_id: String,
}

impl Person {
    /// Problems a single entry can have on its own (names across entries
    /// are checked where the whole list is known).
    pub fn check(&self) -> Result<(), String> {
        if self.name.0.trim().is_empty() {
            return Err("a person needs a name".into());
        }
        let empty = |v: &Option<String>| v.as_deref().is_some_and(|s| s.trim().is_empty());
        if empty(&self.email) {
            return Err(format!("person {:?}: email is empty", self.name.0));
        }
        if let Some(d) = &self.dingtalk
            && d.mobile.is_none()
            && d.user_id.is_none()
        {
            return Err(format!(
                "person {:?}: dingtalk needs a mobile or a user_id",
                self.name.0
            ));
        }
        if let Some(f) = &self.feishu
            && f.open_id.is_none()
            && f.user_id.is_none()
        {
            return Err(format!(
                "person {:?}: feishu needs an open_id or a user_id",
                self.name.0
            ));
        }
        Ok(())
    }
}

/// An IANA time zone (`Europe/Berlin`, `America/New_York`) or `UTC`, kept
/// with the name it was written as.
///
/// Unlike Alertmanager's `location`, `Local` is refused: the machine's zone
/// is never consulted, and a schedule that silently ran in UTC would hand
/// off at the wrong hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub Tz);

impl Zone {
    pub fn parse(name: &str) -> Result<Zone, String> {
        name.parse::<Tz>().map(Zone).map_err(|_| {
            format!(
                "unknown time zone {name:?}: expected a name from the IANA time zone database \
                 such as \"Europe/Berlin\" or \"America/New_York\" (case-sensitive), or \"UTC\""
            )
        })
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Zone::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_with_every_contact_point() {
        let p: Person = yaml_serde::from_str(
            "name: alice\nemail: alice@example.org\ntime_zone: Asia/Shanghai\n\
             dingtalk: {mobile: '13800000000', user_id: manager4211}\n\
             wecom: {user_id: ZhangSan}\nfeishu: {open_id: ou_1}\nslack: {user_id: U024BE7LH}\n",
        )
        .unwrap();
        p.check().unwrap();
        assert_eq!(p.time_zone.unwrap().name(), "Asia/Shanghai");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["dingtalk"]["mobile"], "13800000000");
        assert_eq!(json["feishu"], serde_json::json!({"open_id": "ou_1"}));
        assert_eq!(json["time_zone"], "Asia/Shanghai");
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("name: a\ntime_zone: Local", "unknown time zone \"Local\""),
            ("name: a\ntime_zone: europe/berlin", "case-sensitive"),
            ("name: a\nphone: '123'", "unknown field `phone`"),
            (
                "name: a\ndingtalk: {}",
                "dingtalk needs a mobile or a user_id",
            ),
            (
                "name: a\nfeishu: {}",
                "feishu needs an open_id or a user_id",
            ),
            ("name: ' '", "a person needs a name"),
            ("name: a\nslack: {}", "missing field `user_id`"),
        ];
        for (yaml, want) in cases {
            let got = match yaml_serde::from_str::<Person>(yaml) {
                Ok(p) => p.check().unwrap_err(),
                Err(e) => e.to_string(),
            };
            assert!(got.contains(want), "{yaml}: got {got:?}, want {want:?}");
        }
    }
}
