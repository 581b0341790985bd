//! [`Isolation`]: the builder a test's database state is acquired with, its settings, and the
//! migrated databases the strategies start from.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;

use super::databases;
use super::engine::{self, KeyedOnce};
use super::isolated::Isolated;
use super::migrations::Migrations;
use super::options::{NamespaceMode, NamespaceOptions, TemplateOptions, TruncateOptions};
use super::pool::SharedPool;
use super::seed::Seed;
use super::several::{AlsoDb, Others, acquire_any};
use super::slots::{self, Lease};
use super::strategies::Ending;
use super::testdb::TestDb;
use crate::backend::Backend;
use crate::backend::postgres::coord::{self, LockMode};
use crate::backend::postgres::server::Server;
use crate::backend::postgres::{clean, marker};
use crate::context::{TestContext, TestContextBuilder};
use crate::error::{Error, Result};
use crate::strategy::{self, Strategy, StrategySource};

/// The default `statement_timeout` of a test's connections: a blocked test fails instead of
/// hanging.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The default `lock_timeout` of a test's connections.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Rollback's one-connection pool lets a second checkout wait.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a test's migrations come from.
#[derive(Debug, Clone)]
pub enum MigrationSource {
    /// `migrations/` at the crate root, if it exists (as `#[sqlx::test]` does).
    Default,
    /// A directory (relative paths are taken from the crate root).
    Dir(PathBuf),
    /// Migrations embedded with `sqlx::migrate!()`.
    Migrator(&'static Migrator),
    /// Migrations a function of yours makes: [`Migrations::custom`] (another migration tool) or
    /// [`Migrations::plain_dir`] (plain `.sql` files). Called once per process.
    Custom(fn() -> Result<Migrations>),
    /// [`Custom`](Self::Custom), known by a name (the function's path, from
    /// `#[seedbed::test(migrations = path)]`): called once per process and name.
    #[doc(hidden)]
    Named(&'static str, fn() -> Result<Migrations>),
    /// None: the test starts from an empty database.
    None,
}

/// Which seed a test's database gets.
#[derive(Debug, Clone, Copy)]
pub(super) enum SeedChoice {
    /// The suite's, if `seedbed.toml` names one.
    Suite,
    /// None at all.
    None,
    /// This one.
    Given(&'static Seed),
}

/// What a function named in `#[seedbed::test(migrations = path)]` may return: [`Migrations`],
/// or a `Result` of them.
pub trait IntoMigrations {
    /// The migrations, or why there are none.
    fn into_migrations(self) -> Result<Migrations>;
}

impl IntoMigrations for Migrations {
    fn into_migrations(self) -> Result<Migrations> {
        Ok(self)
    }
}

impl IntoMigrations for Result<Migrations> {
    fn into_migrations(self) -> Result<Migrations> {
        self
    }
}

/// Acquires a [`TestDb`] without the `#[seedbed::test]` macro (rstest, test-context, a custom
/// harness).
///
/// ```no_run
/// # async fn demo() -> Result<(), seedbed::Error> {
/// use seedbed::prelude::*;
///
/// let db: TestDb = Isolation::new(Strategy::Truncate)
///     .migrations("migrations")
///     .acquire()
///     .await?;
/// sqlx::query("INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme')")
///     .execute(&db.pool())
///     .await?;
/// db.finish().await?; // empties what the test wrote; dropping it instead cleans before next use
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Isolation {
    pub(super) strategy: Option<Strategy>,
    pub(super) migrations: MigrationSource,
    /// Suite data written once after the migrations.
    pub(super) seed_data: SeedChoice,
    pub(super) fixtures: Vec<String>,
    pub(super) test_name: Option<String>,
    pub(super) crate_root: Option<PathBuf>,
    pub(super) seed: Option<u64>,
    pub(super) statement_timeout: Duration,
    pub(super) lock_timeout: Duration,
    pub(super) acquire_timeout: Duration,
    pub(super) max_connections: u32,
    pub(super) truncate: TruncateOptions,
    pub(super) database: Option<String>,
    pub(super) allow_unmarked: bool,
    pub(super) own_connections: bool,
    pub(super) template: TemplateOptions,
    pub(super) namespace: NamespaceOptions,
    /// The role the test's connections act as (`None`: the connecting user).
    pub(super) role: Option<String>,
    /// The test's other databases.
    pub(super) also: Vec<AlsoDb>,
    /// The name the test's own database answers to beside them.
    pub(super) own_name: Option<String>,
}

impl Isolation {
    /// Isolation with `strategy`.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy: Some(strategy),
            ..Self::configured()
        }
    }

    /// Isolation with the configured strategy: `SEEDBED_STRATEGY`, else the suite default in
    /// `seedbed.toml` (or `[package.metadata.seedbed]`), else Rollback.
    pub fn configured() -> Self {
        Self {
            strategy: None,
            migrations: MigrationSource::Default,
            seed_data: SeedChoice::Suite,
            fixtures: Vec::new(),
            test_name: None,
            crate_root: std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
            seed: None,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            max_connections: 5,
            truncate: TruncateOptions::new(),
            database: None,
            allow_unmarked: false,
            own_connections: false,
            template: TemplateOptions::new(),
            namespace: NamespaceOptions::default(),
            role: None,
            also: Vec::new(),
            own_name: None,
        }
    }

    /// Sets or clears the explicit strategy.
    pub fn strategy(mut self, strategy: Option<Strategy>) -> Self {
        self.strategy = strategy;
        self
    }

    /// Migrations from a directory (relative to the crate root).
    pub fn migrations(mut self, dir: impl Into<PathBuf>) -> Self {
        self.migrations = MigrationSource::Dir(dir.into());
        self
    }

    /// Migrations embedded with `sqlx::migrate!()`.
    pub fn migrator(mut self, migrator: &'static Migrator) -> Self {
        self.migrations = MigrationSource::Migrator(migrator);
        self
    }

    /// Migrations a function makes: [`Migrations::custom`] for another migration tool,
    /// [`Migrations::plain_dir`] for plain `.sql` files. It is called once per process, and
    /// the database it builds is reused by its checksum.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::prelude::*;
    /// use seedbed::isolation::Migrations;
    ///
    /// fn schema() -> Result<Migrations, seedbed::Error> {
    ///     Migrations::plain_dir("db/schema")
    /// }
    ///
    /// let db: TestDb = Isolation::new(Strategy::Template)
    ///     .migrations_from(schema)
    ///     .acquire()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn migrations_from(mut self, make: fn() -> Result<Migrations>) -> Self {
        self.migrations = MigrationSource::Custom(make);
        self
    }

