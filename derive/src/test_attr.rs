//! `#[seedbed::test]`: parse the attribute's arguments and the test function, check them, and
//! expand to a `#[test]` that runs through `::seedbed::__private::TestFn`.
//!
//! It accepts everything `#[sqlx::test]` 0.9 accepts, with the same meaning (`migrations = false`,
//! `migrations = "path"`, `migrator = "path::TO_MIGRATOR"`, `fixtures(…)`, defaults from
//! `sqlx.toml`), plus `migrations = path::to::fn` (a function returning `Migrations`),
//! `strategy`, `flavor`, `worker_threads`, `statement_timeout`,
//! `lock_timeout` and `reset_sequences`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

const STRATEGIES: [&str; 4] = ["rollback", "truncate", "template", "namespace"];

#[derive(Default)]
struct Args {
    strategy: Option<(String, Span)>,
    flavor: Option<(String, Span)>,
    worker_threads: Option<(usize, Span)>,
    statement_timeout_ms: Option<u64>,
    lock_timeout_ms: Option<u64>,
    /// `role = "…"`: the role the test's connections act as.
    role: Option<String>,
    reset_sequences: bool,
    /// `namespace = "schema"`.
    schema_mode: bool,
    /// `cleanup = "none"`.
    keep_rows: bool,
    /// Where `cleanup = …` was written.
    cleanup_span: Option<proc_macro2::Span>,
    migrations: Migrations,
    fixtures: Vec<(String, Span)>,
    /// `seed = path`: a `#[seedbed::seed]` static.
    seed: Option<syn::Path>,
    /// `databases(main = "…", audit = "…")`.
    databases: Option<Vec<NamedDb>>,
    /// `database = "…"`: an existing database to isolate in, and where it was written.
    database: Option<(String, Span)>,
    /// `allow_unmarked_database`: use `database` though seedbed did not create it.
    allow_unmarked: bool,
    /// The first argument that needs a database, for the error on a test that takes none.
    needs_db: Option<Span>,
}

/// One of `databases(…)`.
struct NamedDb {
    name: syn::Ident,
    migrations: Migrations,
    /// `sqlite` or `postgres` when given.
    backend: Option<&'static str>,
}

#[derive(Default)]
enum Migrations {
    #[default]
    Inferred,
    Disabled,
    Dir(LitStr),
    Migrator(syn::Path),
    /// `migrations = path::to::fn`: a function returning `Migrations` (or a `Result` of them).
    Function(syn::Path),
}

