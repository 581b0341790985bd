#![doc = include_str!("README.md")]

mod assoc;
mod attributes;
mod build;
mod create;
mod db_enum;
mod errors;
mod graph;
mod insert;
pub(crate) mod lint;
#[doc(hidden)]
pub mod plan;
#[doc(hidden)]
pub mod probe;
mod rows;
mod scope;
mod stub;
mod table;
mod unique;

pub use self::assoc::{Assoc, Children, Hooks, IntoAssoc, Node, Polymorphic};
pub use self::attributes::Attributes;
pub use self::build::{BuildCtx, BuildRng, stubbed};
pub use self::create::{Create, Row, Target};
pub use self::db_enum::{
    DbEnum, enum_array_type, enum_column_type, enum_null, enum_try_from, enum_value, typed_text,
};
pub use self::graph::{Created, Graph};
pub use self::lint::{LintFailure, LintReport};
pub use self::plan::{
    BulkInsert, HookFuture, MAX_BIND_PARAMETERS, bulk_insert, rows_per_statement,
};
pub use self::rows::{Rows, SchemaRows};
pub use self::stub::StubValue;
pub use self::table::{Column, Table};
pub use self::unique::UniqueValue;
pub use crate::context::{InsertEvent, InsertObserver, InsertStats, StatementKind, TableStats};
pub use crate::context::{LOCALE_VAR, Locale};
pub use crate::error::{ConstraintKind, ConstraintViolation};

/// The fake crate, for fakers in attributes without depending on it yourself:
/// `#[factory(faker = seedbed::factory::fake::faker::name::en::Name())]`.
pub use fake;
/// sea-query, to build statements from [`Attributes`] or implement `From<T> for Value` without
/// depending on it yourself.
pub use sea_query;
/// The value type of a column: what [`Attributes`] holds and sea-query binds.
pub use sea_query::Value;

/// A model with a factory: implemented by `#[derive(Factory)]`.
///
/// Most code calls the inherent `User::factory()` the derive also generates, and needs no import;
/// the trait is for code generic over models (the persistence layer, helpers of your own).
///
/// ```
/// use seedbed::factory::{Factory, FactoryBuilder};
///
/// #[derive(Debug, seedbed::Factory)]
/// #[factory(table = "organizations")]
/// pub struct Organization {
///     #[factory(generated)]
///     pub id: i64,
///     #[factory(sequence = "org-{n}")]
///     pub slug: String,
/// }
///
/// fn three<M: Factory>() -> Vec<M>
/// where
///     M::Builder: Clone,
/// {
///     M::factory().build_list(3)
/// }
///
/// let orgs: Vec<Organization> = three();
/// assert_eq!(orgs.len(), 3);
/// assert_eq!(Organization::TABLE.name(), "organizations");
/// ```
pub trait Factory: Sized {
    /// The generated builder, `XFactory`.
    type Builder: FactoryBuilder<Model = Self>;

    /// The table the model lives in, and its columns.
    const TABLE: &'static Table;

    /// A builder with nothing overridden.
    fn factory() -> Self::Builder;

    /// The model's column/value pairs: every column but the generated ones, in field order.
    fn into_attributes(self) -> Attributes;

    /// How to read the model back on each backend whose rows it implements `sqlx::FromRow` for
    /// (`#[derive(Factory)]` finds out); `None` for a hand-written factory, whose rows are read
    /// on PostgreSQL only.
    #[doc(hidden)]
    fn __decoders() -> Option<plan::Decoder> {
        None
    }

    /// The builders [`lint!`](crate::lint) creates: the factory as it is, then once per trait of
    /// `#[factory(traits(…))]`, named.
    #[doc(hidden)]
    fn __variants() -> Vec<(&'static str, Self::Builder)> {
        vec![("default", Self::factory())]
    }
}

/// The builder of a model: implemented by `#[derive(Factory)]` for `XFactory`.
///
/// The generated builder has the same methods as inherent methods (no import needed), plus one
/// setter per field and one method per trait.
pub trait FactoryBuilder: Sized {
    /// The model it builds.
    type Model: Factory<Builder = Self>;

    /// Builds one value in memory: overrides as set, every other field from its attribute.
    fn build(self) -> Self::Model;

    /// Builds one value in memory as [`build`](Self::build) does, stubbed ([`stubbed`]): the
    /// generated fields get distinct, plausible stand-ins ([`StubValue`]: ids from 1001) and
    /// the parents of unset `belongs_to` associations are stubbed too, so their keys are ids. For
    /// unit tests of code that reads models, with no database.
    fn build_stubbed(self) -> Self::Model {
        stubbed(|| self.build())
    }

    /// `n` stubbed values ([`build_stubbed`](Self::build_stubbed)) with the same overrides.
    fn build_stubbed_list(self, n: usize) -> Vec<Self::Model>
    where
        Self: Clone,
    {
        stubbed(|| self.build_list(n))
    }

    /// Builds `n` values with the same overrides; sequences and fakers advance for each.
    fn build_list(self, n: usize) -> Vec<Self::Model>
    where
        Self: Clone,
    {
        self.build_list_with(n, |_, builder| builder)
    }

    /// Builds `n` values, letting `each` adjust the builder of the `i`-th (from 0).
    ///
    /// ```
    /// use seedbed::factory::FactoryBuilder;
    ///
    /// #[derive(Debug, seedbed::Factory)]
    /// pub struct Column {
    ///     #[factory(default = 0)]
    ///     pub position: i32,
    /// }
    ///
    /// let columns = Column::factory().build_list_with(3, |i, c| c.position(i as i32 * 10));
    /// assert_eq!(columns.iter().map(|c| c.position).collect::<Vec<_>>(), [0, 10, 20]);
    /// ```
    fn build_list_with(
        self,
        n: usize,
        mut each: impl FnMut(usize, Self) -> Self,
    ) -> Vec<Self::Model>
    where
        Self: Clone,
    {
        let mut out = Vec::with_capacity(n);
        if n == 0 {
            return out;
        }
        for i in 0..n - 1 {
            out.push(each(i, self.clone()).build());
        }
        out.push(each(n - 1, self).build());
        out
    }

    /// Builds one value and returns its column/value pairs (factory_bot's `attributes_for`).
    fn attributes(self) -> Attributes {
        self.build().into_attributes()
    }

    /// Adds the row this builder makes (and the parents its associations need) to `plan`.
    /// `#[derive(Factory)]` implements it; the default, for hand-written builders, builds the
    /// model and writes its attributes.
    #[doc(hidden)]
    fn __plan(self, plan: &mut plan::Plan, decode: plan::Decoder) -> crate::Result<plan::NodeId> {
        let slot = plan.take_slot();
        let attributes = self.build().into_attributes();
        plan.push(
            slot,
            Self::Model::TABLE,
            attributes,
            Vec::new(),
            decode,
            Vec::new(),
        )
    }
}
