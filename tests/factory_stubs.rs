//! `build_stubbed()`: values for unit tests of code that reads models, with no database. Generated
//! fields get distinct, plausible stand-ins and `belongs_to` keys point at stubbed parents.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use seedbed::context::TestContext;
use seedbed::factory::stubbed;
use seedbed::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone, Factory)]
#[factory(table = "orgs")]
struct Org {
    #[factory(generated)]
    id: i32,
    #[factory(default = "Acme")]
    name: String,
}

#[derive(Debug, Clone, Factory)]
#[factory(table = "users")]
struct User {
    #[factory(generated)]
    id: i64,
    #[factory(belongs_to = Org)]
    org_id: i32,
    #[factory(sequence = "user{n}@example.com")]
    email: String,
    #[factory(generated)]
    public_id: Uuid,
    #[factory(generated)]
    created_at: DateTime<Utc>,
    #[factory(generated)]
    handle: String,
}

#[derive(Debug, Clone, Factory)]
#[factory(table = "posts")]
struct Post {
    #[factory(generated)]
    id: i16,
    #[factory(belongs_to = User)]
    author_id: i64,
    #[factory(belongs_to = User)]
    editor_id: Option<i64>,
    #[factory(default = "Hello")]
    title: String,
}

fn in_test<R>(name: &str, seed: u64, f: impl FnOnce() -> R) -> R {
    Arc::new(TestContext::builder(name).seed(seed).build()).sync_scope(f)
}

#[test]
fn stubbed_ids_are_distinct_and_plausible_across_10000_builds() {
    in_test("stubs::distinct", 1, || {
        let users = User::factory().build_stubbed_list(10_000);
        let ids: HashSet<i64> = users.iter().map(|u| u.id).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|&id| id > 1000), "ids look like ids");
        let uuids: HashSet<Uuid> = users.iter().map(|u| u.public_id).collect();
        assert_eq!(uuids.len(), 10_000);
        assert!(users.iter().all(|u| u.public_id.get_version_num() == 4));
        let handles: HashSet<&str> = users.iter().map(|u| u.handle.as_str()).collect();
        assert_eq!(handles.len(), 10_000);
        // A generated time is a plausible one, not the epoch.
        assert!(users.iter().all(|u| u.created_at.timestamp() != 0));
        // Every user's parent organization was stubbed too: its key is an id.
        let orgs: HashSet<i32> = users.iter().map(|u| u.org_id).collect();
        assert_eq!(orgs.len(), 10_000);
        assert!(orgs.iter().all(|&id| id > 1000));
    });
}

#[test]
fn keys_point_at_the_stubbed_parents_they_were_given() {
    in_test("stubs::keys", 2, || {
        let alice = User::factory().build_stubbed();
        let post = Post::factory().author_ref(&alice).build_stubbed();
        assert_eq!(post.author_id, alice.id);
        assert!(post.id > 1000);
        // An unset optional association stays unset, as in build().
        assert_eq!(post.editor_id, None);
        // A parent given as a builder is stubbed, and its key taken.
        let post = Post::factory()
            .author(User::factory().email("bob@example.com"))
            .build_stubbed();
        assert!(post.author_id > 1000 && post.author_id != alice.id);
    });
}

#[test]
fn plain_builds_are_unchanged_and_stubs_are_reproducible() {
    let draw = || {
        in_test("stubs::same", 3, || {
            let plain = User::factory().build();
            let stubs = User::factory().build_stubbed_list(3);
            (plain, stubs)
        })
    };
    let (plain, stubs) = draw();
    assert_eq!(
        (plain.id, plain.org_id),
        (0, 0),
        "build() keeps the type's default"
    );
    assert_eq!(plain.public_id, Uuid::nil());
    let (_, again) = draw();
    let key = |u: &User| (u.id, u.org_id, u.public_id, u.created_at, u.handle.clone());
    assert_eq!(
        stubs.iter().map(key).collect::<Vec<_>>(),
        again.iter().map(key).collect::<Vec<_>>()
    );
    // The mode ends with the call, however it ends.
    let caught = std::panic::catch_unwind(|| stubbed(|| panic!("inside")));
    assert!(caught.is_err());
    assert_eq!(Org::factory().build().id, 0);
    assert!(stubbed(|| Org::factory().build()).id > 1000);
}

#[derive(Debug, Clone, Factory)]
#[factory(table = "notes")]
struct Note {
    #[factory(generated)]
    id: Option<i64>,
    #[factory(default = "hi")]
    text: String,
}

#[test]
fn an_optional_generated_id_is_some_when_stubbed() {
    in_test("stubs::option", 4, || {
        assert_eq!(Note::factory().build().id, None);
        let ids: HashSet<i64> = Note::factory()
            .build_stubbed_list(100)
            .iter()
            .map(|n| n.id.unwrap())
            .collect();
        assert_eq!(ids.len(), 100);
        assert!(ids.iter().all(|&id| id > 1000));
    });
}
