//! The server binary's memory settings, read from the running process: it
//! runs without transparent huge pages (`src/main.rs`: a 2 MiB huge page
//! stays resident whole while any allocator page in it is in use, which
//! kept tens of MiB resident after a load).

mod support;

/// The `THP_enabled` line of a process's `/proc/PID/status` (Linux ≥ 5.0).
#[cfg(target_os = "linux")]
fn thp_enabled(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let Some(in_tests) = thp_enabled(std::process::id()) else {
        eprintln!("kernel reports no THP_enabled; nothing to check");
        return;
    };
    // The flag is inherited: only a server started from a process with
    // huge pages allowed shows that it turned them off itself.
    if in_tests != "1" {
        eprintln!("this test runs with huge pages disabled already; nothing to check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fenghuo.yaml");
    std::fs::write(
        &config,
        "route:\n  receiver: team\nreceivers:\n  - name: team\n",
    )
    .unwrap();
    let (child, _base) = support::binary::serve(&config, &dir.path().join("data")).await;
    let pid = child.id().expect("the server runs");
    assert_eq!(thp_enabled(pid).as_deref(), Some("0"));
}
