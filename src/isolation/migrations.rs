//! A set of migrations (sqlx's format: `migrations/<VERSION>_<DESCRIPTION>.sql`), its checksum,
//! and applying it with errors that name the file and the server's message.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::migrate::{MigrateError, Migrator};

use crate::error::{Error, Result};
use crate::isolation::Seed;
use crate::util::hash::stable_hash_bytes;

mod plain;

use self::plain::PlainMigration;

/// What a custom migration returns: a boxed future borrowing the connection and the URL.
pub type MigrateFuture<'c> = std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'c>>;

/// A custom migration, type-erased: the connection as `Any`, downcast to the one it was written
/// for, and the database's URL.
type CustomFn =
    Arc<dyn for<'c> Fn(&'c mut (dyn Any + Send), &'c str) -> MigrateFuture<'c> + Send + Sync>;

/// What builds the schema.
#[derive(Clone)]
enum Kind {
    /// sqlx's migrations (a directory, or `migrate!()`), recorded in `_sqlx_migrations`.
    Sqlx,
    /// Plain `.sql` files, applied in order and recorded nowhere.
    Plain(Vec<PlainMigration>),
    /// A function of the user's: another migration tool, a shell command.
    Custom { name: String, apply: CustomFn },
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Sqlx => f.write_str("Sqlx"),
            Kind::Plain(files) => f.debug_tuple("Plain").field(&files.len()).finish(),
            Kind::Custom { name, .. } => f.debug_struct("Custom").field("name", name).finish(),
        }
    }
}

/// Migrations to apply to every database seedbed prepares for tests.
///
/// ```no_run
/// # async fn demo() -> Result<(), seedbed::Error> {
/// use seedbed::isolation::Migrations;
/// let migrations = Migrations::from_dir("migrations").await?;
/// println!("{} migrations, checksum {}", migrations.len(), migrations.checksum());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Migrations {
    /// The migrations, read on first use when they come from a directory whose checksum was
    /// remembered (see [`Migrations::identify_dir`]).
    migrator: tokio::sync::OnceCell<Option<Migrator>>,
    dir: Option<PathBuf>,
    checksum: String,
    /// How many up migrations there are.
    count: usize,
    kind: Kind,
    /// Suite data written after the migrations, and the checksum of the migrations alone.
    seed: Option<(&'static Seed, String)>,
}

impl Clone for Migrations {
    fn clone(&self) -> Self {
        let migrator = match self.migrator.get() {
            Some(loaded) => {
                tokio::sync::OnceCell::new_with(Some(loaded.as_ref().map(copy_migrator)))
            }
            None => tokio::sync::OnceCell::new(),
        };
        Self {
            migrator,
            dir: self.dir.clone(),
            checksum: self.checksum.clone(),
            count: self.count,
            kind: self.kind.clone(),
            seed: self.seed.clone(),
        }
    }
}

