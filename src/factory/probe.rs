//! Compile-time choices the derive cannot make from syntax alone, made by method resolution
//! ("autoref specialisation" on the concrete field types the derive sees).
//!
//! - a field with no value attribute: `fake::Dummy<Faker>` if its type has it, else `Default`,
//!   else an error naming the field (generated fields: `Default` first, then `Dummy`);
//! - a column value: `Into<sea_query::Value>`, else an error naming the field;
//! - a `sequence = |n| …` result: carries the token if it is text, else is left as it is.
//!
//! The generated code calls `(&&&Probe::<T>::new().field::<marker>()).fill()` and friends with
//! the traits below imported anonymously; the marker type is named after the field, so error
//! messages can name it. Nothing here is meant to be used by hand.

use std::marker::PhantomData;

use fake::{Dummy, Fake, Faker};
use sea_query::Value;

use crate::factory::{BuildCtx, StubValue, UniqueValue};

/// A zero-sized stand-in for a field of type `T`, named `F` in error messages.
pub struct Probe<T, F = ()>(PhantomData<fn() -> (T, F)>);

impl<T> Probe<T> {
    /// A probe for a field of type `T`.
    #[allow(clippy::new_without_default, reason = "only the derive makes probes")]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }

    /// The same probe, naming its field `F` in errors.
    pub const fn field<F>(self) -> Probe<T, F> {
        Probe(PhantomData)
    }
}

// ---- A value for a field without attributes: Dummy, else Default, else an error. ----

/// Fills a field with `Faker`'s value for its type.
pub struct ViaDummy<T>(PhantomData<fn() -> T>);

impl<T: Dummy<Faker>> ViaDummy<T> {
    /// The value.
    #[inline]
    pub fn value(self, build: &mut BuildCtx) -> T {
        Faker.fake_with_rng(build.rng())
    }
}

/// Fills a field with its type's `Default`.
pub struct ViaDefault<T>(PhantomData<fn() -> T>);

impl<T: Default> ViaDefault<T> {
    /// The value.
    #[inline]
    pub fn value(self, _build: &mut BuildCtx) -> T {
        T::default()
    }
}

/// No way to fill the field: using it is the compile error.
pub struct NoValue<T, F>(PhantomData<fn() -> (T, F)>);

impl<T, F> NoValue<T, F> {
    /// Never compiles for a real field: `T: MissingValue<F>` has no implementation.
    pub fn value(self, _build: &mut BuildCtx) -> T
    where
        T: MissingValue<F>,
    {
        T::missing()
    }
}

/// The bound that reports a field the derive cannot fill.
#[diagnostic::on_unimplemented(
    message = "field `{F}` has no value: `{Self}` implements neither `fake::Dummy<Faker>` nor `Default`",
    label = "this field needs a value",
    note = "add `#[factory(default = …)]`, `#[factory(faker = …)]`, `#[factory(sequence = …)]` or \
            `#[factory(lazy = |f| …)]` to the field, or implement `Default` or `fake::Dummy<fake::Faker>` \
            for `{Self}` (`#[derive(seedbed::DbEnum)]` does, for enums)"
)]
pub trait MissingValue<F> {
    /// Unreachable.
    fn missing() -> Self;
}

/// Step 1: `Dummy<Faker>`.
pub trait FillDummy<T> {
    /// The strategy.
    fn fill(&self) -> ViaDummy<T>;
}
impl<T: Dummy<Faker>, F> FillDummy<T> for &&Probe<T, F> {
    #[inline]
    fn fill(&self) -> ViaDummy<T> {
        ViaDummy(PhantomData)
    }
}

/// Step 2: `Default`.
pub trait FillDefault<T> {
    /// The strategy.
    fn fill(&self) -> ViaDefault<T>;
}
impl<T: Default, F> FillDefault<T> for &Probe<T, F> {
    #[inline]
    fn fill(&self) -> ViaDefault<T> {
        ViaDefault(PhantomData)
    }
}

/// Step 3: the error.
pub trait FillMissing<T, F> {
    /// The strategy.
    fn fill(&self) -> NoValue<T, F>;
}
impl<T, F> FillMissing<T, F> for Probe<T, F> {
    #[inline]
    fn fill(&self) -> NoValue<T, F> {
        NoValue(PhantomData)
    }
}

