//! What the attributes mean together: conflicts, names that clash, formats that cannot work.
//! Every problem found is reported, each spanned on the code that caused it.

use std::collections::HashMap;

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use super::ast::{Field, Model, PolyAssociation, scan_format};
use super::attr::Sequence;

/// Builder methods a field, transient or trait cannot be named after (the persistence half adds
/// `create` and `create_list`).
pub(crate) const RESERVED: &[&str] = &[
    "build",
    "build_list",
    "build_list_with",
    "attributes",
    "create",
    "create_list",
    "create_list_with",
    "factory",
    "after_create",
    "after_create_db",
    "before_create_db",
    "build_stubbed",
    "build_stubbed_list",
];

/// Checks the model; all problems at once.
pub(crate) fn check(model: &Model<'_>) -> syn::Result<()> {
    let mut errors = Errors::default();
    check_container(model, &mut errors);
    for field in &model.fields {
        check_field(field, &mut errors);
    }
    check_columns(model, &mut errors);
    check_names(model, &mut errors);
    check_associations(model, &mut errors);
    errors.finish()
}

#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        let error = syn::Error::new(span, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

fn check_container(model: &Model<'_>, errors: &mut Errors) {
    if let Some(span) = model.attr_spans.table
        && model.table.trim().is_empty()
    {
        errors.push(
            span,
            "`table` is empty: name the table the model is stored in",
        );
    }
    if let (Some(span), Some(schema)) = (model.attr_spans.schema, &model.schema)
        && schema.trim().is_empty()
    {
        errors.push(
            span,
            "`schema` is empty: leave it out to use the search path",
        );
    }
}

fn check_field(field: &Field<'_>, errors: &mut Errors) {
    let a = &field.attrs;
    let name = &field.name;

    // One value source.
    let sources: Vec<(&str, Span)> = [
        a.default.as_ref().map(|e| ("default", e.0.span())),
        a.sequence.as_ref().map(|s| ("sequence", s.span())),
        a.faker.as_ref().map(|e| ("faker", e.0.span())),
        a.lazy.as_ref().map(|e| ("lazy", e.0.span())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let [(first, _), rest @ ..] = sources.as_slice() {
        for (other, span) in rest {
            errors.push(
                *span,
                format!(
                    "`{other}` conflicts with `{first}` on field `{name}`: a field takes one value \
                     source (`default`, `sequence`, `faker` or `lazy`)"
                ),
            );
        }
    }

    // Flags that contradict each other.
    if a.skip.is_present() {
        let skip_conflicts = [
            ("column", a.column.as_ref().map(|c| c.span())),
            (
                "generated",
                a.generated.is_present().then(|| a.generated.span()),
            ),
            ("unique", a.unique.is_present().then(|| a.unique.span())),
        ];
        for (what, span) in skip_conflicts {
            if let Some(span) = span {
                errors.push(
                    span,
                    format!(
                        "`{what}` conflicts with `skip` on field `{name}`: a skipped field is not a \
                         column"
                    ),
                );
            }
        }
    }
    if a.generated.is_present() && a.unique.is_present() {
        errors.push(
            a.unique.span(),
            format!(
                "`unique` conflicts with `generated` on field `{name}`: the database assigns a \
                 generated column, the factory never writes it"
            ),
        );
    }
    if a.unique.is_present() && a.sequence.is_some() {
        errors.push(
            a.unique.span(),
            format!(
                "`unique` is redundant on field `{name}`: `sequence` values are already unique \
                 (they carry the sequence number, and the token when tests share a database)"
            ),
        );
    }

    if let Some(column) = &a.column
        && column.trim().is_empty()
    {
        errors.push(
            column.span(),
            format!("`column` is empty on field `{name}`"),
        );
    }

    if let Some(sequence) = &a.sequence {
        check_sequence(sequence, name, errors);
    }

    // Expressions are code, not strings of code.
    if let Some(faker) = &a.faker
        && let Some(text) = string_literal(&faker.0)
    {
        errors.push(
            faker.0.span(),
            format!(
                "`faker` takes an expression, not a string: write `faker = {text}` without the \
                 quotes, so the compiler checks it"
            ),
        );
    }
    if let Some(lazy) = &a.lazy
        && string_literal(&lazy.0).is_some()
    {
        errors.push(
            lazy.0.span(),
            format!("`lazy` takes a closure over the other fields: write `lazy = |f| …` on field `{name}`"),
        );
    }
}

fn string_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Some(s.value()),
        Expr::Group(group) => string_literal(&group.expr),
        _ => None,
    }
}