impl Migrations {
    /// Reads every migration in `dir`. A missing or unreadable directory is an error that names it.
    pub async fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let meta = std::fs::metadata(&dir).map_err(|e| Error::Migrations {
            path: dir.clone(),
            reason: match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "no such directory (paths are relative to the crate root, where cargo runs \
                     tests)"
                        .into()
                }
                _ => e.to_string(),
            },
        })?;
        if !meta.is_dir() {
            return Err(Error::Migrations {
                path: dir,
                reason: "not a directory".into(),
            });
        }
        // Reading the directory first gives a plain I/O message for unreadable directories.
        std::fs::read_dir(&dir).map_err(|e| Error::Migrations {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        let migrator = Migrator::new(dir.as_path())
            .await
            .map_err(|e| Error::Migrations {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self::build(Some(migrator), Some(dir)))
    }

    /// The migrations in `dir`, identified by a checksum remembered between processes in
    /// `cache_dir`: reading and hashing every migration (SHA-384 each, as sqlx does) is work
    /// every test process would repeat on files that rarely change, so it is done once per
    /// change. The remembered checksum is used while every file in `dir` has the name, size,
    /// modification and change times it had when it was read; the migrations themselves are read
    /// only when they are applied.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::isolation::Migrations;
    /// let cache = std::env::temp_dir().join("seedbed-migrations");
    /// let migrations = Migrations::identify_dir("migrations", &cache).await?;
    /// println!("checksum {}", migrations.checksum());
    /// # Ok(()) }
    /// ```
    pub async fn identify_dir(dir: impl AsRef<Path>, cache_dir: &Path) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let Some(fingerprint) = dir_fingerprint(&dir) else {
            // Unreadable: the full read reports why.
            return Self::from_dir(&dir).await;
        };
        let cache = cache_dir.join(format!(
            "migrations-{:016x}",
            stable_hash_bytes(dir.to_string_lossy().as_bytes())
        ));
        if let Ok(text) = std::fs::read_to_string(&cache) {
            let mut lines = text.lines();
            if lines.next() == Some(fingerprint.as_str())
                && let (Some(checksum), Some(count)) = (lines.next(), lines.next())
                && let Ok(count) = count.parse()
            {
                return Ok(Self {
                    migrator: tokio::sync::OnceCell::new(),
                    dir: Some(dir),
                    checksum: checksum.to_string(),
                    count,
                    kind: Kind::Sqlx,
                    seed: None,
                });
            }
        }
        let read = Self::from_dir(&dir).await?;
        // Best effort: a cache that cannot be written costs the next process a full read.
        if std::fs::create_dir_all(cache_dir).is_ok() {
            let tmp = cache.with_extension(format!("{}.tmp", std::process::id()));
            let text = format!("{fingerprint}\n{}\n{}\n", read.checksum, read.count);
            if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &cache).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Ok(read)
    }

    /// Migrations embedded with `sqlx::migrate!()`.
    pub fn from_migrator(migrator: &Migrator) -> Self {
        Self::build(Some(copy_migrator(migrator)), None)
    }

    /// These migrations followed by the suite data `seed` (see [`Seed`]): a new checksum, so
    /// the seeded database is a database of its own.
    pub fn with_seed(mut self, seed: &'static Seed) -> Self {
        let schema = self.schema_checksum().to_string();
        self.checksum = format!(
            "{:016x}",
            stable_hash_bytes(format!("{schema}:{}", seed.checksum_part()).as_bytes())
        );
        self.seed = Some((seed, schema));
        self
    }

    /// The suite data written after the migrations, if any.
    pub fn seed(&self) -> Option<&'static Seed> {
        self.seed.as_ref().map(|(seed, _)| *seed)
    }

    /// The checksum of the migrations alone, without the seed.
    fn schema_checksum(&self) -> &str {
        self.seed
            .as_ref()
            .map_or(self.checksum.as_str(), |(_, schema)| schema.as_str())
    }

    /// No migrations: the database starts empty.
    pub fn none() -> Self {
        Self::build(None, None)
    }

    /// Plain `.sql` files in `dir`, applied in order with no table recording them: a schema
    /// kept outside any migration tool, or the directory of a tool whose files are plain SQL
    /// (Flyway's `V2__notes.sql`, golang-migrate's `1_init.up.sql`, dbmate's `-- migrate:up`
    /// sections).
    ///
    /// - Every `*.sql` file is an up migration, but `*.down.sql` and Flyway's undo files
    ///   (`U2__…`) and callbacks (`beforeMigrate.sql`, …).
    /// - Files go in the order of the version their name starts with, after an optional `V`
    ///   (`V2__…` before `V10__…`, `V1.9` before `V1.10`), then by name; files with no version
    ///   come last.
    /// - A file with `-- migrate:up` and `-- migrate:down` contributes its up section, outside a
    ///   transaction when the up line says `transaction:false`.
    /// - Each file runs in a transaction, unless it starts with `-- no-transaction`, and the
    ///   session is reset after it, as for sqlx's migrations.
    ///
    /// The checksum covers the files' names and contents, so a changed file means a new
    /// database.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::isolation::Migrations;
    /// let schema = Migrations::plain_dir("db/schema")?;
    /// println!("{} files, checksum {}", schema.len(), schema.checksum());
    /// # Ok(()) }
    /// ```
    pub fn plain_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let files = plain::read_dir(&dir)?;
        let mut bytes = b"plain\0".to_vec();
        for file in &files {
            let name = file
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            bytes.extend_from_slice(name.unwrap_or_default().as_bytes());
            bytes.push(0);
            bytes.push(u8::from(file.no_tx));
            bytes.extend_from_slice(file.sql.as_bytes());
            bytes.push(0);
        }
        Ok(Self {
            migrator: tokio::sync::OnceCell::new_with(Some(None)),
            dir: Some(dir),
            checksum: format!("{:016x}", stable_hash_bytes(&bytes)),
            count: files.len(),
            kind: Kind::Plain(files),
            seed: None,
        })
    }

    /// Migrations run by a function of yours: another migration tool (refinery,
    /// sea-orm-migration, diesel_migrations, a shell command), given the connection `C` the
    /// database is built on (`PgConnection`, `SqliteConnection`) and the database's URL, for
    /// tools that connect themselves.
    ///
    /// `checksum` identifies the schema the function builds, with `name`: a database built
    /// with one checksum is reused by every test and process that asks for the same one, as
    /// for sqlx's migrations. Change it whenever the migrations change: a version constant,
    /// or [`checksum_files`] of the directory the tool reads.
    ///
    /// The function runs once per database seedbed builds; it must not assume the database is
    /// the one in `DATABASE_URL`. Close every connection it opens before it returns (a pool:
    /// `pool.close().await`): Template copies the database next, which PostgreSQL refuses while
    /// another session is connected to it. Its error is reported as a failed migration named
    /// `name`.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::isolation::{Migrations, checksum_files};
    /// use sqlx::PgConnection;
    ///
    /// let schema = Migrations::custom(
    ///     "refinery",
    ///     checksum_files("db/refinery")?,
    ///     |conn: &mut PgConnection, _url: &str| {
    ///         Box::pin(async move {
    ///             sqlx::raw_sql("CREATE TABLE accounts (id bigint PRIMARY KEY)")
    ///                 .execute(&mut *conn)
    ///                 .await?;
    ///             Ok(())
    ///         })
    ///     },
    /// );
    /// assert_eq!(schema.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn custom<C, F>(name: impl Into<String>, checksum: impl AsRef<str>, apply: F) -> Self
    where
        C: MigrationConnection + Any,
        F: for<'c> Fn(&'c mut C, &'c str) -> MigrateFuture<'c> + Send + Sync + 'static,
    {
        let name = name.into();
        let mut bytes = b"custom\0".to_vec();
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(checksum.as_ref().as_bytes());
        let label = name.clone();
        let apply: CustomFn = Arc::new(
            move |conn: &mut (dyn Any + Send), url: &str| -> MigrateFuture<'_> {
                match conn.downcast_mut::<C>() {
                    Some(conn) => apply(conn, url),
                    None => Box::pin(std::future::ready(Err(Error::Migration {
                        migration: format!("custom migrations `{label}`"),
                        message: format!(
                            "they take a {}, but the database is built on another backend's \
                             connection: write them for the backend of the test",
                            std::any::type_name::<C>()
                        ),
                    }))),
                }
            },
        );
        Self {
            migrator: tokio::sync::OnceCell::new_with(Some(None)),
            dir: None,
            checksum: format!("{:016x}", stable_hash_bytes(&bytes)),
            count: 1,
            kind: Kind::Custom { name, apply },
            seed: None,
        }
    }

    fn build(migrator: Option<Migrator>, dir: Option<PathBuf>) -> Self {
        let (checksum, count) = identity(migrator.as_ref());
        Self {
            migrator: tokio::sync::OnceCell::new_with(Some(migrator)),
            dir,
            checksum,
            count,
            kind: Kind::Sqlx,
            seed: None,
        }
    }

    /// The migrations, read from the directory if they have not been yet (and checked against
    /// the remembered checksum: files changed since then are an error, not a silent mix).
    async fn migrator(&self) -> Result<Option<&Migrator>> {
        let loaded = self
            .migrator
            .get_or_try_init(|| async {
                let Some(dir) = &self.dir else {
                    return Ok(None);
                };
                let migrator =
                    Migrator::new(dir.as_path())
                        .await
                        .map_err(|e| Error::Migrations {
                            path: dir.clone(),
                            reason: e.to_string(),
                        })?;
                if identity(Some(&migrator)).0 != self.schema_checksum() {
                    return Err(Error::Migrations {
                        path: dir.clone(),
                        reason: "the migrations changed while the tests ran; run them again".into(),
                    });
                }
                Ok(Some(migrator))
            })
            .await?;
        Ok(loaded.as_ref())
    }

    /// A 16-hex-digit checksum of every up migration (version, content, `no_tx`): a changed
    /// migration gives a new checksum, hence a new database.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// How many up migrations there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The directory they came from, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Applies every migration not applied yet to the database `conn` is connected to, as
    /// `sqlx migrate run` does (each in a transaction unless it starts with
    /// `-- no-transaction`; recorded in `_sqlx_migrations`), with two differences that let
    /// schemas as users have them migrate:
    ///
    /// - After each migration the session is reset (`RESET ALL`, `RESET ROLE`, `RESET SESSION
    ///   AUTHORIZATION` on PostgreSQL), so what one migration sets (`pg_dump` output empties
    ///   `search_path` and sets a dozen settings) does not reach the next.
    /// - The migrations table is named with the schema it is created in, so a migration that
    ///   changes `search_path` is still recorded.
    ///
    /// A failing migration is reported with its file, the line and column the server points at,
    /// and the server's message ([`Error::Migration`]).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::isolation::Migrations;
    /// use sqlx::Connection;
    /// let migrations = Migrations::from_dir("migrations").await?;
    /// let mut conn = sqlx::PgConnection::connect("postgres://localhost/app_test").await?;
    /// migrations.apply(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    pub async fn apply<C: MigrationConnection>(&self, conn: &mut C) -> Result<()> {
        self.apply_with(conn, None).await
    }

    /// Applies the migrations as [`apply`](Self::apply) does, telling [custom
    /// migrations](Self::custom) the database's `url` (which they need when they connect
    /// themselves; [`apply`](Self::apply) fails on them).
    pub async fn apply_at<C: MigrationConnection>(&self, conn: &mut C, url: &str) -> Result<()> {
        self.apply_with(conn, Some(url)).await
    }

    async fn apply_with<C: MigrationConnection>(
        &self,
        conn: &mut C,
        url: Option<&str>,
    ) -> Result<()> {
        self.apply_schema(conn, url).await?;
        if let Some(seed) = self.seed() {
            seed.run(conn).await?;
            conn.reset_session().await?;
        }
        Ok(())
    }

    async fn apply_schema<C: MigrationConnection>(
        &self,
        conn: &mut C,
        url: Option<&str>,
    ) -> Result<()> {
        match &self.kind {
            Kind::Sqlx => {}
            Kind::Plain(files) => return self.apply_plain(files, conn).await,
            Kind::Custom { name, apply } => {
                let Some(url) = url else {
                    return Err(Error::Migration {
                        migration: format!("custom migrations `{name}`"),
                        message: "custom migrations are given the database's URL: apply them \
                                  with Migrations::apply_at(conn, url)"
                            .into(),
                    });
                };
                let erased: &mut (dyn Any + Send) = &mut *conn;
                apply(erased, url).await.map_err(|e| match e {
                    e @ Error::Migration { .. } => e,
                    other => Error::Migration {
                        migration: format!("custom migrations `{name}`"),
                        message: other.to_string(),
                    },
                })?;
                return conn.reset_session().await;
            }
        }
        let Some(migrator) = self.migrator().await? else {
            return Ok(());
        };
        let table = conn.migrations_table(&migrator.table_name).await?;
        if migrator.locking {
            conn.lock().await.map_err(|e| self.explain::<C>(e))?;
        }
        let result = self.run(migrator, conn, &table).await;
        if migrator.locking {
            let unlocked = conn.unlock().await.map_err(|e| self.explain::<C>(e));
            result?;
            unlocked
        } else {
            result
        }
    }

    /// Each plain file in order, in a transaction unless it says `-- no-transaction`, the
    /// session reset after it; a failure names the file and where in it the server points.
    async fn apply_plain<C: MigrationConnection>(
        &self,
        files: &[PlainMigration],
        conn: &mut C,
    ) -> Result<()> {
        for file in files {
            if let Err(source) = conn.execute_script(&file.sql, !file.no_tx).await {
                let mut migration = file.file.display().to_string();
                let mut message = server_message(&source);
                if let Some(position) = C::error_position(&source) {
                    let (line, column, text) = locate(&file.sql, position);
                    migration = format!("{migration}, line {line}, column {column}");
                    message = format!("{message}\n  {line} | {text}");
                }
                return Err(Error::Migration { migration, message });
            }
            conn.reset_session().await?;
        }
        Ok(())
    }

    /// What `Migrator::run` does, with the session reset after each migration.
    async fn run<C: MigrationConnection>(
        &self,
        migrator: &Migrator,
        conn: &mut C,
        table: &str,
    ) -> Result<()> {
        let explain = |e| self.explain::<C>(e);
        for schema in migrator.create_schemas.iter() {
            conn.create_schema_if_not_exists(schema)
                .await
                .map_err(explain)?;
        }
        conn.ensure_migrations_table(table).await.map_err(explain)?;
        if let Some(version) = conn.dirty_version(table).await.map_err(explain)? {
            return Err(explain(MigrateError::Dirty(version)));
        }
        let applied = conn.list_applied_migrations(table).await.map_err(explain)?;
        if !migrator.ignore_missing {
            let known: HashSet<i64> = migrator.iter().map(|m| m.version).collect();
            if let Some(missing) = applied.iter().find(|a| !known.contains(&a.version)) {
                return Err(explain(MigrateError::VersionMissing(missing.version)));
            }
        }
        let applied: HashMap<i64, _> = applied.into_iter().map(|a| (a.version, a)).collect();
        for migration in migrator.iter() {
            if migration.migration_type.is_down_migration() {
                continue;
            }
            match applied.get(&migration.version) {
                Some(done) if done.checksum != migration.checksum => {
                    return Err(explain(MigrateError::VersionMismatch(migration.version)));
                }
                Some(_) => {}
                None => {
                    conn.apply(table, migration).await.map_err(explain)?;
                    conn.reset_session().await?;
                }
            }
        }
        Ok(())
    }

    /// Turns a migration failure into an error naming the file, the line and column the server
    /// points at, and the missing extension, if any.
    fn explain<C: MigrationConnection>(&self, err: MigrateError) -> Error {
        match err {
            MigrateError::ExecuteMigration(source, version) => {
                let mut migration = self.describe(version);
                let mut message = server_message(&source);
                if let Some(extension) = missing_extension(&message) {
                    return Error::MissingExtension {
                        migration,
                        package: extension_package(&extension),
                        extension,
                    };
                }
                let sql = self
                    .migrator
                    .get()
                    .and_then(Option::as_ref)
                    .and_then(|m| m.iter().find(|m| m.version == version))
                    .map(|m| m.sql.as_str().to_string());
                if let (Some(sql), Some(position)) = (sql, C::error_position(&source)) {
                    let (line, column, text) = locate(&sql, position);
                    migration = format!("{migration}, line {line}, column {column}");
                    message = format!("{message}\n  {line} | {text}");
                }
                if message.contains("role \"") && message.contains("does not exist") {
                    message.push_str(
                        "\n(a schema dumped with pg_dump names the roles that owned it: dump \
                         with --no-owner --no-privileges, or create the roles first)",
                    );
                }
                Error::Migration { migration, message }
            }
            other => Error::Migration {
                migration: self
                    .dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "set".into()),
                message: other.to_string(),
            },
        }
    }

    /// `migrations/20240101000000_core.sql (version 20240101000000)`.
    fn describe(&self, version: i64) -> String {
        let file = self.dir.as_ref().and_then(|dir| {
            let prefix = format!("{version}_");
            std::fs::read_dir(dir)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                })
        });
        if let Some(path) = file {
            return format!("{} (version {version})", path.display());
        }
        let description = self
            .migrator
            .get()
            .and_then(Option::as_ref)
            .and_then(|m| m.iter().find(|m| m.version == version))
            .map(|m| m.description.replace(' ', "_"));
        match description {
            Some(d) => format!("{version}_{d}.sql (version {version})"),
            None => format!("version {version}"),
        }
    }
}