    /// Suite data ([`Seed`], from `#[seedbed::seed]`) written once after the migrations into the
    /// database every strategy starts from, and part of its checksum.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::prelude::*;
    /// use sqlx::PgConnection;
    ///
    /// #[seedbed::seed]
    /// async fn lookup_rows(conn: &mut PgConnection) -> Result<(), seedbed::Error> {
    ///     sqlx::query("INSERT INTO plans (id, code, monthly_cents) VALUES (10, 'scale', 9900)")
    ///         .execute(&mut *conn)
    ///         .await?;
    ///     Ok(())
    /// }
    ///
    /// let db: TestDb = Isolation::new(Strategy::Template)
    ///     .seed_data(&lookup_rows)
    ///     .acquire()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn seed_data(mut self, seed: &'static Seed) -> Self {
        self.seed_data = SeedChoice::Given(seed);
        self
    }

    /// No seed, not even the suite's (`seed = "…"` in `seedbed.toml`): for a database whose
    /// schema is not the one the suite seed writes into.
    pub fn without_seed(mut self) -> Self {
        self.seed_data = SeedChoice::None;
        self
    }

    /// Where migrations come from.
    pub fn migration_source(mut self, source: MigrationSource) -> Self {
        self.migrations = source;
        self
    }

    /// SQL scripts run at the start of the test, after migrations (sqlx's fixtures).
    pub fn fixture(mut self, sql: impl Into<String>) -> Self {
        self.fixtures.push(sql.into());
        self
    }

    /// The test's name (its path); defaults to the name of the current thread, which is the
    /// test's under `cargo test` and `cargo nextest`.
    pub fn test_name(mut self, name: impl Into<String>) -> Self {
        self.test_name = Some(name.into());
        self
    }

    /// The crate root, where `migrations/` and `seedbed.toml` are looked for (default:
    /// `CARGO_MANIFEST_DIR`).
    pub fn crate_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.crate_root = Some(root.into());
        self
    }

    /// The base seed (default: `SEEDBED_SEED`, else random per process).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// `statement_timeout` of the test's connections (default 60 s).
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// `lock_timeout` of the test's connections (default 10 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The test's connections act as `role`, a role without superuser (created, without login,
    /// if it does not exist) rather than as the user seedbed connects as: row-level security,
    /// grants and `SECURITY DEFINER` functions apply as they do to the application. Migrations
    /// and fixtures still run as the connecting user, and grant the role what it needs, as the
    /// application's migrations do. The suite default is `role = "…"` in `seedbed.toml`;
    /// `#[seedbed::test(role = "…")]` sets it per test. PostgreSQL only.
    ///
    /// The test's pool (and `PgPool`, `PoolConnection` arguments) act as the role under every
    /// strategy; a pool the test builds itself from `db.connect_options()` or `db.url()` acts as
    /// it under Template (the role is in the connection's startup options) and otherwise connects
    /// as the connecting user, so such code should `SET ROLE` itself.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::prelude::*;
    /// let db: TestDb = Isolation::new(Strategy::Rollback).role("app_user").acquire().await?;
    /// let who: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&db.pool()).await?;
    /// assert_eq!(who, "app_user");
    /// db.finish().await?;
    /// # Ok(()) }
    /// ```
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// The role this builder's tests act as: [`role`](Self::role), else the suite's
    /// (`seedbed.toml`), else none.
    pub(super) fn resolve_role(&self) -> Result<Option<String>> {
        // The suite's settings are read here, at the test's start, so a bad one fails the test
        // with its message: the faker locale's too, which builds cannot report.
        if let Some(root) = &self.crate_root {
            crate::context::Locale::suite(root)?;
        }
        if let Some(role) = &self.role {
            return Ok(Some(role.clone()));
        }
        match &self.crate_root {
            Some(root) => strategy::suite_role(root),
            None => Ok(None),
        }
    }

    /// Refuses a role where seedbed cannot make its connections act as it.
    pub(super) fn check_role_applies(&self, strategy: Strategy) -> Result<()> {
        if self.database.is_some() {
            return Err(Error::Config(
                "role = … acts on the databases seedbed builds (granted what its own tables need \
                 from the role); it cannot be combined with a database named with .database(…)"
                    .into(),
            ));
        }
        if strategy == Strategy::Namespace && self.namespace.mode == NamespaceMode::Schema {
            return Err(Error::Config(
                "role = … is not available with namespace = \"schema\": use the data mode or \
                 another strategy"
                    .into(),
            ));
        }
        Ok(())
    }

    /// `SET ROLE` for the test's role, run on its connections once seedbed's own work at the
    /// start of the test is done (`SET LOCAL ROLE` under Rollback, whose transaction ends it).
    pub(super) fn set_role(&self, local: bool) -> Option<String> {
        self.role.as_ref().map(|role| {
            format!(
                "SET {}ROLE {}",
                if local { "LOCAL " } else { "" },
                crate::sql::quote_ident(role)
            )
        })
    }

    /// How long Rollback's one-connection pool lets a second checkout wait (default 5 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The most connections of the test's pool under the strategies that allow several
    /// (default 5).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Truncate's settings, used if Truncate is the strategy that runs.
    pub fn truncate(mut self, options: TruncateOptions) -> Self {
        self.truncate = options;
        self
    }

    /// Template's settings, used if Template is the strategy that runs.
    pub fn template(mut self, options: TemplateOptions) -> Self {
        self.template = options;
        self
    }

    /// Namespace's settings, used if Namespace is the strategy that runs:
    /// [`NamespaceOptions::data`] or [`NamespaceOptions::schema`].
    pub fn namespace(mut self, options: impl Into<NamespaceOptions>) -> Self {
        self.namespace = options.into();
        self
    }

    /// Truncate: restart identities and sequences of the tables the test wrote (shorthand for
    /// [`truncate`](Self::truncate)).
    pub fn reset_sequences(mut self, reset: bool) -> Self {
        self.truncate = self.truncate.reset_sequences(reset);
        self
    }

    /// Use an existing, already migrated database instead of one seedbed makes. Rollback then
    /// needs no privilege beyond the test's own writes; Truncate refuses a database seedbed did not
    /// create unless [`allow_unmarked_database`](Self::allow_unmarked_database) is set.
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = Some(name.into());
        self
    }

    /// Let Truncate empty a database seedbed did not create (named with
    /// [`database`](Self::database)). Every row in it will be deleted after each test.
    pub fn allow_unmarked_database(mut self, allow: bool) -> Self {
        self.allow_unmarked = allow;
        self
    }

    /// The test opens its own connections (it takes `(PgPoolOptions, PgConnectOptions)`), which
    /// one transaction cannot contain: Rollback is skipped when it is only the default, and
    /// refused when chosen explicitly.
    pub fn own_connections(mut self, own: bool) -> Self {
        self.own_connections = own;
        self
    }

    /// Template: how many spare clones to keep ready (default `SEEDBED_TEMPLATE_SPARES`, else the
    /// number of CPUs between 2 and 8; 0 clones each test's database when it starts).
    pub fn template_spares(mut self, spares: usize) -> Self {
        self.template = self.template.spares(spares);
        self
    }

    /// Namespace: data mode (a shared database, rows by token) or a schema per test (shorthand
    /// for [`namespace`](Self::namespace)). Schema mode with [`keep_rows`](Self::keep_rows) set
    /// is refused when the test starts: its schema is dropped after it.
    pub fn namespace_mode(mut self, mode: NamespaceMode) -> Self {
        self.namespace.mode = mode;
        self
    }

    /// Namespace's data mode: keep the rows the test wrote (`cleanup = "none"`), letting data
    /// accumulate in the shared database; they are no longer tracked, so `seedbed sweep` leaves
    /// them too (shorthand for [`namespace`](Self::namespace) with
    /// [`NamespaceOptions::data`]). Refused in schema mode, which drops the test's schema.
    pub fn keep_rows(mut self, keep: bool) -> Self {
        self.namespace.keep_rows = keep;
        self
    }

    /// The strategy this builder will use, and what chose it.
    pub fn resolve_strategy(&self) -> Result<(Strategy, StrategySource)> {
        let (mut chosen, source) = strategy::resolve(self.strategy, self.crate_root.as_deref())?;
        if self.own_connections && !chosen.isolates_own_connections() {
            if source == StrategySource::Explicit {
                return Err(Error::Config(
                    "a test that builds its own pool (from connect options) cannot be isolated \
                     by Rollback, whose one transaction lives on one connection: use truncate or \
                     template"
                        .into(),
                ));
            }
            chosen = Strategy::Truncate;
        }
        Ok((chosen, source))
    }

    /// Prepares the database state on PostgreSQL and returns the test's handle.
    pub async fn acquire(self) -> Result<TestDb> {
        self.acquire_on::<sqlx::Postgres>().await
    }

    /// Prepares the database state on the backend `DB` (`sqlx::Postgres`, or `sqlx::Sqlite`
    /// with the `sqlite` feature) and returns the test's handle.
    ///
    /// ```no_run
    /// # #[cfg(feature = "sqlite")]
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::prelude::*;
    ///
    /// let db: TestDb<sqlx::Sqlite> = Isolation::new(Strategy::Template)
    ///     .migrations("migrations/sqlite")
    ///     .acquire_on::<sqlx::Sqlite>()
    ///     .await?;
    /// let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&db.pool()).await?;
    /// assert_eq!(one, 1);
    /// db.finish().await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_on<DB: Isolated>(mut self) -> Result<TestDb<DB>> {
        let also = std::mem::take(&mut self.also);
        let own_name = self.own_name.take();
        let db = DB::acquire_test_db(self).await?;
        if !also.is_empty() || own_name.is_some() {
            // On an error the test's own database is dropped, and cleaned as any dropped one.
            let others = Others::acquire::<DB>(own_name, also).await?;
            let _ = db.inner.others.set(others);
        }
        Ok(db)
    }

    /// Another database for the test, on the test's backend, acquired with it as `other` says
    /// (its own migrations; the strategy is usually the test's) and ended with it; the test
    /// reaches it with [`TestDb::named`]. What `databases(…)` in `#[seedbed::test]` does. The
    /// suite's seed (`seedbed.toml`) is not written into it.
    ///
    /// The databases are acquired one after the other while the first ones are held: under
    /// Truncate, two databases of one test with the same migrations take two of the strategy's
    /// databases at once, so give the set room for twice the tests that run at once
    /// ([`TruncateOptions`](super::TruncateOptions)).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::prelude::*;
    ///
    /// let db: TestDb = Isolation::new(Strategy::Rollback)
    ///     .migrations("migrations")
    ///     .also("audit", Isolation::new(Strategy::Rollback).migrations("migrations/audit"))
    ///     .acquire()
    ///     .await?;
    /// let audit: &TestDb = db.named("audit")?;
    /// # Ok(()) }
    /// ```
    pub fn also(mut self, name: impl Into<String>, other: Isolation) -> Self {
        self.also.push(AlsoDb {
            name: name.into(),
            iso: Box::new(other.other_database()),
            acquire: None,
        });
        self
    }

    /// [`also`](Self::also) on the backend `X`, which may differ from the test's (a SQLite
    /// database beside a PostgreSQL one); the test reaches it with [`TestDb::named_on`].
    pub fn also_on<X: Isolated>(mut self, name: impl Into<String>, other: Isolation) -> Self {
        self.also.push(AlsoDb {
            name: name.into(),
            iso: Box::new(other.other_database()),
            acquire: Some(acquire_any::<X>),
        });
        self
    }

    /// As another database of a test: the suite's seed (`seedbed.toml`) is for the test's own
    /// database, whose schema it was written for; a seed given to this one stays.
    pub(super) fn other_database(mut self) -> Self {
        if matches!(self.seed_data, SeedChoice::Suite) {
            self.seed_data = SeedChoice::None;
        }
        self
    }

    /// The name the test's own database answers to in [`TestDb::named`], beside the others.
    pub fn own_name(mut self, name: impl Into<String>) -> Self {
        self.own_name = Some(name.into());
        self
    }

    /// The test's name, its strategy, and its context's builder.
    pub(super) fn start(&self) -> Result<(String, Strategy, TestContextBuilder, u64)> {
        let (strategy, _) = self.resolve_strategy()?;
        let name = self.test_name.clone().unwrap_or_else(default_test_name);
        let ctx_builder = TestContext::builder(&name).shares_database(strategy.shares_database());
        let ctx_builder = match self.seed {
            Some(seed) => ctx_builder.seed(seed),
            None => ctx_builder,
        };
        let base_seed = self.seed.unwrap_or_else(crate::context::process_base_seed);
        Ok((name, strategy, ctx_builder, base_seed))
    }

    pub(super) async fn migrations_resolved(&self) -> Result<Arc<Migrations>> {
        let migrations = self.schema_migrations().await?;
        let seed = match self.seed_data {
            SeedChoice::Given(seed) => Some(seed),
            SeedChoice::None => None,
            // An empty database (no migrations) has nowhere for the suite's rows to go.
            SeedChoice::Suite if matches!(self.migrations, MigrationSource::None) => None,
            SeedChoice::Suite => self.suite_seed()?,
        };
        match seed {
            None => Ok(migrations),
            Some(seed) => {
                let key = format!("{}+{}", migrations.checksum(), seed.checksum_part());
                engine::migrations(&key, async {
                    Ok(migrations.as_ref().clone().with_seed(seed))
                })
                .await
            }
        }
    }

    /// The suite's seed: a SQL script named by `seed = "…"` in the crate's `seedbed.toml` (or
    /// `[package.metadata.seedbed]`), relative to the crate root.
    fn suite_seed(&self) -> Result<Option<&'static Seed>> {
        let Some(root) = &self.crate_root else {
            return Ok(None);
        };
        match crate::strategy::suite_string(
            root,
            "seed",
            "a SQL file run once after the migrations",
        )? {
            Some(path) => Seed::sql_file_named(&root.join(&path), &path).map(Some),
            None => Ok(None),
        }
    }

    /// The migrations alone, without the seed.
    async fn schema_migrations(&self) -> Result<Arc<Migrations>> {
        match &self.migrations {
            MigrationSource::Default => {
                let dir = self.crate_root.as_ref().map(|r| r.join("migrations"));
                match dir.filter(|d| d.is_dir()) {
                    Some(dir) => load_dir(dir).await,
                    None => Ok(Arc::new(Migrations::none())),
                }
            }
            MigrationSource::Dir(dir) => {
                let dir = match &self.crate_root {
                    Some(root) if dir.is_relative() => root.join(dir),
                    _ => dir.clone(),
                };
                load_dir(dir).await
            }
            MigrationSource::Migrator(m) => {
                let key = format!("migrator:{:p}", *m);
                engine::migrations(&key, async { Ok(Migrations::from_migrator(m)) }).await
            }
            MigrationSource::Custom(make) => {
                let key = format!("custom:{:p}", *make as *const ());
                engine::migrations(&key, async { make() }).await
            }
            MigrationSource::Named(name, make) => {
                engine::migrations(&format!("named:{name}"), async { make() }).await
            }
            MigrationSource::None => Ok(Arc::new(Migrations::none())),
        }
    }

    pub(super) fn connect_options(&self, server: &Server, database: &str) -> PgConnectOptions {
        server
            .database_options(database)
            .application_name("seedbed")
            .options([
                ("statement_timeout", millis(self.statement_timeout)),
                ("lock_timeout", millis(self.lock_timeout)),
            ])
    }

    /// What the migrated database for `purpose` is built with.
    pub(super) fn build(&self, purpose: &'static str) -> databases::Build<'_> {
        match purpose {
            // Rollback empties it with the cleaner after what escaped a test.
            "rollback" => databases::Build {
                purpose,
                prepare: true,
                track: false,
                fixtures: &[],
                seal: false,
                journal: false,
                role: self.role.as_deref(),
            },
            // Truncate empties its copies after every test: their tables note what was written.
            "truncate" => databases::Build {
                purpose,
                prepare: true,
                track: true,
                fixtures: &[],
                seal: false,
                journal: false,
                role: self.role.as_deref(),
            },
            // Fixtures are part of the shared database (one per migrations and fixture set),
            // loaded once, without a token: every test that names them shares them, read-only.
            "namespace" => databases::Build {
                purpose,
                prepare: false,
                track: false,
                fixtures: &self.fixtures,
                seal: false,
                journal: true,
                role: self.role.as_deref(),
            },
            // A template's clones are emptied and given to the next test when it changed no
            // schema (see template::recycle).
            _ => databases::Build {
                role: self.role.as_deref(),
                ..databases::Build::template(&self.fixtures)
            },
        }
    }

    /// The name of the database `build` describes for these migrations (nothing is asked of the
    /// server).
    pub(super) async fn build_name(&self, build: &databases::Build<'_>) -> Result<String> {
        let migrations = self.migrations_resolved().await?;
        let name = build.database_name(&migrations);
        if name.len() > 63 {
            return Err(Error::Config(format!(
                "database name {name} is longer than PostgreSQL's 63-byte limit: use a shorter \
                 purpose"
            )));
        }
        Ok(name)
    }

    /// The database `build` describes for these migrations, ready: its marker read on the control
    /// connection, and built (by whichever process gets there first) if it is not ready. Once per
    /// process.
    pub(super) async fn built(
        &self,
        server: &'static Server,
        build: databases::Build<'_>,
    ) -> Result<String> {
        static BUILT: std::sync::OnceLock<KeyedOnce<String>> = std::sync::OnceLock::new();
        let key = self.build_name(&build).await?;
        BUILT
            .get_or_init(KeyedOnce::new)
            .get_or_try_init(&key, async {
                let name = key.clone();
                // Not ready: another process may be building it. Its build holds the build lock
                // exclusively; waiting for that on the control connection, instead of on a
                // connection of the lock's own, keeps a crowd of processes started together
                // within their connection budget while one of them builds.
                let mark = engine::control()
                    .with(server, move |conn| {
                        Box::pin(async move {
                            if let Some(mark) =
                                marker::read(conn, &name).await?.filter(databases::is_ready)
                            {
                                return Ok(Some(mark));
                            }
                            let lock = databases::build_lock_name(&name);
                            coord::lock_on(conn, &lock, LockMode::Shared, databases::BUILD_WAIT)
                                .await?;
                            coord::unlock_on(conn, &lock, LockMode::Shared).await?;
                            marker::read(conn, &name).await
                        })
                    })
                    .await?;
                if let Some(mark) = mark.filter(databases::is_ready) {
                    databases::remember_measured(&key, &mark);
                    return Ok(key.clone());
                }
                let migrations = self.migrations_resolved().await?;
                Ok(databases::ensure_build(server, &migrations, &build)
                    .await?
                    .name)
            })
            .await
    }

    /// The shared database of Namespace tests, with its journal.
    pub(super) async fn namespace_database(&self, server: &'static Server) -> Result<String> {
        self.built(server, self.build("namespace")).await
    }

    /// The migrated database for `purpose`, prepared for the cleaner (Rollback, Truncate).
    pub(super) async fn migrated(
        &self,
        server: &'static Server,
        purpose: &'static str,
    ) -> Result<String> {
        self.built(server, self.build(purpose)).await
    }

    /// Namespace on a database the user named: its tables get the journal's triggers, so only
    /// with the user's consent for a database seedbed did not create (its marker is read on the
    /// control connection). A database an earlier seedbed prepared gets what this one adds.
    pub(super) async fn own_namespace_database(
        &self,
        server: &'static Server,
        db: &str,
    ) -> Result<()> {
        let name = db.to_string();
        let mark = engine::control()
            .with(server, move |conn| {
                Box::pin(async move { marker::read(conn, &name).await })
            })
            .await?;
        if mark.is_none() && !self.allow_unmarked {
            return Err(refuse_unmarked_namespace(db));
        }
        let mut conn = server.open(&server.database_options(db)).await?;
        let result = async {
            if crate::backend::postgres::journal::is_prepared(&mut conn).await? {
                crate::backend::postgres::journal::upgrade(&mut conn).await
            } else {
                let schema = clean::read_schema(&mut conn).await?;
                crate::backend::postgres::journal::prepare(&mut conn, &schema).await
            }
        }
        .await;
        let _ = sqlx::Connection::close(conn).await;
        result
    }

    /// Truncate on a database the user named: only if seedbed created it, or the user allowed it.
    pub(super) async fn own_database_lease(
        &self,
        server: &'static Server,
        db: &str,
    ) -> Result<Lease> {
        let name = db.to_string();
        let mark = engine::control()
            .with(server, move |conn| {
                Box::pin(async move { marker::read(conn, &name).await })
            })
            .await?;
        if mark.is_none() && !self.allow_unmarked {
            return Err(refuse_unmarked_truncate(db));
        }
        slots::lease_existing(server, db).await
    }
}