fn check_sequence(sequence: &Sequence, name: &str, errors: &mut Errors) {
    match sequence {
        Sequence::Format(lit) => match scan_format(lit) {
            Ok(used) if !used.n => errors.push(
                lit.span(),
                format!(
                    "the sequence format of field `{name}` never uses `{{n}}`: every build would \
                     get the same value (write e.g. \"user{{n}}@example.com\")"
                ),
            ),
            Ok(_) => {}
            Err(problem) => errors.push(lit.span(), problem),
        },
        Sequence::Call(Expr::Closure(closure)) => {
            let arity = closure.inputs.len();
            if arity != 1 && arity != 2 {
                errors.push(
                    closure.inputs_begin.span,
                    format!(
                        "the sequence closure of field `{name}` takes {arity} arguments: write \
                         `|n| …` (n: u64, from 1) or `|n, token| …` (token: &str, placed by you)"
                    ),
                );
            }
        }
        Sequence::Call(_) => {}
    }
}

fn check_columns(model: &Model<'_>, errors: &mut Errors) {
    let mut seen: HashMap<String, &Field<'_>> = HashMap::new();
    for field in &model.fields {
        let Some(column) = field.column() else {
            continue;
        };
        if let Some(first) = seen.get(&column) {
            let span = field
                .attrs
                .column
                .as_ref()
                .map_or_else(|| field.ident.span(), |c| c.span());
            errors.push(
                span,
                format!(
                    "column `{column}` of field `{}` is already the column of field `{}`: each column \
                     is written once",
                    field.name, first.name
                ),
            );
        } else {
            seen.insert(column, field);
        }
    }
}

/// Setters, transients and traits share the builder's method namespace.
fn check_names(model: &Model<'_>, errors: &mut Errors) {
    let mut names: HashMap<String, &'static str> = HashMap::new();
    let reserved = |ident: &Ident, what: &str, errors: &mut Errors| {
        let name = syn::ext::IdentExt::unraw(ident).to_string();
        if RESERVED.contains(&name.as_str()) {
            errors.push(
                ident.span(),
                format!(
                    "{what} `{name}` would get a builder method named like the factory's own \
                     `{name}`: rename it (a field can keep its column with `#[factory(column = \
                     \"{name}\")]`)"
                ),
            );
        }
        if name.starts_with("__seedbed") {
            errors.push(
                ident.span(),
                format!("names starting with `__seedbed` are reserved: `{name}`"),
            );
        }
        name
    };

    for field in &model.fields {
        let name = reserved(field.ident, "field", errors);
        names.insert(name, "field");
    }
    for transient in &model.transients {
        let name = reserved(&transient.name, "transient parameter", errors);
        if let Some(kind) = names.get(&name) {
            errors.push(
                transient.name.span(),
                format!("transient parameter `{name}` has the name of a {kind}: pick another name"),
            );
        } else {
            names.insert(name, "transient parameter");
        }
    }
    let settable: HashMap<String, &'static str> = names.clone();
    for def in &model.traits {
        let name = reserved(&def.name, "trait", errors);
        if let Some(kind) = names.get(&name) {
            errors.push(
                def.name.span(),
                format!(
                    "trait `{name}` has the name of a {kind}, whose setter would clash with it: pick \
                     another name"
                ),
            );
        } else {
            names.insert(name.clone(), "trait");
        }
        let mut set: HashMap<String, Span> = HashMap::new();
        for setting in &def.settings {
            let field = syn::ext::IdentExt::unraw(&setting.field).to_string();
            if !settable.contains_key(&field) {
                let known: Vec<&str> = settable.keys().map(String::as_str).collect();
                let hint = closest(&field, &known)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                errors.push(
                    setting.field.span(),
                    format!(
                        "trait `{name}` sets `{field}`, which is no field or transient parameter of \
                         `{}`{hint}",
                        model.ident
                    ),
                );
            } else if set.insert(field.clone(), setting.field.span()).is_some() {
                errors.push(
                    setting.field.span(),
                    format!("trait `{name}` sets `{field}` twice"),
                );
            }
        }
    }
}

