//! `seedbed list` and `seedbed sweep --kept` on a database kept for a failed Template test.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod common;

use common::seedbed;
use seedbed::isolation::Outcome;
use seedbed::{Isolation, Strategy};

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

/// `seedbed sweep --sqlite --kept` removes a SQLite copy kept for a failed Template test, in the
/// directory a `sqlite:` URL names (a directory of this test's own: nothing else is swept).
#[tokio::test]
async fn sweep_sqlite_kept_removes_a_kept_copy() {
    let root = std::env::temp_dir().join(format!("seedbed-cli-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let url = format!("sqlite://{}/app.db", root.display());
    let dir = seedbed::backend::sqlite::Directory::resolve(Some(&url)).unwrap();
    // A copy a failed test kept, as Template leaves it: a database file and its marker.
    std::fs::write(dir.path().join("seedbed_clone_1_0_0.db"), b"").unwrap();
    std::fs::write(
        dir.path().join("seedbed_clone_1_0_0.marker"),
        seedbed::backend::Marker::new("kept").to_comment(),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_seedbed"))
            .args(args)
            .env_remove("SEEDBED_SQLITE_DIR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let plain = run(&["sweep", "--database-url", &url]);
    assert!(plain.contains("removed 0 test database"), "{plain}");
    assert!(dir.path().join("seedbed_clone_1_0_0.db").exists());
    let kept = run(&["sweep", "--database-url", &url, "--kept"]);
    assert!(kept.contains("seedbed_clone_1_0_0"), "{kept}");
    assert!(!dir.path().join("seedbed_clone_1_0_0.db").exists());
    assert!(!dir.path().join("seedbed_clone_1_0_0.marker").exists());
    std::fs::remove_dir_all(&root).unwrap();
}
