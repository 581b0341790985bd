//! The model as the expansion sees it: typed nodes that keep the original `syn` items, so every
//! error can point at the code that caused it.

use darling::{FromDeriveInput, FromField};
use heck::ToSnakeCase;
use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Expr, Fields, Ident, LitStr, Path, Type, Visibility};

use super::attr::{
    ContainerAttrs, FieldAttrs, HasMany, PolymorphicType, Sequence, TraitDef, TransientDef,
};

/// A struct deriving `Factory`.
pub(crate) struct Model<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) table: String,
    pub(crate) schema: Option<String>,
    pub(crate) fields: Vec<Field<'a>>,
    pub(crate) traits: Vec<TraitDef>,
    pub(crate) transients: Vec<TransientDef>,
    pub(crate) after_build: Vec<Path>,
    pub(crate) after_create: Vec<Path>,
    pub(crate) after_create_db: Vec<Path>,
    pub(crate) before_create_db: Vec<Path>,
    pub(crate) has_many: Vec<HasMany>,
    pub(crate) krate: Path,
    /// Where `table` and `schema` were written, for errors about them.
    pub(crate) attr_spans: AttrSpans,
}

/// Where container attributes were written, for errors.
#[derive(Default)]
pub(crate) struct AttrSpans {
    pub(crate) table: Option<Span>,
    pub(crate) schema: Option<Span>,
}

/// One field of the struct.
pub(crate) struct Field<'a> {
    pub(crate) original: &'a syn::Field,
    pub(crate) ident: &'a Ident,
    /// The field's name without `r#`.
    pub(crate) name: String,
    pub(crate) ty: &'a Type,
    pub(crate) attrs: FieldAttrs,
}

