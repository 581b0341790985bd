//! What a factory knows about its table: name, schema, columns and their roles.

/// The table a model is stored in, as `#[derive(Factory)]` describes it: available as
/// [`Factory::TABLE`](crate::factory::Factory::TABLE) without building anything.
///
/// ```
/// use seedbed::factory::Factory;
///
/// #[derive(Debug, seedbed::Factory)]
/// #[factory(table = "users")]
/// pub struct User {
///     #[factory(generated)]
///     pub id: i64,
///     #[factory(sequence = "user{n}@example.com")]
///     pub email: String,
///     #[factory(column = "display_name", default = "Ada")]
///     pub name: String,
///     #[factory(skip)]
///     pub posts_seen: u32,
/// }
///
/// let table = User::TABLE;
/// assert_eq!(table.name(), "users");
/// assert_eq!(table.schema(), None);
/// let names: Vec<_> = table.columns().iter().map(|c| c.name()).collect();
/// assert_eq!(names, ["id", "email", "display_name"]);
/// let inserted: Vec<_> = table.insert_columns().map(|c| c.name()).collect();
/// assert_eq!(inserted, ["email", "display_name"]);
/// assert_eq!(table.column("display_name").map(|c| c.field()), Some("name"));
/// assert_eq!(table.skipped_fields(), ["posts_seen"]);
/// ```
#[derive(Debug)]
pub struct Table {
    name: &'static str,
    schema: Option<&'static str>,
    factory: &'static str,
    factory_hash: u64,
    columns: &'static [Column],
    skipped: &'static [&'static str],
}

impl Table {
    #[doc(hidden)]
    pub const fn __new(
        name: &'static str,
        schema: Option<&'static str>,
        factory: &'static str,
        columns: &'static [Column],
        skipped: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            schema,
            factory,
            factory_hash: key_hash(factory),
            columns,
            skipped,
        }
    }

    /// The table's name (`#[factory(table = "…")]`; by default the struct's name in snake_case
    /// with an `s` appended, as Diesel does).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The table's schema, when `#[factory(schema = "…")]` names one (else the search path
    /// decides).
    pub const fn schema(&self) -> Option<&'static str> {
        self.schema
    }

    /// The factory's key: the model's module path and name. Sequences count per test context
    /// and key.
    pub const fn factory(&self) -> &'static str {
        self.factory
    }

    /// A stable hash of [`Table::factory`], mixed into the seed of each build's random stream.
    pub const fn factory_hash(&self) -> u64 {
        self.factory_hash
    }

    /// Every column of the model, in field order, generated ones included (skipped fields are
    /// not columns).
    pub const fn columns(&self) -> &'static [Column] {
        self.columns
    }

    /// The columns an `INSERT` writes: all but the generated ones, in field order. These are
    /// the columns [`Attributes`](crate::factory::Attributes) lists.
    pub fn insert_columns(&self) -> impl Iterator<Item = &'static Column> + 'static {
        self.columns.iter().filter(|c| !c.generated)
    }

    /// The column named `name`, if the model has it.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The fields marked `#[factory(skip)]`: part of the struct, not of the table.
    pub const fn skipped_fields(&self) -> &'static [&'static str] {
        self.skipped
    }
}

/// One column of a [`Table`]: its name, the field it comes from, and its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    field: &'static str,
    name: &'static str,
    generated: bool,
    unique: bool,
    sequence: bool,
}

impl Column {
    #[doc(hidden)]
    pub const fn __new(
        field: &'static str,
        name: &'static str,
        generated: bool,
        unique: bool,
        sequence: bool,
    ) -> Self {
        Self {
            field,
            name,
            generated,
            unique,
            sequence,
        }
    }

    /// The column's name in the database (`#[factory(column = "…")]`, else the field's name).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The Rust field the column is read into.
    pub const fn field(&self) -> &'static str {
        self.field
    }

    /// Assigned by the database (`#[factory(generated)]`): left out of `INSERT`, read back.
    pub const fn is_generated(&self) -> bool {
        self.generated
    }

    /// Marked `#[factory(unique)]`: its values carry the sequence number (and the token when
    /// the test shares its database).
    pub const fn is_unique(&self) -> bool {
        self.unique
    }

    /// Filled from a `#[factory(sequence = …)]`.
    pub const fn is_sequence(&self) -> bool {
        self.sequence
    }
}

/// The [`stable_hash`](crate::context::stable_hash) of a key, usable in constants.
pub(crate) const fn key_hash(key: &str) -> u64 {
    crate::util::hash::stable_hash_bytes(key.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_hash_is_the_stable_hash() {
        let key = "my_crate::models::User";
        assert_eq!(super::key_hash(key), crate::util::hash::stable_hash(key));
    }
}
