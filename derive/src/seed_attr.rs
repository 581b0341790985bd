//! `#[seedbed::seed]`: turns `async fn name(conn: &mut PgConnection) -> Result<(), E>` into a
//! `static name: seedbed::isolation::Seed`, identified by its path and a hash of its code (plus
//! an optional `version = "…"`), to name in `#[seedbed::test(seed = name)]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, Lit, Meta, Token, Type};

/// Expands the attribute; an error is reported beside the unchanged function.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand_inner(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(e) => {
            let error = e.to_compile_error();
            quote!(#error #item)
        }
    }
}

fn expand_inner(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let version = parse_args(args)?;
    let func: syn::ItemFn = syn::parse2(item.clone())?;
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            func.sig.fn_token.span(),
            "#[seedbed::seed] goes on an `async fn(conn: &mut PgConnection) -> Result<(), E>` \
             (or `&mut SqliteConnection`)",
        ));
    }
    let conn_ty = connection_type(&func)?;
    let name = &func.sig.ident;
    let vis = &func.vis;
    let attrs = &func.attrs;
    let mut inner = func.clone();
    inner.sig.ident = format_ident!("__seedbed_seed_{}", name);
    inner.vis = syn::Visibility::Inherited;
    inner.attrs.retain(|a| !a.path().is_ident("doc"));
    let inner_name = &inner.sig.ident;
    // The code, not its doc comments: editing those rebuilds nothing.
    let identity = format!(
        "{:016x}{}",
        fnv(quote!(#inner).to_string().as_bytes()),
        version.map(|v| format!(":v{v}")).unwrap_or_default()
    );
    let label = name.to_string();
    let span = conn_ty.span();
    Ok(quote_spanned! {span=>
        #(#attrs)*
        #[allow(non_upper_case_globals)]
        #vis static #name: ::seedbed::isolation::Seed = {
            #inner

            fn __seedbed_run<'c>(
                conn: &'c mut (dyn ::core::any::Any + ::core::marker::Send),
            ) -> ::seedbed::__private::MigrateFuture<'c> {
                match conn.downcast_mut::<#conn_ty>() {
                    ::core::option::Option::Some(conn) => ::std::boxed::Box::pin(async move {
                        ::seedbed::__private::seed_result(#inner_name(conn).await)
                    }),
                    ::core::option::Option::None => ::std::boxed::Box::pin(::core::future::ready(
                        ::core::result::Result::Err(
                            ::seedbed::__private::Seed::wrong_connection::<#conn_ty>(
                                ::core::concat!(::core::module_path!(), "::", #label),
                            ),
                        ),
                    )),
                }
            }

            ::seedbed::isolation::Seed::new(
                ::core::concat!(::core::module_path!(), "::", #label),
                #identity,
                __seedbed_run,
            )
        };
    })
}

/// `version = "2"`, or nothing.
fn parse_args(args: TokenStream) -> syn::Result<Option<String>> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut version = None;
    for meta in metas {
        match &meta {
            Meta::NameValue(nv) if nv.path.is_ident("version") => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => version = Some(s.value()),
                Expr::Lit(ExprLit {
                    lit: Lit::Int(i), ..
                }) => version = Some(i.base10_digits().to_string()),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "expected a version as a string or a number: `version = \"2\"`",
                    ));
                }
            },
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "unknown argument: #[seedbed::seed] takes `version = \"…\"` (bump it to \
                     rebuild the seeded databases when something the code does not show \
                     changed)",
                ));
            }
        }
    }
    Ok(version)
}

/// The connection type of the seed's one parameter, `&mut C`.
fn connection_type(func: &syn::ItemFn) -> syn::Result<Type> {
    let wrong = |span| {
        syn::Error::new(
            span,
            "a seed takes one parameter, the connection it writes on: `conn: &mut PgConnection` \
             (or `&mut SqliteConnection`)",
        )
    };
    let mut inputs = func.sig.inputs.iter();
    let (Some(first), None) = (inputs.next(), inputs.next()) else {
        return Err(wrong(func.sig.inputs.span()));
    };
    let FnArg::Typed(pat) = first else {
        return Err(wrong(first.span()));
    };
    match &*pat.ty {
        Type::Reference(r) if r.mutability.is_some() => Ok((*r.elem).clone()),
        other => Err(wrong(other.span())),
    }
}

/// FNV-1a, as seedbed hashes checksums.
fn fnv(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
