//! `fenghuo oncall`, run as the real binary.

use std::path::Path;
use std::process::Command;

fn fenghuo(args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fenghuo"))
        .args(args)
        .current_dir(dir)
        .env_remove("FENGHUO_CONFIG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const CONFIG: &str = "
people:
  - name: alice
    email: alice@example.org
    dingtalk: { mobile: '13800000000' }
  - name: bob
    wecom: { user_id: bob.w }
schedules:
  - name: platform
    time_zone: America/New_York
    layers:
      - rotation: daily
        handoff: '09:00'
        start: 2026-03-02
        people: [alice, bob]
  - name: db
    time_zone: UTC
    layers:
      - rotation: weekly
        handoff: '00:00'
        start: 2026-03-02
        people: [bob]
";

fn with_config(content: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fenghuo.yaml"), content).unwrap();
    dir
}

#[test]
fn prints_who_is_on_call_and_the_next_handoffs_across_dst() {
    let dir = with_config(CONFIG);
    let (code, out) = fenghuo(
        &[
            "oncall",
            "--config",
            "fenghuo.yaml",
            "--schedule",
            "platform",
            "--at",
            "2026-03-07T12:00:00-05:00",
            "--shifts",
            "2",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    // Saturday's shift lasts 23 hours: New York springs forward on Sunday.
    let want = "\
platform (America/New_York) at Sat 2026-03-07 12:00 EST
  on call: bob  wecom bob.w
  shift:   Sat 2026-03-07 09:00 EST → Sun 2026-03-08 09:00 EDT
  next handoffs:
    Sun 2026-03-08 09:00 EDT → Mon 2026-03-09 09:00 EDT  alice
    Mon 2026-03-09 09:00 EDT → Tue 2026-03-10 09:00 EDT  bob
";
    assert_eq!(out, want);
}

#[test]
fn every_schedule_without_schedule_flag() {
    let dir = with_config(CONFIG);
    let (code, out) = fenghuo(
        &[
            "oncall",
            "--config",
            "fenghuo.yaml",
            "--at",
            "2026-03-03T00:00:00Z",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("db (UTC) at Tue 2026-03-03 00:00 UTC"),
        "{out}"
    );
    // One person on a 24/7 rotation: the shift never ends within the horizon.
    assert!(out.contains("  on call: bob  wecom bob.w"), "{out}");
    assert!(
        out.contains("  shift:   Mon 2026-03-02 00:00 UTC → (over a year away)"),
        "{out}"
    );
    assert!(out.contains("platform (America/New_York)"), "{out}");
    assert!(
        out.contains("  on call: alice  <alice@example.org>  dingtalk mobile 13800000000"),
        "{out}"
    );
}

#[test]
fn refusals_name_the_problem() {
    let dir = with_config(CONFIG);
    let (code, out) = fenghuo(
        &["oncall", "--config", "fenghuo.yaml", "--schedule", "web"],
        dir.path(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no schedule named \"web\"; schedules: db, platform"),
        "{out}"
    );

    let (code, out) = fenghuo(
        &["oncall", "--config", "fenghuo.yaml", "--at", "tomorrow"],
        dir.path(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("--at \"tomorrow\": expected RFC 3339"),
        "{out}"
    );

    // A bad schedule refuses the whole config, with its line.
    let bad = with_config(&CONFIG.replace("people: [bob]", "people: [bobby]"));
    let (code, out) = fenghuo(&["oncall", "--config", "fenghuo.yaml"], bad.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("unknown person \"bobby\" (people: alice, bob)"),
        "{out}"
    );
    assert!(out.contains("line 22"), "{out}");
    // …and `fenghuo check` says the same.
    let (code, out) = fenghuo(&["check", "fenghuo.yaml"], bad.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown person \"bobby\""), "{out}");

    let (code, out) = fenghuo(&["oncall"], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no schedules configured"), "{out}");
}
