//! [`Isolation`], the builder that acquires a [`TestDb`], and the `TestDb` handle a test works
//! with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

use super::engine::{self, KeyedOnce};
use super::migrations::Migrations;
use super::rollback::{RollbackPool, RollbackState, Violation};
use super::strategy::{self, Strategy, StrategySource};
use super::truncate::{self, Lease};
use super::{cleaner, marker, migrated, template};
use crate::context::{TestContext, token_for};
use crate::error::{Error, Result};
use crate::server::Server;
use crate::sql::quote_literal;

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
    /// None: the test starts from an empty database.
    None,
}

/// How Namespace keeps tests apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NamespaceMode {
    /// One shared database: each test's rows carry its token and are removed after it.
    #[default]
    Data,
    /// A schema per test, with the migrations applied in it, reached through `search_path`
    /// (`namespace = "schema"`), for applications that never name their schema.
    Schema,
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
    strategy: Option<Strategy>,
    migrations: MigrationSource,
    fixtures: Vec<String>,
    test_name: Option<String>,
    crate_root: Option<PathBuf>,
    seed: Option<u64>,
    statement_timeout: Duration,
    lock_timeout: Duration,
    acquire_timeout: Duration,
    max_connections: u32,
    reset_sequences: bool,
    database: Option<String>,
    allow_unmarked: bool,
    own_connections: bool,
    spares: Option<i64>,
    keep_rows: bool,
    namespace_mode: NamespaceMode,
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
            fixtures: Vec::new(),
            test_name: None,
            crate_root: std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
            seed: None,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            max_connections: 5,
            reset_sequences: false,
            database: None,
            allow_unmarked: false,
            own_connections: false,
            spares: None,
            keep_rows: false,
            namespace_mode: NamespaceMode::Data,
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

    /// Truncate: restart identities and sequences of the tables the test wrote.
    pub fn reset_sequences(mut self, reset: bool) -> Self {
        self.reset_sequences = reset;
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
        self.spares = Some(i64::try_from(spares).unwrap_or(i64::MAX));
        self
    }

    /// Namespace: data mode (a shared database, rows by token) or a schema per test.
    pub fn namespace_mode(mut self, mode: NamespaceMode) -> Self {
        self.namespace_mode = mode;
        self
    }

    /// Namespace: keep the rows the test wrote (`cleanup = "none"`), letting data accumulate in
    /// the shared database; they are no longer tracked, so `seedbed sweep` leaves them too.
    pub fn keep_rows(mut self, keep: bool) -> Self {
        self.keep_rows = keep;
        self
    }

    /// The strategy this builder will use, and what chose it.
    pub fn resolve_strategy(&self) -> Result<(Strategy, StrategySource)> {
        let (mut chosen, source) = strategy::resolve(self.strategy, self.crate_root.as_deref())?;
        if self.own_connections && !chosen.isolates_own_connections() {
            if source == StrategySource::Explicit {
                return Err(Error::Config(
                    "a test that builds its own pool (PgPoolOptions, PgConnectOptions) cannot be \
                     isolated by Rollback, whose one transaction lives on one connection: use \
                     truncate or template"
                        .into(),
                ));
            }
            chosen = Strategy::Truncate;
        }
        Ok((chosen, source))
    }

    /// Prepares the database state and returns the test's handle.
    pub async fn acquire(self) -> Result<TestDb> {
        let (strategy, _) = self.resolve_strategy()?;
        let server = Server::resolve().await?;
        let name = self.test_name.clone().unwrap_or_else(default_test_name);
        let ctx_builder = TestContext::builder(&name).shares_database(strategy.shares_database());
        let ctx_builder = match self.seed {
            Some(seed) => ctx_builder.seed(seed),
            None => ctx_builder,
        };
        let base_seed = self.seed.unwrap_or_else(crate::context::process_base_seed);
        // The token is claimed while the backend gets ready.
        let claiming = {
            let name = name.clone();
            async move {
                if strategy.shares_database() {
                    claim_token(server, &name, base_seed).await.map(Some)
                } else {
                    Ok(None)
                }
            }
        };
        let (claim, acquired) = if strategy == Strategy::Namespace {
            // The backend's connections carry the token: claim it first.
            let claim = claiming.await?;
            let acquired = self
                .acquire_backend(strategy, server, &name, claim.as_deref())
                .await;
            (Ok(claim), acquired)
        } else {
            tokio::join!(
                claiming,
                self.acquire_backend(strategy, server, &name, None)
            )
        };
        let claim = match claim {
            Ok(claim) => claim,
            // The backend, if it was acquired, is released by its drop.
            Err(e) => return Err(e),
        };
        let ctx_builder = match &claim {
            Some(token) => ctx_builder.token(token.clone()),
            None => ctx_builder,
        };
        let ctx = Arc::new(ctx_builder.build());
        match acquired {
            Ok((database, pool, backend)) => Ok(TestDb {
                inner: Arc::new(Inner {
                    strategy,
                    pool,
                    ctx,
                    database,
                    server,
                    backend: std::sync::Mutex::new(Some(backend)),
                    token_claim: std::sync::Mutex::new(claim),
                    reset_sequences: self.reset_sequences,
                    kept: std::sync::Mutex::new(false),
                }),
            }),
            Err(e) => {
                if let Some(token) = claim {
                    release_token(server, token).await;
                }
                Err(e)
            }
        }
    }

    async fn migrations_resolved(&self) -> Result<Arc<Migrations>> {
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
            MigrationSource::None => Ok(Arc::new(Migrations::none())),
        }
    }

    fn connect_options(&self, server: &Server, database: &str) -> PgConnectOptions {
        server
            .database_options(database)
            .application_name("seedbed")
            .options([
                ("statement_timeout", millis(self.statement_timeout)),
                ("lock_timeout", millis(self.lock_timeout)),
            ])
    }

    async fn acquire_backend(
        &self,
        strategy: Strategy,
        server: &'static Server,
        test_name: &str,
        token: Option<&str>,
    ) -> Result<(String, PgPool, Backend)> {
        let app_name = application_name(test_name);
        match strategy {
            Strategy::Rollback => {
                let database = match &self.database {
                    Some(db) => db.clone(),
                    None => self.migrated(server, "rollback").await?,
                };
                let options = self.connect_options(server, &database);
                let key = format!(
                    "{database}|{:?}|{:?}|{:?}",
                    self.statement_timeout, self.lock_timeout, self.acquire_timeout
                );
                // A kept pool whose connection died (a restarted server) is replaced once.
                let mut attempt = 0;
                let (rp, state) = loop {
                    let rp = match ROLLBACK_POOLS.take(&key) {
                        Some(rp) => rp,
                        None => {
                            let (options, timeout) = (options.clone(), self.acquire_timeout);
                            super::budget::on_shortage(evict_kept_pools);
                            let budget = super::budget::reserve(server, 1).await?;
                            let mut rp = engine::run(RollbackPool::open(options, timeout)).await?;
                            rp.budget = Some(budget);
                            Arc::new(rp)
                        }
                    };
                    match rp.start(&app_name, &self.fixtures).await {
                        Ok(state) => break (rp, state),
                        Err(e) => {
                            rp.close().await;
                            attempt += 1;
                            if attempt > 1 || !engine::is_connection_error(&e) {
                                return Err(e);
                            }
                        }
                    }
                };
                let pool = rp.pool.clone();
                Ok((database, pool, Backend::Rollback { rp, state, key }))
            }
            Strategy::Truncate => {
                let mut lease = match &self.database {
                    Some(db) => self.own_database_lease(server, db).await?,
                    None => {
                        let base = self.migrated(server, "truncate").await?;
                        truncate::lease(server, &base, self.reset_sequences).await?
                    }
                };
                let database = lease.slot.database.clone();
                let key = format!(
                    "{database}|{:?}|{:?}|{}",
                    self.statement_timeout, self.lock_timeout, self.max_connections
                );
                let started = async {
                    // Every connection of the pool carries the test's name.
                    let set = format!("SET application_name = {}", quote_literal(&app_name));
                    let shared = SharedPool::for_test(
                        server,
                        &key,
                        &database,
                        || self.connect_options(server, &database),
                        self.max_connections,
                        &set,
                    )
                    .await?;
                    run_fixtures(&shared.pool, &self.fixtures).await?;
                    Ok::<_, Error>(shared)
                }
                .await;
                match started {
                    Ok(shared) => Ok((
                        database,
                        shared.pool.clone(),
                        Backend::Truncate {
                            lease,
                            pool: shared,
                            key,
                        },
                    )),
                    Err(e) => {
                        let _ = truncate::clean(&mut lease, self.reset_sequences).await;
                        Err(e)
                    }
                }
            }
            Strategy::Template => {
                if self.database.is_some() {
                    return Err(Error::Config(
                        "Template clones the databases it makes; it cannot use a database named \
                         with .database(…): use rollback or truncate for that"
                            .into(),
                    ));
                }
                let template = self.template(server).await?;
                template::sweep_once(server).await?;
                // A budget smaller than the pool makes the pool smaller.
                let budget = super::budget::reserve(server, self.max_connections as usize).await?;
                let max_connections = u32::try_from(budget.len()).unwrap_or(1).max(1);
                let spares = match self.spares {
                    Some(n) => n,
                    None => template::pool_size()?,
                };
                let (database, _handover) =
                    template::acquire(server, &template, test_name, spares).await?;
                let prepared = template::take_prepared(&database);
                let pool = match prepared {
                    // This process opened the spare's pool ahead of time: the test starts with
                    // its connection open, once it carries the test's settings.
                    Some(p)
                        if max_connections == template::DEFAULT_POOL_CONNECTIONS
                            && self.max_connections == template::DEFAULT_POOL_CONNECTIONS =>
                    {
                        let set = format!(
                            "SET application_name = {}; SET statement_timeout = {}; \
                             SET lock_timeout = {}",
                            quote_literal(&app_name),
                            quote_literal(&millis(self.statement_timeout)),
                            quote_literal(&millis(self.lock_timeout)),
                        );
                        // Applied by the pool's next checkout, the test's first query.
                        p.apply(set);
                        // The test's own reservation covers this connection from now on.
                        drop(p.budget);
                        p.pool
                    }
                    other => {
                        if let Some(p) = other {
                            p.pool.close().await;
                        }
                        let options = self
                            .connect_options(server, &database)
                            .application_name(&app_name);
                        PgPoolOptions::new()
                            .max_connections(max_connections)
                            .min_connections(0)
                            .test_before_acquire(false)
                            .connect_lazy_with(options)
                    }
                };
                Ok((
                    database.clone(),
                    pool,
                    Backend::Template {
                        database,
                        test: test_name.to_string(),
                        budget,
                    },
                ))
            }
            Strategy::Namespace => {
                let token = token.ok_or_else(|| {
                    Error::Config("a Namespace test needs a token before its connections".into())
                })?;
                let (database, schema) = if self.namespace_mode == NamespaceMode::Schema {
                    if self.database.is_some() {
                        return Err(Error::Config(
                            "namespace = \"schema\" makes its schemas in a database of its own; \
                             it cannot use a database named with .database(…)"
                                .into(),
                        ));
                    }
                    let migrations = self.migrations_resolved().await?;
                    let database = super::schemas::database(server, &migrations).await?;
                    let schema = super::schemas::acquire(server, &database, migrations).await?;
                    (database, Some(schema))
                } else {
                    let database = match &self.database {
                        Some(db) => self.own_namespace_database(server, db).await?,
                        None => self.namespace_database(server).await?,
                    };
                    super::namespace::sweep_once(server, &database).await?;
                    (database, None)
                };
                let key = format!(
                    "{database}|{:?}|{:?}|{}",
                    self.statement_timeout, self.lock_timeout, self.max_connections
                );
                // Every connection of the pool carries the test's name and token (and, in schema
                // mode, its schema).
                let mut set = format!(
                    "SET application_name = {}; SET {} = {}",
                    quote_literal(&app_name),
                    super::namespace::TOKEN_SETTING,
                    quote_literal(token)
                );
                if let Some(schema) = &schema {
                    set.push_str("; ");
                    set.push_str(&super::schemas::search_path(schema));
                }
                let shared = SharedPool::for_test(
                    server,
                    &key,
                    &database,
                    || self.connect_options(server, &database),
                    self.max_connections,
                    &set,
                )
                .await?;
                run_fixtures(&shared.pool, &self.fixtures).await?;
                Ok((
                    database,
                    shared.pool.clone(),
                    Backend::Namespace {
                        pool: shared,
                        key,
                        token: token.to_string(),
                        keep_rows: self.keep_rows,
                        schema,
                    },
                ))
            }
        }
    }

    /// The database `build` describes for these migrations, built once per server and checksum
    /// (by whichever process gets there first) and looked up once per process.
    async fn built(&self, server: &'static Server, build: migrated::Build<'_>) -> Result<String> {
        static BUILT: std::sync::OnceLock<KeyedOnce<String>> = std::sync::OnceLock::new();
        let migrations = self.migrations_resolved().await?;
        let key = build.database_name(&migrations);
        BUILT
            .get_or_init(KeyedOnce::new)
            .get_or_try_init(&key, async {
                Ok(migrated::ensure_build(server, &migrations, &build)
                    .await?
                    .name)
            })
            .await
    }

    /// The shared database of Namespace tests, with its journal.
    async fn namespace_database(&self, server: &'static Server) -> Result<String> {
        self.built(
            server,
            migrated::Build {
                purpose: "namespace",
                prepare: false,
                fixtures: &[],
                seal: false,
                journal: true,
            },
        )
        .await
    }

    /// The sealed template for these migrations and fixtures.
    async fn template(&self, server: &'static Server) -> Result<String> {
        self.built(
            server,
            migrated::Build {
                purpose: "tpl",
                prepare: false,
                fixtures: &self.fixtures,
                seal: true,
                journal: false,
            },
        )
        .await
    }

    /// The migrated database for `purpose`, prepared for the cleaner (Rollback, Truncate).
    async fn migrated(&self, server: &'static Server, purpose: &str) -> Result<String> {
        self.built(
            server,
            migrated::Build {
                purpose,
                prepare: true,
                fixtures: &[],
                seal: false,
                journal: false,
            },
        )
        .await
    }

    /// Namespace on a database the user named: its tables get the journal's triggers, so only
    /// with the user's consent for a database seedbed did not create.
    async fn own_namespace_database(&self, server: &'static Server, db: &str) -> Result<String> {
        let mut conn = server.connect().await?;
        let mark = marker::read(&mut conn, db).await?;
        let _ = sqlx::Connection::close(conn).await;
        if mark.is_none() && !self.allow_unmarked {
            return Err(Error::Config(format!(
                "refusing to use Namespace on database `{db}`: seedbed did not create it, and \
                 Namespace adds a journal trigger to each of its tables. Let seedbed create its \
                 test databases (leave out .database(…)), or allow it with \
                 .allow_unmarked_database(true)"
            )));
        }
        let mut conn =
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&server.database_options(db))
                .await
                .map_err(Error::db(format!("connecting to {db}")))?;
        let result = async {
            if !super::namespace::is_prepared(&mut conn).await? {
                let schema = cleaner::read_schema(&mut conn).await?;
                super::namespace::prepare(&mut conn, &schema).await?;
            }
            Ok(db.to_string())
        }
        .await;
        let _ = sqlx::Connection::close(conn).await;
        result
    }

    /// Truncate on a database the user named: only if seedbed created it, or the user allowed it.
    async fn own_database_lease(&self, server: &'static Server, db: &str) -> Result<Lease> {
        let allow = self.allow_unmarked;
        let name = db.to_string();
        let mut conn = server.connect().await?;
        let mark = marker::read(&mut conn, &name).await?;
        let _ = sqlx::Connection::close(conn).await;
        if mark.is_none() && !allow {
            return Err(Error::Config(format!(
                "refusing to use Truncate on database `{name}`: seedbed did not create it, and \
                 Truncate deletes every row in it after each test. Let seedbed create its test \
                 databases (leave out .database(…)), or, if `{name}` holds nothing you want to \
                 keep, allow it with .allow_unmarked_database(true)"
            )));
        }
        truncate::lease_existing(server, &name, self.reset_sequences).await
    }
}

