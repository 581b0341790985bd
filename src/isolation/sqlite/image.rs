//! The migrated images the SQLite strategies start from: files named by what built them (the
//! migrations' checksum, the fixtures), built once by whichever process gets there first under a
//! file lock, and marked ready only when whole.

use std::time::Duration;

use sqlx::{Connection, Sqlite};

use super::super::builder::Isolation;
use super::super::engine::KeyedOnce;
use crate::backend::sqlite::Directory;
use crate::backend::sqlite::admin;
use crate::backend::sqlite::coord;
use crate::backend::sqlite::journal;
use crate::backend::{Clean, Introspect, LockMode, Marker};
use crate::error::{Error, Result};
use crate::util::hash::stable_hash;

/// What seedbed puts in an image beyond the migrations changes with this version, so images an
/// older seedbed built are not taken for this one's.
const IMAGE_VERSION: &str = "v8";

/// How long a process waits for another to finish building an image.
const BUILD_WAIT: Duration = Duration::from_secs(600);

/// What an image holds beyond the migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Template's: migrations and the attribute's fixtures, prepared for the cleaner (a copy is
    /// emptied back to it and given to the process's next test).
    Template,
    /// Template's in a process that runs one test: migrations and fixtures alone (its copy is
    /// not emptied, and every connection to it reads a smaller schema).
    TemplateOnce,
    /// Truncate's slots: migrations, prepared for the cleaner.
    Slots,
    /// Rollback's slots: migrations alone.
    Plain,
    /// Namespace's shared database: migrations, the row journal, WAL mode.
    Shared,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Template => "tpl",
            Kind::TemplateOnce => "tpl1",
            Kind::Slots => "slot",
            Kind::Plain => "rb",
            Kind::Shared => "ns",
        }
    }
}

/// The name of the image of `kind` for `iso`'s migrations (and fixtures, for Template and the
/// shared database), built
/// and ready.
pub(super) async fn ready(iso: &Isolation, dir: &'static Directory, kind: Kind) -> Result<String> {
    static BUILT: std::sync::OnceLock<KeyedOnce<String>> = std::sync::OnceLock::new();
    let migrations = iso.migrations_resolved().await?;
    let mut identity = format!("{IMAGE_VERSION}:{}:{}", kind.tag(), migrations.checksum());
    // Fixtures are part of Template's images, and of the shared database, which the Namespace
    // tests that name them share, read-only.
    if matches!(kind, Kind::Template | Kind::TemplateOnce | Kind::Shared) {
        for fixture in &iso.fixtures {
            identity.push_str(&format!(":{:016x}", stable_hash(fixture)));
        }
    }
    let name = format!("seedbed_{}_{:016x}", kind.tag(), stable_hash(&identity));
    let checksum = migrations.checksum().to_string();
    BUILT
        .get_or_init(KeyedOnce::new)
        .get_or_try_init(&name, async {
            if is_ready(dir, &name)? {
                return Ok(name.clone());
            }
            let lock = coord::take(
                dir,
                &format!("build:{name}"),
                LockMode::Exclusive,
                BUILD_WAIT,
            )
            .await?;
            if !is_ready(dir, &name)? {
                build(iso, dir, &name, kind, &checksum).await?;
            }
            lock.release();
            Ok(name.clone())
        })
        .await
}

fn is_ready(dir: &Directory, name: &str) -> Result<bool> {
    Ok(admin::read_marker(dir, name)?.is_some_and(|m| m.get("state") == Some("ready")))
}

/// Builds the image `name` from nothing (a half-built one a dead process left goes first); on
/// failure nothing is left.
async fn build(
    iso: &Isolation,
    dir: &Directory,
    name: &str,
    kind: Kind,
    checksum: &str,
) -> Result<()> {
    admin::drop_database(dir, name)?;
    admin::create(dir, name).await?;
    let built = fill(iso, dir, name, kind).await;
    if let Err(e) = built {
        admin::drop_database(dir, name)?;
        return Err(e);
    }
    let marker = Marker::new(kind.tag())
        .with("checksum", checksum)
        .with("state", "ready");
    admin::write_marker(dir, name, &marker)
}