/// Where a field's value comes from when it is not overridden.
pub(crate) enum Source<'f> {
    Default(&'f Expr),
    Sequence(&'f Sequence),
    Faker(&'f Expr),
    Lazy(&'f Expr),
    /// `None` for `Option` fields, else `Dummy`, `Default` (swapped for generated fields).
    Auto,
}

impl<'a> Model<'a> {
    /// Reads the struct and its attributes; every attribute error is reported, not just the
    /// first.
    pub(crate) fn from_syn(input: &'a DeriveInput) -> syn::Result<Self> {
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => &named.named,
                Fields::Unnamed(_) | Fields::Unit => {
                    return Err(syn::Error::new(
                        input.ident.span(),
                        format!(
                            "#[derive(Factory)] needs a struct with named fields: `{}` has none \
                             (a factory sets fields by name)",
                            input.ident
                        ),
                    ));
                }
            },
            Data::Enum(data) => {
                return Err(syn::Error::new(
                    data.enum_token.span,
                    "#[derive(Factory)] needs a struct with named fields, not an enum \
                     (for an enum stored in a PostgreSQL enum column, use #[derive(seedbed::DbEnum)])",
                ));
            }
            Data::Union(data) => {
                return Err(syn::Error::new(
                    data.union_token.span,
                    "#[derive(Factory)] needs a struct with named fields, not a union",
                ));
            }
        };
        if let Some(param) = input.generics.params.first() {
            return Err(syn::Error::new_spanned(
                param,
                "#[derive(Factory)] does not support generic structs: a factory builds one \
                 concrete model type",
            ));
        }

        let mut errors = darling::Error::accumulator();
        let container = errors.handle(ContainerAttrs::from_derive_input(input));
        let fields: Vec<Field<'a>> = fields
            .iter()
            .filter_map(|original| {
                let attrs = errors.handle(FieldAttrs::from_field(original))?;
                let ident = original.ident.as_ref()?;
                Some(Field {
                    original,
                    ident,
                    name: ident.unraw().to_string(),
                    ty: &original.ty,
                    attrs,
                })
            })
            .collect();
        errors.finish().map_err(syn::Error::from)?;
        let Some(container) = container else {
            return Err(syn::Error::new(
                Span::call_site(),
                "invalid #[factory] attribute",
            ));
        };

        let mut attr_spans = AttrSpans::default();
        let table = match &container.table {
            Some(table) => {
                attr_spans.table = Some(table.span());
                table.as_str().to_owned()
            }
            None => default_table_name(&input.ident),
        };
        let schema = container.schema.as_ref().map(|schema| {
            attr_spans.schema = Some(schema.span());
            schema.as_str().to_owned()
        });
        Ok(Model {
            ident: &input.ident,
            vis: &input.vis,
            table,
            schema,
            fields,
            traits: container.traits.0,
            transients: container.transient.0,
            after_build: container.after_build,
            after_create: container.after_create,
            after_create_db: container.after_create_db,
            before_create_db: container.before_create_db,
            has_many: container.has_many.0,
            krate: container
                .krate
                .unwrap_or_else(|| syn::parse_quote!(::seedbed)),
            attr_spans,
        })
    }

    /// The `belongs_to` fields, as associations.
    pub(crate) fn associations(&self) -> impl Iterator<Item = Association<'_, 'a>> {
        self.fields.iter().filter_map(Field::association)
    }

    /// The `polymorphic` fields, as associations.
    pub(crate) fn polymorphics(&self) -> impl Iterator<Item = PolyAssociation<'_, 'a>> {
        self.fields.iter().filter_map(Field::polymorphic)
    }

    /// The polymorphic association whose type field is `field`, if one is.
    pub(crate) fn typed_by(&self, field: &Field<'_>) -> Option<PolyAssociation<'_, 'a>> {
        self.polymorphics().find(|p| p.is_type_field(field))
    }

    /// Whether any field is `lazy` (the build then goes through the `…FactoryFields` struct).
    pub(crate) fn has_lazy(&self) -> bool {
        self.fields.iter().any(|f| f.attrs.lazy.is_some())
    }
}

/// A `belongs_to` field: its parent model, the parent's key field and the setters' name.
pub(crate) struct Association<'m, 'a> {
    pub(crate) field: &'m Field<'a>,
    pub(crate) parent: &'m Path,
    /// The parent's field the foreign key holds (`id` by default).
    pub(crate) references: Ident,
    /// The setters' name: the field's name without `_id`.
    pub(crate) name: Ident,
}

impl Association<'_, '_> {
    /// The builder slot holding the parent's builder or node.
    pub(crate) fn slot(&self) -> Ident {
        quote::format_ident!("__seedbed_a_{}", self.name)
    }

    /// The `…_ref` setter.
    pub(crate) fn ref_setter(&self) -> Ident {
        quote::format_ident!("{}_ref", self.name)
    }

    /// Whether the foreign key may be NULL (an `Option` field): then it is not created by
    /// default.
    pub(crate) fn optional(&self) -> bool {
        self.field.is_option()
    }
}

/// A `polymorphic` field: a key to a row of one of several models, whose type another field
/// names.
pub(crate) struct PolyAssociation<'m, 'a> {
    pub(crate) field: &'m Field<'a>,
    pub(crate) types: &'m [PolymorphicType],
    /// The field holding the parent's type.
    pub(crate) type_field: Ident,
    /// The parents' field the key is (`id` by default).
    pub(crate) references: Ident,
    /// The setters' name: the field's name without `_id`.
    pub(crate) name: Ident,
}

impl PolyAssociation<'_, '_> {
    /// Whether `field` is the association's type field.
    pub(crate) fn is_type_field(&self, field: &Field<'_>) -> bool {
        self.type_field.unraw() == field.name
    }

    /// The builder slot holding the parent.
    pub(crate) fn slot(&self) -> Ident {
        quote::format_ident!("__seedbed_p_{}", self.name)
    }

    /// The `…_ref` setter.
    pub(crate) fn ref_setter(&self) -> Ident {
        quote::format_ident!("{}_ref", self.name)
    }

    /// The trait the parents' models implement.
    pub(crate) fn parent_trait(&self, model: &Ident) -> Ident {
        use heck::ToUpperCamelCase;
        quote::format_ident!(
            "__Seedbed{}{}Parent",
            model.unraw().to_string(),
            self.name.to_string().to_upper_camel_case()
        )
    }

    /// The local holding the type the builder gives the type field (`None`: its own source).
    pub(crate) fn type_local(&self) -> Ident {
        quote::format_ident!("__seedbed_pt_{}", self.name)
    }

    /// Whether the key may be NULL (an `Option` field): then no parent is created by default.
    pub(crate) fn optional(&self) -> bool {
        self.field.is_option()
    }
}

impl<'a> Field<'a> {
    /// The association of a `polymorphic` field.
    pub(crate) fn polymorphic(&self) -> Option<PolyAssociation<'_, 'a>> {
        let poly = self.attrs.polymorphic.as_ref()?;
        let base = match self.name.strip_suffix("_id") {
            Some(base) if syn::parse_str::<Ident>(base).is_ok() => base,
            _ => &self.name,
        };
        Some(PolyAssociation {
            field: self,
            types: &poly.types,
            type_field: poly
                .type_field
                .clone()
                .unwrap_or_else(|| Ident::new(&format!("{base}_type"), self.ident.span())),
            references: self
                .attrs
                .references
                .clone()
                .unwrap_or_else(|| Ident::new("id", Span::call_site())),
            name: Ident::new(base, self.ident.span()),
        })
    }

    /// The association of a `belongs_to` field.
    pub(crate) fn association(&self) -> Option<Association<'_, 'a>> {
        let parent = self.attrs.belongs_to.as_ref()?;
        let base = match self.name.strip_suffix("_id") {
            Some(base) if syn::parse_str::<Ident>(base).is_ok() => base,
            _ => &self.name,
        };
        Some(Association {
            field: self,
            parent,
            references: self
                .attrs
                .references
                .clone()
                .unwrap_or_else(|| Ident::new("id", Span::call_site())),
            name: Ident::new(base, self.ident.span()),
        })
    }
}

impl Field<'_> {
    /// The column the field is stored in, `None` for a skipped field.
    pub(crate) fn column(&self) -> Option<String> {
        if self.attrs.skip.is_present() {
            return None;
        }
        Some(match &self.attrs.column {
            Some(column) => column.as_str().to_owned(),
            None => self.name.clone(),
        })
    }

    /// The field's value source (after validation, there is at most one).
    pub(crate) fn source(&self) -> Source<'_> {
        let a = &self.attrs;
        if let Some(expr) = &a.default {
            Source::Default(&expr.0)
        } else if let Some(seq) = &a.sequence {
            Source::Sequence(seq)
        } else if let Some(expr) = &a.faker {
            Source::Faker(&expr.0)
        } else if let Some(expr) = &a.lazy {
            Source::Lazy(&expr.0)
        } else {
            Source::Auto
        }
    }

    /// Whether the field's type is written `Option<…>` (such fields default to `None`).
    pub(crate) fn is_option(&self) -> bool {
        let Type::Path(path) = self.ty else {
            return false;
        };
        if path.qself.is_some() {
            return false;
        }
        let Some(last) = path.path.segments.last() else {
            return false;
        };
        last.ident == "Option"
            && matches!(&last.arguments, syn::PathArguments::AngleBracketed(args) if args.args.len() == 1)
    }

    /// The field's own doc comments, to repeat on its setter.
    pub(crate) fn docs(&self) -> impl Iterator<Item = &syn::Attribute> {
        self.original
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("doc"))
    }

    pub(crate) fn is_generated(&self) -> bool {
        self.attrs.generated.is_present()
    }

    pub(crate) fn is_unique(&self) -> bool {
        self.attrs.unique.is_present()
    }

    pub(crate) fn is_skipped(&self) -> bool {
        self.attrs.skip.is_present()
    }
}