/// Pools kept between the tests of the process, by database and settings.
static ROLLBACK_POOLS: engine::FreeList<Arc<RollbackPool>> = engine::FreeList::new();
static SHARED_POOLS: engine::FreeList<SharedPool> = engine::FreeList::new();

/// A pool for the tests of one database, kept between tests.
///
/// Its connections are all opened on the engine runtime when it is made (a pool that opened
/// connections during a test would tie them to that test's runtime, which dies with the test),
/// and it keeps them all (`min_connections` = `max_connections`), so sequential queries wait the
/// moment it takes a connection to come back instead of opening another. A connection opened
/// during a test anyway (one replaced after an error) is closed at its next checkout, and a pool
/// that opened one is closed when the test ends rather than kept.
///
/// The settings of the test that has the pool (its `application_name`, Namespace's token and
/// schema) are applied to every connection when the test starts, and by `after_connect` to a
/// connection the pool opens while the test runs: a connection without them would write rows
/// Namespace does not journal, which would outlive the test.
#[derive(Debug, Clone)]
struct SharedPool {
    pool: PgPool,
    recycled_at: Arc<std::sync::Mutex<std::time::Instant>>,
    /// The current test's session settings (`None` between tests).
    session: Arc<std::sync::Mutex<Option<String>>>,
    /// Connections opened so far, and how many `open` made: a pool that opened more (during a
    /// test, on that test's runtime, which dies with it) is not kept for the next test.
    opened: Arc<std::sync::atomic::AtomicUsize>,
    opened_by_open: usize,
    /// Connection budget for the pool's connections, given back when the pool goes.
    budget: Option<Arc<super::budget::Reservation>>,
}

