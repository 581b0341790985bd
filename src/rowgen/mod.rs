//! The row generator: rows for any table, made from what introspection says about the schema
//! (types, CHECK constraints, keys, foreign keys, the rows migrations left). `seedbed bench`
//! fills its synthetic suites with it, and [`TestDb::rows`](crate::TestDb::rows) fills tables
//! that have no model struct.

// Saving plans, the probe's reports and the bench's INSERT text are the benchmark's.
#![cfg_attr(
    not(feature = "bench"),
    allow(
        dead_code,
        unused_imports,
        unreachable_pub,
        reason = "used by the benchmark (feature bench)"
    )
)]

pub(crate) mod check;
pub(crate) mod pattern;
pub(crate) mod rows;
pub(crate) mod values;