// ---- Generated fields in `build()`: Default first (0, nil), then Dummy; stubbed builds take
// stand-ins ([`StubValue`]), else Dummy. ----

/// Fills a generated field: a stand-in when the build is stubbed, else `Default`.
pub struct ViaStub<T>(PhantomData<fn() -> T>);

impl<T: StubValue + Default> ViaStub<T> {
    /// The value.
    #[inline]
    pub fn value(self, build: &mut BuildCtx) -> T {
        if build.stubbing() {
            T::stub(build)
        } else {
            T::default()
        }
    }
}

/// Fills a generated field: `Dummy<Faker>` when the build is stubbed (a plausible value, where
/// `Default` gives 1970 or an empty value), else `Default`.
pub struct ViaDefaultOrDummy<T>(PhantomData<fn() -> T>);

impl<T: Default + Dummy<Faker>> ViaDefaultOrDummy<T> {
    /// The value.
    #[inline]
    pub fn value(self, build: &mut BuildCtx) -> T {
        if build.stubbing() {
            Faker.fake_with_rng(build.rng())
        } else {
            T::default()
        }
    }
}

/// Step 0 for generated fields: a [`StubValue`].
pub trait FillGeneratedStub<T> {
    /// The strategy.
    fn fill_generated(&self) -> ViaStub<T>;
}
impl<T: StubValue + Default, F> FillGeneratedStub<T> for &&&&Probe<T, F> {
    #[inline]
    fn fill_generated(&self) -> ViaStub<T> {
        ViaStub(PhantomData)
    }
}

/// Step 0b for generated fields: `Default`, or `Dummy<Faker>` when stubbed.
pub trait FillGeneratedDefaultOrDummy<T> {
    /// The strategy.
    fn fill_generated(&self) -> ViaDefaultOrDummy<T>;
}
impl<T: Default + Dummy<Faker>, F> FillGeneratedDefaultOrDummy<T> for &&&Probe<T, F> {
    #[inline]
    fn fill_generated(&self) -> ViaDefaultOrDummy<T> {
        ViaDefaultOrDummy(PhantomData)
    }
}

/// Step 1 for generated fields: `Default`.
pub trait FillGeneratedDefault<T> {
    /// The strategy.
    fn fill_generated(&self) -> ViaDefault<T>;
}
impl<T: Default, F> FillGeneratedDefault<T> for &&Probe<T, F> {
    #[inline]
    fn fill_generated(&self) -> ViaDefault<T> {
        ViaDefault(PhantomData)
    }
}

/// Step 2 for generated fields: `Dummy<Faker>`.
pub trait FillGeneratedDummy<T> {
    /// The strategy.
    fn fill_generated(&self) -> ViaDummy<T>;
}
impl<T: Dummy<Faker>, F> FillGeneratedDummy<T> for &Probe<T, F> {
    #[inline]
    fn fill_generated(&self) -> ViaDummy<T> {
        ViaDummy(PhantomData)
    }
}

/// Step 3 for generated fields: the error.
pub trait FillGeneratedMissing<T, F> {
    /// The strategy.
    fn fill_generated(&self) -> NoValue<T, F>;
}
impl<T, F> FillGeneratedMissing<T, F> for Probe<T, F> {
    #[inline]
    fn fill_generated(&self) -> NoValue<T, F> {
        NoValue(PhantomData)
    }
}

// ---- Column values: Into<Value>, else an error naming the field. ----

/// Converts with `Into<Value>`.
pub struct ViaInto<T>(PhantomData<fn() -> T>);

impl<T: Into<Value>> ViaInto<T> {
    /// The column value.
    #[inline]
    pub fn convert(self, value: T) -> Value {
        value.into()
    }
}

/// No conversion: using it is the compile error.
pub struct NoColumnValue<T, F>(PhantomData<fn() -> (T, F)>);

impl<T, F> NoColumnValue<T, F> {
    /// Never compiles for a real field: `T: NotAColumnValue<F>` has no implementation.
    pub fn convert(self, value: T) -> Value
    where
        T: NotAColumnValue<F>,
    {
        value.column_value()
    }
}

