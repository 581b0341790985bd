//! `seedbed server …` as separate processes: many starting at once end with one server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Base(PathBuf);

impl Base {
    fn new(name: &str) -> Self {
        let root = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = root.join(format!("seedbed-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn seedbed(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_seedbed"));
        cmd.args(args).env("SEEDBED_HOME", &self.0);
        cmd
    }

    fn postmasters(&self) -> Vec<u32> {
        let needle = self.0.to_string_lossy().to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).to_string())
                .collect();
            if args.first().is_some_and(|a| a.ends_with("postgres"))
                && args
                    .windows(2)
                    .any(|w| w[0] == "-D" && w[1].starts_with(&needle))
            {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        let _ = self.seedbed(&["server", "stop"]).output();
        for pid in self.postmasters() {
            let _ = Command::new("kill")
                .arg("-QUIT")
                .arg(pid.to_string())
                .status();
        }
        let started = Instant::now();
        while !self.postmasters().is_empty() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn eight_processes_starting_at_once_share_one_server() {
    let base = Base::new("eight");
    let children: Vec<_> = (0..8)
        .map(|_| {
            base.seedbed(&["server", "start"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn seedbed")
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "seedbed server start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let urls: Vec<String> = outputs.iter().map(stdout).collect();
    assert!(
        urls[0].starts_with("DATABASE_URL=postgres://postgres:") && urls[0].contains("@127.0.0.1:"),
        "{}",
        urls[0]
    );
    assert!(urls.iter().all(|u| *u == urls[0]), "{urls:#?}");
    // Every process connected (start only returns after a connection succeeds) to one server.
    assert_eq!(base.postmasters().len(), 1);

    let status = base
        .seedbed(&["server", "status"])
        .output()
        .expect("status");
    assert_eq!(stdout(&status), urls[0]);
    let stop = base.seedbed(&["server", "stop"]).output().expect("stop");
    assert!(stop.status.success());
    assert!(String::from_utf8_lossy(&stop.stderr).contains("stopped"));
    let started = Instant::now();
    while !base.postmasters().is_empty() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(base.postmasters().is_empty());
    let status = base
        .seedbed(&["server", "status"])
        .output()
        .expect("status");
    assert!(String::from_utf8_lossy(&status.stderr).contains("not running"));
}

#[test]
fn root_cannot_be_the_server_account() {
    let base = Base::new("rootuser");
    let out = base
        .seedbed(&["server", "start"])
        .env("SEEDBED_SERVER_USER", "root")
        .output()
        .expect("run");
    let me = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok())
        })
        .expect("euid");
    if me == 0 {
        // As root, seedbed must switch accounts, and refuses root as the one to switch to.
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("PostgreSQL refuses to run as root"), "{err}");
        assert!(err.contains("SEEDBED_SERVER_USER"), "{err}");
        let missing = base
            .seedbed(&["server", "start"])
            .env("SEEDBED_SERVER_USER", "seedbed-no-such-account")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&missing.stderr);
        assert!(err.contains("useradd"), "{err}");
    } else {
        // Not root: the server runs as this account and the variable plays no part.
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn schema_shows_the_reference_tables_in_deletion_order() {
    let out = Command::new(env!("CARGO_BIN_EXE_seedbed"))
        .arg("schema")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("33 tables in deletion order"), "{text}");
    let pos = |name: &str| {
        text.find(name)
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert!(pos("public.issue_labels") < pos("public.issues"));
    assert!(pos("public.issues") < pos("public.projects"));
    assert!(text.contains(
        "public.board_columns + public.boards  [cycle, breakable at boards_default_column_id_fkey"
    ));
}
