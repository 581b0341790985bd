//! What generated code reaches through `::seedbed::__private`: the crates and helpers the macros
//! expand to, so users need not depend on fake, rand or sea-query themselves. Not a public API:
//! anything here may change in any release.

pub use fake;
pub use rand;
pub use sea_query;

pub use crate::backend::{Backend, Decoders, Dialect};
pub use crate::context::{SeedRng, TestContext};

pub use crate::error::Error;
pub use crate::factory::lint::{__lint_begin, __lint_end, __lint_step};
pub use crate::factory::plan::{
    AssignFn, Decoder, ErasedHook, HookFuture, KeyFn, NodeId, Plan, Ref,
};
pub use crate::factory::probe::{
    ColumnInto, ColumnMissing, DecoderNone, DecoderRow, FillDefault, FillDummy,
    FillGeneratedDefault, FillGeneratedDefaultOrDummy, FillGeneratedDummy, FillGeneratedMissing,
    FillGeneratedStub, FillMissing, MySqlDecoderNone, MySqlDecoderRow, PlaceholderDefault,
    PlaceholderDummy, PlaceholderMissing, Probe, SqliteDecoderNone, SqliteDecoderRow, TokenOther,
    TokenText,
};
pub use crate::factory::{
    Assoc, Attributes, BuildCtx, Children, Column, Create, DbEnum, Factory, FactoryBuilder, Hooks,
    IntoAssoc, Locale, Polymorphic, Row, Table, Target, UniqueValue, enum_array_type,
    enum_column_type, enum_null, enum_try_from, enum_value,
};

pub use crate::isolation::harness::{
    AcquiringAny, Flavor, NamedDatabase, TestArgs, TestFixture, TestFn, TestTermination,
    acquire_any, assert_test_fn,
};
pub use crate::isolation::seed_result;
pub use crate::isolation::{IntoMigrations, MigrateFuture, MigrationSource, Seed, Strategy};
pub use sea_query::value::postgres_array::NotU8;

/// Acquires another database of a test on PostgreSQL (`postgres("…")` in `databases(…)`).
pub fn acquire_on_postgres(iso: crate::isolation::Isolation) -> AcquiringAny {
    acquire_any::<sqlx::Postgres>(iso)
}

/// Acquires another database of a test on SQLite (`sqlite("…")` in `databases(…)`).
#[cfg(feature = "sqlite")]
pub fn acquire_on_sqlite(iso: crate::isolation::Isolation) -> AcquiringAny {
    acquire_any::<sqlx::Sqlite>(iso)
}

/// Acquires another database of a test on MySQL or MariaDB (`mysql("…")` in `databases(…)`).
#[cfg(feature = "mysql")]
pub fn acquire_on_mysql(iso: crate::isolation::Isolation) -> AcquiringAny {
    acquire_any::<sqlx::MySql>(iso)
}

// The closures' argument and result types are given, so they are inferred: `|f| 3` fills an
// `i16`, `|n| n as i32` an `i32`, and a mismatch is reported on the closure.

/// Calls a `lazy = |f| …` closure with the resolved fields.
#[inline]
pub fn lazy<S, T>(fields: &S, f: impl FnOnce(&S) -> T) -> T {
    f(fields)
}

/// Calls a `sequence = |n| …` closure.
#[inline]
pub fn sequence<T>(n: u64, f: impl FnOnce(u64) -> T) -> T {
    f(n)
}

/// Calls a `sequence = |n, token| …` closure.
#[inline]
pub fn sequence_with_token<T>(n: u64, token: &str, f: impl FnOnce(u64, &str) -> T) -> T {
    f(n, token)
}
