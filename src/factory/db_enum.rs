//! Rust enums stored in PostgreSQL enum columns.

use std::borrow::Cow;

use sea_query::{ArrayType, ColumnType, OptionEnum, Value, ValueTypeErr};

/// A Rust enum stored in a PostgreSQL enum type: its type's name and each variant's label.
///
/// `#[derive(seedbed::DbEnum)]` implements it, together with what makes the enum usable as a
/// factory field: `From<E> for sea_query::Value` (a `Value::Enum` carrying the type's name, which
/// sea-query's PostgreSQL backend renders as a cast, `$1::"order_status"`), the sea-query traits
/// behind `Option<E>` and `Vec<E>` columns, and a `fake::Dummy<Faker>` that picks a variant, so a
/// field of the enum's type needs no attribute.
///
/// The derive reads `#[sqlx(type_name = "…", rename_all = "…")]` and `#[sqlx(rename = "…")]`
/// when the enum also derives `sqlx::Type`, so the labels are the ones sqlx reads back;
/// `#[db_enum(type_name = "…", rename_all = "…")]` and `#[db_enum(rename = "…")]` take
/// precedence, and `#[db_enum(dummy = false)]` leaves `Dummy` out (when you derive it yourself).
/// Without a type name, the enum's own name is used, as sqlx does. Name the type without its
/// schema (it is found on the search path).
///
/// ```
/// use seedbed::factory::{DbEnum, Value};
///
/// #[derive(Debug, Clone, Copy, PartialEq, seedbed::DbEnum)]
/// #[db_enum(type_name = "order_status", rename_all = "lowercase")]
/// pub enum OrderStatus {
///     Pending,
///     Paid,
///     Shipped,
///     #[db_enum(rename = "cancelled")]
///     Canceled,
/// }
///
/// #[derive(Debug, seedbed::Factory)]
/// #[factory(table = "order")]
/// pub struct Order {
///     #[factory(generated)]
///     pub id: i64,
///     #[factory(default = OrderStatus::Pending)]
///     pub status: OrderStatus,
///     pub previous_status: Option<OrderStatus>,
///     pub history: Vec<OrderStatus>,
/// }
///
/// assert_eq!(OrderStatus::TYPE_NAME, "order_status");
/// assert_eq!(OrderStatus::Canceled.label(), "cancelled");
/// assert_eq!(OrderStatus::from_label("paid"), Some(OrderStatus::Paid));
///
/// let attrs = Order::factory().status(OrderStatus::Shipped).attributes();
/// let Some(Value::Enum(status)) = attrs.get("status") else { panic!("an enum value") };
/// assert!(status.is_some());
///
/// // A sea-query INSERT casts the label to the enum type.
/// use seedbed::factory::Factory;
/// use seedbed::factory::sea_query::{Alias, PostgresQueryBuilder, Query};
/// let table = Order::TABLE;
/// let (sql, _values) = Query::insert()
///     .into_table(Alias::new(table.name()))
///     .columns(attrs.columns().map(Alias::new))
///     .values_panic(attrs.into_values().into_iter().map(Into::into))
///     .build(PostgresQueryBuilder);
/// assert_eq!(
///     sql,
///     r#"INSERT INTO "order" ("status", "previous_status", "history") VALUES ($1::"order_status", $2::"order_status", $3::"order_status"[])"#
/// );
/// ```
///
/// Implementing it by hand (for an enum whose labels come from elsewhere) also needs the
/// conversions; the helpers in this module build them:
///
/// ```
/// use seedbed::factory::{DbEnum, Value};
///
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// pub enum Priority { Low, High }
///
/// impl DbEnum for Priority {
///     const TYPE_NAME: &'static str = "issue_priority";
///     const LABELS: &'static [&'static str] = &["low", "high"];
///     fn label(&self) -> &'static str {
///         match self { Priority::Low => "low", Priority::High => "high" }
///     }
///     fn from_label(label: &str) -> Option<Self> {
///         match label { "low" => Some(Priority::Low), "high" => Some(Priority::High), _ => None }
///     }
/// }
///
/// impl From<Priority> for Value {
///     fn from(p: Priority) -> Value {
///         seedbed::factory::enum_value(&p)
///     }
/// }
///
/// assert_eq!(Value::from(Priority::High), seedbed::factory::enum_value(&Priority::High));
/// ```
pub trait DbEnum: Sized + 'static {
    /// The PostgreSQL type's name, e.g. `order_status`.
    const TYPE_NAME: &'static str;

    /// Every variant's label, in declaration order.
    const LABELS: &'static [&'static str];

    /// This variant's label.
    fn label(&self) -> &'static str;

    /// The variant labelled `label`.
    fn from_label(label: &str) -> Option<Self>;
}

/// `value` as a sea-query value: its label, tagged with its type's name.
pub fn enum_value<E: DbEnum>(value: &E) -> Value {
    Value::Enum(OptionEnum::Some(Box::new(sea_query::Enum {
        type_name: E::TYPE_NAME.into(),
        value: Cow::Borrowed(value.label()),
    })))
}

/// A NULL of `E`'s type.
pub fn enum_null<E: DbEnum>() -> Value {
    Value::Enum(OptionEnum::None(E::TYPE_NAME.into()))
}

/// The variant a sea-query value holds.
pub fn enum_try_from<E: DbEnum>(value: Value) -> Result<E, ValueTypeErr> {
    match value {
        Value::Enum(OptionEnum::Some(v)) => E::from_label(&v.value).ok_or(ValueTypeErr),
        _ => Err(ValueTypeErr),
    }
}

/// The array element type of `E[]`.
pub fn enum_array_type<E: DbEnum>() -> ArrayType {
    #[cfg(feature = "postgres")]
    {
        ArrayType::Enum(Box::new(E::TYPE_NAME.into()))
    }
    #[cfg(not(feature = "postgres"))]
    {
        ArrayType::String
    }
}

/// The column type `E` is stored in.
pub fn enum_column_type<E: DbEnum>() -> ColumnType {
    ColumnType::Enum {
        name: E::TYPE_NAME.into(),
        variants: E::LABELS.iter().map(|label| (*label).into()).collect(),
    }
}

/// `text` bound as text and cast to the PostgreSQL type `type_name` (`$1::"inet"`): a column
/// value for a type sea-query has no variant for (`inet`, `citext`, `ltree`, a domain over one
/// of them), from a newtype's `From<Newtype> for Value`. Name a type in the search path,
/// lowercase, without its schema.
///
/// ```
/// use seedbed::factory::{Value, typed_text};
/// use seedbed::factory::sea_query::{Alias, PostgresQueryBuilder, Query};
///
/// pub struct Inet(pub String);
///
/// impl From<Inet> for Value {
///     fn from(ip: Inet) -> Value {
///         typed_text("inet", ip.0)
///     }
/// }
///
/// let (sql, _) = Query::insert()
///     .into_table(Alias::new("sessions"))
///     .columns([Alias::new("ip")])
///     .values_panic([Value::from(Inet("10.0.0.1".into())).into()])
///     .build(PostgresQueryBuilder);
/// assert_eq!(sql, r#"INSERT INTO "sessions" ("ip") VALUES ($1::"inet")"#);
/// ```
pub fn typed_text(type_name: &'static str, text: impl Into<String>) -> Value {
    Value::Enum(OptionEnum::Some(Box::new(sea_query::Enum {
        type_name: type_name.into(),
        value: Cow::Owned(text.into()),
    })))
}
