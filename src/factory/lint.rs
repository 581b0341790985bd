//! [`lint!`](crate::lint): every factory, and every trait of it, created once in a transaction
//! that is rolled back, so a struct that drifted from the migrations (a column the table lacks, a
//! trait whose values break a CHECK) fails here, named, before a real test trips over it.

use std::fmt;

use sqlx::{Connection, Database, Transaction};

use crate::error::{Error, Result};
use crate::factory::Table;
use crate::factory::create::Conn;

/// What [`lint!`](crate::lint) found: how many factory variants it created, and the ones the
/// database refused.
///
/// ```no_run
/// # async fn demo(db: seedbed::TestDb) -> Result<(), seedbed::Error> {
/// use seedbed::prelude::*;
///
/// #[derive(Debug, Clone, sqlx::FromRow, Factory)]
/// #[factory(table = "users", traits(admin(is_admin = true)))]
/// pub struct User {
///     #[factory(generated)]
///     pub id: i64,
///     #[factory(sequence = "user{n}@example.com")]
///     pub email: String,
///     #[factory(default = false)]
///     pub is_admin: bool,
/// }
///
/// let report = seedbed::lint!(&db, User).await?;
/// assert_eq!(report.checked, 2); // the factory, and its trait `admin`
/// report.into_result()?;         // an error listing every failure, if any
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct LintReport {
    /// Factory variants created (a factory as it is, and once per trait).
    pub checked: usize,
    /// Those the database refused.
    pub failures: Vec<LintFailure>,
}

/// One factory variant the database refused.
#[derive(Debug)]
pub struct LintFailure {
    /// The model (`User`).
    pub factory: &'static str,
    /// `default` for the factory as it is, else the trait's name.
    pub variant: &'static str,
    /// The factory's table (`public.users`).
    pub table: String,
    /// What the database said, with the table, the column or the constraint
    /// ([`Error::SchemaMismatch`], [`Error::ConstraintViolation`], …).
    pub error: Error,
}

impl fmt::Display for LintFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.variant == "default" {
            write!(f, "{} (table {}): {}", self.factory, self.table, self.error)
        } else {
            write!(
                f,
                "{} with trait {} (table {}): {}",
                self.factory, self.variant, self.table, self.error
            )
        }
    }
}

impl fmt::Display for LintReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} factory variants failed",
            self.failures.len(),
            self.checked
        )?;
        for failure in &self.failures {
            write!(f, "\n  {failure}")?;
        }
        Ok(())
    }
}

impl LintReport {
    /// Whether every variant was created.
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report, or [`Error::Lint`] listing every failure.
    pub fn into_result(self) -> Result<LintReport> {
        if self.is_clean() {
            return Ok(self);
        }
        Err(Error::Lint {
            failed: self.failures.len(),
            checked: self.checked,
            report: self
                .failures
                .iter()
                .map(|f| format!("  {f}"))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }

    /// Records one variant's outcome.
    #[doc(hidden)]
    pub fn __record(
        &mut self,
        factory: &'static str,
        variant: &'static str,
        table: &Table,
        outcome: Result<()>,
    ) {
        self.checked += 1;
        if let Err(error) = outcome {
            self.failures.push(LintFailure {
                factory,
                variant,
                table: match table.schema() {
                    Some(schema) => format!("{schema}.{}", table.name()),
                    None => table.name().to_string(),
                },
                error,
            });
        }
    }
}

/// Opens the transaction the lint runs in, on the target's connection.
#[doc(hidden)]
pub async fn __lint_begin<'c, DB: Database>(
    conn: &'c mut Conn<'_, DB>,
) -> Result<Transaction<'c, DB>> {
    conn.get()
        .begin()
        .await
        .map_err(Error::db("starting the lint's transaction"))
}

/// Runs one of the lint's own statements (its savepoints).
#[doc(hidden)]
pub async fn __lint_step<C>(conn: &mut C, sql: &'static str) -> Result<()>
where
    for<'e> &'e mut C: sqlx::Executor<'e>,
{
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(Error::db(format!("lint: {sql}")))
}

/// Rolls the lint's transaction back.
#[doc(hidden)]
pub async fn __lint_end<DB: Database>(tx: Transaction<'_, DB>) -> Result<()> {
    tx.rollback()
        .await
        .map_err(Error::db("rolling back the lint's transaction"))
}

/// Creates every factory listed, as it is and once per trait of `#[factory(traits(…))]`, in a
/// transaction it rolls back, and reports each one the database refuses ([`LintReport`]): a
/// struct with a field the table lacks, a trait whose values break a CHECK, a parent that cannot
/// be created. The parents of unset `belongs_to` associations are created too, so they are
/// checked with their children. Traits written as methods of your own are not seen; list a
/// builder of them with a factory of their own if needed.
///
/// `db` is what `create` takes: `&TestDb`, `&PgPool`, `&SqlitePool`, `&mut PgConnection`, …
/// The result is a future of `Result<LintReport, Error>`; [`LintReport::into_result`] makes the
/// failures an error.
///
/// ```no_run
/// # async fn demo(db: seedbed::TestDb) -> Result<(), seedbed::Error> {
/// # use seedbed::prelude::*;
/// # #[derive(Debug, Clone, sqlx::FromRow, Factory)]
/// # #[factory(table = "users")]
/// # pub struct User { #[factory(generated)] pub id: i64 }
/// # #[derive(Debug, Clone, sqlx::FromRow, Factory)]
/// # #[factory(table = "organizations")]
/// # pub struct Organization { #[factory(generated)] pub id: i64 }
/// seedbed::lint!(&db, User, Organization).await?.into_result()?;
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! lint {
    ($db:expr, $($model:ty),+ $(,)?) => {
        async {
            let mut __seedbed_conn = $crate::__private::Target::__connection($db).await?;
            let mut __seedbed_tx = $crate::__private::__lint_begin(&mut __seedbed_conn).await?;
            let mut __seedbed_report = $crate::factory::LintReport::default();
            $(
                for (__seedbed_variant, __seedbed_builder) in
                    <$model as $crate::factory::Factory>::__variants()
                {
                    $crate::__private::__lint_step(&mut *__seedbed_tx, "SAVEPOINT seedbed_lint")
                        .await?;
                    let __seedbed_outcome =
                        __seedbed_builder.create(&mut *__seedbed_tx).await.map(|_| ());
                    __seedbed_report.__record(
                        ::core::stringify!($model),
                        __seedbed_variant,
                        <$model as $crate::factory::Factory>::TABLE,
                        __seedbed_outcome,
                    );
                    $crate::__private::__lint_step(
                        &mut *__seedbed_tx,
                        "ROLLBACK TO SAVEPOINT seedbed_lint",
                    )
                    .await?;
                }
            )+
            $crate::__private::__lint_end(__seedbed_tx).await?;
            ::core::result::Result::<$crate::factory::LintReport, $crate::Error>::Ok(
                __seedbed_report,
            )
        }
    };
}