/// Expands the attribute; errors become `compile_error!` beside the unchanged function, so one
/// mistake does not cascade into "test not found" noise.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let input: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(item);
            return out;
        }
    };
    match expand_fn(args, &input) {
        Ok(tokens) => tokens,
        Err(e) => {
            let mut out = e.to_compile_error();
            // Keep the function (as a plain, unused item) so its body still type-checks.
            let mut plain = input.clone();
            plain.attrs.push(syn::parse_quote!(#[allow(dead_code)]));
            out.extend(plain.into_token_stream());
            out
        }
    }
}

fn expand_fn(args: TokenStream, input: &syn::ItemFn) -> syn::Result<TokenStream> {
    let mut args = parse_args(args)?;
    check_signature(input)?;

    let inputs = &input.sig.inputs;
    let takes_db = !inputs.is_empty();
    if !takes_db && let Some(span) = args.needs_db {
        return Err(syn::Error::new(
            span,
            "this test takes no database argument, so there is nothing to migrate or isolate: \
             add a parameter (`db: seedbed::TestDb` or `pool: sqlx::PgPool`) or remove this \
             argument",
        ));
    }
    if inputs.len() > 2 {
        return Err(syn::Error::new_spanned(
            inputs,
            "a #[seedbed::test] function takes one of: nothing, `TestDb`, `PgPool`, \
             `PoolConnection<Postgres>`, `(PgPoolOptions, PgConnectOptions)` or \
             `PgConnectOptions` (or the same forms for SQLite: `TestDb<Sqlite>`, `SqlitePool`, …)",
        ));
    }
    let own_connections = inputs.len() == 2 || inputs.iter().any(is_connect_options);
    if own_connections
        && let Some((name, span)) = &args.strategy
        && name == "rollback"
    {
        return Err(syn::Error::new(
            *span,
            "strategy = \"rollback\" cannot isolate a test that takes connect options \
             (`(PgPoolOptions, PgConnectOptions)`, `SqliteConnectOptions`, …): the test builds \
             its own pool, whose connections are not the one holding the test's transaction. \
             Use strategy = \"truncate\" or \"template\" (without a strategy, the first that \
             can isolate it is chosen)",
        ));
    }

    let name = &input.sig.ident;
    let ret = &input.sig.output;
    let body = &input.block;
    let attrs = &input.attrs;
    let vis = &input.vis;

    let strategy = match &args.strategy {
        Some((s, _)) => {
            let variant = syn::Ident::new(&capitalize(s), Span::call_site());
            quote!(::core::option::Option::Some(::seedbed::__private::Strategy::#variant))
        }
        None => quote!(::core::option::Option::None),
    };
    let flavor = match args.flavor.as_ref().map(|(f, _)| f.as_str()) {
        Some("multi_thread") => quote!(::seedbed::__private::Flavor::MultiThread),
        _ => quote!(::seedbed::__private::Flavor::CurrentThread),
    };
    let worker_threads = opt(args.worker_threads.map(|(n, _)| n));
    let statement_timeout = opt(args.statement_timeout_ms);
    let lock_timeout = opt(args.lock_timeout_ms);
    let role = match &args.role {
        Some(r) => quote!(::core::option::Option::Some(#r)),
        None => quote!(::core::option::Option::None),
    };
    let reset_sequences = args.reset_sequences;
    if let Some((name, span)) = &args.strategy
        && name == "template"
        && args.database.is_some()
    {
        return Err(syn::Error::new(
            *span,
            "Template clones databases it creates; with `database = \"…\"` (no CREATE DATABASE), \
             use strategy = \"rollback\", \"namespace\" or \"truncate\"",
        ));
    }
    if let Some((_, span)) = &args.database {
        let conflict = if args.seed.is_some() {
            Some("`seed`")
        } else if args.databases.is_some() {
            Some("`databases(…)`")
        } else if !matches!(args.migrations, Migrations::Inferred | Migrations::Disabled) {
            Some("`migrations`")
        } else {
            None
        };
        if let Some(what) = conflict {
            return Err(syn::Error::new(
                *span,
                format!(
                    "`database = \"…\"` isolates inside a database that exists already, with its \
                     schema and data: seedbed builds nothing in it, so {what} does not apply. \
                     Leave one of them out"
                ),
            ));
        }
    }
    if args.allow_unmarked && args.database.is_none() {
        return Err(syn::Error::new(
            Span::call_site(),
            "`allow_unmarked_database` applies to a database named with `database = \"…\"`",
        ));
    }
    let database = match &args.database {
        Some((name, _)) => quote!(::core::option::Option::Some(#name)),
        None => quote!(::core::option::Option::None),
    };
    let allow_unmarked = args.allow_unmarked;
    let schema_mode = args.schema_mode;
    let keep_rows = args.keep_rows;
    for (flag, what) in [(schema_mode, "namespace"), (keep_rows, "cleanup")] {
        if flag
            && let Some((name, span)) = &args.strategy
            && name != "namespace"
        {
            return Err(syn::Error::new(
                *span,
                format!("`{what}` applies to strategy = \"namespace\" only"),
            ));
        }
    }
    if schema_mode
        && keep_rows
        && let Some(span) = args.cleanup_span
    {
        return Err(syn::Error::new(
            span,
            "cleanup = \"none\" keeps a data-mode test's rows; namespace = \"schema\" drops the \
             test's schema after it: use one or the other",
        ));
    }
    let strategy = if (schema_mode || keep_rows) && args.strategy.is_none() {
        quote!(::core::option::Option::Some(
            ::seedbed::__private::Strategy::Namespace
        ))
    } else {
        strategy
    };
    if let Some(first) = args.databases.as_mut().and_then(|d| d.first_mut()) {
        args.migrations = std::mem::take(&mut first.migrations);
    }
    let migrations = migrations_tokens(&args.migrations, takes_db)?;
    let databases = match &args.databases {
        Some(list) => {
            let own = list.first().map(|d| d.name.to_string()).unwrap_or_default();
            let others = list
                .iter()
                .skip(1)
                .map(|d| {
                    let name = d.name.to_string();
                    let migrations = migrations_tokens(&d.migrations, true)?;
                    let backend = match d.backend {
                        Some("sqlite") => quote!(::core::option::Option::Some(
                            ::seedbed::__private::acquire_on_sqlite
                        )),
                        Some("mysql") => quote!(::core::option::Option::Some(
                            ::seedbed::__private::acquire_on_mysql
                        )),
                        Some(_) => quote!(::core::option::Option::Some(
                            ::seedbed::__private::acquire_on_postgres
                        )),
                        None => quote!(::core::option::Option::None),
                    };
                    Ok(quote! {
                        ::seedbed::__private::NamedDatabase {
                            name: #name,
                            migrations: || #migrations,
                            backend: #backend,
                        }
                    })
                })
                .collect::<syn::Result<Vec<_>>>()?;
            quote! {
                ::core::option::Option::Some((#own, {
                    const __SEEDBED_DATABASES: &[::seedbed::__private::NamedDatabase] =
                        &[#(#others),*];
                    __SEEDBED_DATABASES
                }))
            }
        }
        None => quote!(::core::option::Option::None),
    };
    let seed = match &args.seed {
        Some(path) => quote_spanned! {path.span()=>
            ::core::option::Option::Some(&#path)
        },
        None => quote!(::core::option::Option::None),
    };
    let fixtures = args.fixtures.iter().map(|(path, span)| {
        quote_spanned! {*span=>
            ::seedbed::__private::TestFixture { path: #path, contents: include_str!(#path) }
        }
    });
    let arg_types = inputs.iter().map(|_| quote!(_));

    let inner = quote::format_ident!("__seedbed_test_{}", name);
    // Reported at the parameters when the form is not supported.
    let check_span = if inputs.is_empty() {
        name.span()
    } else {
        inputs.span()
    };
    let check_call = quote_spanned!(check_span=> ::seedbed::__private::assert_test_fn(f););
    let arg_types: Vec<TokenStream> = arg_types.collect();
    Ok(quote! {
        // The test's body. Clippy exempts `#[test]` functions from `unwrap_used` and
        // `expect_used` (with allow-*-in-tests); the body lives outside the `#[test]` function,
        // so it gets the same exemption here.
        #[allow(dead_code, non_snake_case, clippy::unwrap_used, clippy::expect_used)]
        async fn #inner(#inputs) #ret #body

        // Type-checked in every build (a `#[test]` function is compiled only under `cargo test`),
        // so a test function of an unsupported form is reported wherever it is compiled.
        const _: () = {
            #[allow(dead_code)]
            fn check() {
                let f: fn(#(#arg_types),*) -> _ = #inner;
                #check_call
            }
        };

        #(#attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() #ret {
            let mut args = ::seedbed::__private::TestArgs::new(
                concat!(module_path!(), "::", stringify!(#name)),
                env!("CARGO_MANIFEST_DIR"),
            );
            args.strategy = #strategy;
            args.migrations = #migrations;
            args.fixtures = &[#(#fixtures),*];
            args.seed = #seed;
            args.database = #database;
            args.databases = #databases;
            args.allow_unmarked_database = #allow_unmarked;
            args.flavor = #flavor;
            args.worker_threads = #worker_threads;
            args.statement_timeout_ms = #statement_timeout;
            args.lock_timeout_ms = #lock_timeout;
            args.role = #role;
            args.reset_sequences = #reset_sequences;
            args.schema_mode = #schema_mode;
            args.keep_rows = #keep_rows;

            // A coercion site, so each test-function form finds its TestFn implementation.
            let f: fn(#(#arg_types),*) -> _ = #inner;
            ::seedbed::__private::TestFn::run_test(f, args)
        }
    })
}

fn opt<T: ToTokens>(v: Option<T>) -> TokenStream {
    match v {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// A parameter whose type is a `…ConnectOptions` (the test opens its own connections).
fn is_connect_options(arg: &syn::FnArg) -> bool {
    let syn::FnArg::Typed(pat) = arg else {
        return false;
    };
    match &*pat.ty {
        syn::Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident.to_string().ends_with("ConnectOptions")),
        _ => false,
    }
}

fn check_signature(input: &syn::ItemFn) -> syn::Result<()> {
    let sig = &input.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "#[seedbed::test] goes on an `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a #[seedbed::test] function cannot be generic",
        ));
    }
    if let Some(receiver) = sig.receiver() {
        return Err(syn::Error::new_spanned(
            receiver,
            "a #[seedbed::test] function cannot take `self`",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            "variadic test functions are not supported",
        ));
    }
    Ok(())
}

fn migrations_tokens(m: &Migrations, takes_db: bool) -> syn::Result<TokenStream> {
    Ok(match m {
        Migrations::Disabled => quote!(::seedbed::__private::MigrationSource::None),
        Migrations::Migrator(path) => {
            quote!(::seedbed::__private::MigrationSource::Migrator(&#path))
        }
        Migrations::Function(path) => {
            let span = syn::spanned::Spanned::span(path);
            let name = quote!(#path).to_string().replace(' ', "");
            quote::quote_spanned! {span=>
                ::seedbed::__private::MigrationSource::Named(
                    ::core::concat!(::core::module_path!(), "::", #name),
                    || ::seedbed::__private::IntoMigrations::into_migrations(#path()),
                )
            }
        }
        Migrations::Dir(lit) => {
            let resolved = crate_path(&lit.value());
            if let Some(resolved) = &resolved
                && !resolved.is_dir()
            {
                return Err(syn::Error::new_spanned(
                    lit,
                    format!(
                        "migrations directory `{}` not found: paths are relative to the crate \
                         root (where Cargo.toml is)",
                        lit.value()
                    ),
                ));
            }
            let value = lit.value();
            quote!(::seedbed::__private::MigrationSource::Dir(
                ::std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/", #value))
            ))
        }
        Migrations::Inferred if takes_db => {
            // As #[sqlx::test]: sqlx.toml's `migrate.migrations-dir`, else `migrations`, used if
            // it exists.
            let dir = sqlx_toml_migrations_dir().unwrap_or_else(|| "migrations".into());
            match crate_path(&dir) {
                Some(p) if p.is_dir() => quote!(::seedbed::__private::MigrationSource::Dir(
                    ::std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/", #dir))
                )),
                _ => quote!(::seedbed::__private::MigrationSource::None),
            }
        }
        Migrations::Inferred => quote!(::seedbed::__private::MigrationSource::None),
    })
}

fn crate_path(rel: &str) -> Option<std::path::PathBuf> {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")?;
    Some(std::path::Path::new(&root).join(rel))
}

/// `migrate.migrations-dir` from the crate's `sqlx.toml`, as `#[sqlx::test]` reads it.
fn sqlx_toml_migrations_dir() -> Option<String> {
    let text = std::fs::read_to_string(crate_path("sqlx.toml")?).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table
        .get("migrate")?
        .get("migrations-dir")?
        .as_str()
        .map(str::to_string)
}

fn parse_args(tokens: TokenStream) -> syn::Result<Args> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;
    let mut args = Args::default();
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    let mut seen_migrations = false;
    for meta in metas {
        let span = meta.span();
        let key = meta
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let result: syn::Result<()> = (|| {
            match (key.as_str(), &meta) {
                ("strategy", Meta::NameValue(nv)) => {
                    let s = lit_str(&nv.value, "a strategy name")?;
                    if !STRATEGIES.contains(&s.value().as_str()) {
                        return Err(syn::Error::new_spanned(
                            &nv.value,
                            format!(
                                "unknown strategy `{}`: choose one of {}",
                                s.value(),
                                STRATEGIES.join(", ")
                            ),
                        ));
                    }
                    args.strategy = Some((s.value(), s.span()));
                    args.needs_db.get_or_insert(span);
                }
                ("flavor", Meta::NameValue(nv)) => {
                    let s = lit_str(&nv.value, "\"current_thread\" or \"multi_thread\"")?;
                    if !matches!(s.value().as_str(), "current_thread" | "multi_thread") {
                        return Err(syn::Error::new_spanned(
                            &nv.value,
                            "flavor must be \"current_thread\" or \"multi_thread\"",
                        ));
                    }
                    args.flavor = Some((s.value(), s.span()));
                }
                ("worker_threads", Meta::NameValue(nv)) => {
                    let n = match literal(&nv.value) {
                        Expr::Lit(ExprLit {
                            lit: Lit::Int(i), ..
                        }) => i.base10_parse::<usize>()?,
                        other => {
                            return Err(syn::Error::new_spanned(
                                other,
                                "worker_threads must be a number",
                            ));
                        }
                    };
                    if n == 0 {
                        return Err(syn::Error::new_spanned(
                            &nv.value,
                            "worker_threads must be at least 1",
                        ));
                    }
                    args.worker_threads = Some((n, nv.value.span()));
                }
                ("statement_timeout", Meta::NameValue(nv)) => {
                    args.statement_timeout_ms = Some(duration_ms(&nv.value)?);
                    args.needs_db.get_or_insert(span);
                }
                ("lock_timeout", Meta::NameValue(nv)) => {
                    args.lock_timeout_ms = Some(duration_ms(&nv.value)?);
                    args.needs_db.get_or_insert(span);
                }
                ("role", Meta::NameValue(nv)) => {
                    let s = lit_str(&nv.value, "the name of a database role")?;
                    if s.value().trim().is_empty() {
                        return Err(syn::Error::new_spanned(
                            &nv.value,
                            "role must name a database role (the test's connections act as it)",
                        ));
                    }
                    args.role = Some(s.value());
                    args.needs_db.get_or_insert(span);
                }
                ("database", Meta::NameValue(nv)) => {
                    let s = lit_str(&nv.value, "the name of an existing database")?;
                    if s.value().trim().is_empty() {
                        return Err(syn::Error::new_spanned(
                            &nv.value,
                            "database must name an existing database (the tests isolate inside \
                             it, with no CREATE DATABASE)",
                        ));
                    }
                    args.database = Some((s.value(), s.span()));
                    args.needs_db.get_or_insert(span);
                }
                ("allow_unmarked_database", Meta::Path(_)) => {
                    args.allow_unmarked = true;
                    args.needs_db.get_or_insert(span);
                }
                ("namespace", Meta::NameValue(nv)) => {
                    let s = lit_str(&nv.value, "\"data\" or \"schema\"")?;
                    args.schema_mode = match s.value().as_str() {
                        "schema" => true,
                        "data" => false,
                        _ => {
                            return Err(syn::Error::new_spanned(
                                &nv.value,
                                "namespace must be \"data\" (rows marked by the test's token, \
                                 the default) or \"schema\" (a schema per test)",
                            ));
                        }
                    };
                    args.needs_db.get_or_insert(span);
                }
                ("cleanup", Meta::NameValue(nv)) => {
                    let s = lit_str(&nv.value, "\"none\"")?;
                    args.cleanup_span = Some(syn::spanned::Spanned::span(&nv.value));
                    args.keep_rows = match s.value().as_str() {
                        "none" => true,
                        "rows" => false,
                        _ => {
                            return Err(syn::Error::new_spanned(
                                &nv.value,
                                "cleanup must be \"none\" (keep the rows the test wrote) or \
                                 \"rows\" (remove them, the default)",
                            ));
                        }
                    };
                    args.needs_db.get_or_insert(span);
                }
                ("reset_sequences", Meta::Path(_)) => {
                    args.reset_sequences = true;
                    args.needs_db.get_or_insert(span);
                }
                ("reset_sequences", Meta::NameValue(nv)) => {
                    args.reset_sequences = match literal(&nv.value) {
                        Expr::Lit(ExprLit {
                            lit: Lit::Bool(b), ..
                        }) => b.value,
                        other => {
                            return Err(syn::Error::new_spanned(
                                other,
                                "reset_sequences is a flag: `reset_sequences` or \
                                 `reset_sequences = true`",
                            ));
                        }
                    };
                    args.needs_db.get_or_insert(span);
                }
                ("migrations", Meta::NameValue(nv)) | ("migrator", Meta::NameValue(nv)) => {
                    if seen_migrations {
                        return Err(syn::Error::new_spanned(
                            &meta,
                            "cannot have more than one `migrations` or `migrator` argument",
                        ));
                    }
                    seen_migrations = true;
                    args.needs_db.get_or_insert(span);
                    if args.databases.is_some() {
                        return Err(syn::Error::new_spanned(
                            &meta,
                            "the migrations of the test's own database are the first of \
                             `databases(…)`: leave out `migrations`",
                        ));
                    }
                    args.migrations = if key == "migrator" {
                        let s = lit_str(&nv.value, "a path to a static Migrator, as a string")?;
                        Migrations::Migrator(s.parse()?)
                    } else {
                        migrations_value(&nv.value)?
                    };
                }
                ("databases", Meta::List(list)) => {
                    if seen_migrations {
                        return Err(syn::Error::new_spanned(
                            &meta,
                            "the migrations of the test's own database are the first of \
                             `databases(…)`: leave out `migrations`",
                        ));
                    }
                    args.needs_db.get_or_insert(span);
                    let entries = parse_databases(list)?;
                    args.databases = Some(entries);
                }
                ("seed", Meta::NameValue(nv)) => {
                    if args.seed.is_some() {
                        return Err(syn::Error::new_spanned(
                            &meta,
                            "cannot have more than one `seed`",
                        ));
                    }
                    args.needs_db.get_or_insert(span);
                    args.seed = Some(match literal(&nv.value) {
                        Expr::Path(path) if path.qself.is_none() => path.path.clone(),
                        Expr::Lit(ExprLit {
                            lit: Lit::Str(s), ..
                        }) => s.parse()?,
                        other => {
                            return Err(syn::Error::new_spanned(
                                other,
                                "expected the path of a `#[seedbed::seed]` function: \
                                 `seed = seeds::plans`",
                            ));
                        }
                    });
                }
                ("fixtures", Meta::List(list)) => {
                    args.needs_db.get_or_insert(span);
                    parse_fixtures(list, &mut args.fixtures)?;
                }
                _ => {
                    return Err(syn::Error::new(
                        span,
                        "unknown argument: #[seedbed::test] takes strategy = \"…\", flavor = \
                         \"multi_thread\", worker_threads = N, statement_timeout = \"30s\", \
                         lock_timeout = \"5s\", role = \"app\", reset_sequences, \
                         namespace = \"schema\", \
                         cleanup = \"none\", migrations = \"dir\" | false | path::to::fn, \
                         migrator = \"path::TO_MIGRATOR\", seed = path::to::seed, \
                         database = \"existing\", allow_unmarked_database, \
                         databases(main = \"dir\", other = \"dir\" | sqlite(\"dir\") | mysql(\"dir\")), \
                         fixtures(\"name\", …)",
                    ));
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            push(e);
        }
    }
    if let Some((_, span)) = &args.worker_threads
        && args.flavor.as_ref().map(|(f, _)| f.as_str()) != Some("multi_thread")
    {
        push(syn::Error::new(
            *span,
            "worker_threads needs flavor = \"multi_thread\"",
        ));
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(args),
    }
}

/// A `migrations = …` value: a directory, `false`, or a function's path.
fn migrations_value(value: &Expr) -> syn::Result<Migrations> {
    Ok(match literal(value) {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) if !b.value => Migrations::Disabled,
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => {
            return Err(syn::Error::new_spanned(
                b,
                "`migrations = true` is redundant: migrations run by default",
            ));
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Migrations::Dir(s.clone()),
        Expr::Path(path) if path.qself.is_none() => Migrations::Function(path.path.clone()),
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "expected a directory as a string, `false`, or the path of a function \
                 returning `seedbed::isolation::Migrations` (`migrations = schema::migrations`)",
            ));
        }
    })
}

/// `databases(main = "migrations", audit = "migrations/audit", cache = sqlite("…"),
/// shop = mysql("…"))`: each
/// name with its migrations and, for another backend, that backend.
fn parse_databases(list: &syn::MetaList) -> syn::Result<Vec<NamedDb>> {
    let metas = list.parse_args_with(Punctuated::<Meta, syn::Token![,]>::parse_terminated)?;
    let mut out: Vec<NamedDb> = Vec::new();
    for meta in metas {
        let Meta::NameValue(nv) = &meta else {
            return Err(syn::Error::new_spanned(
                &meta,
                "expected `name = \"migrations dir\"`: `databases(main = \"migrations\", audit = \
                 \"migrations/audit\")`",
            ));
        };
        let Some(name) = nv.path.get_ident() else {
            return Err(syn::Error::new_spanned(
                &nv.path,
                "expected a database name",
            ));
        };
        if out.iter().any(|d| d.name == *name) {
            return Err(syn::Error::new_spanned(
                name,
                format!("two databases are named `{name}`"),
            ));
        }
        let (backend, value) = match literal(&nv.value) {
            Expr::Call(call) => {
                let backend = match &*call.func {
                    Expr::Path(p) if p.path.is_ident("sqlite") => "sqlite",
                    Expr::Path(p) if p.path.is_ident("postgres") => "postgres",
                    Expr::Path(p) if p.path.is_ident("mysql") => "mysql",
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "expected `sqlite(\"dir\")`, `mysql(\"dir\")` or `postgres(\"dir\")` \
                             for a database on another backend than the test's",
                        ));
                    }
                };
                let (Some(arg), 1) = (call.args.first(), call.args.len()) else {
                    return Err(syn::Error::new_spanned(
                        call,
                        format!("expected one argument: `{backend}(\"migrations dir\")`"),
                    ));
                };
                (Some((backend, call.func.span())), arg.clone())
            }
            other => (None, other.clone()),
        };
        if out.is_empty()
            && let Some((_, span)) = backend
        {
            return Err(syn::Error::new(
                span,
                "the first of `databases(…)` is the test's own database, on the backend of the \
                 test's parameter: name another database's backend, not this one's",
            ));
        }
        out.push(NamedDb {
            name: name.clone(),
            migrations: migrations_value(&value)?,
            backend: backend.map(|(b, _)| b),
        });
    }
    if out.len() < 2 {
        return Err(syn::Error::new_spanned(
            list,
            "`databases(…)` names the test's own database first, then at least one other: \
             `databases(main = \"migrations\", audit = \"migrations/audit\")`",
        ));
    }
    Ok(out)
}

/// `expr` without the invisible groups a `macro_rules!` metavariable (`$lit:literal`,
/// `$e:expr`) wraps around what it passes on, so a literal given through a macro is the literal.
fn literal(mut expr: &Expr) -> &Expr {
    while let Expr::Group(g) = expr {
        expr = &g.expr;
    }
    expr
}

fn lit_str(expr: &Expr, what: &str) -> syn::Result<LitStr> {
    match literal(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected {what} in quotes"),
        )),
    }
}

/// `"30s"`, `"500ms"`, `"2m"` or a number of milliseconds.
fn duration_ms(expr: &Expr) -> syn::Result<u64> {
    let bad = |e: &dyn ToTokens| {
        syn::Error::new_spanned(
            e,
            "expected a duration such as \"30s\", \"500ms\" or \"2m\", or a number of \
             milliseconds",
        )
    };
    match literal(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse(),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let v = s.value();
            let v = v.trim();
            let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
            let (num, unit) = v.split_at(split);
            let n: u64 = num.parse().map_err(|_| bad(s))?;
            let factor = match unit.trim() {
                "ms" => 1,
                "s" | "" => 1000,
                "m" | "min" => 60_000,
                _ => return Err(bad(s)),
            };
            Ok(n * factor)
        }
        other => Err(bad(other)),
    }
}

/// `fixtures("a", "b")` (from `fixtures/` beside the test's file, `.sql` added),
/// `fixtures("path/a.sql")` (explicit paths), `fixtures(path = "dir", scripts("a", "b"))`.
fn parse_fixtures(list: &syn::MetaList, out: &mut Vec<(String, Span)>) -> syn::Result<()> {
    // The path/scripts form.
    let mut dir: Option<LitStr> = None;
    let mut scripts: Vec<LitStr> = Vec::new();
    let nested = list.parse_nested_meta(|meta| {
        if meta.path.is_ident("path") {
            let v: LitStr = meta.value()?.parse()?;
            if !scripts.is_empty() {
                return Err(meta.error("`path` must come before `scripts`"));
            }
            dir = Some(v);
            Ok(())
        } else if meta.path.is_ident("scripts") {
            let content;
            syn::parenthesized!(content in meta.input);
            let items = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
            if dir.is_none() {
                return Err(meta.error("`scripts` needs `path = \"…\"` before it"));
            }
            scripts.extend(items);
            Ok(())
        } else {
            Err(meta.error("expected `path = \"…\"` or `scripts(…)`"))
        }
    });
    if nested.is_ok() {
        let Some(dir) = dir else {
            return Err(syn::Error::new_spanned(
                list,
                "fixtures(path = …) needs scripts(…)",
            ));
        };
        for s in scripts {
            out.push((
                format!("{}/{}", dir.value(), with_sql(&s.value())),
                s.span(),
            ));
        }
        return Ok(());
    }
    let names = list.parse_args_with(Punctuated::<LitStr, Token![,]>::parse_terminated)?;
    let mut explicit: Option<bool> = None;
    for name in names {
        let value = name.value();
        let is_explicit = std::path::Path::new(&value).components().count() > 1;
        match explicit {
            Some(e) if e != is_explicit => {
                return Err(syn::Error::new_spanned(
                    &name,
                    "do not mix fixture names (\"users\") and paths (\"dir/users.sql\") in one \
                     fixtures(…)",
                ));
            }
            _ => explicit = Some(is_explicit),
        }
        if is_explicit {
            out.push((value, name.span()));
        } else {
            out.push((format!("fixtures/{}", with_sql(&value)), name.span()));
        }
    }
    Ok(())
}

fn with_sql(name: &str) -> String {
    if std::path::Path::new(name).extension().is_some() {
        name.to_string()
    } else {
        format!("{name}.sql")
    }
}
