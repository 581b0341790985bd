#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "bench")]
#[cfg_attr(docsrs, doc(cfg(feature = "bench")))]
pub mod bench;
pub mod context;
pub mod error;
pub mod factory;
pub mod isolation;
pub mod schema;
pub mod server;
pub mod sql;
pub mod strategy;
pub(crate) mod util;

pub use crate::error::{Error, Result};

/// `#[derive(Factory)]`: a builder with sequences, fakers and traits for a model struct. The
/// guide is in [`factory`].
#[cfg(feature = "derive")]
pub use seedbed_derive::{DbEnum, Factory};

/// `#[seedbed::test]`: an async test with an isolated database, a drop-in for `#[sqlx::test]`.
/// See [`isolation`] and [`TestDb`].
#[cfg(feature = "derive")]
pub use seedbed_derive::test;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
pub use crate::isolation::{Isolation, Strategy, TestDb};

/// The names most tests need: `use seedbed::prelude::*;`.
pub mod prelude {
    pub use crate::error::Error;
    pub use crate::factory::{Create, Factory, FactoryBuilder, Graph};
    pub use crate::isolation::{Isolation, Migrations, Strategy, TestDb};
    #[cfg(feature = "derive")]
    pub use seedbed_derive::{DbEnum, Factory};
}
