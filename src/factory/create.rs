//! `create`, `create_list` and `create_list_with`: where rows go ([`Target`]) and the trait that
//! writes them ([`Create`]).

use std::future::Future;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, Transaction};

use crate::context::TestContext;
use crate::error::{Error, Result};
use crate::factory::FactoryBuilder;
use crate::factory::plan::{Plan, decoder};
use crate::isolation::TestDb;

/// Where `create` writes: `&TestDb`, `&PgPool`, or a connection (`&mut PgConnection`, so
/// `&mut *tx` works; also `&mut Transaction` and `&mut PoolConnection`).
///
/// With `&TestDb`, builds use the test's context (`db.context()`); otherwise the current one
/// (the test's, inside `#[seedbed::test]`; the process-wide one outside). A pool gives one
/// connection for the whole call, a connection is used as it is: `create` never holds two
/// connections at once, which Rollback's one-connection pool requires.
pub trait Target<'a>: Send {
    /// The test context the rows are built in and counted in.
    #[doc(hidden)]
    fn __context(&self) -> Arc<TestContext>;

    /// One connection for the whole call.
    #[doc(hidden)]
    fn __connection(self) -> impl Future<Output = Result<Conn<'a>>> + Send + 'a;
}

/// A connection `create` writes on: taken from a pool, or borrowed.
#[doc(hidden)]
#[derive(Debug)]
pub enum Conn<'a> {
    /// Checked out of a pool for the call.
    Pooled(PoolConnection<Postgres>),
    /// The caller's.
    Borrowed(&'a mut PgConnection),
}

impl Conn<'_> {
    /// The connection.
    pub fn get(&mut self) -> &mut PgConnection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::Borrowed(conn) => conn,
        }
    }
}

async fn acquire<'a>(pool: PgPool) -> Result<Conn<'a>> {
    pool.acquire()
        .await
        .map(Conn::Pooled)
        .map_err(Error::db("taking a connection for a factory"))
}

impl<'a> Target<'a> for &'a TestDb {
    fn __context(&self) -> Arc<TestContext> {
        Arc::clone(self.context())
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a>>> + Send + 'a {
        acquire(self.pool())
    }
}

impl<'a> Target<'a> for &'a PgPool {
    fn __context(&self) -> Arc<TestContext> {
        TestContext::current()
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a>>> + Send + 'a {
        acquire(self.clone())
    }
}

impl<'a> Target<'a> for &'a mut PgConnection {
    fn __context(&self) -> Arc<TestContext> {
        TestContext::current()
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a>>> + Send + 'a {
        std::future::ready(Ok(Conn::Borrowed(self)))
    }
}

impl<'a> Target<'a> for &'a mut PoolConnection<Postgres> {
    fn __context(&self) -> Arc<TestContext> {
        TestContext::current()
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a>>> + Send + 'a {
        std::future::ready(Ok(Conn::Borrowed(self)))
    }
}

impl<'a, 't> Target<'a> for &'a mut Transaction<'t, Postgres> {
    fn __context(&self) -> Arc<TestContext> {
        TestContext::current()
    }

    fn __connection(self) -> impl Future<Output = Result<Conn<'a>>> + Send + 'a {
        std::future::ready(Ok(Conn::Borrowed(self)))
    }
}

/// A model that `create` can read back: `sqlx::FromRow` for PostgreSQL rows, `Send`, owned.
/// Implemented for every such type.
pub trait Row: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static {}

impl<M> Row for M where M: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static {}

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
    fn create<'a, T: Target<'a> + 'a>(
        self,
        db: T,
    ) -> impl Future<Output = Result<Self::Model>> + Send + 'a {
        async move {
            let (mut plan, root) =
                plan_with(&db, |plan| self.__plan(plan, decoder::<Self::Model>()))?;
            write(db, &mut plan).await?;
            plan.take_result(root)
        }
    }

    /// Inserts `n` rows with the same overrides (sequences and fakers advance for each) in one
    /// multi-row `INSERT` per 65,535 bind parameters, their parents first, one statement per
    /// table.
    fn create_list<'a, T: Target<'a> + 'a>(
        self,
        db: T,
        n: usize,
    ) -> impl Future<Output = Result<Vec<Self::Model>>> + Send + 'a
    where
        Self: Clone,
    {
        self.create_list_with(db, n, |_, builder| builder)
    }

    /// Inserts `n` rows, letting `each` adjust the builder of the `i`-th (from 0), as
    /// [`create_list`](Self::create_list) does.
    fn create_list_with<'a, T: Target<'a> + 'a>(
        self,
        db: T,
        n: usize,
        mut each: impl FnMut(usize, Self) -> Self + Send + 'a,
    ) -> impl Future<Output = Result<Vec<Self::Model>>> + Send + 'a
    where
        Self: Clone,
    {
        async move {
            let (mut plan, roots) = plan_with(&db, |plan| {
                let mut roots = Vec::with_capacity(n);
                for i in 0..n {
                    let builder = each(i, self.clone());
                    roots.push(builder.__plan(plan, decoder::<Self::Model>())?);
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
pub(crate) fn plan_with<'a, T: Target<'a>, R>(
    db: &T,
    f: impl FnOnce(&mut Plan) -> Result<R>,
) -> Result<(Plan, R)> {
    let ctx = db.__context();
    let mut plan = Plan::new(Arc::clone(&ctx));
    let roots = ctx.sync_scope(|| f(&mut plan))?;
    Ok((plan, roots))
}

/// Executes the plan on one connection of the target.
pub(crate) async fn write<'a, T: Target<'a>>(db: T, plan: &mut Plan) -> Result<()> {
    let mut conn = db.__connection().await?;
    plan.execute(conn.get()).await
}
