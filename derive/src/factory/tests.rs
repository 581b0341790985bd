//! Expansion snapshots: the code `#[derive(Factory)]` generates for typical models, pretty-printed
//! and compared with `derive/tests/snapshots/*.rs`. Set `SEEDBED_BLESS=1` to rewrite them after
//! an intended change (then read the diff).

use std::path::PathBuf;

use syn::DeriveInput;

fn expand(input: &DeriveInput) -> String {
    let tokens = super::derive(input);
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    }
}

fn snapshot(name: &str, input: DeriveInput) {
    let actual = expand(&input);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.rs"));
    let bless = std::env::var_os("SEEDBED_BLESS").is_some();
    match std::fs::read_to_string(&path) {
        Ok(expected) if !bless => {
            assert!(
                expected == actual,
                "expansion of `{name}` changed; rerun with SEEDBED_BLESS=1 and review the diff of {}\n\n{actual}",
                path.display()
            );
        }
        _ => {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
        }
    }
}

#[test]
fn minimal_model() {
    snapshot(
        "minimal",
        syn::parse_quote! {
            pub struct Tag {
                pub name: String,
            }
        },
    );
}

#[test]
fn user_model() {
    snapshot(
        "user",
        syn::parse_quote! {
            #[factory(table = "users", traits(admin(is_admin = true, role_id = 2)))]
            pub struct User {
                #[factory(generated)]
                pub id: i64,
                #[factory(sequence = "user{n}@example.com")]
                pub email: String,
                #[factory(faker = fake::faker::name::en::Name())]
                pub display_name: String,
                #[factory(default = false)]
                pub is_admin: bool,
                #[factory(default = 3)]
                pub role_id: i16,
                pub invited_by_id: Option<i64>,
                #[factory(column = "created_at")]
                pub created: chrono::DateTime<chrono::Utc>,
            }
        },
    );
}

#[test]
fn lazy_transient_and_callbacks() {
    snapshot(
        "lazy",
        syn::parse_quote! {
            #[factory(schema = "billing", transient(premium: bool = false), after_build = fix_up)]
            pub(crate) struct Subscription {
                #[factory(sequence = |n| format!("sub-{n}"))]
                pub code: String,
                #[factory(unique, faker = fake::faker::company::en::CompanyName())]
                pub company: String,
                #[factory(lazy = |f| if f.premium { 100 } else { 0 })]
                pub cents: i32,
                #[factory(skip)]
                pub cache: Vec<u8>,
            }
        },
    );
}

#[test]
fn errors_are_combined_beside_a_stub() {
    snapshot(
        "errors",
        syn::parse_quote! {
            pub struct Broken {
                #[factory(default = 1, faker = Faker)]
                pub a: i32,
                #[factory(sequence = "no placeholder")]
                pub b: String,
            }
        },
    );
}

#[test]
fn associations_has_many_and_after_create() {
    snapshot(
        "associations",
        syn::parse_quote! {
            #[factory(table = "posts", has_many(comments(Comment, via = post)), after_create = notify)]
            pub struct Post {
                #[factory(generated)]
                pub id: i64,
                #[factory(belongs_to = User)]
                pub author_id: i64,
                #[factory(belongs_to = Post, references = id)]
                pub reply_to_id: Option<i64>,
                #[factory(default = "Hello")]
                pub title: String,
            }
        },
    );
}

#[test]
fn polymorphic_model() {
    snapshot(
        "polymorphic",
        syn::parse_quote! {
            #[factory(table = "comments", before_create_db = stamp, after_create_db = notify)]
            pub struct Comment {
                #[factory(generated)]
                pub id: i64,
                #[factory(polymorphic(types(Article, Video = "video")))]
                pub commentable_id: i64,
                pub commentable_type: String,
            }
        },
    );
}