/// The error for Namespace on a database seedbed did not create, without the user's consent.
pub(super) fn refuse_unmarked_namespace(db: &str) -> Error {
    Error::ForeignDatabase {
        database: db.to_string(),
        message: "refusing to use it for Namespace: seedbed did not create it, and Namespace \
         adds a journal trigger to each of its tables. Let seedbed create its test databases \
         (leave out .database(…)), or allow it with .allow_unmarked_database(true) \
         (allow_unmarked_database in #[seedbed::test])"
            .into(),
    }
}

/// The error for Truncate on a database seedbed did not create, without the user's consent.
pub(super) fn refuse_unmarked_truncate(db: &str) -> Error {
    Error::ForeignDatabase {
        database: db.to_string(),
        message: format!(
            "refusing to use it for Truncate: seedbed did not create it, and Truncate \
         deletes every row in it after each test. Let seedbed create its test databases (leave \
         out .database(…)), or, if `{db}` holds nothing you want to keep, allow it with \
         .allow_unmarked_database(true) \
         (allow_unmarked_database in #[seedbed::test])"
        ),
    }
}

/// How taking a Truncate database's lease on the test's own connection went.
pub(super) enum Claim {
    /// Taken: the lease, the test's pool and its key.
    Taken((Lease, SharedPool, String)),
    /// Another test holds it.
    Held,
    /// There is no such database.
    Missing,
}

