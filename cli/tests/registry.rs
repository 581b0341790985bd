//! `seedbed list` and `seedbed sweep --kept` on a database kept for a failed Template test.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::process::Command;

use seedbed::isolation::Outcome;
use seedbed::{Isolation, Strategy};

fn seedbed(url: &str, args: &[&str]) -> (bool, String) {
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

#[tokio::test]
async fn list_shows_a_kept_database_and_sweep_kept_removes_it() {
    // A server of this test's own, so sweeping kept databases touches no other test's.
    let home = std::env::temp_dir().join(format!("seedbed-cli-registry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let config = seedbed::server::EmbeddedConfig::with_base_dir(&home);
    let server = seedbed::server::Server::embedded(&config).await.unwrap();
    let url = server.url_for("postgres");
    seedbed::server::Server::install(server).unwrap();
    let migrations = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    let db = Isolation::new(Strategy::Template)
        .migrations(migrations)
        .test_name("cli::registry::kept")
        .acquire()
        .await
        .unwrap();
    let name = db.database().to_string();
    db.finish_with(Outcome::Failed).await.unwrap();

    let (ok, listed) = seedbed(&url, &["list"]);
    assert!(ok, "{listed}");
    let line = listed
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{listed}"));
    assert!(
        line.contains("kept") && line.contains("cli::registry::kept"),
        "{line}"
    );
    assert!(listed.contains("seedbed sweep --kept"), "{listed}");

    let (ok, plain) = seedbed(&url, &["sweep"]);
    assert!(ok, "{plain}");
    assert!(
        !plain.contains(&name),
        "a plain sweep keeps kept databases:\n{plain}"
    );
    let (ok, swept) = seedbed(&url, &["sweep", "--kept"]);
    assert!(ok, "{swept}");
    assert!(swept.contains(&name), "{swept}");
    let (_, after) = seedbed(&url, &["list"]);
    assert!(!after.contains(&name), "{after}");
    seedbed::server::embedded::stop(&config).await.unwrap();
    let _ = std::fs::remove_dir_all(&home);
}