impl SharedPool {
    /// Opens the pool and all its connections; call it on the engine runtime.
    async fn open(options: PgConnectOptions, max: u32) -> Result<Self> {
        let recycled_at = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
        let cutoff = Arc::clone(&recycled_at);
        let session: Arc<std::sync::Mutex<Option<String>>> = Arc::new(std::sync::Mutex::new(None));
        let settings = Arc::clone(&session);
        let connections_opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&connections_opened);
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .min_connections(max)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let sql = settings
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                Box::pin(async move {
                    if let Some(sql) = sql {
                        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
                            .await?;
                    }
                    Ok(())
                })
            })
            .before_acquire(move |_conn, meta| {
                let cutoff = Arc::clone(&cutoff);
                Box::pin(async move {
                    let recycled = *cutoff
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    // Opened after the pool was last recycled: during a test, on its runtime.
                    let opened_during_a_test = recycled.elapsed() > meta.age;
                    Ok(!opened_during_a_test)
                })
            })
            .connect_lazy_with(options);
        let mut opened = Vec::with_capacity(max as usize);
        for _ in 0..max {
            opened.push(
                pool.acquire()
                    .await
                    .map_err(Error::db("connecting to the test database"))?,
            );
        }
        drop(opened);
        *recycled_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
        let opened_by_open = connections_opened.load(std::sync::atomic::Ordering::SeqCst);
        Ok(Self {
            pool,
            recycled_at,
            session,
            opened: connections_opened,
            opened_by_open,
            budget: None,
        })
    }

    /// Records the settings of the test taking the pool (`None` when it goes back), for the
    /// connections opened while it runs.
    fn set_session(&self, sql: Option<&str>) {
        *self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sql.map(str::to_string);
    }

    /// The pool kept for `key` (or a new one) with `set` run on every connection, for a test.
    /// A kept pool whose sessions no longer work (the server ended one, or restarted) is closed
    /// and replaced by a new one.
    async fn for_test(
        server: &'static Server,
        key: &str,
        database: &str,
        options: impl Fn() -> PgConnectOptions,
        max_connections: u32,
        set: &str,
    ) -> Result<Self> {
        if let Some(kept) = SHARED_POOLS.take(key) {
            if kept.on_every_connection(set).await {
                return Ok(kept);
            }
            kept.discard().await;
        }
        super::budget::on_shortage(evict_kept_pools);
        let budget = super::budget::reserve(server, max_connections as usize).await?;
        let max = u32::try_from(budget.len()).unwrap_or(1).max(1);
        let mut shared = engine::run(SharedPool::open(options(), max)).await?;
        shared.budget = Some(Arc::new(budget));
        if shared.on_every_connection(set).await {
            return Ok(shared);
        }
        shared.discard().await;
        Err(Error::Config(format!(
            "a connection to {database} failed as the test started"
        )))
    }

    /// Every connection of the pool, once the test has given them all back (`None` if one does
    /// not come back within 2 s).
    async fn all_connections(&self) -> Option<Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>> {
        let max = self.pool.options().get_max_connections() as usize;
        let mut conns = Vec::with_capacity(max);
        while conns.len() < max {
            match tokio::time::timeout(Duration::from_secs(2), self.pool.acquire()).await {
                Ok(Ok(conn)) => conns.push(conn),
                _ => return None,
            }
        }
        Some(conns)
    }

    /// Runs `sql` on the given connections at once (one round trip of wall time), `first`
    /// (if any) on the first connection just before it. With `to_engine`, the connections go back
    /// to the pool from the engine runtime (a return spawned on a test's runtime could be cut off
    /// when that runtime shuts down, losing the connection). Returns whether `sql` ran on every
    /// connection, and the outcome of `first`.
    async fn on_connections(
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        sql: &str,
        first: Option<String>,
        to_engine: bool,
    ) -> (bool, Result<()>) {
        let mut tasks = tokio::task::JoinSet::new();
        let mut first = first;
        for mut conn in conns {
            let own = first.take();
            let sql = match &own {
                Some(before) => format!("{before}; {sql}"),
                None => sql.to_string(),
            };
            tasks.spawn(async move {
                let done = conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))).await;
                (conn, own.is_some(), done)
            });
        }
        let mut all_ok = true;
        let mut first_result = Ok(());
        let mut back = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((conn, is_first, done)) => {
                    if let Err(e) = &done
                        && is_first
                    {
                        first_result = Err(Error::Database {
                            context: "ending the test".into(),
                            source: sqlx::Error::Protocol(e.to_string()),
                        });
                    }
                    all_ok &= done.is_ok();
                    back.push(conn);
                }
                Err(_) => all_ok = false,
            }
        }
        if to_engine {
            let _ = engine::run(async move {
                drop(back);
                Ok(())
            })
            .await;
        }
        (all_ok, first_result)
    }

    /// Runs `sql` on every connection of the pool (at the start of a test), and on those the
    /// pool opens until the test ends.
    async fn on_every_connection(&self, sql: &str) -> bool {
        self.set_session(Some(sql));
        match self.all_connections().await {
            Some(conns) => Self::on_connections(conns, sql, None, false).await.0,
            None => false,
        }
    }

    /// Resets every session and puts the pool back for the next test; closes it if a reset
    /// fails. `first` runs on one connection just before its reset, in the same round trip; its
    /// outcome is returned.
    async fn recycle(
        self,
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        key: &str,
        first: Option<String>,
    ) -> Result<()> {
        self.set_session(None);
        let (healthy, first) = Self::on_connections(
            conns,
            "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
             SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES",
            first,
            true,
        )
        .await;
        let only_its_own =
            self.opened.load(std::sync::atomic::Ordering::SeqCst) == self.opened_by_open;
        if healthy && only_its_own {
            *self
                .recycled_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
            SHARED_POOLS.put(key, self);
        } else {
            self.discard().await;
        }
        first
    }

    /// Closes the pool (a connection is still out, or broke).
    async fn discard(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.pool.close()).await;
    }
}

