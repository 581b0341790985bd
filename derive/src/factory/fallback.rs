//! What is emitted beside `compile_error!` when the derive fails: a builder with the same
//! methods that accepts anything, so one mistake in an attribute does not also break every use
//! of the factory.
//!
//! Its method bodies are `unimplemented!()`: they never run, because this code only exists in a
//! crate that `compile_error!` keeps from compiling; they only have to type-check.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Fields};

/// The stub's own methods, which no setter may shadow: the builder's reserved names.
use super::valid::RESERVED as STUB_METHODS;

/// A stub `XFactory` for `input`, or nothing when there is no struct to hang it on.
pub(crate) fn expand(input: &DeriveInput) -> TokenStream {
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let model = &input.ident;
    let krate = krate(input);
    let vis = &input.vis;
    let builder = format_ident!("{}Factory", model);
    let setters = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => named
                .named
                .iter()
                .filter_map(|f| f.ident.as_ref())
                .flat_map(|ident| {
                    // A field `author_id` may be a `belongs_to`: stub `author` and `author_ref`.
                    let name = ident.to_string();
                    let mut names = vec![ident.clone()];
                    if let Some(base) = name.strip_suffix("_id")
                        && syn::parse_str::<syn::Ident>(base).is_ok()
                    {
                        names.push(format_ident!("{}", base));
                        names.push(format_ident!("{}_ref", base));
                    }
                    names
                })
                .filter(|ident| !STUB_METHODS.contains(&ident.to_string().as_str()))
                .map(|ident| {
                    quote! {
                        #vis fn #ident<__SeedbedValue>(self, _value: __SeedbedValue) -> Self {
                            self
                        }
                    }
                })
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    quote! {
        #[allow(dead_code, missing_docs)]
        #vis struct #builder;

        #[allow(dead_code, missing_docs, clippy::all)]
        const _: () = {
            impl #model {
                #vis fn factory() -> #builder {
                    #builder
                }
            }

            impl #builder {
                #(#setters)*

                #vis fn build(self) -> #model {
                    ::core::unimplemented!()
                }

                #vis fn build_list(self, _n: usize) -> ::std::vec::Vec<#model> {
                    ::core::unimplemented!()
                }

                #vis fn build_list_with<__SeedbedEach>(
                    self,
                    _n: usize,
                    _each: __SeedbedEach,
                ) -> ::std::vec::Vec<#model> {
                    ::core::unimplemented!()
                }

                #vis fn attributes(self) -> #krate::__private::Attributes {
                    ::core::unimplemented!()
                }

                #vis async fn create<__SeedbedTarget>(
                    self,
                    _db: __SeedbedTarget,
                ) -> ::core::result::Result<#model, #krate::__private::Error> {
                    ::core::unimplemented!()
                }

                #vis async fn create_list<__SeedbedTarget>(
                    self,
                    _db: __SeedbedTarget,
                    _n: usize,
                ) -> ::core::result::Result<::std::vec::Vec<#model>, #krate::__private::Error> {
                    ::core::unimplemented!()
                }

                #vis async fn create_list_with<__SeedbedTarget, __SeedbedEach>(
                    self,
                    _db: __SeedbedTarget,
                    _n: usize,
                    _each: __SeedbedEach,
                ) -> ::core::result::Result<::std::vec::Vec<#model>, #krate::__private::Error> {
                    ::core::unimplemented!()
                }

                #vis fn after_create<__SeedbedHook>(self, _hook: __SeedbedHook) -> Self {
                    self
                }
            }
        };
    }
}

/// The `crate = path` of a `#[factory(...)]` attribute, if it can be read, else `::seedbed`.
fn krate(input: &DeriveInput) -> syn::Path {
    let mut found = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("factory")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                found = Some(meta.value()?.parse::<syn::Path>()?);
            } else if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                let _: proc_macro2::TokenStream = content.parse()?;
            }
            Ok(())
        });
    }
    found.unwrap_or_else(|| syn::parse_quote!(::seedbed))
}
