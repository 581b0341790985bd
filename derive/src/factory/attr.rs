//! `#[factory(...)]` attributes, parsed with darling into typed values: expressions stay
//! expressions (the compiler checks them), names keep their spans.

use darling::util::{Flag, PreservedStrExpr, SpannedValue};
use darling::{FromDeriveInput, FromField, FromMeta};
use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Meta, Path, Token, Type};

/// Attributes on the struct.
#[derive(Debug, FromDeriveInput)]
#[darling(attributes(factory))]
pub(crate) struct ContainerAttrs {
    /// `table = "users"`.
    pub(crate) table: Option<SpannedValue<String>>,
    /// `schema = "billing"`.
    pub(crate) schema: Option<SpannedValue<String>>,
    /// `traits(admin(is_admin = true, role = Role::Admin), ...)`.
    #[darling(default)]
    pub(crate) traits: Traits,
    /// `transient(premium: bool = false, ...)`.
    #[darling(default)]
    pub(crate) transient: Transients,
    /// `after_build = path`, repeatable.
    #[darling(multiple)]
    pub(crate) after_build: Vec<Path>,
    /// `after_create = path`, repeatable: `fn(&Model) -> impl Children`.
    #[darling(multiple)]
    pub(crate) after_create: Vec<Path>,
    /// `after_create_db = path`, repeatable: `async fn(&Model, &mut Conn) -> seedbed::Result<()>`.
    #[darling(multiple)]
    pub(crate) after_create_db: Vec<Path>,
    /// `before_create_db = path`, repeatable:
    /// `async fn(&mut Model, &mut Conn) -> seedbed::Result<()>`.
    #[darling(multiple)]
    pub(crate) before_create_db: Vec<Path>,
    /// `has_many(posts(Post, via = author), ...)`.
    #[darling(default)]
    pub(crate) has_many: HasManys,
    /// `crate = path`: where seedbed is, when it is renamed.
    #[darling(rename = "crate")]
    pub(crate) krate: Option<Path>,
}

/// Attributes on a field.
#[derive(Debug, FromField)]
#[darling(attributes(factory))]
pub(crate) struct FieldAttrs {
    /// `default = expr` (a string literal stays a string literal).
    pub(crate) default: Option<PreservedStrExpr>,
    /// `sequence = "user{n}@example.com"` or `sequence = |n| expr`.
    pub(crate) sequence: Option<Sequence>,
    /// `faker = expr` (any `fake::Dummy` config; a string literal is refused, not parsed).
    pub(crate) faker: Option<PreservedStrExpr>,
    /// `lazy = |f| expr`.
    pub(crate) lazy: Option<PreservedStrExpr>,
    /// `unique`.
    pub(crate) unique: Flag,
    /// `generated`.
    pub(crate) generated: Flag,
    /// `skip`.
    pub(crate) skip: Flag,
    /// `column = "name"`.
    pub(crate) column: Option<SpannedValue<String>>,
    /// `belongs_to = User`: a foreign key to the model `User`.
    pub(crate) belongs_to: Option<Path>,
    /// `references = id`: the parent's field the key is (default `id`).
    pub(crate) references: Option<Ident>,
    /// `polymorphic(types(Post, Issue = "issue"), type_field = subject_type)`: a key to a row of
    /// any of several models, whose type the field `type_field` names.
    pub(crate) polymorphic: Option<Polymorphic>,
}

/// A `polymorphic(…)` value.
#[derive(Debug)]
pub(crate) struct Polymorphic {
    /// Where `polymorphic` was written.
    pub(crate) span: Span,
    /// The parents' models and what the type field takes for each; the first is created when
    /// none is given.
    pub(crate) types: Vec<PolymorphicType>,
    /// The field holding the parent's type.
    pub(crate) type_field: Option<Ident>,
}

/// One parent model of a polymorphic association.
#[derive(Debug)]
pub(crate) struct PolymorphicType {
    pub(crate) model: Path,
    /// `= "name"`: what the type field takes; the model's name when absent.
    pub(crate) name: Option<LitStr>,
}

impl PolymorphicType {
    /// What the type field takes for this model.
    pub(crate) fn type_name(&self) -> String {
        match &self.name {
            Some(name) => name.value(),
            None => self
                .model
                .segments
                .last()
                .map(|segment| segment.ident.to_string())
                .unwrap_or_default(),
        }
    }
}

impl FromMeta for Polymorphic {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let example = "polymorphic(types(Post, Issue), type_field = subject_type)";
        let list = require_list(item, example)?;
        let mut types: Option<Vec<PolymorphicType>> = None;
        let mut type_field: Option<Ident> = None;
        list.parse_args_with(|input: ParseStream<'_>| {
            while !input.is_empty() {
                let key: Ident = input.parse()?;
                if key == "types" {
                    let content;
                    syn::parenthesized!(content in input);
                    let parsed =
                        Punctuated::<PolymorphicType, Token![,]>::parse_terminated(&content)?;
                    types = Some(parsed.into_iter().collect());
                } else if key == "type_field" {
                    input.parse::<Token![=]>()?;
                    type_field = Some(input.parse()?);
                } else {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown `{key}` in `polymorphic`: it takes `types(…)` (the parents' \
                             models) and `type_field = field` (`{example}`)"
                        ),
                    ));
                }
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
            }
            Ok(())
        })
        .map_err(darling::Error::from)?;
        Ok(Polymorphic {
            span: item.span(),
            types: types.unwrap_or_default(),
            type_field,
        })
    }
}

