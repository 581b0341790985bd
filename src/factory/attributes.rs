//! [`Attributes`]: the column/value pairs of a built model.

use sea_query::Value;
use sea_query::value::prelude::Json;

/// The column/value pairs a factory would insert (factory_bot's `attributes_for`): every column
/// but the generated ones, in field order, as [`sea_query::Value`]s ready to bind.
///
/// ```
/// use seedbed::factory::Value;
///
/// #[derive(Debug, seedbed::Factory)]
/// #[factory(table = "users")]
/// pub struct User {
///     #[factory(generated)]
///     pub id: i64,
///     #[factory(sequence = "user{n}@example.com")]
///     pub email: String,
///     #[factory(default = false)]
///     pub is_admin: bool,
///     pub invited_by_id: Option<i64>,
/// }
///
/// let attrs = User::factory().email("ada@example.com").attributes();
/// assert_eq!(attrs.columns().collect::<Vec<_>>(), ["email", "is_admin", "invited_by_id"]);
/// assert_eq!(attrs.get("email"), Some(&Value::from("ada@example.com")));
/// assert_eq!(attrs.get("is_admin"), Some(&Value::Bool(Some(false))));
/// assert_eq!(attrs.get("invited_by_id"), Some(&Value::BigInt(None)));
/// assert_eq!(
///     attrs.to_json().to_string(),
///     r#"{"email":"ada@example.com","invited_by_id":null,"is_admin":false}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    pairs: Vec<(&'static str, Value)>,
}

impl Attributes {
    /// No pairs yet, room for `capacity`.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            pairs: Vec::with_capacity(capacity),
        }
    }

    /// Appends a pair (what the derive does for each column; useful in hand-written factories).
    ///
    /// ```
    /// let mut attrs = seedbed::factory::Attributes::default();
    /// attrs.push("name", "Ada");
    /// assert_eq!(attrs.len(), 1);
    /// ```
    pub fn push(&mut self, column: &'static str, value: impl Into<Value>) {
        self.pairs.push((column, value.into()));
    }

    /// The value of `column`, if it is one of the pairs.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.pairs
            .iter()
            .find(|(name, _)| *name == column)
            .map(|(_, value)| value)
    }

    /// The column names, in order.
    pub fn columns(&self) -> impl ExactSizeIterator<Item = &'static str> + '_ {
        self.pairs.iter().map(|(name, _)| *name)
    }

    /// The values, in column order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> + '_ {
        self.pairs.iter().map(|(_, value)| value)
    }

    /// The values, in column order, for an `INSERT … VALUES` row.
    pub fn into_values(self) -> Vec<Value> {
        self.pairs.into_iter().map(|(_, value)| value).collect()
    }

    /// The pairs, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, (&'static str, Value)> {
        self.pairs.iter()
    }

    /// How many pairs there are.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// A JSON object of the pairs, for API payloads: NULL becomes `null`, enums their label,
    /// times RFC 3339 text, UUIDs hyphenated text.
    pub fn to_json(&self) -> Json {
        Json::Object(
            self.pairs
                .iter()
                .map(|(name, value)| {
                    (
                        (*name).to_string(),
                        sea_query::sea_value_to_json_value(value),
                    )
                })
                .collect(),
        )
    }
}

impl IntoIterator for Attributes {
    type Item = (&'static str, Value);
    type IntoIter = std::vec::IntoIter<(&'static str, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.pairs.into_iter()
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = &'a (&'static str, Value);
    type IntoIter = std::slice::Iter<'a, (&'static str, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter()
    }
}

impl FromIterator<(&'static str, Value)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (&'static str, Value)>>(iter: I) -> Self {
        Self {
            pairs: iter.into_iter().collect(),
        }
    }
}
