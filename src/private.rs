//! What generated code reaches through `::seedbed::__private`: the crates and helpers the macros
//! expand to, so users need not depend on fake, rand or sea-query themselves. Not a public API:
//! anything here may change in any release.

pub use fake;
pub use rand;
pub use sea_query;

pub use crate::context::{SeedRng, TestContext};
pub use crate::factory::probe::{
    ColumnInto, ColumnMissing, FillDefault, FillDummy, FillGeneratedDefault, FillGeneratedDummy,
    FillGeneratedMissing, FillMissing, Probe, TokenOther, TokenText,
};
pub use crate::factory::{
    Attributes, BuildCtx, Column, DbEnum, Factory, FactoryBuilder, Table, UniqueValue,
    enum_array_type, enum_column_type, enum_null, enum_try_from, enum_value,
};
pub use crate::isolation::harness::{
    Flavor, TestArgs, TestFixture, TestFn, TestTermination, assert_test_fn,
};
pub use crate::isolation::{MigrationSource, Strategy};
pub use sea_query::value::postgres_array::NotU8;

/// Calls a `lazy = |f| …` closure with the resolved fields (so its argument's type is inferred).
#[inline]
pub fn lazy<S, R>(fields: &S, f: impl FnOnce(&S) -> R) -> R {
    f(fields)
}

/// Calls a `sequence = |n| …` closure (so `n` is inferred as `u64`).
#[inline]
pub fn sequence<R>(n: u64, f: impl FnOnce(u64) -> R) -> R {
    f(n)
}

/// Calls a `sequence = |n, token| …` closure.
#[inline]
pub fn sequence_with_token<R>(n: u64, token: &str, f: impl FnOnce(u64, &str) -> R) -> R {
    f(n, token)
}