/// The line (from 1), the column (from 1, in characters) and the text of the line at
/// `position`, a 1-based character index into `sql` as the server reports it.
fn locate(sql: &str, position: usize) -> (usize, usize, String) {
    let before: String = sql.chars().take(position.saturating_sub(1)).collect();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let text = sql
        .lines()
        .nth(line - 1)
        .unwrap_or("")
        .trim_end()
        .to_string();
    (line, column, text)
}

/// A connection [`Migrations::apply`] runs on: `PgConnection`, and `SqliteConnection` with the
/// `sqlite` feature. Implemented by seedbed alone.
pub trait MigrationConnection: sqlx::migrate::Migrate + Send + sealed::Sealed + 'static {
    /// The migrations table, named so a migration that changes `search_path` still finds it.
    #[doc(hidden)]
    fn migrations_table(&mut self, name: &str) -> impl Future<Output = Result<String>> + Send;

    /// Undoes what a migration set for the rest of the session.
    #[doc(hidden)]
    fn reset_session(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// Where in its statement text the server says an error is (1-based, in characters).
    #[doc(hidden)]
    fn error_position(err: &sqlx::Error) -> Option<usize>;

    /// Runs a script of statements, in a transaction when `transaction` is set.
    #[doc(hidden)]
    fn execute_script(
        &mut self,
        sql: &str,
        transaction: bool,
    ) -> impl Future<Output = std::result::Result<(), sqlx::Error>> + Send;
}

