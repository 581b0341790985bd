//! [`Isolation`], the builder that acquires a [`TestDb`], and the `TestDb` handle a test works
//! with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

use super::engine::{self, KeyedOnce};
use super::lock::{self, LockMode};
use super::migrations::Migrations;
use super::rollback::{RollbackPool, RollbackState, Started, TokenClaim, Violation};
use super::truncate::{self, Lease};
use super::{cleaner, marker, migrated, template};
use crate::context::{TestContext, token_for};
use crate::error::{Error, Result};
use crate::server::Server;
use crate::sql::quote_literal;
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
        // Not connected to yet: the first connection the strategy needs reaches it.
        let server = Server::get().await?;
        let name = self.test_name.clone().unwrap_or_else(default_test_name);
        let ctx_builder = TestContext::builder(&name).shares_database(strategy.shares_database());
        let ctx_builder = match self.seed {
            Some(seed) => ctx_builder.seed(seed),
            None => ctx_builder,
        };
        let base_seed = self.seed.unwrap_or_else(crate::context::process_base_seed);
        // Boxed: each strategy's future is large in a debug build, and a test thread's stack
        // holds the harness's future.
        let acquired = match strategy {
            Strategy::Rollback => Box::pin(self.acquire_rollback(server, &name, base_seed)).await?,
            Strategy::Truncate => Box::pin(self.acquire_truncate(server, &name)).await?,
            Strategy::Template => Box::pin(self.acquire_template(server, &name)).await?,
            Strategy::Namespace => {
                Box::pin(self.acquire_namespace(server, &name, base_seed)).await?
            }
        };
        let ctx_builder = match &acquired.token {
            Some(token) => ctx_builder.token(token.clone()),
            None => ctx_builder,
        };
        Ok(TestDb {
            inner: Arc::new(Inner {
                strategy,
                pool: acquired.pool,
                ctx: Arc::new(ctx_builder.build()),
                database: acquired.database,
                server,
                backend: std::sync::Mutex::new(Some(acquired.backend)),
                token_claim: std::sync::Mutex::new(acquired.token_claim),
                reset_sequences: self.reset_sequences,
                kept: std::sync::Mutex::new(false),
            }),
        })
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

    /// Rollback: the test's one connection, straight to the migrated database (the process's only
    /// connection under `cargo nextest`). Its first statement checks the database's marker and
    /// claims the test's token there; the database is built (or waited for) only when it is
    /// missing or not ready.
    async fn acquire_rollback(
        &self,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired> {
        let app_name = application_name(test_name);
        let ours = self.database.is_none();
        let database = match &self.database {
            Some(db) => db.clone(),
            None => self.build_name(&self.build("rollback")).await?,
        };
        let options = self.connect_options(server, &database);
        let key = format!(
            "{database}|{:?}|{:?}|{:?}",
            self.statement_timeout, self.lock_timeout, self.acquire_timeout
        );
        static VERIFIED: engine::KeySet = engine::KeySet::new();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let rp = match ROLLBACK_POOLS.take(&key) {
                Some(rp) => rp,
                None => {
                    super::budget::on_shortage(evict_kept_pools);
                    let reservation = super::budget::reserve_one(server).await?;
                    let opened = engine::run(RollbackPool::open(
                        server,
                        options.clone(),
                        self.acquire_timeout,
                    ))
                    .await;
                    match opened {
                        Ok(mut rp) => {
                            rp.budget = Some(reservation);
                            Arc::new(rp)
                        }
                        Err(e) if ours && attempts < 3 && migrated::is_missing_database(&e) => {
                            drop(reservation);
                            self.migrated(server, "rollback").await?;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            let check = ours && !VERIFIED.contains(&database);
            let claim = TokenClaim {
                test: test_name,
                base_seed,
            };
            match rp.start(&app_name, &self.fixtures, &claim, check).await {
                Ok(Started::Running { state, token }) => {
                    if check {
                        VERIFIED.insert(&database);
                    }
                    let pool = rp.pool.clone();
                    return Ok(Acquired {
                        database,
                        pool,
                        backend: Backend::Rollback { rp, state, key },
                        token: Some(token),
                        token_claim: None,
                    });
                }
                Ok(Started::NotReady) if attempts < 3 => {
                    // Being built by another process, or left half-built: wait for it, or build.
                    ROLLBACK_POOLS.put(&key, rp);
                    self.migrated(server, "rollback").await?;
                }
                Ok(Started::NotReady) => {
                    ROLLBACK_POOLS.put(&key, rp);
                    return Err(Error::Config(format!(
                        "database {database} is still not ready after it was built: another \
                         seedbed is rebuilding it; run the tests again"
                    )));
                }
                Err(e) => {
                    rp.close().await;
                    // A kept pool whose connection died (a restarted server) is replaced.
                    if attempts >= 3 || !engine::is_connection_error(&e) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Truncate: a slot of the migrated database (claimed on the control connection), and a pool
    /// to it that opens one connection now and more as the test asks.
    async fn acquire_truncate(&self, server: &'static Server, test_name: &str) -> Result<Acquired> {
        let app_name = application_name(test_name);
        // Every connection of the pool carries the test's name.
        let set = format!("SET application_name = {}", quote_literal(&app_name));
        let named = self.database.is_some();
        let (lease, shared, key) = if engine::adopted() {
            self.truncate_slot_for_one_test(server, &set).await?
        } else {
            let lease = match &self.database {
                Some(db) => self.own_database_lease(server, db).await?,
                None => {
                    let base = self.build_name(&self.build("truncate")).await?;
                    let ready = Box::pin(self.migrated(server, "truncate"));
                    truncate::lease(server, &base, ready).await?
                }
            };
            let database = lease.slot.database.clone();
            let key = format!(
                "{database}|{:?}|{:?}|{}",
                self.statement_timeout, self.lock_timeout, self.max_connections
            );
            let shared = SharedPool::for_test(
                server,
                &key,
                &database,
                || self.connect_options(server, &database),
                self.max_connections,
                &set,
            )
            .await?;
            (lease, shared, key)
        };
        let database = lease.slot.database.clone();
        let started = async {
            if lease.needs_clean() || self.reset_sequences {
                let mut conn = shared
                    .pool
                    .acquire()
                    .await
                    .map_err(Error::db(format!("connecting to {database}")))?;
                let cleaned =
                    truncate::clean(&lease, &mut conn, self.reset_sequences, named, false).await;
                // Back before the test's first query, which would otherwise open another.
                conn.return_to_pool().await;
                cleaned?;
            }
            lease.begin_test();
            run_fixtures(&shared.pool, &self.fixtures).await
        }
        .await;
        match started {
            Ok(()) => Ok(Acquired {
                database,
                pool: shared.pool.clone(),
                backend: Backend::Truncate {
                    lease,
                    pool: shared,
                    key,
                    named,
                },
                token: None,
                token_claim: None,
            }),
            Err(e) => {
                // The lease goes back not known clean: the next test empties it first.
                shared.discard().await;
                Err(e)
            }
        }
    }

    /// Truncate in a process that runs one test: the lease is taken by the test's own first
    /// connection, with its session settings, in one round trip, on the slot nextest's slot for
    /// the test points at; other slots are looked up (on the control connection) only when that
    /// one is taken or missing, and a new one is made only when all are taken.
    async fn truncate_slot_for_one_test(
        &self,
        server: &'static Server,
        set: &str,
    ) -> Result<(Lease, SharedPool, String)> {
        let mut wait = truncate::SlotWait::new();
        let Some(db) = &self.database else {
            let base = self.build_name(&self.build("truncate")).await?;
            let preferred = truncate::preferred_slot(&base);
            loop {
                // The slot nextest's slot points at, without asking anyone; made if it is missing.
                let mut missing = false;
                if let Some(name) = &preferred {
                    match self.claim_slot_here(server, name, &base, set).await? {
                        Claim::Taken(claimed) => return Ok(claimed),
                        Claim::Missing => missing = true,
                        Claim::Held => {}
                    }
                }
                if missing {
                    self.migrated(server, "truncate").await?;
                    if let Some(name) =
                        truncate::create_slot(server, &base, preferred.clone()).await?
                        && let Claim::Taken(claimed) =
                            self.claim_slot_here(server, &name, &base, set).await?
                    {
                        return Ok(claimed);
                    }
                }
                // The others, looked up on the control connection, then a new one.
                let (others, _) = truncate::candidates(server, &base).await?;
                for name in others.iter().filter(|n| Some(*n) != preferred.as_ref()) {
                    if let Claim::Taken(claimed) =
                        self.claim_slot_here(server, name, &base, set).await?
                    {
                        return Ok(claimed);
                    }
                }
                self.migrated(server, "truncate").await?;
                if let Some(name) = truncate::create_slot(server, &base, None).await?
                    && let Claim::Taken(claimed) =
                        self.claim_slot_here(server, &name, &base, set).await?
                {
                    return Ok(claimed);
                }
                wait.wait(&format!("a Truncate database of {base}")).await?;
            }
        };
        loop {
            match self.claim_slot_here(server, db, db, set).await? {
                Claim::Taken(claimed) => return Ok(claimed),
                Claim::Missing => {
                    return Err(Error::Config(format!(
                        "database `{db}`, named for Truncate with .database(…), does not exist"
                    )));
                }
                Claim::Held => wait.wait(&format!("database {db}")).await?,
            }
        }
    }

    /// Opens the test's pool to `name` and takes its lease on the first connection, with the
    /// test's session settings `set`, in one round trip.
    async fn claim_slot_here(
        &self,
        server: &'static Server,
        name: &str,
        base: &str,
        set: &str,
    ) -> Result<Claim> {
        let slot = self.database.is_none();
        let options = self.connect_options(server, name);
        let shared =
            match engine::run(SharedPool::open(server, options, self.max_connections, 1)).await {
                Ok(shared) => shared,
                Err(e) if migrated::is_missing_database(&e) => return Ok(Claim::Missing),
                Err(e) => return Err(e),
            };
        let claimed = async {
            let mut conn = shared
                .pool
                .acquire()
                .await
                .map_err(Error::db(format!("connecting to {name}")))?;
            // A slot's cleaning plan comes in the same round trip.
            let plan = if slot {
                format!("; {}", cleaner::CleaningPlan::query())
            } else {
                String::new()
            };
            let sql = format!("{set}; {}{plan}", truncate::claim_sql(slot));
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *conn)
                .await
                .map_err(Error::db(format!("taking the lease of {name}")));
            conn.return_to_pool().await;
            let rows = rows?;
            let (row, plan_rows) = rows
                .split_first()
                .ok_or_else(|| Error::Config(format!("taking the lease of {name} said nothing")))?;
            let plan = if slot {
                Some(cleaner::CleaningPlan::from_rows(plan_rows)?.0)
            } else {
                None
            };
            Ok::<_, Error>((truncate::read_claim(row)?, plan))
        }
        .await;
        let (claimed, plan) = match claimed {
            Ok(c) => c,
            Err(e) => {
                shared.discard().await;
                return Err(e);
            }
        };
        let refused = if slot && !truncate::is_slot_of(&claimed, base) {
            Some(truncate::not_a_slot(name, base))
        } else if !slot && claimed.marker.is_none() && !self.allow_unmarked {
            Some(refuse_unmarked_truncate(name))
        } else {
            None
        };
        if let Some(e) = refused {
            shared.discard().await;
            return Err(e);
        }
        if !claimed.got {
            shared.discard().await;
            return Ok(Claim::Held);
        }
        shared.set_session(Some(set));
        let lease = truncate::held_by_test(name, base, claimed.emptied, plan);
        let key = format!("{name}|held-by-test");
        Ok(Claim::Taken((lease, shared, key)))
    }

    /// Template: a clone claimed on the control connection (a spare, else cloned now), with the
    /// first run's sweep started beside it; the test's pool opens connections as it asks.
    async fn acquire_template(&self, server: &'static Server, test_name: &str) -> Result<Acquired> {
        if self.database.is_some() {
            return Err(Error::Config(
                "Template clones the databases it makes; it cannot use a database named with \
                 .database(…): use rollback or truncate for that"
                    .into(),
            ));
        }
        let app_name = application_name(test_name);
        let build = self.build("tpl");
        let template = self.build_name(&build).await?;
        let spares = match self.spares {
            Some(n) => n,
            None => template::pool_size()?,
        };
        let recycle = template::recycles()?;
        // A process that runs one test opens its connection to the clone its test slot gave back
        // last while it claims it (and claims that one first): the two connections open at once.
        // A process that runs many claims first a spare it has a connection open to.
        let (preferred, mut opened_ahead) = if engine::adopted() {
            (template::preferred_clone(server, &template), None)
        } else {
            match template::take_prepared_spare(&template) {
                Some((name, p)) => (Some(name), Some(p)),
                None => (None, None),
            }
        };
        let ahead = preferred
            .as_ref()
            .filter(|_| engine::adopted())
            .map(|name| {
                let options = self
                    .connect_options(server, name)
                    .application_name(&app_name);
                budgeted_pool(server, self.max_connections).connect_lazy_with(options)
            });
        let claiming = template::acquire(
            server,
            &template,
            test_name,
            spares,
            Box::pin(self.built(server, build)),
            preferred.clone(),
        );
        let (claimed, opened) = match &ahead {
            Some(pool) => {
                // While the claim runs, the connection also prepares what emptying the clone at
                // the test's end will ask first.
                let opening = async {
                    let mut conn = pool.acquire().await?;
                    if recycle {
                        cleaner::warm_for_recycle(&mut conn).await;
                    }
                    Ok::<_, sqlx::Error>(conn)
                };
                let (claimed, opened) = tokio::join!(claiming, opening);
                (claimed, opened.ok())
            }
            None => (claiming.await, None),
        };
        let ahead = match (ahead, opened) {
            (Some(pool), Some(mut conn))
                if claimed
                    .as_ref()
                    .is_ok_and(|(db, _)| Some(db) == preferred.as_ref()) =>
            {
                conn.return_to_pool().await;
                Some(pool)
            }
            (Some(pool), conn) => {
                // The connection goes back before the pool closes (close waits for it).
                drop(conn);
                pool.close().await;
                None
            }
            (None, _) => None,
        };
        // The pool opened ahead to the spare this process preferred serves the test if the
        // claim gave that spare; else it goes.
        let got_preferred = matches!((&claimed, &preferred), (Ok((db, _)), Some(p)) if db == p);
        if !got_preferred && let Some(p) = opened_ahead.take() {
            template::discard_ahead(p).await;
        }
        let (database, _handover) = claimed?;
        // A pool this process opened ahead to its spare counts its connections against a
        // reservation of the test's, made at once for all it may open.
        let mut budget = None;
        let pool = match (
            ahead,
            opened_ahead.or_else(|| template::take_prepared(&database)),
        ) {
            (Some(pool), _) => pool,
            // This process opened the spare's pool ahead of time: the test starts with its
            // connection open, once it carries the test's settings.
            (None, Some(p)) if self.max_connections == template::DEFAULT_POOL_CONNECTIONS => {
                let set = format!(
                    "SET application_name = {}; SET statement_timeout = {}; \
                     SET lock_timeout = {}",
                    quote_literal(&app_name),
                    quote_literal(&millis(self.statement_timeout)),
                    quote_literal(&millis(self.lock_timeout)),
                );
                // Applied by the pool's next checkout, the test's first query.
                p.apply(set);
                drop(p.budget);
                budget = Some(super::budget::reserve(server, self.max_connections as usize).await?);
                p.pool
            }
            (None, other) => {
                if let Some(p) = other {
                    template::discard_ahead(p).await;
                }
                let options = self
                    .connect_options(server, &database)
                    .application_name(&app_name);
                budgeted_pool(server, self.max_connections).connect_lazy_with(options)
            }
        };
        Ok(Acquired {
            database: database.clone(),
            pool,
            backend: Backend::Template {
                template,
                database,
                test: test_name.to_string(),
                spares,
                recycle,
                _budget: budget,
            },
            token: None,
            token_claim: None,
        })
    }

    /// Namespace: data mode ([`Self::namespace_data`]) or a schema per test
    /// ([`Self::namespace_schema`]).
    async fn acquire_namespace(
        &self,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired> {
        if self.namespace_mode == NamespaceMode::Schema {
            if self.database.is_some() {
                return Err(Error::Config(
                    "namespace = \"schema\" makes its schemas in a database of its own; it cannot \
                     use a database named with .database(…)"
                        .into(),
                ));
            }
            return self.namespace_schema(server, test_name, base_seed).await;
        }
        self.namespace_data(server, test_name, base_seed).await
    }

    /// Namespace's data mode: the test's first connection to the shared database takes the
    /// test's token (a session advisory lock there, which the journal's sweeper looks for), reads
    /// the database's marker and records the run, with the session's settings, in one round
    /// trip; no other connection is needed. The first test of a run sweeps the rows of tests
    /// whose process died.
    async fn namespace_data(
        &self,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired> {
        let app_name = application_name(test_name);
        let database = match &self.database {
            Some(db) => db.clone(),
            None => self.build_name(&self.build("namespace")).await?,
        };
        let key = format!(
            "{database}|{:?}|{:?}|{}",
            self.statement_timeout, self.lock_timeout, self.max_connections
        );
        let set_for = |token: &str| {
            format!(
                "SET application_name = {}; SET {} = {}",
                quote_literal(&app_name),
                super::namespace::TOKEN_SETTING,
                quote_literal(token)
            )
        };
        let mut attempts = 0;
        let (shared, claimed, token) = loop {
            attempts += 1;
            let token = token_for(test_name, base_seed, 0);
            let claim = super::namespace::claim_statement(&token, self.database.is_some());
            let opened = SharedPool::for_test_claiming(
                server,
                &key,
                &database,
                || self.connect_options(server, &database),
                self.max_connections,
                &set_for(&token),
                &claim,
            )
            .await;
            let (shared, row) = match opened {
                Ok(opened) => opened,
                Err(e) if attempts < 3 && super::namespace::is_unprepared(&e) => {
                    match &self.database {
                        Some(db) => self.own_namespace_database(server, db).await?,
                        None => {
                            self.namespace_database(server).await?;
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let claimed = super::namespace::read_claim(&row)?;
            let ours = claimed.ready;
            let refused = match &self.database {
                Some(db) if claimed.marker.is_none() && !self.allow_unmarked => {
                    Some(refuse_unmarked_namespace(db))
                }
                None if !ours => Some(Error::Config(format!(
                    "database {database} is not a ready Namespace database of seedbed's"
                ))),
                _ => None,
            };
            match refused {
                None => break (shared, claimed, token),
                Some(e) => {
                    shared.discard().await;
                    if attempts >= 3 || self.database.is_some() {
                        return Err(e);
                    }
                    // Being built by another process, or left half-built: wait for it, or build.
                    self.namespace_database(server).await?;
                }
            }
        };
        let started = async {
            let mut conn = shared
                .pool
                .acquire()
                .await
                .map_err(Error::db(format!("connecting to {database}")))?;
            let token = if claimed.got {
                Ok(token)
            } else {
                super::namespace::claim_next(&mut conn, test_name, base_seed).await
            };
            let swept = match &token {
                Ok(_) if claimed.first_of_run => {
                    super::namespace::sweep_run(&mut conn, &database).await
                }
                _ => Ok(()),
            };
            conn.return_to_pool().await;
            let token = token?;
            swept?;
            if !claimed.got && !shared.on_every_connection(&set_for(&token)).await {
                return Err(Error::Config(format!(
                    "a connection to {database} failed as the test started"
                )));
            }
            run_fixtures(&shared.pool, &self.fixtures).await?;
            Ok(token)
        }
        .await;
        match started {
            Ok(token) => Ok(Acquired {
                database,
                pool: shared.pool.clone(),
                backend: Backend::Namespace {
                    pool: shared,
                    key,
                    token: token.clone(),
                    keep_rows: self.keep_rows,
                    schema: None,
                },
                token: Some(token),
                token_claim: None,
            }),
            Err(e) => {
                // The token's lock goes with the pool's connections.
                shared.discard().await;
                Err(e)
            }
        }
    }

    /// Namespace's schema mode: the token claimed on the control connection, a schema from the
    /// pool of the schemas database, and a pool whose connections reach it through `search_path`.
    async fn namespace_schema(
        &self,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired> {
        let app_name = application_name(test_name);
        // The token (on the control connection) and the schema (on the schemas database's
        // holder) are claimed at once.
        let schema = async {
            let migrations = self.migrations_resolved().await?;
            let database = super::schemas::database(server, &migrations).await?;
            let schema = super::schemas::acquire(server, &database, migrations).await?;
            Ok::<_, Error>((database, schema))
        };
        let (token, schema) = tokio::join!(claim_token(server, test_name, base_seed), schema);
        let (token, (database, schema)) = match (token, schema) {
            (Ok(token), Ok(schema)) => (token, schema),
            (Ok(token), Err(e)) => {
                release_token(server, token).await;
                return Err(e);
            }
            (Err(e), Ok((database, schema))) => {
                super::schemas::release(server, &database, &schema);
                return Err(e);
            }
            (Err(e), Err(_)) => return Err(e),
        };
        let acquired = async {
            let key = format!(
                "{database}|{:?}|{:?}|{}",
                self.statement_timeout, self.lock_timeout, self.max_connections
            );
            // Every connection of the pool carries the test's name, token and schema.
            let set = format!(
                "SET application_name = {}; SET {} = {}; {}",
                quote_literal(&app_name),
                super::namespace::TOKEN_SETTING,
                quote_literal(&token),
                super::schemas::search_path(&schema)
            );
            let shared = SharedPool::for_test(
                server,
                &key,
                &database,
                || self.connect_options(server, &database),
                self.max_connections,
                &set,
            )
            .await;
            let shared = match shared {
                Ok(shared) => shared,
                Err(e) => {
                    super::schemas::release(server, &database, &schema);
                    return Err(e);
                }
            };
            if let Err(e) = run_fixtures(&shared.pool, &self.fixtures).await {
                shared.discard().await;
                super::schemas::release(server, &database, &schema);
                return Err(e);
            }
            Ok((database, schema, shared, key))
        }
        .await;
        match acquired {
            Ok((database, schema, shared, key)) => Ok(Acquired {
                database,
                pool: shared.pool.clone(),
                backend: Backend::Namespace {
                    pool: shared,
                    key,
                    token: token.clone(),
                    keep_rows: self.keep_rows,
                    schema: Some(schema),
                },
                token: Some(token.clone()),
                token_claim: Some(token),
            }),
            Err(e) => {
                release_token(server, token).await;
                Err(e)
            }
        }
    }

    /// What the migrated database for `purpose` is built with.
    fn build(&self, purpose: &'static str) -> migrated::Build<'_> {
        match purpose {
            // Rollback empties it with the cleaner after what escaped a test.
            "rollback" => migrated::Build {
                purpose,
                prepare: true,
                track: false,
                fixtures: &[],
                seal: false,
                journal: false,
            },
            // Truncate empties its copies after every test: their tables note what was written.
            "truncate" => migrated::Build {
                purpose,
                prepare: true,
                track: true,
                fixtures: &[],
                seal: false,
                journal: false,
            },
            "namespace" => migrated::Build {
                purpose,
                prepare: false,
                track: false,
                fixtures: &[],
                seal: false,
                journal: true,
            },
            // A template's clones are emptied and given to the next test when it changed no
            // schema (see template::recycle).
            _ => migrated::Build::template(&self.fixtures),
        }
    }

    /// The name of the database `build` describes for these migrations (nothing is asked of the
    /// server).
    async fn build_name(&self, build: &migrated::Build<'_>) -> Result<String> {
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
    async fn built(&self, server: &'static Server, build: migrated::Build<'_>) -> Result<String> {
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
                                marker::read(conn, &name).await?.filter(migrated::is_ready)
                            {
                                return Ok(Some(mark));
                            }
                            let lock = migrated::build_lock_name(&name);
                            lock::lock_on(conn, &lock, LockMode::Shared, migrated::BUILD_WAIT)
                                .await?;
                            lock::unlock_on(conn, &lock, LockMode::Shared).await?;
                            marker::read(conn, &name).await
                        })
                    })
                    .await?;
                if let Some(mark) = mark.filter(migrated::is_ready) {
                    migrated::remember_measured(&key, &mark);
                    return Ok(key.clone());
                }
                let migrations = self.migrations_resolved().await?;
                Ok(migrated::ensure_build(server, &migrations, &build)
                    .await?
                    .name)
            })
            .await
    }

    /// The shared database of Namespace tests, with its journal.
    async fn namespace_database(&self, server: &'static Server) -> Result<String> {
        self.built(server, self.build("namespace")).await
    }

    /// The migrated database for `purpose`, prepared for the cleaner (Rollback, Truncate).
    async fn migrated(&self, server: &'static Server, purpose: &'static str) -> Result<String> {
        self.built(server, self.build(purpose)).await
    }

    /// Namespace on a database the user named: its tables get the journal's triggers, so only
    /// with the user's consent for a database seedbed did not create (its marker is read on the
    /// control connection). A database an earlier seedbed prepared gets what this one adds.
    async fn own_namespace_database(&self, server: &'static Server, db: &str) -> Result<()> {
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
            if super::namespace::is_prepared(&mut conn).await? {
                super::namespace::upgrade(&mut conn).await
            } else {
                let schema = cleaner::read_schema(&mut conn).await?;
                super::namespace::prepare(&mut conn, &schema).await
            }
        }
        .await;
        let _ = sqlx::Connection::close(conn).await;
        result
    }

    /// Truncate on a database the user named: only if seedbed created it, or the user allowed it.
    async fn own_database_lease(&self, server: &'static Server, db: &str) -> Result<Lease> {
        let name = db.to_string();
        let mark = engine::control()
            .with(server, move |conn| {
                Box::pin(async move { marker::read(conn, &name).await })
            })
            .await?;
        if mark.is_none() && !self.allow_unmarked {
            return Err(refuse_unmarked_truncate(db));
        }
        truncate::lease_existing(server, db).await
    }
}

/// The error for Namespace on a database seedbed did not create, without the user's consent.
fn refuse_unmarked_namespace(db: &str) -> Error {
    Error::Config(format!(
        "refusing to use Namespace on database `{db}`: seedbed did not create it, and Namespace \
         adds a journal trigger to each of its tables. Let seedbed create its test databases \
         (leave out .database(…)), or allow it with .allow_unmarked_database(true)"
    ))
}

/// The error for Truncate on a database seedbed did not create, without the user's consent.
fn refuse_unmarked_truncate(db: &str) -> Error {
    Error::Config(format!(
        "refusing to use Truncate on database `{db}`: seedbed did not create it, and Truncate \
         deletes every row in it after each test. Let seedbed create its test databases (leave \
         out .database(…)), or, if `{db}` holds nothing you want to keep, allow it with \
         .allow_unmarked_database(true)"
    ))
}

/// How taking a Truncate database's lease on the test's own connection went.
enum Claim {
    /// Taken: the lease, the test's pool and its key.
    Taken((Lease, SharedPool, String)),
    /// Another test holds it.
    Held,
    /// There is no such database.
    Missing,
}

/// What a strategy gives a test when it starts.
struct Acquired {
    database: String,
    pool: PgPool,
    backend: Backend,
    /// The token the test's context carries, when it was claimed.
    token: Option<String>,
    /// A token held on the control connection, given back when the test ends.
    token_claim: Option<String>,
}

/// Claims a token no other running test holds, on the control connection (Namespace's schema
/// mode): the first free candidate derived from the test's name and seed.
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
                    let lock = format!("token:{token}");
                    if super::lock::try_lock_on(conn, &lock, super::lock::LockMode::Exclusive)
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

/// Pools kept between the tests of the process, by database and settings.
static ROLLBACK_POOLS: engine::FreeList<Arc<RollbackPool>> = engine::FreeList::new();
static SHARED_POOLS: engine::FreeList<SharedPool> = engine::FreeList::new();

/// How many connections the pools of [`SHARED_POOLS`] open when they are made, by key: as many
/// as a test of that key last held at once, when that was more than the pool had.
static WARM_CONNECTIONS: std::sync::Mutex<Option<std::collections::HashMap<String, usize>>> =
    std::sync::Mutex::new(None);

fn warm_connections(key: &str) -> usize {
    WARM_CONNECTIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .and_then(|warm| warm.get(key).copied())
        .unwrap_or(1)
}

fn remember_warm_connections(key: &str, held: u32) {
    let held = usize::try_from(held).unwrap_or(1);
    let mut warm = WARM_CONNECTIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = warm
        .get_or_insert_with(Default::default)
        .entry(key.to_string())
        .or_insert(1);
    *entry = (*entry).max(held);
}

/// Options of a test's pool whose connections open as the test asks for them, each counted in
/// the connection budget when it opens (the process's free pass first), all given back when the
/// pool closes.
fn budgeted_pool(server: &'static Server, max: u32) -> PgPoolOptions {
    // Held by the hook, so by the pool: the reservations go when the pool does.
    let on_connect = Arc::new(super::budget::PoolBudget::new(max));
    PgPoolOptions::new()
        .max_connections(max.max(1))
        .min_connections(0)
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            let budget = Arc::clone(&on_connect);
            Box::pin(async move {
                server.note_version(conn);
                budget
                    .connection_opened(server)
                    .await
                    .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))
            })
        })
}

/// A pool for the tests of one database, kept between tests.
///
/// It opens one connection when it is made, on the engine runtime (a connection opened during a
/// test would be tied to that test's runtime, which dies with the test), and more only as a test
/// asks for them. A connection opened during a test is closed at its next checkout, and a pool
/// that opened one is closed when the test ends rather than kept, so the next test starts on
/// connections that live on the engine runtime.
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
    budget: Arc<super::budget::PoolBudget>,
    /// The last test's connections on their way back to the pool (see [`keep`](Self::keep)),
    /// which the next test waits for.
    returning: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl SharedPool {
    /// Opens the pool and its first `warm` connections (at least one, at most `max`); call it on
    /// the engine runtime.
    async fn open(
        server: &'static Server,
        options: PgConnectOptions,
        max: u32,
        warm: usize,
    ) -> Result<Self> {
        let recycled_at = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
        let cutoff = Arc::clone(&recycled_at);
        let session: Arc<std::sync::Mutex<Option<String>>> = Arc::new(std::sync::Mutex::new(None));
        let settings = Arc::clone(&session);
        let connections_opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&connections_opened);
        let budget = Arc::new(super::budget::PoolBudget::new(max));
        let on_connect = Arc::clone(&budget);
        let pool = PgPoolOptions::new()
            .max_connections(max.max(1))
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                server.note_version(conn);
                let sql = settings
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let budget = Arc::clone(&on_connect);
                Box::pin(async move {
                    budget
                        .connection_opened(server)
                        .await
                        .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
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
            .connect_lazy_with(options.clone());
        let mut first = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) if !server.reached() && matches!(e, sqlx::Error::Io(_)) => {
                // The process's first connection: wait for the server, or say it is unreachable.
                let conn = server.open(&options).await?;
                let _ = sqlx::Connection::close(conn).await;
                pool.acquire()
                    .await
                    .map_err(Error::db("connecting to the test database"))?
            }
            Err(e) => {
                let database = options.get_database().unwrap_or_default().to_string();
                return Err(Error::db(format!("connecting to {database}"))(e));
            }
        };
        // More connections, as many as the last test on this database held at once: a test
        // that runs two statements back to back through the pool needs a second one while the
        // first goes back (in a task of its own), and one opened during a test cannot be kept.
        let mut more = Vec::new();
        let wanted = warm.min(usize::try_from(max).unwrap_or(usize::MAX)).max(1) - 1;
        for _ in 0..wanted {
            match pool.acquire().await {
                Ok(conn) => more.push(conn),
                Err(_) => break,
            }
        }
        first.return_to_pool().await;
        drop(first);
        for mut conn in more {
            conn.return_to_pool().await;
        }
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
            budget,
            returning: Arc::default(),
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
        let shared = Self::open_new(server, key, options(), max_connections).await?;
        if shared.on_every_connection(set).await {
            return Ok(shared);
        }
        shared.discard().await;
        Err(Error::Config(format!(
            "a connection to {database} failed as the test started"
        )))
    }

    /// A new pool for `key`, opened on the engine runtime with as many connections as a test of
    /// that key last held at once; idle kept pools give way to it when the budget is spent.
    async fn open_new(
        server: &'static Server,
        key: &str,
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self> {
        super::budget::on_shortage(evict_kept_pools);
        engine::run(SharedPool::open(
            server,
            options,
            max_connections,
            warm_connections(key),
        ))
        .await
    }

    /// [`for_test`](Self::for_test), with `claim` run on one connection right after `set`, in
    /// the same round trip; returns the last row `claim` gave.
    async fn for_test_claiming(
        server: &'static Server,
        key: &str,
        database: &str,
        options: impl Fn() -> PgConnectOptions,
        max_connections: u32,
        set: &str,
        claim: &str,
    ) -> Result<(Self, sqlx::postgres::PgRow)> {
        loop {
            let (shared, fresh) = match SHARED_POOLS.take(key) {
                Some(kept) => (kept, false),
                None => (
                    Self::open_new(server, key, options(), max_connections).await?,
                    true,
                ),
            };
            shared.set_session(Some(set));
            let Some(mut conns) = shared.all_connections().await else {
                shared.discard().await;
                return Err(Error::Config(format!(
                    "a connection to {database} did not come back as the test started"
                )));
            };
            let Some(mut first) = conns.pop() else {
                shared.discard().await;
                return Err(Error::Config(format!("no connection to {database}")));
            };
            let sql = format!("{set}; {claim}");
            let (claimed, (rest_ok, rest)) = tokio::join!(
                first.fetch_all(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))),
                Self::on_connections(conns, set)
            );
            first.return_to_pool().await;
            for mut conn in rest {
                conn.return_to_pool().await;
            }
            match claimed {
                Ok(mut rows) if rest_ok => {
                    let row = rows.pop().ok_or_else(|| {
                        Error::Config(format!("starting the test on {database} said nothing"))
                    })?;
                    return Ok((shared, row));
                }
                // A kept pool whose sessions no longer work is replaced by a new one.
                _ if !fresh => shared.discard().await,
                Ok(_) => {
                    shared.discard().await;
                    return Err(Error::Config(format!(
                        "a connection to {database} failed as the test started"
                    )));
                }
                Err(e) => {
                    shared.discard().await;
                    return Err(Error::db(format!("starting the test on {database}"))(e));
                }
            }
        }
    }

    /// Every open connection of the pool, once the test has given them all back (`None` if one
    /// does not come back within 2 s).
    async fn all_connections(&self) -> Option<Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>> {
        let returning = self
            .returning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(returning) = returning {
            let _ = returning.await;
        }
        all_connections(&self.pool).await
    }

    /// Runs `sql` on the given connections at once (one round trip of wall time). Returns
    /// whether it ran on every connection, and the connections.
    async fn on_connections(
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        sql: &str,
    ) -> (bool, Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>) {
        let (failed, conns) = Self::on_connections_failures(conns, sql).await;
        (failed.is_empty(), conns)
    }

    /// Runs `sql` on the given connections at once, as [`on_connections`](Self::on_connections)
    /// does; returns how it failed on each connection where it did (`None` for a task that did
    /// not finish), and the connections.
    async fn on_connections_failures(
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        sql: &str,
    ) -> (
        Vec<Option<sqlx::Error>>,
        Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    ) {
        let mut tasks = tokio::task::JoinSet::new();
        for mut conn in conns {
            let sql = sql.to_string();
            tasks.spawn(async move {
                let done = conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))).await;
                (conn, done.err())
            });
        }
        let mut failed = Vec::new();
        let mut back = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((conn, error)) => {
                    failed.extend(error.map(Some));
                    back.push(conn);
                }
                Err(_) => failed.push(None),
            }
        }
        (failed, back)
    }

    /// Runs `sql` on every connection of the pool (at the start of a test), and on those the
    /// pool opens until the test ends. The connections are back in the pool when it returns, so
    /// the test's first query takes one of them rather than opening another.
    async fn on_every_connection(&self, sql: &str) -> bool {
        self.set_session(Some(sql));
        match self.all_connections().await {
            Some(conns) => {
                let (ok, conns) = Self::on_connections(conns, sql).await;
                for mut conn in conns {
                    conn.return_to_pool().await;
                }
                ok
            }
            None => false,
        }
    }

    /// Resets every session of a test that ended (its settings, listens, temporary tables), then
    /// releases the advisory locks they hold, all in one round trip. `last`, if any, runs on every
    /// connection after its reset and before its locks go, so it must act on one of them alone:
    /// Namespace's cleanup acts on the connection holding the test's token (while it still
    /// holds it). Returns whether every reset worked, the outcome of `last` (the server's error
    /// if it raised one), and the connections.
    async fn reset_sessions(
        &self,
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        last: Option<String>,
    ) -> (
        bool,
        Result<()>,
        Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    ) {
        const RESET: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
                             UNLISTEN *; DISCARD TEMP; DISCARD SEQUENCES";
        const UNLOCK: &str = "SELECT pg_advisory_unlock_all()";
        self.set_session(None);
        if conns.is_empty() {
            return (false, Ok(()), conns);
        }
        // A query string's statements share one transaction unless it says otherwise: `last`
        // commits before the locks go, so nobody takes the test's token while its rows are
        // still there.
        let sql = match &last {
            // Read committed whatever the database's default: a connection that takes the
            // token after its holder let it go must see the holder's deletes, not fail on them.
            Some(last) => {
                format!("{RESET}; BEGIN ISOLATION LEVEL READ COMMITTED; {last}; COMMIT; {UNLOCK}")
            }
            None => format!("{RESET}; {UNLOCK}"),
        };
        let (failed, conns) = Self::on_connections_failures(conns, &sql).await;
        let healthy = failed.is_empty();
        // A connection that broke only makes the pool unfit to keep; an error the server raised
        // (the cleanup's) is the test's.
        let raised = failed
            .into_iter()
            .flatten()
            .find(|e| matches!(e, sqlx::Error::Database(_)));
        match raised {
            Some(e) if last.is_some() => (false, Err(Error::db("ending the test")(e)), conns),
            _ => (healthy, Ok(()), conns),
        }
    }

    /// Resets every session of a test that ended, as [`reset_sessions`](Self::reset_sessions)
    /// does, but leaves its advisory locks: one of them holds the test's lease.
    /// `query`, if any, runs on the first connection after its reset, in the same round trip:
    /// its last row's first column (an array of `int8`) is returned.
    async fn reset_sessions_keeping_locks(
        &self,
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        query: Option<String>,
    ) -> (
        bool,
        Option<Vec<i64>>,
        Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    ) {
        const RESET: &str =
            "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; DISCARD TEMP";
        self.set_session(None);
        let mut conns = conns;
        let (Some(query), Some(mut first)) = (query, conns.pop()) else {
            let (ok, conns) = Self::on_connections(conns, RESET).await;
            return (ok, None, conns);
        };
        let sql = format!("{RESET}; {query}");
        let (read, (rest_ok, mut rest)) = tokio::join!(
            first.fetch_all(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))),
            Self::on_connections(conns, RESET)
        );
        let read = read.ok().and_then(|mut rows| rows.pop()).and_then(|row| {
            use sqlx::Row;
            row.try_get::<Vec<i64>, _>(0).ok()
        });
        let ok = rest_ok && read.is_some();
        rest.insert(0, first);
        (ok, read, rest)
    }

    /// Puts the pool back for the next test (its connections given back from the engine
    /// runtime), or closes it if a reset failed or it opened connections during the test.
    async fn keep(
        self,
        key: &str,
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        healthy: bool,
    ) {
        // Given back (sqlx pings each connection on its way back) from the engine runtime (a
        // return on a test's runtime could be cut off when that runtime shuts down, losing the
        // connection), in a task the next test waits for rather than spins on (as it would for
        // dropped connections): the test ends without waiting for it, and a next test that
        // comes soon waits no longer than for the return itself.
        let returning = async move {
            for mut conn in conns {
                conn.return_to_pool().await;
            }
        };
        match engine::spawn_joinable(returning) {
            Some(handle) => {
                *self
                    .returning
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle);
            }
            None => return self.discard().await,
        }
        let only_its_own =
            self.opened.load(std::sync::atomic::Ordering::SeqCst) == self.opened_by_open;
        if !only_its_own {
            remember_warm_connections(key, self.pool.size());
        }
        if healthy && only_its_own {
            *self
                .recycled_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
            SHARED_POOLS.put(key, self);
        } else {
            self.discard().await;
        }
    }

    /// Closes the pool (a connection is still out, or broke) and gives its budget back.
    async fn discard(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.pool.close()).await;
        self.budget.give_back().await;
    }
}