async fn fill(iso: &Isolation, dir: &Directory, name: &str, kind: Kind) -> Result<()> {
    let migrations = iso.migrations_resolved().await?;
    let mut conn = dir.connect(name).await?;
    migrations.apply_at(&mut conn, &dir.url(name)).await?;
    match kind {
        Kind::TemplateOnce => super::run_fixtures(&mut conn, &iso.fixtures).await?,
        Kind::Plain => {}
        Kind::Template | Kind::Slots => {
            // The fixtures' rows are part of a Template image's baseline.
            if kind == Kind::Template {
                super::run_fixtures(&mut conn, &iso.fixtures).await?;
            }
            let schema = <Sqlite as Introspect>::introspect(&mut conn, &["main"]).await?;
            <Sqlite as Clean>::prepare(&mut conn, &schema, false).await?;
        }
        Kind::Shared => {
            // Loaded once, before the journal: no test owns (or removes) their rows.
            super::run_fixtures(&mut conn, &iso.fixtures).await?;
            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                .execute(&mut conn)
                .await
                .map_err(Error::db("switching the shared database to WAL mode"))?;
            let schema = <Sqlite as Introspect>::introspect(&mut conn, &["main"]).await?;
            journal::install(&mut conn, &schema).await?;
        }
    }
    // A closed database in rollback-journal mode is one consistent file, ready to copy.
    conn.close()
        .await
        .map_err(Error::db(format!("closing {}", dir.url(name))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_build_leaves_no_file() {
        let root = std::env::temp_dir().join(format!("seedbed-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let migrations = root.join("migrations");
        std::fs::create_dir_all(&migrations).unwrap();
        std::fs::write(migrations.join("1_ok.sql"), "CREATE TABLE t (id INTEGER);").unwrap();
        std::fs::write(migrations.join("2_broken.sql"), "CREATE TABLE (;").unwrap();
        let dir: &'static Directory = Box::leak(Box::new(Directory::at(root.join("dbs")).unwrap()));
        for kind in [
            Kind::Template,
            Kind::TemplateOnce,
            Kind::Slots,
            Kind::Plain,
            Kind::Shared,
        ] {
            let iso = Isolation::new(crate::strategy::Strategy::Template).migrations(&migrations);
            let err = ready(&iso, dir, kind).await.unwrap_err();
            assert!(err.to_string().contains("2_broken.sql"), "{err}");
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "locks")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Makes `dir` read-only for this process, root included (`chattr +i` where permission bits
    /// do not stop root); returns how to undo it.
    fn make_read_only(dir: &std::path::Path) -> impl FnOnce() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let probe = dir.join("probe");
        let immutable = std::fs::write(&probe, b"").is_ok();
        if immutable {
            let _ = std::fs::remove_file(&probe);
            let status = std::process::Command::new("chattr")
                .arg("+i")
                .arg(dir)
                .status()
                .expect("chattr, to make a directory read-only for root");
            assert!(status.success(), "chattr +i {}", dir.display());
            assert!(
                std::fs::write(&probe, b"").is_err(),
                "{} is still writable",
                dir.display()
            );
        }
        let dir = dir.to_path_buf();
        move || {
            if immutable {
                let _ = std::process::Command::new("chattr")
                    .arg("-i")
                    .arg(&dir)
                    .status();
            }
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        }
    }

    #[tokio::test]
    async fn a_read_only_directory_is_an_error_naming_it() {
        let root = std::env::temp_dir().join(format!("seedbed-ro-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let migrations = root.join("migrations");
        std::fs::create_dir_all(&migrations).unwrap();
        std::fs::write(migrations.join("1_t.sql"), "CREATE TABLE t (id INTEGER);").unwrap();
        let dir: &'static Directory = Box::leak(Box::new(Directory::at(root.join("dbs")).unwrap()));
        let undo = make_read_only(dir.path());
        let iso = Isolation::new(crate::strategy::Strategy::Template).migrations(&migrations);
        let err = ready(&iso, dir, Kind::Template).await.unwrap_err();
        undo();
        let text = err.to_string();
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.contains("SEEDBED_SQLITE_DIR"), "{text}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