/// Runs `sql` on `conn`, inside a transaction that is committed when `transaction` is set.
macro_rules! execute_script {
    ($conn:expr, $sql:expr, $transaction:expr) => {{
        use sqlx::Connection as _;
        let sql = sqlx::AssertSqlSafe($sql.to_string());
        if $transaction {
            let mut tx = $conn.begin().await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            tx.commit().await
        } else {
            sqlx::raw_sql(sql).execute(&mut *$conn).await.map(|_| ())
        }
    }};
}

mod sealed {
    pub trait Sealed {}
    #[cfg(feature = "postgres")]
    impl Sealed for sqlx::PgConnection {}
    #[cfg(feature = "sqlite")]
    impl Sealed for sqlx::SqliteConnection {}
    #[cfg(feature = "mysql")]
    impl Sealed for sqlx::MySqlConnection {}
}

#[cfg(feature = "postgres")]
impl MigrationConnection for sqlx::PgConnection {
    async fn migrations_table(&mut self, name: &str) -> Result<String> {
        if name.contains('.') || name.contains('"') {
            // Named by the migrator (`sqlx.toml`), schema included.
            return Ok(name.to_string());
        }
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut *self)
            .await
            .map_err(Error::db("reading the schema migrations are recorded in"))?;
        let schema = schema.ok_or_else(|| Error::Migration {
            migration: "set".into(),
            message: "search_path names no schema that exists, so there is nowhere to record \
                      migrations: create the schema, or set search_path for the connecting user"
                .into(),
        })?;
        // sqlx writes the name into its SQL unquoted, where the server folds it to lower case.
        Ok(format!(
            "{}.{}",
            crate::sql::quote_ident(&schema),
            crate::sql::quote_ident(&name.to_lowercase())
        ))
    }

    async fn reset_session(&mut self) -> Result<()> {
        sqlx::raw_sql("RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL")
            .execute(&mut *self)
            .await
            .map_err(Error::db("resetting the session after a migration"))?;
        Ok(())
    }

    async fn execute_script(
        &mut self,
        sql: &str,
        transaction: bool,
    ) -> std::result::Result<(), sqlx::Error> {
        execute_script!(self, sql, transaction)
    }

    fn error_position(err: &sqlx::Error) -> Option<usize> {
        use sqlx::postgres::{PgDatabaseError, PgErrorPosition};
        let pg = err
            .as_database_error()?
            .try_downcast_ref::<PgDatabaseError>()?;
        match pg.position()? {
            PgErrorPosition::Original(position) => Some(position),
            PgErrorPosition::Internal { .. } => None,
        }
    }
}