/// Closes the pools kept for the next test (Rollback's and the others') and gives their budget
/// back now (a reservation found the budget spent); returns how many slots it gave back.
fn evict_kept_pools() -> std::pin::Pin<Box<dyn Future<Output = usize> + Send + 'static>> {
    Box::pin(async {
        let mut freed = 0;
        for rp in ROLLBACK_POOLS.take_all() {
            rp.close().await;
            if let Some(reservation) = Arc::try_unwrap(rp).ok().and_then(|rp| rp.budget) {
                let slots = reservation.len();
                if reservation.give_back().await.is_ok() {
                    freed += slots;
                }
            }
        }
        for kept in SHARED_POOLS.take_all() {
            let budget = kept.budget.clone();
            kept.discard().await;
            if let Some(reservation) = budget.and_then(|b| Arc::try_unwrap(b).ok()) {
                let slots = reservation.len();
                if reservation.give_back().await.is_ok() {
                    freed += slots;
                }
            }
        }
        freed
    })
}

async fn load_dir(dir: PathBuf) -> Result<Arc<Migrations>> {
    let key = format!("dir:{}", dir.display());
    engine::migrations(&key, async move { Migrations::from_dir(&dir).await }).await
}

async fn run_fixtures(pool: &PgPool, fixtures: &[String]) -> Result<()> {
    for sql in fixtures {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(pool)
            .await
            .map_err(Error::db("applying a fixture"))?;
    }
    Ok(())
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// The test's path as `application_name` (at most 63 bytes, cut on a character boundary).
fn application_name(test: &str) -> String {
    let mut end = test.len().min(63);
    while !test.is_char_boundary(end) {
        end -= 1;
    }
    test[..end].to_string()
}

fn default_test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string)
        .unwrap_or_else(|| format!("<unnamed test in process {}>", std::process::id()))
}