/// Diesel's convention: the struct's name in snake_case, plus `s`.
fn default_table_name(ident: &Ident) -> String {
    format!("{}s", ident.unraw().to_string().to_snake_case())
}

/// The placeholders of a sequence format string: which of `{n}` and `{token}` it uses, or the
/// first problem with it.
pub(crate) struct FormatUse {
    pub(crate) n: bool,
    pub(crate) token: bool,
}

/// Reads a `sequence` format string: `{{` and `}}` escape braces, `{n}` and `{token}` (with any
/// format spec after a `:`) are the only placeholders.
pub(crate) fn scan_format(lit: &LitStr) -> Result<FormatUse, String> {
    let text = lit.value();
    let mut used = FormatUse {
        n: false,
        token: false,
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '{' => {
                let mut inner = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    inner.push(c);
                }
                if !closed {
                    return Err(
                        "unclosed `{` in the sequence format (write `{{` for a brace)".into(),
                    );
                }
                let name = inner.split(':').next().unwrap_or_default().trim();
                match name {
                    "n" => used.n = true,
                    "token" => used.token = true,
                    other => {
                        return Err(format!(
                            "unknown placeholder `{{{other}}}` in the sequence format: it knows `{{n}}` \
                             (the sequence number) and `{{token}}` (the test's token)"
                        ));
                    }
                }
            }
            '}' => {
                return Err("unmatched `}` in the sequence format (write `}}` for a brace)".into());
            }
            _ => {}
        }
    }
    Ok(used)
}