#[cfg(feature = "sqlite")]
impl MigrationConnection for sqlx::SqliteConnection {
    async fn migrations_table(&mut self, name: &str) -> Result<String> {
        Ok(name.to_string())
    }

    async fn reset_session(&mut self) -> Result<()> {
        Ok(())
    }

    fn error_position(_err: &sqlx::Error) -> Option<usize> {
        None
    }

    async fn execute_script(
        &mut self,
        sql: &str,
        transaction: bool,
    ) -> std::result::Result<(), sqlx::Error> {
        execute_script!(self, sql, transaction)
    }
}

/// MySQL commits DDL as it runs, so a migration's transaction holds its data changes alone: a
/// migration that fails halfway leaves its DDL applied (seedbed drops the database it was
/// building).
#[cfg(feature = "mysql")]
impl MigrationConnection for sqlx::MySqlConnection {
    async fn migrations_table(&mut self, name: &str) -> Result<String> {
        Ok(name.to_string())
    }

    async fn reset_session(&mut self) -> Result<()> {
        sqlx::raw_sql("SET SESSION FOREIGN_KEY_CHECKS = 1, SESSION UNIQUE_CHECKS = 1")
            .execute(&mut *self)
            .await
            .map_err(Error::db("resetting the session after a migration"))?;
        Ok(())
    }