/// Claims a token no other running test holds: the first free candidate derived from the test's
/// name and seed, held as an advisory lock on the engine's control connection.
async fn claim_token(server: &'static Server, name: &str, base_seed: u64) -> Result<String> {
    let name = name.to_string();
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                for attempt in 0..1000 {
                    let token = token_for(&name, base_seed, attempt);
                    // A token another test of this process holds is taken: the session lock is
                    // re-entrant and would be granted again.
                    let held = engine::Held::Token(token.clone());
                    if engine::is_held(&held) {
                        continue;
                    }
                    if super::lock::try_lock_on(
                        conn,
                        &format!("token:{token}"),
                        super::lock::LockMode::Exclusive,
                    )
                    .await?
                    {
                        engine::hold(held);
                        return Ok(token);
                    }
                }
                Err(Error::Config(
                    "could not find a free test token after 1000 candidates".into(),
                ))
            })
        })
        .await
}

async fn release_token(server: &'static Server, token: String) {
    let _ = engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let released = super::lock::unlock_on(
                    conn,
                    &format!("token:{token}"),
                    super::lock::LockMode::Exclusive,
                )
                .await;
                engine::let_go(&engine::Held::Token(token));
                released
            })
        })
        .await;
}

/// What a strategy keeps for the end of the test.
#[derive(Debug)]
enum Backend {
    Rollback {
        rp: Arc<RollbackPool>,
        state: Arc<RollbackState>,
        key: String,
    },
    Truncate {
        lease: Lease,
        pool: SharedPool,
        key: String,
    },
    Template {
        database: String,
        test: String,
        /// Connection budget for the test's pool, given back when the test ends.
        budget: super::budget::Reservation,
    },
    Namespace {
        pool: SharedPool,
        key: String,
        token: String,
        keep_rows: bool,
        /// Schema mode: the test's schema, dropped after it.
        schema: Option<String>,
    },
}