/// The known name nearest to `name`, if it is near enough to be a typo.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `belongs_to` fields: a name the setters can be derived from, no other value source, no
/// required reference to the model itself, setters that clash with nothing.
fn check_associations(model: &Model<'_>, errors: &mut Errors) {
    let mut taken: HashMap<String, &'static str> = HashMap::new();
    for field in &model.fields {
        taken.insert(field.name.clone(), "field");
    }
    for t in &model.transients {
        taken.insert(
            syn::ext::IdentExt::unraw(&t.name).to_string(),
            "transient parameter",
        );
    }
    for t in &model.traits {
        taken.insert(syn::ext::IdentExt::unraw(&t.name).to_string(), "trait");
    }
    let mut type_fields: HashMap<String, String> = HashMap::new();
    for field in &model.fields {
        let a = &field.attrs;
        let kind = match (&a.belongs_to, &a.polymorphic) {
            (Some(parent), Some(_)) => {
                errors.push(
                    parent.span(),
                    format!(
                        "field `{}` has both `belongs_to` and `polymorphic`: a key to one model is \
                         `belongs_to`, a key to any of several is `polymorphic(types(…))`",
                        field.name
                    ),
                );
                continue;
            }
            (Some(_), None) => "belongs_to",
            (None, Some(_)) => "polymorphic",
            (None, None) => {
                if let Some(references) = &a.references {
                    errors.push(
                        references.span(),
                        format!(
                            "`references` needs `belongs_to` or `polymorphic` on field `{}`: it \
                             names the parent's key",
                            field.name
                        ),
                    );
                }
                continue;
            }
        };
        let name = &field.name;
        let conflicts = [
            ("default", a.default.as_ref().map(|e| e.0.span())),
            ("sequence", a.sequence.as_ref().map(|s| s.span())),
            ("faker", a.faker.as_ref().map(|e| e.0.span())),
            ("lazy", a.lazy.as_ref().map(|e| e.0.span())),
            ("unique", a.unique.is_present().then(|| a.unique.span())),
            (
                "generated",
                a.generated.is_present().then(|| a.generated.span()),
            ),
            ("skip", a.skip.is_present().then(|| a.skip.span())),
        ];
        for (what, span) in conflicts {
            if let Some(span) = span {
                errors.push(
                    span,
                    format!(
                        "`{what}` conflicts with `{kind}` on field `{name}`: the value of a \
                         `{kind}` field is its parent's key"
                    ),
                );
            }
        }
        let base = name.strip_suffix("_id");
        if base.is_none_or(|b| syn::parse_str::<Ident>(b).is_err()) {
            errors.push(
                field.ident.span(),
                format!(
                    "a `{kind}` field is named after its association plus `_id`: rename \
                     `{name}` (e.g. `{name}_id`, keeping the column with `#[factory(column = \
                     \"{name}\")]`), so the setters `.{name}(…)` and `.{name}_ref(&…)` do not clash \
                     with the field's own"
                ),
            );
            continue;
        }
        if let Some(parent) = &a.belongs_to {
            let is_self = parent.is_ident("Self") || parent.is_ident(model.ident);
            if is_self && !field.is_option() {
                errors.push(
                    parent.span(),
                    format!(
                        "field `{name}` references the model itself and is required: creating one \
                         would create parents forever. Make it an `Option` (a nullable column)"
                    ),
                );
            }
        }
        if let Some(poly) = field.polymorphic() {
            check_polymorphic(model, &poly, &mut type_fields, errors);
        }
        let setters = match (field.association(), field.polymorphic()) {
            (Some(assoc), _) => [assoc.name.to_string(), assoc.ref_setter().to_string()],
            (None, Some(poly)) => [poly.name.to_string(), poly.ref_setter().to_string()],
            (None, None) => continue,
        };
        for setter in setters {
            if let Some(kind) = taken.get(&setter) {
                errors.push(
                    field.ident.span(),
                    format!(
                        "the association of field `{name}` has a setter `{setter}`, which is \
                         the name of a {kind}: rename one of them"
                    ),
                );
            } else if RESERVED.contains(&setter.as_str()) {
                errors.push(
                    field.ident.span(),
                    format!(
                        "the association of field `{name}` would get a setter `{setter}`, named \
                         like the factory's own: rename the field"
                    ),
                );
            } else {
                taken.insert(setter, "association setter");
            }
        }
    }
    for has_many in &model.has_many {
        let name = syn::ext::IdentExt::unraw(&has_many.name).to_string();
        for method in [format!("with_{name}"), format!("with_{name}_each")] {
            if let Some(kind) = taken.get(&method) {
                errors.push(
                    has_many.name.span(),
                    format!(
                        "`has_many` `{name}` adds `{method}`, the name of a {kind}: rename one"
                    ),
                );
            } else {
                taken.insert(method, "has_many method");
            }
        }
    }
}

