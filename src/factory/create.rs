//! `create`, `create_list` and `create_list_with`: where rows go ([`Target`]) and the trait that
//! writes them ([`Create`]).

use std::future::Future;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Database, FromRow, PgConnection, Pool, Postgres, Transaction};

use crate::backend::{Backend, Dialect};
use crate::context::TestContext;
use crate::error::{Error, Result};
use crate::factory::FactoryBuilder;
use crate::factory::plan::{Plan, decoder};
use crate::isolation::TestDb;

/// Where `create` writes: `&TestDb`, a pool (`&PgPool`), or a connection (`&mut PgConnection`,
/// so `&mut *tx` works; also `&mut Transaction` and `&mut PoolConnection`). `DB` is the backend,
/// known from the target's type.
///
/// With `&TestDb`, builds use the test's context (`db.context()`); otherwise the current one
/// (the test's, inside `#[seedbed::test]`; the process-wide one outside). A pool gives one
/// connection for the whole call, a connection is used as it is: `create` never holds two
/// connections at once, which Rollback's one-connection pool requires.
pub trait Target<'a, DB: Dialect = Postgres>: Send {
    /// The test context the rows are built in and counted in.
    #[doc(hidden)]
    fn __context(&self) -> Arc<TestContext>;

    /// One connection for the whole call.
    #[doc(hidden)]
    fn __connection(self) -> impl Future<Output = Result<Conn<'a, DB>>> + Send + 'a;
}

/// A connection `create` writes on: taken from a pool, or borrowed.
#[doc(hidden)]
#[derive(Debug)]
pub enum Conn<'a, DB: Database = Postgres> {
    /// Checked out of a pool for the call.
    Pooled(PoolConnection<DB>),
    /// The caller's.
    Borrowed(&'a mut DB::Connection),
}

impl<DB: Database> Conn<'_, DB> {
    /// The connection.
    pub fn get(&mut self) -> &mut DB::Connection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::Borrowed(conn) => conn,
        }
    }
}

async fn acquire<'a, DB: Database>(pool: Pool<DB>) -> Result<Conn<'a, DB>> {
    pool.acquire()
        .await
        .map(Conn::Pooled)
        .map_err(Error::db("taking a connection for a factory"))
}

impl<'a, DB: Backend> Target<'a, DB> for &'a TestDb<DB> {
    fn __context(&self) -> Arc<TestContext> {
        Arc::clone(self.context())
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a, DB>>> + Send + 'a {
        acquire(self.pool())
    }
}

impl<'a, DB: Dialect> Target<'a, DB> for &'a Pool<DB> {
    fn __context(&self) -> Arc<TestContext> {
        TestContext::current()
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a, DB>>> + Send + 'a {
        acquire(self.clone())
    }
}

impl<'a> Target<'a, Postgres> for &'a mut PgConnection {
    fn __context(&self) -> Arc<TestContext> {
        TestContext::current()
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a, Postgres>>> + Send + 'a {
        std::future::ready(Ok(Conn::Borrowed(self)))
    }
}

impl<'a, DB: Dialect> Target<'a, DB> for &'a mut PoolConnection<DB> {
    fn __context(&self) -> Arc<TestContext> {
        TestContext::current()
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a, DB>>> + Send + 'a {
        std::future::ready(Ok(Conn::Borrowed(&mut **self)))
    }
}

#[cfg(feature = "sqlite")]
impl<'a> Target<'a, sqlx::Sqlite> for &'a mut sqlx::SqliteConnection {
    fn __context(&self) -> Arc<TestContext> {
        TestContext::current()
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a, sqlx::Sqlite>>> + Send + 'a {
        std::future::ready(Ok(Conn::Borrowed(self)))
    }
}

#[cfg(feature = "mysql")]
impl<'a> Target<'a, sqlx::MySql> for &'a mut sqlx::MySqlConnection {
    fn __context(&self) -> Arc<TestContext> {
        TestContext::current()
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a, sqlx::MySql>>> + Send + 'a {
        std::future::ready(Ok(Conn::Borrowed(self)))
    }
}

impl<'a, 't, DB: Dialect> Target<'a, DB> for &'a mut Transaction<'t, DB> {
    fn __context(&self) -> Arc<TestContext> {
        TestContext::current()
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a, DB>>> + Send + 'a {
        std::future::ready(Ok(Conn::Borrowed(&mut **self)))
    }
}

/// A model that `create` can read back on the backend `DB`: `sqlx::FromRow` for its rows,
/// `Send`, owned. Implemented for every such type.
pub trait Row<DB: Database = Postgres>:
    for<'r> FromRow<'r, DB::Row> + Send + Unpin + 'static
{
}