/// A test's database state: the pool for the code under test, the strategy that isolates it, and
/// the test context its factories use.
///
/// Get one from `#[seedbed::test]` (a test taking `db: TestDb`) or from [`Isolation::acquire`].
/// End it with [`finish`](Self::finish); a `TestDb` dropped without it (a panicking test in a
/// custom harness) is cleaned all the same: Rollback's transaction dies with its connection, and
/// a Truncate database is emptied before its next use.
#[derive(Debug)]
pub struct TestDb {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    strategy: Strategy,
    pool: PgPool,
    ctx: Arc<TestContext>,
    database: String,
    server: &'static Server,
    backend: std::sync::Mutex<Option<Backend>>,
    token_claim: std::sync::Mutex<Option<String>>,
    reset_sequences: bool,
    /// The test's database was kept for inspection (a failed test under Template).
    kept: std::sync::Mutex<bool>,
}

/// How a test ended, for [`TestDb::finish_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The test passed.
    Passed,
    /// The test failed or panicked.
    Failed,
}

impl TestDb {
    /// A pool for the code under test (a cheap clone).
    pub fn pool(&self) -> PgPool {
        self.inner.pool.clone()
    }

    /// The strategy isolating this test.
    pub fn strategy(&self) -> Strategy {
        self.inner.strategy
    }

