//! Procedural macros of seedbed: `#[derive(Factory)]`, `#[derive(DbEnum)]` and
//! `#[seedbed::test]`. Use them through the `seedbed` crate, whose `factory` module documents
//! them with examples.

mod db_enum;
mod factory;
mod seed_attr;
mod test_attr;

use proc_macro::TokenStream;

/// Derives a factory for a model struct: `X::factory()` returns an `XFactory` builder with one
/// setter per field, `.build()`, `.build_list(n)` and `.attributes()`.
///
/// See `seedbed::factory` for the attributes (`default`, `sequence`, `faker`, `unique`, `lazy`,
/// `generated`, `column`, `skip`; `table`, `schema`, `traits`, `transient`, `after_build`) and
/// examples.
#[proc_macro_derive(Factory, attributes(factory))]
pub fn derive_factory(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    factory::derive(&input).into()
}

/// Derives the conversions that let a Rust enum fill a PostgreSQL enum column from a factory:
/// `From<E> for sea_query::Value` (with the enum type's name, so the value is cast to it), the
/// sea-query traits for `Option<E>` and `Vec<E>`, and a `fake::Dummy` that picks a variant.
///
/// Reads `#[sqlx(type_name = "…", rename_all = "…")]` and `#[sqlx(rename = "…")]` when the enum
/// also derives `sqlx::Type`, so the labels match; `#[db_enum(...)]` with the same keys takes
/// precedence. See `seedbed::factory::DbEnum`.
#[proc_macro_derive(DbEnum, attributes(db_enum))]
pub fn derive_db_enum(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    db_enum::derive(&input).into()
}

/// Marks an async test that gets an isolated database: a drop-in for `#[sqlx::test]`.
///
/// The function may take `seedbed::TestDb`, `sqlx::PgPool`, `PoolConnection<Postgres>`,
/// `(PgPoolOptions, PgConnectOptions)` or nothing, and return `()` or a `Result`. Arguments:
/// `strategy = "rollback" | "truncate" | "template" | "namespace"`, `flavor = "multi_thread"`,
/// `worker_threads = N`, `statement_timeout = "30s"`, `lock_timeout = "5s"`,
/// `reset_sequences`, and those of `#[sqlx::test]`: `migrations = "dir" | false`,
/// `migrator = "path::TO_MIGRATOR"`, `fixtures("a", "b")`,
/// `fixtures(path = "dir", scripts("a"))`; and `migrations = path::to::fn` for a function
/// returning `seedbed::isolation::Migrations` (another migration tool, plain `.sql` files);
/// `seed = path` (a `#[seedbed::seed]` function); `database = "existing"` and
/// `allow_unmarked_database` (isolation inside an existing database, no CREATE DATABASE). See
/// `seedbed::isolation`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    test_attr::expand(args.into(), item.into()).into()
}

/// Makes an async function suite data: `#[seedbed::seed] async fn plans(conn: &mut PgConnection)
/// -> Result<(), E>` becomes a `static plans: seedbed::isolation::Seed`, written once into the
/// database every strategy starts from when a test names it (`#[seedbed::test(seed = plans)]`).
/// Its identity is its path and a hash of its code; `#[seedbed::seed(version = "2")]` adds a
/// version to bump when what it reads changed. See `seedbed::isolation::Seed`.
#[proc_macro_attribute]
pub fn seed(args: TokenStream, item: TokenStream) -> TokenStream {
    seed_attr::expand(args.into(), item.into()).into()
}