    fn error_position(_err: &sqlx::Error) -> Option<usize> {
        None
    }

    async fn execute_script(
        &mut self,
        sql: &str,
        transaction: bool,
    ) -> std::result::Result<(), sqlx::Error> {
        execute_script!(self, sql, transaction)
    }
}

/// A copy of `migrator`, with what `sqlx.toml` may have set for `migrate!()`.
fn copy_migrator(migrator: &Migrator) -> Migrator {
    let mut copy = Migrator::with_migrations(migrator.iter().cloned().collect());
    copy.table_name = migrator.table_name.clone();
    copy.create_schemas = migrator.create_schemas.clone();
    copy.ignore_missing = migrator.ignore_missing;
    copy.locking = migrator.locking;
    copy
}

/// A checksum of every file under `dir` (names and contents, subdirectories included; hidden
/// files, backups ending in `~` and links to directories left out), for
/// [`Migrations::custom`] when the tool reads its migrations from a directory: a changed,
/// added or removed file gives a new checksum.
///
/// ```no_run
/// # fn demo() -> Result<(), seedbed::Error> {
/// let checksum = seedbed::isolation::checksum_files("migrations/diesel")?;
/// assert_eq!(checksum.len(), 16);
/// # Ok(()) }
/// ```
pub fn checksum_files(dir: impl AsRef<Path>) -> Result<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Editors' and systems' files (`.swp`, `.DS_Store`, `file~`) are not migrations.
            if name.starts_with('.') || name.ends_with('~') {
                continue;
            }
            // A directory is walked, a link to one is not (a link loop would never end).
            if entry.file_type()?.is_dir() {
                walk(root, &path, out)?;
            } else if path.is_file() {
                let name = path.strip_prefix(root).unwrap_or(&path);
                out.push((name.to_string_lossy().into_owned(), std::fs::read(&path)?));
            }
        }
        Ok(())
    }
    let dir = dir.as_ref();
    let mut files = Vec::new();
    walk(dir, dir, &mut files).map_err(|e| Error::Migrations {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    files.sort();
    let mut bytes = Vec::new();
    for (name, content) in files {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&(content.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&content);
    }
    Ok(format!("{:016x}", stable_hash_bytes(&bytes)))
}

/// The checksum and count of the up migrations (version, content, `no_tx`).
fn identity(migrator: Option<&Migrator>) -> (String, usize) {
    let mut bytes = Vec::new();
    let mut count = 0;
    if let Some(m) = migrator {
        for migration in m.iter().filter(|m| !m.migration_type.is_down_migration()) {
            bytes.extend_from_slice(&migration.version.to_le_bytes());
            bytes.push(u8::from(migration.no_tx));
            bytes.extend_from_slice(&migration.checksum);
            count += 1;
        }
    }
    (format!("{:016x}", stable_hash_bytes(&bytes)), count)
}

/// The name, size and modification time of every file in `dir`, in name order (`None` if the
/// directory cannot be read).
fn dir_fingerprint(dir: &Path) -> Option<String> {
    let mut entries: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| {
            let meta = e.metadata().ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!(
                "{}:{}:{modified}:{}",
                e.file_name().to_string_lossy(),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.as_ref().map_or(0, changed_at)
            )
        })
        .collect();
    entries.sort();
    Some(format!(
        "{:016x}",
        stable_hash_bytes(entries.join("/").as_bytes())
    ))
}