impl<M, DB: Database> Row<DB> for M where M: for<'r> FromRow<'r, DB::Row> + Send + Unpin + 'static {}

/// Inserting with a factory: implemented for every builder whose model derives `sqlx::FromRow`.
///
/// The generated builder has the same methods as inherent methods (no import needed); the trait
/// is for code generic over factories.
///
/// ```no_run
/// # async fn demo(db: seedbed::TestDb) -> Result<(), seedbed::Error> {
/// use seedbed::factory::Create;
///
/// #[derive(Debug, Clone, sqlx::FromRow, seedbed::Factory)]
/// #[factory(table = "organizations")]
/// pub struct Organization {
///     #[factory(generated)]
///     pub id: i64,
///     #[factory(default = "Acme")]
///     pub name: String,
///     #[factory(sequence = "acme-{n}")]
///     pub slug: String,
/// }
///
/// async fn some<B: Create>(db: &seedbed::TestDb, builder: B) -> Result<Vec<B::Model>, seedbed::Error>
/// where
///     B: Clone,
/// {
///     builder.create_list(db, 3).await
/// }
///
/// let orgs = some(&db, Organization::factory()).await?;
/// assert!(orgs.iter().all(|o| o.id > 0));
/// # Ok(()) }
/// ```
pub trait Create: FactoryBuilder<Model: Row> + Send + 'static {
    /// Inserts one row, with the parents its `belongs_to` associations need, and returns it as
    /// the database stored it (`RETURNING`: generated ids, defaults, trigger effects).
    fn create<'a, DB: Dialect, T: Target<'a, DB> + 'a>(
        self,
        db: T,
    ) -> impl Future<Output = Result<Self::Model>> + Send + 'a
    where
        Self::Model: Row<DB>,
    {
        async move {
            let (mut plan, root) =
                plan_with(&db, |plan| self.__plan(plan, decoder::<Self::Model, DB>()))?;
            write(db, &mut plan).await?;
            plan.take_result(root)
        }
    }

    /// Inserts `n` rows with the same overrides (sequences and fakers advance for each) in one
    /// multi-row `INSERT` per table and per bind-parameter limit (65,535 on PostgreSQL), their
    /// parents first.
    fn create_list<'a, DB: Dialect, T: Target<'a, DB> + 'a>(
        self,
        db: T,
        n: usize,
    ) -> impl Future<Output = Result<Vec<Self::Model>>> + Send + 'a
    where
        Self: Clone,
        Self::Model: Row<DB>,
    {
        self.create_list_with(db, n, |_, builder| builder)
    }

    /// Inserts `n` rows, letting `each` adjust the builder of the `i`-th (from 0), as
    /// [`create_list`](Self::create_list) does.
    fn create_list_with<'a, DB: Dialect, T: Target<'a, DB> + 'a>(
        self,
        db: T,
        n: usize,
        mut each: impl FnMut(usize, Self) -> Self + Send + 'a,
    ) -> impl Future<Output = Result<Vec<Self::Model>>> + Send + 'a
    where
        Self: Clone,
        Self::Model: Row<DB>,
    {
        async move {
            let (mut plan, roots) = plan_with(&db, |plan| {
                let mut roots = Vec::with_capacity(n);
                for i in 0..n {
                    let builder = each(i, self.clone());
                    roots.push(builder.__plan(plan, decoder::<Self::Model, DB>())?);
                }
                Ok(roots)
            })?;
            write(db, &mut plan).await?;
            roots
                .into_iter()
                .map(|root| plan.take_result(root))
                .collect()
        }
    }
}

impl<B> Create for B where B: FactoryBuilder<Model: Row> + Send + 'static {}

/// Plans in the target's context (builds run there, reuse is read there).
pub(crate) fn plan_with<'a, DB: Dialect, T: Target<'a, DB>, R>(
    db: &T,
    f: impl FnOnce(&mut Plan) -> Result<R>,
) -> Result<(Plan, R)> {
    let ctx = db.__context();
    let mut plan = Plan::new(Arc::clone(&ctx));
    let roots = ctx.sync_scope(|| f(&mut plan))?;
    Ok((plan, roots))
}

/// Executes the plan on one connection of the target.
pub(crate) async fn write<'a, DB: Dialect, T: Target<'a, DB>>(
    db: T,
    plan: &mut Plan,
) -> Result<()> {
    let mut conn = db.__connection().await?;
    plan.execute::<DB>(conn.get()).await
}