/// The bound that reports a field whose type cannot be bound as a column value.
#[diagnostic::on_unimplemented(
    message = "field `{F}` cannot be written to its column: `{Self}` does not convert into `sea_query::Value`",
    label = "not a column value",
    note = "for an enum mapped to a PostgreSQL enum type, add `#[derive(seedbed::DbEnum)]`; for a \
            newtype, implement `From<{Self}> for seedbed::factory::Value` (and `sea_query::Nullable` \
            to use it in an `Option`); or mark the field `#[factory(skip)]`"
)]
pub trait NotAColumnValue<F> {
    /// Unreachable.
    fn column_value(self) -> Value;
}

/// Step 1: `Into<Value>`.
pub trait ColumnInto<T> {
    /// The strategy.
    fn column(&self) -> ViaInto<T>;
}
impl<T: Into<Value>, F> ColumnInto<T> for &Probe<T, F> {
    #[inline]
    fn column(&self) -> ViaInto<T> {
        ViaInto(PhantomData)
    }
}

/// Step 2: the error.
pub trait ColumnMissing<T, F> {
    /// The strategy.
    fn column(&self) -> NoColumnValue<T, F>;
}
impl<T, F> ColumnMissing<T, F> for Probe<T, F> {
    #[inline]
    fn column(&self) -> NoColumnValue<T, F> {
        NoColumnValue(PhantomData)
    }
}

// ---- The token on `sequence = |n| …` results: text carries it, numbers do not. ----

/// Appends the token when the test shares its database.
pub struct ViaToken<T>(PhantomData<fn() -> T>);

impl<T: UniqueValue> ViaToken<T> {
    /// The value, with the token when the test shares its database.
    #[inline]
    pub fn apply(self, value: T, build: &BuildCtx) -> T {
        build.tokened(value)
    }
}

/// Leaves the value as it is.
pub struct Untokened<T>(PhantomData<fn() -> T>);

impl<T> Untokened<T> {
    /// The value, unchanged.
    #[inline]
    pub fn apply(self, value: T, _build: &BuildCtx) -> T {
        value
    }
}

/// Step 1: text carries the token.
pub trait TokenText<T> {
    /// The strategy.
    fn token(&self) -> ViaToken<T>;
}
impl<T: UniqueValue, F> TokenText<T> for &Probe<T, F> {
    #[inline]
    fn token(&self) -> ViaToken<T> {
        ViaToken(PhantomData)
    }
}

/// Step 2: anything else is left alone.
pub trait TokenOther<T> {
    /// The strategy.
    fn token(&self) -> Untokened<T>;
}
impl<T, F> TokenOther<T> for Probe<T, F> {
    #[inline]
    fn token(&self) -> Untokened<T> {
        Untokened(PhantomData)
    }
}

// ---- The decoder of a `belongs_to` parent: its FromRow for each backend's rows, else `None`
// (reported when creating). ----

/// Step 1: the model reads rows (`sqlx::FromRow`).
pub trait DecoderRow {
    /// The decoder.
    fn decoder(&self) -> Option<crate::factory::plan::Decoder>;
}
impl<M: crate::factory::Row, F> DecoderRow for &Probe<M, F> {
    #[inline]
    fn decoder(&self) -> Option<crate::factory::plan::Decoder> {
        Some(crate::factory::plan::decoder::<M, sqlx::Postgres>())
    }
}

/// Step 2: it does not; creating it reports that.
pub trait DecoderNone {
    /// No decoder.
    fn decoder(&self) -> Option<crate::factory::plan::Decoder>;
}
impl<M, F> DecoderNone for Probe<M, F> {
    #[inline]
    fn decoder(&self) -> Option<crate::factory::plan::Decoder> {
        None
    }
}

/// The same for SQLite rows: the model reads them.
pub trait SqliteDecoderRow {
    /// The decoder.
    fn sqlite_decoder(&self) -> Option<crate::factory::plan::Decoder>;
}
#[cfg(feature = "sqlite")]
impl<M: crate::factory::Row<sqlx::Sqlite>, F> SqliteDecoderRow for &Probe<M, F> {
    #[inline]
    fn sqlite_decoder(&self) -> Option<crate::factory::plan::Decoder> {
        Some(crate::factory::plan::decoder::<M, sqlx::Sqlite>())
    }
}

/// It does not (or seedbed was built without SQLite).
pub trait SqliteDecoderNone {
    /// No decoder.
    fn sqlite_decoder(&self) -> Option<crate::factory::plan::Decoder>;
}
impl<M, F> SqliteDecoderNone for Probe<M, F> {
    #[inline]
    fn sqlite_decoder(&self) -> Option<crate::factory::plan::Decoder> {
        None
    }
}

