//! A real SMTP server for tests: Python's aiosmtpd, run by
//! `tests/support/smtp_server.py` on a free loopback port; it writes every
//! message it receives (envelope, decoded headers, MIME parts) to a JSON
//! file. `.ci/run` installs aiosmtpd.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");

pub fn tools_present() -> bool {
    let aiosmtpd = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let openssl = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if aiosmtpd && openssl {
        return true;
    }
    let missing = if aiosmtpd {
        "openssl"
    } else {
        "python3 with aiosmtpd (python3 -m pip install aiosmtpd)"
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing} is missing; .ci/run installs it"
    );
    eprintln!("skipping: {missing} is not installed");
    false
}

/// The SMTP server, stopped when dropped.
pub struct Smtp {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    pub fn start(dir: &Path, args: &[&str]) -> Smtp {
        let out = unique(dir.join("mail"));
        let stderr = std::fs::File::create(out.with_extension("stderr")).unwrap();
        let mut child = Command::new("python3")
            .arg(SERVER)
            .arg(&out)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start python3 smtp_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "smtp_server.py did not start: {}",
                std::fs::read_to_string(out.with_extension("stderr")).unwrap_or_default()
            )
        });
        Smtp { child, port, out }
    }

    /// The one message received, waiting for it a little.
    pub fn received(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let files: Vec<PathBuf> = std::fs::read_dir(&self.out)
                .map(|d| {
                    d.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "json"))
                        .collect()
                })
                .unwrap_or_default();
            if let [file] = files.as_slice() {
                return serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            }
            assert!(files.len() < 2, "more than one message: {files:?}");
            assert!(Instant::now() < deadline, "no message arrived");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn count(&self) -> usize {
        std::fs::read_dir(&self.out)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0)
    }
}

pub fn unique(path: PathBuf) -> PathBuf {
    let mut n = 0;
    loop {
        let candidate = path.with_file_name(format!(
            "{}-{n}",
            path.file_name().unwrap().to_string_lossy()
        ));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}
