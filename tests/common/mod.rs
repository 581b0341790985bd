//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use seedbed::server::EmbeddedConfig;

/// A private base directory for embedded clusters, so a test can start, break and stop its own
/// server without touching the one the rest of the suite shares. On drop, its server is stopped
/// and the directory removed.
pub struct PrivateBase {
    pub dir: PathBuf,
}

impl PrivateBase {
    pub fn new(name: &str) -> Self {
        let root = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = root.join(format!("seedbed-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self { dir }
    }

    pub fn config(&self) -> EmbeddedConfig {
        EmbeddedConfig::with_base_dir(&self.dir)
    }

    /// Every cluster directory (`pg15`, …) below the base.
    pub fn cluster_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.dir)
            .map(|it| {
                it.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.join("data").is_dir())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Pids of postmasters whose data directory is below this base (from /proc).
    pub fn postmasters(&self) -> Vec<u32> {
        postmasters_under(&self.dir)
    }
}

impl Drop for PrivateBase {
    fn drop(&mut self) {
        for pid in self.postmasters() {
            kill(pid, "QUIT");
            wait_gone(pid, Duration::from_secs(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends a signal with kill(1).
pub fn kill(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Waits for a process to exit.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        if started.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Pids of `postgres -D <dir>` processes (postmasters, not their children) under `base`.
pub fn postmasters_under(base: &Path) -> Vec<u32> {
    let needle = base.to_string_lossy().to_string();
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
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
        let is_postmaster = args.first().is_some_and(|a| a.ends_with("postgres"))
            && args
                .windows(2)
                .any(|w| w[0] == "-D" && w[1].starts_with(&needle));
        if is_postmaster {
            pids.push(pid);
        }
    }
    pids
}