/// When a file's inode last changed (its ctime), which no tool sets back as it can the
/// modification time (a copy that keeps times, say); 0 where the platform has none.
#[cfg(unix)]
fn changed_at(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec()
}

#[cfg(not(unix))]
fn changed_at(_meta: &std::fs::Metadata) -> i64 {
    0
}

/// The server's message with its detail and hint, or the driver's text.
fn server_message(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => {
            let mut text = db.message().to_string();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                if let Some(detail) = pg.detail() {
                    text.push_str(&format!(" (detail: {detail})"));
                }
                if let Some(hint) = pg.hint() {
                    text.push_str(&format!(" (hint: {hint})"));
                }
            }
            text
        }
        other => other.to_string(),
    }
}

/// Recognises the server's "extension is missing" messages:
/// `could not open extension control file ".../vector.control": No such file or directory`
/// (PostgreSQL ≤ 15) and `extension "vector" is not available` (16+).
fn missing_extension(message: &str) -> Option<String> {
    if let Some(rest) = message.split("extension control file \"").nth(1) {
        let path = rest.split('"').next()?;
        let file = path.rsplit('/').next()?;
        return file.strip_suffix(".control").map(str::to_string);
    }
    let rest = message.strip_prefix("extension \"")?;
    let (name, tail) = rest.split_once('"')?;
    tail.contains("is not available").then(|| name.to_string())
}