    /// The test's token (see [`TestContext`]).
    pub fn token(&self) -> &str {
        self.inner.ctx.token()
    }

    /// The test context: name, seed, token, sequences.
    pub fn context(&self) -> &Arc<TestContext> {
        &self.inner.ctx
    }

    /// The name of the database the test runs on.
    pub fn database(&self) -> &str {
        &self.inner.database
    }

    /// A URL of the test's database where it has one of its own (Truncate, Template); `None`
    /// under Rollback, whose database is shared and whose data only the test's connection sees.
    pub fn url(&self) -> Option<String> {
        let url = self.inner.server.url_for(&self.inner.database);
        match self.inner.strategy {
            Strategy::Rollback => None,
            // Connections made from it carry the token, as db.pool()'s do.
            Strategy::Namespace => {
                let sep = if url.contains('?') { '&' } else { '?' };
                Some(format!(
                    "{url}{sep}options=-c%20{}%3D{}",
                    super::namespace::TOKEN_SETTING,
                    self.inner.ctx.token()
                ))
            }
            _ => Some(url),
        }
    }

    /// Whether the test's database was kept for inspection (Template, after a failure): its URL
    /// is [`url`](Self::url), and `seedbed sweep --kept` removes it.
    pub fn kept(&self) -> bool {
        *self
            .inner
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connection options for the test's database (to build a pool of one's own).
    pub fn connect_options(&self) -> PgConnectOptions {
        self.inner.pool.connect_options().as_ref().clone()
    }