impl Parse for PolymorphicType {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let model: Path = input.parse()?;
        let name = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(PolymorphicType { model, name })
    }
}

/// A `sequence = …` value.
#[derive(Debug, Clone)]
pub(crate) enum Sequence {
    /// A format string using `{n}` (and optionally `{token}`).
    Format(LitStr),
    /// A closure or function taking `n` (and optionally the token).
    Call(Expr),
}

impl FromMeta for Sequence {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Lit(lit) => match &lit.lit {
                syn::Lit::Str(s) => Ok(Sequence::Format(s.clone())),
                other => Err(darling::Error::custom(
                    "expected a format string using `{n}` (`sequence = \"user{n}@example.com\"`) \
                     or a closure (`sequence = |n| …`)",
                )
                .with_span(other)),
            },
            Expr::Group(group) => Self::from_expr(&group.expr),
            other => Ok(Sequence::Call(other.clone())),
        }
    }
}

impl Sequence {
    /// The span to point errors at.
    pub(crate) fn span(&self) -> Span {
        match self {
            Sequence::Format(lit) => lit.span(),
            Sequence::Call(expr) => expr.span(),
        }
    }
}

/// `traits(name(field = expr, ...), ...)`.
#[derive(Debug, Default)]
pub(crate) struct Traits(pub(crate) Vec<TraitDef>);

/// One trait: a named set of field values.
#[derive(Debug)]
pub(crate) struct TraitDef {
    pub(crate) name: Ident,
    pub(crate) settings: Vec<Setting>,
}

/// `field = expr` inside a trait.
#[derive(Debug)]
pub(crate) struct Setting {
    pub(crate) field: Ident,
    pub(crate) value: Expr,
}

impl FromMeta for Traits {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let list = require_list(item, "traits(admin(is_admin = true), …)")?;
        let defs = list
            .parse_args_with(Punctuated::<TraitDef, Token![,]>::parse_terminated)
            .map_err(darling::Error::from)?;
        Ok(Traits(defs.into_iter().collect()))
    }
}

impl Parse for TraitDef {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        let content;
        syn::parenthesized!(content in input);
        let settings = Punctuated::<Setting, Token![,]>::parse_terminated(&content)?;
        Ok(TraitDef {
            name,
            settings: settings.into_iter().collect(),
        })
    }
}

impl Parse for Setting {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let field: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        Ok(Setting { field, value })
    }
}

/// `transient(name: Type = default, ...)`.
#[derive(Debug, Default)]
pub(crate) struct Transients(pub(crate) Vec<TransientDef>);

/// One transient parameter: shapes other fields (through `lazy`) without being a column.
#[derive(Debug)]
pub(crate) struct TransientDef {
    pub(crate) name: Ident,
    pub(crate) ty: Type,
    /// The value when not set; `Default::default()` when absent.
    pub(crate) default: Option<Expr>,
}

impl FromMeta for Transients {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let list = require_list(item, "transient(premium: bool = false, …)")?;
        let defs = list
            .parse_args_with(Punctuated::<TransientDef, Token![,]>::parse_terminated)
            .map_err(darling::Error::from)?;
        Ok(Transients(defs.into_iter().collect()))
    }
}

impl Parse for TransientDef {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty: Type = input.parse()?;
        let default = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(TransientDef { name, ty, default })
    }
}

fn require_list<'m>(item: &'m Meta, example: &str) -> darling::Result<&'m syn::MetaList> {
    match item {
        Meta::List(list) => Ok(list),
        other => {
            Err(darling::Error::custom(format!("expected a list: `{example}`")).with_span(other))
        }
    }
}

/// `has_many(posts(Post, via = author), ...)`.
#[derive(Debug, Default)]
pub(crate) struct HasManys(pub(crate) Vec<HasMany>);

/// One `has_many`: children of model `child` whose `belongs_to` association `via` points back.
#[derive(Debug)]
pub(crate) struct HasMany {
    pub(crate) name: Ident,
    pub(crate) child: Path,
    pub(crate) via: Ident,
}

impl FromMeta for HasManys {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let list = require_list(item, "has_many(posts(Post, via = author), …)")?;
        let defs = list
            .parse_args_with(Punctuated::<HasMany, Token![,]>::parse_terminated)
            .map_err(darling::Error::from)?;
        Ok(HasManys(defs.into_iter().collect()))
    }
}

impl Parse for HasMany {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        let content;
        syn::parenthesized!(content in input);
        let child: Path = content.parse()?;
        content.parse::<Token![,]>()?;
        let key: Ident = content.parse()?;
        if key != "via" {
            return Err(syn::Error::new(
                key.span(),
                "expected `via = association`: the child's `belongs_to` association that points back \
                 (`has_many(posts(Post, via = author))`)",
            ));
        }
        content.parse::<Token![=]>()?;
        let via: Ident = content.parse()?;
        if !content.is_empty() {
            content.parse::<Token![,]>()?;
        }
        Ok(HasMany { name, child, via })
    }
}
