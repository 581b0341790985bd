//! `#[derive(DbEnum)]`: a Rust enum stored in a PostgreSQL enum type, usable as a factory field.

use heck::{ToKebabCase, ToLowerCamelCase, ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Data, DeriveInput, Fields, LitBool, LitStr, Path};

/// The expansion of `#[derive(DbEnum)]` on `input`, or its errors.
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    match try_derive(input) {
        Ok(tokens) => tokens,
        Err(error) => error.to_compile_error(),
    }
}

struct Options {
    type_name: Option<LitStr>,
    rename_all: Option<LitStr>,
    dummy: bool,
    krate: Option<Path>,
}

fn try_derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(DbEnum)] is for enums whose variants are the labels of a PostgreSQL enum type",
        ));
    };
    if let Some(param) = input.generics.params.first() {
        return Err(syn::Error::new_spanned(
            param,
            "#[derive(DbEnum)] does not support generic enums",
        ));
    }

    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };

    // sqlx's attributes first, then ours on top.
    let mut options = Options {
        type_name: None,
        rename_all: None,
        dummy: true,
        krate: None,
    };
    for attr in &input.attrs {
        if let Err(e) = read_container(attr, &mut options) {
            push(e);
        }
    }
    let rename_all = match &options.rename_all {
        Some(lit) => match renamer(&lit.value()) {
            Some(f) => Some(f),
            None => {
                push(syn::Error::new(
                    lit.span(),
                    "unknown `rename_all`: expected one of lowercase, snake_case, UPPERCASE, \
                     SCREAMING_SNAKE_CASE, kebab-case, camelCase, PascalCase (as sqlx)",
                ));
                None
            }
        },
        None => None,
    };

    let mut variants = Vec::new();
    let mut labels = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            push(syn::Error::new_spanned(
                &variant.fields,
                format!(
                    "variant `{}` has fields: a PostgreSQL enum label is a unit variant",
                    variant.ident
                ),
            ));
            continue;
        }
        let mut rename = None;
        for attr in &variant.attrs {
            match read_variant(attr) {
                Ok(Some(lit)) => rename = Some(lit.value()),
                Ok(None) => {}
                Err(e) => push(e),
            }
        }
        let label = rename.unwrap_or_else(|| {
            let name = variant.ident.to_string();
            match rename_all {
                Some(f) => f(&name),
                None => name,
            }
        });
        variants.push(&variant.ident);
        labels.push(label);
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    if variants.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(DbEnum)] needs at least one variant",
        ));
    }

    let ident = &input.ident;
    let krate = options
        .krate
        .unwrap_or_else(|| syn::parse_quote!(::seedbed));
    let private = quote!(#krate::__private);
    let type_name = match &options.type_name {
        Some(lit) => lit.value(),
        None => ident.to_string(),
    };
    let ident_name = ident.to_string();
    let count = variants.len();
    let indices = 0..count;
    let first_variant = variants[0];
    let dummy = options.dummy.then(|| {
        quote! {
            #[automatically_derived]
            impl #private::fake::Dummy<#private::fake::Faker> for #ident {
                fn dummy_with_rng<R: #private::fake::RngExt + ?::core::marker::Sized>(
                    _: &#private::fake::Faker,
                    rng: &mut R,
                ) -> Self {
                    match #private::fake::RngExt::random_range(rng, 0..#count) {
                        #(#indices => #ident::#variants,)*
                        _ => #ident::#first_variant,
                    }
                }
            }
        }
    });

    Ok(quote! {
        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #private::DbEnum for #ident {
                const TYPE_NAME: &'static str = #type_name;
                const LABELS: &'static [&'static str] = &[#(#labels),*];

                fn label(&self) -> &'static str {
                    match self {
                        #(#ident::#variants => #labels,)*
                    }
                }

                fn from_label(label: &str) -> ::core::option::Option<Self> {
                    match label {
                        #(#labels => ::core::option::Option::Some(#ident::#variants),)*
                        _ => ::core::option::Option::None,
                    }
                }
            }

            #[automatically_derived]
            impl ::core::convert::From<#ident> for #private::sea_query::Value {
                fn from(value: #ident) -> Self {
                    #private::enum_value(&value)
                }
            }

            #[automatically_derived]
            impl #private::sea_query::Nullable for #ident {
                fn null() -> #private::sea_query::Value {
                    #private::enum_null::<#ident>()
                }
            }

            #[automatically_derived]
            impl #private::sea_query::ValueType for #ident {
                fn try_from(
                    value: #private::sea_query::Value,
                ) -> ::core::result::Result<Self, #private::sea_query::ValueTypeErr> {
                    #private::enum_try_from(value)
                }

                fn type_name() -> ::std::string::String {
                    ::std::string::String::from(#ident_name)
                }

                fn array_type() -> #private::sea_query::ArrayType {
                    #private::enum_array_type::<#ident>()
                }

                fn column_type() -> #private::sea_query::ColumnType {
                    #private::enum_column_type::<#ident>()
                }

                fn enum_type_name() -> ::core::option::Option<&'static str> {
                    ::core::option::Option::Some(#type_name)
                }
            }

            #[automatically_derived]
            impl #private::NotU8 for #ident {}

            #dummy
        };
    })
}