/// The package that usually provides an extension.
fn extension_package(extension: &str) -> String {
    const CONTRIB: &[&str] = &[
        "pgcrypto",
        "citext",
        "hstore",
        "pg_trgm",
        "btree_gin",
        "btree_gist",
        "uuid-ossp",
        "ltree",
        "cube",
        "earthdistance",
        "fuzzystrmatch",
        "intarray",
        "isn",
        "tablefunc",
        "unaccent",
        "pg_stat_statements",
        "tsm_system_rows",
        "dblink",
        "postgres_fdw",
    ];
    match extension {
        e if CONTRIB.contains(&e) => {
            "postgresql-contrib on Debian/Ubuntu (Fedora: postgresql-contrib; Homebrew's \
             postgresql@17 includes it)"
                .into()
        }
        "vector" => {
            "pgvector: Debian/Ubuntu postgresql-<version>-pgvector, Homebrew pgvector".into()
        }
        "postgis" => {
            "PostGIS: Debian/Ubuntu postgresql-<version>-postgis-3, Homebrew postgis".into()
        }
        other => {
            format!("the package that provides `{other}`; postgresql-contrib has the common ones")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::missing_extension;

    #[test]
    fn recognises_missing_extension_messages() {
        assert_eq!(
            missing_extension(
                "could not open extension control file \
                 \"/usr/share/postgresql/15/extension/vector.control\": No such file or directory"
            )
            .as_deref(),
            Some("vector")
        );
        assert_eq!(
            missing_extension("extension \"postgis\" is not available").as_deref(),
            Some("postgis")
        );
        assert_eq!(missing_extension("relation \"x\" does not exist"), None);
    }
}