/// What a strategy gives a test when it starts.
pub(super) struct Acquired<DB: Backend> {
    pub(super) database: String,
    pub(super) pool: sqlx::Pool<DB>,
    pub(super) state: Box<dyn Ending<DB>>,
    /// The token the test's context carries, when it was claimed.
    pub(super) token: Option<String>,
}

pub(super) async fn load_dir(dir: PathBuf) -> Result<Arc<Migrations>> {
    let key = format!("dir:{}", dir.display());
    engine::migrations(&key, async move {
        Migrations::identify_dir(
            &dir,
            &crate::backend::postgres::server::os::default_base_dir(),
        )
        .await
    })
    .await
}

pub(super) async fn run_fixtures(pool: &PgPool, fixtures: &[String]) -> Result<()> {
    for sql in fixtures {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(pool)
            .await
            .map_err(Error::db("applying a fixture"))?;
    }
    Ok(())
}

pub(super) fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// The test's path as `application_name` (at most 63 bytes, cut on a character boundary).
pub(super) fn application_name(test: &str) -> String {
    let mut end = test.len().min(63);
    while !test.is_char_boundary(end) {
        end -= 1;
    }
    test[..end].to_string()
}

pub(super) fn default_test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string)
        .unwrap_or_else(|| format!("<unnamed test in process {}>", std::process::id()))
}