/// Reads `#[sqlx(...)]` (leniently: sqlx has keys of its own) and `#[db_enum(...)]` (strictly).
fn read_container(attr: &Attribute, options: &mut Options) -> syn::Result<()> {
    let ours = attr.path().is_ident("db_enum");
    if !ours && !attr.path().is_ident("sqlx") {
        return Ok(());
    }
    // Ours win over sqlx's whatever the attribute order.
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("type_name") {
            let lit: LitStr = meta.value()?.parse()?;
            if ours || options.type_name.is_none() {
                options.type_name = Some(lit);
            }
        } else if meta.path.is_ident("rename_all") {
            let lit: LitStr = meta.value()?.parse()?;
            if ours || options.rename_all.is_none() {
                options.rename_all = Some(lit);
            }
        } else if ours && meta.path.is_ident("dummy") {
            let lit: LitBool = meta.value()?.parse()?;
            options.dummy = lit.value;
        } else if ours && meta.path.is_ident("crate") {
            options.krate = Some(meta.value()?.parse()?);
        } else if ours {
            return Err(meta.error(
                "unknown db_enum attribute: expected `type_name`, `rename_all`, `dummy` or `crate`",
            ));
        } else {
            skip_value(&meta)?;
        }
        Ok(())
    })
}

/// Reads a variant's `#[db_enum(rename = "…")]` or `#[sqlx(rename = "…")]`.
fn read_variant(attr: &Attribute) -> syn::Result<Option<LitStr>> {
    let ours = attr.path().is_ident("db_enum");
    if !ours && !attr.path().is_ident("sqlx") {
        return Ok(None);
    }
    let mut rename = None;
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("rename") {
            rename = Some(meta.value()?.parse::<LitStr>()?);
        } else if ours {
            return Err(meta.error("unknown db_enum attribute on a variant: expected `rename`"));
        } else {
            skip_value(&meta)?;
        }
        Ok(())
    })?;
    Ok(rename)
}

/// Skips the value of a key we do not read (`key = value` or `key(...)`).
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _: TokenStream = {
            let content;
            syn::parenthesized!(content in meta.input);
            content.parse()?
        };
    }
    Ok(())
}

/// sqlx's `rename_all` conversions.
fn renamer(rule: &str) -> Option<fn(&str) -> String> {
    Some(match rule {
        "lowercase" => |s: &str| s.to_lowercase(),
        "snake_case" => |s: &str| s.to_snake_case(),
        "UPPERCASE" => |s: &str| s.to_uppercase(),
        "SCREAMING_SNAKE_CASE" => |s: &str| s.to_shouty_snake_case(),
        "kebab-case" => |s: &str| s.to_kebab_case(),
        "camelCase" => |s: &str| s.to_lower_camel_case(),
        "PascalCase" => |s: &str| s.to_upper_camel_case(),
        _ => return None,
    })
}
