//! Helpers shared by the CLI's integration tests.

use std::path::PathBuf;
use std::process::Command;

/// A directory of its own under the system's temporary directory, removed on drop.
#[allow(dead_code, reason = "not every test binary uses every helper")]
pub(crate) struct TempDir(pub(crate) PathBuf);

#[allow(
    dead_code,
    clippy::expect_used,
    reason = "not every test binary uses every helper; a helper's failure is the test's"
)]
impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("seedbed-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    /// A migrations directory with these migrations, in order:
    /// `20240101000000_schema.sql`, `20240101000001_schema.sql`, …
    pub(crate) fn migrations(&self, files: &[&str]) -> PathBuf {
        let dir = self.0.join("migrations");
        std::fs::create_dir_all(&dir).expect("migrations dir");
        for (i, sql) in files.iter().enumerate() {
            std::fs::write(dir.join(format!("2024010100000{i}_schema.sql")), sql)
                .expect("migration");
        }
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the `seedbed` binary with `args` against the server at `url`: whether it succeeded, and
/// what it printed (stdout, then stderr).
#[allow(
    dead_code,
    clippy::unwrap_used,
    reason = "not every test binary uses every helper; a helper's failure is the test's"
)]
pub(crate) fn seedbed(url: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_seedbed"))
        .args(args)
        .env("SEEDBED_DATABASE_URL", url)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
