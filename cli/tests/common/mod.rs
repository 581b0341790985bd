//! Helpers shared by the CLI's integration tests.

use std::process::Command;

/// Runs the `seedbed` binary with `args` against the server at `url`: whether it succeeded, and
/// what it printed (stdout, then stderr).
#[allow(clippy::unwrap_used, reason = "test helper: its failure is the test's")]
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