/// Every open connection of `pool`, once the test has given them all back (`None` if one does
/// not come back within 2 s).
async fn all_connections(pool: &PgPool) -> Option<Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>> {
    // A connection the test dropped goes back to the pool in a task of its own: wait for it
    // rather than let `acquire` open another.
    let started = std::time::Instant::now();
    while pool.num_idle() < pool.size() as usize {
        if started.elapsed() > Duration::from_secs(2) {
            return None;
        }
        if started.elapsed() < Duration::from_millis(5) {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut conns = Vec::with_capacity(pool.size() as usize);
    while let Some(conn) = pool.try_acquire() {
        conns.push(conn);
    }
    Some(conns)
}

/// Forgets the pools kept for the next test: they lived on a runtime that has ended (see
/// [`engine::adopt_test_runtime`]).
pub(crate) fn forget_kept_pools() {
    drop(ROLLBACK_POOLS.take_all());
    drop(SHARED_POOLS.take_all());
    super::schemas::forget_holders();
}

/// Closes the pools kept for the next test (Rollback's and the others') and gives their budget
/// back now (a reservation found the budget spent); returns how many slots it gave back.
fn evict_kept_pools() -> std::pin::Pin<Box<dyn Future<Output = usize> + Send + 'static>> {
    Box::pin(async {
        let mut freed = 0;
        for rp in ROLLBACK_POOLS.take_all() {
            rp.close().await;
            if let Some(reservation) = Arc::try_unwrap(rp).ok().and_then(|rp| rp.budget) {
                freed += reservation.give_back().await.unwrap_or(0);
            }
        }
        for kept in SHARED_POOLS.take_all() {
            let budget = Arc::clone(&kept.budget);
            let _ = tokio::time::timeout(Duration::from_secs(5), kept.pool.close()).await;
            freed += budget.give_back().await;
        }
        freed
    })
}

async fn load_dir(dir: PathBuf) -> Result<Arc<Migrations>> {
    let key = format!("dir:{}", dir.display());
    engine::migrations(&key, async move {
        Migrations::identify_dir(&dir, &crate::server::os::default_base_dir()).await
    })
    .await
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
        /// A database the user named (prepared for the cleaner on first use).
        named: bool,
    },
    Template {
        /// The template it was cloned from.
        template: String,
        database: String,
        test: String,
        /// The warm pool's configured size.
        spares: i64,
        /// A passing test's clone goes back to the pool (else it is dropped).
        recycle: bool,
        /// The budget of a pool opened ahead by this process (given back with the backend).
        _budget: Option<super::budget::Reservation>,
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
                lease,
                pool,
                key,
                named,
            } => {
                // Once the test's connections are back, their sessions are reset and the
                // database is emptied through one of them.
                let Some(conns) = pool.all_connections().await else {
                    pool.discard().await;
                    // Cleaned before its next test (the lease is not known clean).
                    return Err(Error::Isolation {
                        strategy: inner.strategy,
                        message: "a connection of the test's pool did not come back within 2 s; \
                                  the database is emptied before its next test"
                            .into(),
                    });
                };
                // The test's own connection holds the lease (a process that runs one test): its
                // locks stay, and the slot is marked emptied for the next process that takes it.
                let by_test = lease.held_by_the_test();
                let written = lease.written_query();
                let (healthy, written, mut conns) = if by_test {
                    pool.reset_sessions_keeping_locks(conns, written).await
                } else {
                    let (healthy, _, conns) = pool.reset_sessions(conns, None).await;
                    (healthy, None, conns)
                };
                let cleaned = match conns.first_mut() {
                    Some(conn) if healthy => truncate::clean_after(
                        &lease,
                        conn,
                        inner.reset_sequences,
                        named,
                        by_test && !named,
                        written,
                    )
                    .await
                    .map(|_| ()),
                    // Cleaned before its next test.
                    _ => Ok(()),
                };
                if by_test {
                    drop(conns);
                    pool.discard().await;
                } else {
                    pool.keep(&key, conns, healthy && cleaned.is_ok()).await;
                }
                cleaned
            }
            Backend::Namespace {
                pool,
                key,
                token: _,
                keep_rows: _,
                schema: Some(schema),
            } => {
                match pool.all_connections().await {
                    Some(conns) => {
                        let (healthy, _, conns) = pool.reset_sessions(conns, None).await;
                        pool.keep(&key, conns, healthy).await;
                    }
                    None => pool.discard().await,
                }
                super::schemas::release(inner.server, &inner.database, &schema);
                Ok(())
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
                let (healthy, cleaned, conns) = pool.reset_sessions(conns, Some(statement)).await;
                pool.keep(&key, conns, healthy).await;
                cleaned
            }
            Backend::Template {
                template,
                database,
                test,
                spares,
                recycle,
                _budget,
            } => {
                let passed = outcome == Outcome::Passed;
                if !passed {
                    let _ = tokio::time::timeout(Duration::from_secs(5), inner.pool.close()).await;
                    *inner
                        .kept
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
                    return template::release(inner.server, &database, false, &test).await;
                }
                // Emptied through one of the test's connections and given to the next test when
                // the test changed no schema; else dropped in the background.
                let emptied = async {
                    recycle
                        && match all_connections(&inner.pool).await {
                            Some(conns) if !conns.is_empty() => template::empty(conns).await,
                            Some(_) => match inner.pool.acquire().await {
                                Ok(conn) => template::empty(vec![conn]).await,
                                Err(_) => false,
                            },
                            None => false,
                        }
                };
                // A process that runs many tests opens, meanwhile, the connection its next test
                // to claim this clone starts with (the test's own connections live on the
                // test's runtime, which ends with it).
                let opening = async {
                    if recycle && spares > 0 && !engine::adopted() {
                        template::open_ahead(inner.server, &template, &database).await
                    } else {
                        None
                    }
                };
                let (recycled, ahead) = tokio::join!(emptied, opening);
                // Every connection of the test is closed before the clone goes back.
                let closed = tokio::time::timeout(Duration::from_secs(5), inner.pool.close())
                    .await
                    .is_ok();
                if recycled && closed {
                    template::recycle(inner.server, &template, &database, spares, ahead).await
                } else {
                    if let Some(p) = ahead {
                        template::discard_ahead(p).await;
                    }
                    template::release(inner.server, &database, true, &test).await
                }
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
        // connection closes with its pool, and a Truncate lease not cleaned is emptied before
        // its next use.
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