    /// A second handle on the same test database, for the harness that finishes it.
    pub(crate) fn handle(&self) -> TestDb {
        TestDb {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Ends a passing test: checks what the strategy could not contain, and cleans up.
    pub async fn finish(self) -> Result<()> {
        self.finish_with(Outcome::Passed).await
    }

    /// Ends the test. An error means the isolation was broken (the test must fail) or cleanup
    /// failed.
    pub async fn finish_with(self, outcome: Outcome) -> Result<()> {
        let result = self.finish_inner(outcome).await;
        let token = self
            .inner
            .token_claim
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(token) = token {
            // Nothing waits for it: a test claiming the same token meanwhile takes the next.
            let server = self.inner.server;
            engine::spawn_detached(async move { release_token(server, token).await });
        }
        result
    }

    async fn finish_inner(&self, outcome: Outcome) -> Result<()> {
        let backend = self
            .inner
            .backend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(backend) = backend else {
            return Ok(());
        };
        let inner = &self.inner;
        match backend {
            Backend::Rollback { rp, state, key } => {
                let server = inner.server;
                let (violation, reusable) =
                    rp.finish(&state, |pid| is_listening(server, pid)).await?;
                if reusable {
                    ROLLBACK_POOLS.put(&key, rp);
                } else {
                    rp.close().await;
                }
                match violation {
                    None => Ok(()),
                    Some(v) => {
                        // Whatever escaped the test's transaction is removed.
                        if matches!(
                            v,
                            Violation::TransactionEnded | Violation::ConnectionReplaced
                        ) {
                            clean_shared(server, &inner.database).await?;
                        }
                        Err(Error::Isolation {
                            strategy: inner.strategy,
                            message: v.explain().to_string(),
                        })
                    }
                }
            }
            Backend::Truncate {
                mut lease,
                pool,
                key,
            } => {
                // Once the test's connections are back, their sessions are reset while the
                // database is emptied.
                let Some(conns) = pool.all_connections().await else {
                    pool.discard().await;
                    truncate::clean(&mut lease, inner.reset_sequences).await?;
                    return Ok(());
                };
                let (recycled, cleaned) = tokio::join!(
                    pool.recycle(conns, &key, None),
                    truncate::clean(&mut lease, inner.reset_sequences)
                );
                recycled.and(cleaned.map(|_| ()))
            }
            Backend::Namespace {
                pool,
                key,
                token: _,
                keep_rows: _,
                schema: Some(schema),
            } => {
                let recycled = match pool.all_connections().await {
                    Some(conns) => pool.recycle(conns, &key, None).await,
                    None => {
                        pool.discard().await;
                        Ok(())
                    }
                };
                super::schemas::release(inner.server, &inner.database, &schema);
                recycled
            }
            Backend::Namespace {
                pool,
                key,
                token,
                keep_rows,
                schema: None,
            } => {
                // Once the test's connections are back (their work committed), its rows go.
                let Some(conns) = pool.all_connections().await else {
                    pool.discard().await;
                    return Err(Error::Isolation {
                        strategy: inner.strategy,
                        message: "a connection of the test's pool did not come back; its rows \
                                  stay until `seedbed sweep`"
                            .into(),
                    });
                };
                // The rows go (or their journal, with cleanup = "none") in the same round trip
                // as the sessions' reset.
                let statement = if keep_rows {
                    super::namespace::forget_statement(&token)
                } else {
                    super::namespace::clean_statement(&token)
                };
                pool.recycle(conns, &key, Some(statement)).await
            }
            Backend::Template {
                database,
                test,
                budget,
            } => {
                let _ = tokio::time::timeout(Duration::from_secs(5), inner.pool.close()).await;
                drop(budget);
                let passed = outcome == Outcome::Passed;
                if !passed {
                    *inner
                        .kept
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
                }
                template::release(inner.server, &database, passed, &test).await
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let token = self
            .token_claim
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(token) = token {
            let server = self.server;
            engine::spawn_detached(async move { release_token(server, token).await });
        }
        // A Template clone not finished (the test panicked in a harness of its own) is kept,
        // as for a failed test. The other backends' own drops do the rest: Rollback's
        // connection closes with its pool, and a Truncate lease not cleaned is marked to be
        // cleaned before its next use.
        let backend = self
            .backend
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match backend {
            Some(Backend::Template { database, test, .. }) => {
                let server = self.server;
                engine::spawn_detached(async move {
                    let _ = template::release(server, &database, false, &test).await;
                });
            }
            Some(Backend::Namespace {
                schema: Some(schema),
                ..
            }) => super::schemas::release(self.server, &self.database, &schema),
            _ => {}
        }
    }
}

/// Whether the backend `pid` last ran LISTEN (seen from the control connection).
async fn is_listening(server: &'static Server, pid: u32) -> Result<bool> {
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let pid = i32::try_from(pid).unwrap_or_default();
                let query: Option<String> =
                    sqlx::query_scalar("SELECT query FROM pg_stat_activity WHERE pid = $1")
                        .bind(pid)
                        .fetch_optional(conn)
                        .await
                        .map_err(Error::db("looking at the test's connection"))?;
                Ok(query.is_some_and(|q| {
                    let q = q.trim_start().to_ascii_uppercase();
                    q.starts_with("LISTEN") || q.starts_with("UNLISTEN")
                }))
            })
        })
        .await
}

/// Empties a shared database after code under test committed into it.
async fn clean_shared(server: &'static Server, database: &str) -> Result<()> {
    let options = server.database_options(database);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
        .await
        .map_err(Error::db(format!("connecting to {database} to clean it")))?;
    let result = if cleaner::is_prepared(&mut conn).await? {
        match cleaner::CleaningPlan::load(&mut conn).await {
            Ok(plan) => cleaner::clean(&mut conn, &plan, false).await.map(|_| ()),
            Err(e) => Err(e),
        }
    } else {
        Err(Error::Config(format!(
            "database {database} was not created by seedbed, so seedbed cannot remove what the \
             test committed into it"
        )))
    };
    let _ = sqlx::Connection::close(conn).await;
    result
}
