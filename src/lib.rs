#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without a backend the crate is its backend-neutral layers alone (errors, strategies, the test
// context, the schema model); the helpers they keep for the backend's layers go unused there.
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

/// Declares an internal module: public (and hidden) with the `internals` feature, for seedbed's own
/// tests and benches, crate-private otherwise.
#[cfg_attr(not(feature = "postgres"), allow(unused_macros))]
macro_rules! internal {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        #[allow(unreachable_pub, dead_code)]
        pub(crate) mod $name;
    )*};
}

pub mod backend;
#[cfg(feature = "bench")]
#[cfg_attr(docsrs, doc(cfg(feature = "bench")))]
pub mod bench;
pub mod context;
pub mod error;
#[cfg(feature = "postgres")]
pub mod factory;
#[cfg(feature = "postgres")]
pub mod isolation;
#[cfg(feature = "postgres")]
pub(crate) mod rowgen;
pub mod schema;
/// Where the PostgreSQL server comes from (the backend's [`server`](backend::postgres::server)).
#[cfg(feature = "postgres")]
#[doc(inline)]
pub use crate::backend::postgres::server;
pub mod sql;
pub mod strategy;
pub(crate) mod util;

pub use crate::error::{Error, Result};

/// `#[derive(Factory)]`: a builder with sequences, fakers and traits for a model struct. The
/// guide is in [`factory`].
#[cfg(all(feature = "derive", feature = "postgres"))]
pub use seedbed_derive::{DbEnum, Factory};

/// `#[seedbed::test]`: an async test with an isolated database, a drop-in for `#[sqlx::test]`.
/// See [`isolation`] and [`TestDb`].
#[cfg(all(feature = "derive", feature = "postgres"))]
pub use seedbed_derive::test;

/// `#[seedbed::seed]`: suite data written once into the database every strategy starts from.
/// See [`isolation::Seed`].
#[cfg(all(feature = "derive", feature = "postgres"))]
pub use seedbed_derive::seed;

#[cfg(feature = "postgres")]
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
#[cfg(feature = "postgres")]
pub use crate::isolation::{Isolation, TestDb};
pub use crate::strategy::Strategy;

/// The names most tests need: `use seedbed::prelude::*;`.
#[cfg(feature = "postgres")]
pub mod prelude {
    pub use crate::error::Error;
    pub use crate::factory::{Create, Factory, FactoryBuilder, Graph};
    pub use crate::isolation::{Isolation, Migrations, Strategy, TestDb};
    #[cfg(feature = "derive")]
    pub use seedbed_derive::{DbEnum, Factory};
}
