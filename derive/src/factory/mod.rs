//! `#[derive(Factory)]`: parse (`attr`, `ast`) → validate (`valid`) → expand (`expand`); on
//! error, spanned messages beside a stub (`fallback`).

mod ast;
mod attr;
mod expand;
mod fallback;
mod valid;

#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

/// The expansion of `#[derive(Factory)]` on `input`: the factory, or the errors and a stub.
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    match try_derive(input) {
        Ok(tokens) => tokens,
        Err(error) => {
            let errors = error.to_compile_error();
            let stub = fallback::expand(input);
            quote!(#errors #stub)
        }
    }
}

fn try_derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let model = ast::Model::from_syn(input)?;
    valid::check(&model)?;
    Ok(expand::expand(&model))
}