/// A `polymorphic` field: at least one type, distinct type names, and a type field that is a
/// plain field of the model serving this association alone.
fn check_polymorphic(
    model: &Model<'_>,
    poly: &PolyAssociation<'_, '_>,
    type_fields: &mut HashMap<String, String>,
    errors: &mut Errors,
) {
    let name = &poly.field.name;
    let span = poly
        .field
        .attrs
        .polymorphic
        .as_ref()
        .map_or_else(|| poly.field.ident.span(), |p| p.span);
    if poly.types.is_empty() {
        errors.push(
            span,
            format!(
                "`polymorphic` on field `{name}` lists no parent: name their models, \
                 `polymorphic(types(Post, Issue))` (the first is created when none is given)"
            ),
        );
    }
    let mut seen: HashMap<String, Span> = HashMap::new();
    for t in poly.types {
        let type_name = t.type_name();
        if seen.insert(type_name.clone(), t.model.span()).is_some() {
            errors.push(
                t.model.span(),
                format!(
                    "two parents of `{name}` take the type name \"{type_name}\": give one another \
                     (`Model = \"name\"`)"
                ),
            );
        }
    }
    let wanted = poly.type_field.to_string();
    let Some(type_field) = model.fields.iter().find(|f| poly.is_type_field(f)) else {
        let known: Vec<&str> = model
            .fields
            .iter()
            .filter(|f| f.ident != poly.field.ident)
            .map(|f| f.name.as_str())
            .collect();
        let hint = closest(&wanted, &known)
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        errors.push(
            poly.type_field.span(),
            format!(
                "the polymorphic association of `{name}` keeps its parent's type in field \
                 `{wanted}`, which `{}` lacks{hint}: add it, or name it with `type_field = …`",
                model.ident
            ),
        );
        return;
    };
    if poly.field.is_option() && !type_field.is_option() {
        errors.push(
            poly.type_field.span(),
            format!(
                "`{name}` is an `Option` (the association may be NULL), so its type field \
                 `{wanted}` must be one too: with no parent, both are NULL"
            ),
        );
    }
    if let Some(first) = poly.types.first()
        && !poly.field.is_option()
        && (first.model.is_ident("Self") || first.model.is_ident(model.ident))
    {
        errors.push(
            first.model.span(),
            format!(
                "the first parent of `{name}` is created when none is given, and it is the model \
                 itself: creating one would create parents forever. List another model first, or \
                 make `{name}` an `Option`"
            ),
        );
    }
    let a = &type_field.attrs;
    let refused = [
        ("`generated`", a.generated.is_present()),
        ("`skip`", a.skip.is_present()),
        ("`lazy`", a.lazy.is_some()),
        ("`belongs_to`", a.belongs_to.is_some()),
        ("`polymorphic`", a.polymorphic.is_some()),
        ("the key field itself", type_field.ident == poly.field.ident),
    ];
    for (what, is) in refused {
        if is {
            errors.push(
                poly.type_field.span(),
                format!(
                    "the type field of `{name}`, `{wanted}`, is {what}: it must be a plain field \
                     the factory writes the parent's type name into"
                ),
            );
        }
    }
    if let Some(other) = type_fields.insert(wanted.clone(), name.clone()) {
        errors.push(
            poly.type_field.span(),
            format!(
                "`{wanted}` is the type field of both `{other}` and `{name}`: each polymorphic \
                 association needs its own"
            ),
        );
    }
}