/// The same for MySQL rows: the model reads them.
pub trait MySqlDecoderRow {
    /// The decoder.
    fn mysql_decoder(&self) -> Option<crate::factory::plan::Decoder>;
}
#[cfg(feature = "mysql")]
impl<M: crate::factory::Row<sqlx::MySql>, F> MySqlDecoderRow for &Probe<M, F> {
    #[inline]
    fn mysql_decoder(&self) -> Option<crate::factory::plan::Decoder> {
        Some(crate::factory::plan::decoder::<M, sqlx::MySql>())
    }
}

/// It does not (or seedbed was built without MySQL).
pub trait MySqlDecoderNone {
    /// No decoder.
    fn mysql_decoder(&self) -> Option<crate::factory::plan::Decoder>;
}
impl<M, F> MySqlDecoderNone for Probe<M, F> {
    #[inline]
    fn mysql_decoder(&self) -> Option<crate::factory::plan::Decoder> {
        None
    }
}

// ---- A placeholder for a foreign key the plan fills in later: Default, else a fixed Dummy. ----

/// A placeholder value, made by a function.
pub struct PlaceholderValue<T>(fn() -> T);

impl<T> PlaceholderValue<T> {
    /// The value.
    #[inline]
    pub fn value(self) -> T {
        (self.0)()
    }
}

/// No placeholder: using it is the compile error.
pub struct NoPlaceholder<T, F>(PhantomData<fn() -> (T, F)>);

impl<T, F> NoPlaceholder<T, F> {
    /// Never compiles for a real field: `T: MissingValue<F>` has no implementation.
    pub fn value(self) -> T
    where
        T: MissingValue<F>,
    {
        T::missing()
    }
}

/// Step 1: `Default`.
pub trait PlaceholderDefault<T> {
    /// The strategy.
    fn placeholder(&self) -> PlaceholderValue<T>;
}
impl<T: Default, F> PlaceholderDefault<T> for &&Probe<T, F> {
    #[inline]
    fn placeholder(&self) -> PlaceholderValue<T> {
        PlaceholderValue(T::default)
    }
}

/// Step 2: `Dummy<Faker>` from a fixed stream.
pub trait PlaceholderDummy<T> {
    /// The strategy.
    fn placeholder(&self) -> PlaceholderValue<T>;
}
impl<T: Dummy<Faker>, F> PlaceholderDummy<T> for &Probe<T, F> {
    #[inline]
    fn placeholder(&self) -> PlaceholderValue<T> {
        PlaceholderValue(|| {
            use rand::SeedableRng;
            Faker.fake_with_rng(&mut crate::factory::BuildRng::seed_from_u64(0))
        })
    }
}

/// Step 3: the error.
pub trait PlaceholderMissing<T, F> {
    /// The strategy.
    fn placeholder(&self) -> NoPlaceholder<T, F>;
}
impl<T, F> PlaceholderMissing<T, F> for Probe<T, F> {
    #[inline]
    fn placeholder(&self) -> NoPlaceholder<T, F> {
        NoPlaceholder(PhantomData)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(
        clippy::needless_borrow,
        reason = "the borrows pick the impl, as in generated code"
    )]
    fn dummy_beats_default() {
        let ctx = std::sync::Arc::new(crate::context::TestContext::builder("probe").build());
        ctx.sync_scope(|| {
            let mut b = BuildCtx::start(&TABLE);
            // u32 has both: Dummy wins, so values vary.
            let values: Vec<u32> = (0..8)
                .map(|_| (&&&Probe::<u32>::new()).fill().value(&mut b))
                .collect();
            assert!(values.iter().any(|v| *v != 0));
            // Generated fields prefer Default.
            let id: i64 = (&&&Probe::<i64>::new()).fill_generated().value(&mut b);
            assert_eq!(id, 0);
            // Text carries the token, numbers do not.
            let n: i32 = (&&Probe::<i32>::new()).token().apply(5, &b);
            assert_eq!(n, 5);
        });
    }

    static TABLE: crate::factory::Table =
        crate::factory::Table::__new("t", None, "probe::T", &[], &[]);
}
