//! `#[derive(Factory)]`, the in-memory half: builders, sequences, fakers, traits, lazy fields,
//! unique values and tokens, reproducible randomness and the column/value pairs. No database.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use chrono::{DateTime, Utc};
use fake::faker::company::en::CompanyName;
use fake::faker::internet::en::{SafeEmail, Username};
use fake::faker::lorem::en::Sentence;
use fake::faker::name::en::Name;
use seedbed::context::TestContext;
use seedbed::factory::{Attributes, Factory, FactoryBuilder, Value};
use seedbed::prelude::*;
use uuid::Uuid;

// ---- Models from the reference schema (migrations/) ----

#[derive(Debug, Clone, PartialEq, Factory)]
#[factory(
    table = "users",
    traits(admin(is_admin = true, display_name = "Admin"), invited(invited_by_id = Some(1))),
    after_build = trim_name
)]
struct User {
    #[factory(generated)]
    id: i64,
    #[factory(sequence = "user{n}@example.com")]
    email: String,
    #[factory(faker = Name())]
    display_name: String,
    #[factory(default = false)]
    is_admin: bool,
    invited_by_id: Option<i64>,
    #[factory(generated)]
    created_at: DateTime<Utc>,
}

fn trim_name(user: &mut User) {
    user.display_name = user.display_name.trim().to_string();
}

#[derive(Debug, Clone, PartialEq, Factory)]
#[factory(table = "organizations")]
struct Organization {
    #[factory(generated)]
    id: i64,
    #[factory(faker = CompanyName())]
    name: String,
    #[factory(sequence = |n| format!("org-{n}"))]
    slug: String,
    #[factory(default = 1)]
    plan_id: i16,
}

/// A user whose address comes from a faker and is made unique.
#[derive(Debug, Clone, PartialEq, Factory)]
#[factory(table = "users")]
struct Member {
    #[factory(unique, faker = SafeEmail())]
    email: String,
    #[factory(unique, faker = Username())]
    display_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, seedbed::DbEnum)]
#[sqlx(type_name = "issue_priority", rename_all = "lowercase")]
enum IssuePriority {
    Low,
    Medium,
    High,
    Urgent,
}

#[derive(Debug, Clone, Copy, PartialEq, seedbed::DbEnum)]
#[db_enum(type_name = "order_status", rename_all = "lowercase")]
enum OrderStatus {
    Pending,
    Paid,
    Shipped,
    #[db_enum(rename = "cancelled")]
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Factory)]
#[factory(table = "issues", transient(urgent: bool = false))]
struct Issue {
    #[factory(generated)]
    id: i64,
    project_id: Uuid,
    #[factory(sequence = |n| n as i32)]
    number: i32,
    #[factory(faker = Sentence(2..6))]
    title: String,
    description: Option<String>,
    #[factory(lazy = |f| if f.urgent { IssuePriority::Urgent } else { IssuePriority::Medium })]
    priority: IssuePriority,
    #[factory(default = 1)]
    status_id: i16,
    #[factory(default = 1)]
    reporter_id: i64,
    #[factory(lazy = |f| f.title.len() as i32 % 100)]
    estimate_points: i32,
    created_at: DateTime<Utc>,
    #[factory(skip)]
    label_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Factory)]
#[factory(table = "order")]
struct Order {
    #[factory(generated)]
    id: i64,
    #[factory(default = 1)]
    organization_id: i64,
    #[factory(default = OrderStatus::Pending)]
    status: OrderStatus,
    #[factory(default = "EUR")]
    currency: String,
    placed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Factory)]
#[factory(table = "webhooks")]
struct Webhook {
    #[factory(generated)]
    id: i64,
    project_id: Uuid,
    #[factory(sequence = "https://hooks.example.com/{n}")]
    url: String,
    #[factory(column = "secret", faker = fake::faker::lorem::en::Word())]
    signing_secret: String,
    #[factory(default = vec!["issue.created".to_string()])]
    events: Vec<String>,
    #[factory(default = true)]
    active: bool,
}

#[derive(Debug, Clone, PartialEq, Factory)]
#[factory(table = "notifications")]
struct Notification {
    #[factory(generated)]
    id: i64,
    #[factory(default = 1)]
    user_id: i64,
    issue_id: Option<i64>,
    #[factory(default = "mention")]
    kind: String,
    #[factory(default = serde_json::json!({"issue": 1}))]
    payload: serde_json::Value,
    read_at: Option<DateTime<Utc>>,
}

/// A sequence that places the token itself, and one that takes it as an argument.
#[derive(Debug, Clone, PartialEq, Factory)]
#[factory(table = "api_tokens", schema = "public")]
struct ApiToken {
    #[factory(sequence = "token-{n}-{token}")]
    name: String,
    #[factory(sequence = |n, token| format!("{token}:{n:04}"))]
    label: String,
}

fn context(name: &str, seed: u64) -> Arc<TestContext> {
    Arc::new(TestContext::builder(name).seed(seed).build())
}

fn shared_context(name: &str, seed: u64, token: &str) -> Arc<TestContext> {
    Arc::new(
        TestContext::builder(name)
            .seed(seed)
            .token(token)
            .shares_database(true)
            .build(),
    )
}

// ---- Builders ----

#[test]
fn build_fills_every_field_from_its_attribute() {
    context("factory_build::fills", 1).sync_scope(|| {
        let user = User::factory().build();
        assert_eq!(user.id, 0, "generated fields default to Default in memory");
        assert_eq!(user.email, "user1@example.com");
        assert!(!user.display_name.is_empty());
        assert!(!user.is_admin);
        assert_eq!(user.invited_by_id, None, "Option fields stay None");
        assert_eq!(user.created_at, DateTime::<Utc>::default());

        let second = User::factory().build();
        assert_eq!(second.email, "user2@example.com");

        let org = Organization::factory().build();
        assert_eq!(org.slug, "org-1", "sequences count per factory");
        assert_eq!(org.plan_id, 1);
    });
}

#[test]
fn setters_take_into_and_the_last_write_wins() {
    context("factory_build::setters", 1).sync_scope(|| {
        let user = User::factory()
            .email("a@example.com")
            .email(String::from("b@example.com"))
            .invited_by_id(7)
            .build();
        assert_eq!(user.email, "b@example.com");
        assert_eq!(user.invited_by_id, Some(7));
    });
}

#[test]
fn overrides_beat_traits_beat_defaults() {
    context("factory_build::precedence", 1).sync_scope(|| {
        // Default.
        assert!(!User::factory().build().is_admin);
        // Trait beats default.
        let admin = User::factory().admin().build();
        assert!(admin.is_admin);
        assert_eq!(admin.display_name, "Admin");
        // Override after the trait beats the trait.
        let demoted = User::factory().admin().is_admin(false).build();
        assert!(!demoted.is_admin);
        assert_eq!(
            demoted.display_name, "Admin",
            "the trait's other fields stay"
        );
        // A trait after an override is the last write, so it wins: traits are setters.
        assert!(User::factory().is_admin(false).admin().build().is_admin);
        // Two traits.
        let both = User::factory().admin().invited().build();
        assert!(both.is_admin);
        assert_eq!(both.invited_by_id, Some(1));
    });
}

// A trait written by hand: an inherent method on the generated builder.
impl UserFactory {
    fn named_admin(self, name: &str) -> Self {
        self.admin().display_name(name)
    }
}

#[test]
fn hand_written_traits_are_inherent_methods() {
    context("factory_build::hand_traits", 1).sync_scope(|| {
        let user = User::factory().named_admin("Root").build();
        assert!(user.is_admin);
        assert_eq!(user.display_name, "Root");
    });
}

#[test]
fn lazy_fields_see_overrides_and_transients() {
    context("factory_build::lazy", 1).sync_scope(|| {
        let issue = Issue::factory().title("Exactly twenty chars").build();
        assert_eq!(issue.estimate_points, 20, "lazy sees the overridden title");
        assert_eq!(issue.priority, IssuePriority::Medium);

        let urgent = Issue::factory().urgent(true).build();
        assert_eq!(
            urgent.priority,
            IssuePriority::Urgent,
            "lazy sees transients"
        );

        let fixed = Issue::factory()
            .urgent(true)
            .priority(IssuePriority::Low)
            .build();
        assert_eq!(fixed.priority, IssuePriority::Low, "an override beats lazy");

        let generated = Issue::factory().build();
        assert_eq!(
            generated.estimate_points,
            generated.title.len() as i32 % 100
        );
    });
}

#[test]
fn after_build_runs_on_the_built_value() {
    context("factory_build::after", 1).sync_scope(|| {
        let user = User::factory().display_name("  padded  ").build();
        assert_eq!(user.display_name, "padded");
    });
}

#[test]
fn build_list_advances_sequences_and_keeps_overrides() {
    context("factory_build::lists", 1).sync_scope(|| {
        let users = User::factory().admin().build_list(3);
        let emails: Vec<_> = users.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(
            emails,
            [
                "user1@example.com",
                "user2@example.com",
                "user3@example.com"
            ]
        );
        assert!(users.iter().all(|u| u.is_admin));
        assert!(User::factory().build_list(0).is_empty());

        let orgs = Organization::factory().build_list_with(3, |i, org| org.plan_id(i as i16 + 1));
        assert_eq!(
            orgs.iter().map(|o| o.plan_id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    });
}

#[test]
fn builders_are_values() {
    let builder = User::factory().admin();
    let copy = builder.clone();
    assert!(format!("{copy:?}").contains("is_admin: Some(true)"));
    assert!(format!("{:?}", UserFactory::default()).contains("email: None"));
    // Generic code through the traits.
    fn build_one<M: Factory>() -> M {
        M::factory().build()
    }
    let _: Organization = build_one();
}

// ---- Sequences, unique values and tokens ----

#[test]
fn sequences_and_unique_values_are_distinct_across_threads() {
    const THREADS: usize = 8;
    const BUILDS: usize = 10_000;
    // The process-wide context: no test context installed on these threads.
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                assert!(TestContext::current_test().is_none());
                start.wait();
                (0..BUILDS)
                    .map(|_| {
                        let m = Member::factory().build();
                        let o = Organization::factory().build();
                        (m.email, m.display_name, o.slug)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut emails = HashSet::new();
    let mut names = HashSet::new();
    let mut slugs = HashSet::new();
    for handle in handles {
        for (email, name, slug) in handle.join().unwrap() {
            assert!(
                emails.insert(email.clone()),
                "repeated unique email {email}"
            );
            assert!(names.insert(name.clone()), "repeated unique name {name}");
            assert!(slugs.insert(slug.clone()), "repeated sequence {slug}");
        }
    }
    assert_eq!(emails.len(), THREADS * BUILDS);
    assert_eq!(slugs.len(), THREADS * BUILDS);
}

#[test]
fn parallel_test_contexts_sharing_a_database_never_collide() {
    // Two tests on one database, same seed and the same factories, at the same time: their
    // sequences both start at 1, so only the token keeps their values apart.
    let run = |ctx: Arc<TestContext>| {
        std::thread::spawn(move || {
            ctx.sync_scope(|| {
                (0..2_000)
                    .flat_map(|_| {
                        let m = Member::factory().build();
                        let u = User::factory().build();
                        let o = Organization::factory().build();
                        [m.email, m.display_name, u.email, o.slug]
                    })
                    .collect::<Vec<_>>()
            })
        })
    };
    let a = run(shared_context("tests::a", 9, "aaaaa1"));
    let b = run(shared_context("tests::b", 9, "bbbbb2"));
    let a: HashSet<String> = a.join().unwrap().into_iter().collect();
    let b: HashSet<String> = b.join().unwrap().into_iter().collect();
    assert_eq!(a.len(), 8_000, "unique within a test");
    assert_eq!(b.len(), 8_000);
    assert!(a.is_disjoint(&b), "the two tests' unique values overlap");
}

#[test]
fn tokens_are_lowercase_alphanumerics_inserted_before_the_at() {
    shared_context("tests::tokens", 3, "k3f9qz").sync_scope(|| {
        assert_eq!(User::factory().build().email, "user1k3f9qz@example.com");
        assert_eq!(Organization::factory().build().slug, "org-1k3f9qz");
        let member = Member::factory().build();
        let (local, domain) = member.email.split_once('@').unwrap();
        assert!(local.ends_with("1k3f9qz"), "{}", member.email);
        assert!(!domain.contains("k3f9qz"));
        // Numbers carry no token.
        assert_eq!(Issue::factory().build().number, 1);
        // `{token}` and `|n, token|` place it themselves, nothing is added.
        let token = ApiToken::factory().build();
        assert_eq!(token.name, "token-1-k3f9qz");
        assert_eq!(token.label, "k3f9qz:0001");
        // Overrides are used as written.
        assert_eq!(User::factory().email("x@y.z").build().email, "x@y.z");
    });
    // Without a shared database, no token is added, but `{token}` is still honoured.
    context("tests::no_tokens", 3).sync_scope(|| {
        assert_eq!(User::factory().build().email, "user1@example.com");
        let ctx = TestContext::current();
        assert_eq!(
            ApiToken::factory().build().name,
            format!("token-1-{}", ctx.token())
        );
    });
}

#[test]
fn unique_appends_the_sequence_number() {
    context("tests::unique", 5).sync_scope(|| {
        let members = Member::factory().build_list(3);
        for (i, m) in members.iter().enumerate() {
            let n = i + 1;
            let (local, _) = m.email.split_once('@').unwrap();
            assert!(
                local.ends_with(&n.to_string()),
                "{} should carry {n} before the @",
                m.email
            );
            assert!(m.display_name.ends_with(&n.to_string()));
        }
    });
}

#[test]
fn overrides_consume_no_random_draws_of_other_builds() {
    let names = |override_first: bool| {
        context("tests::override_draws", 11).sync_scope(|| {
            let first = if override_first {
                User::factory().display_name("Fixed").build()
            } else {
                User::factory().build()
            };
            let second = User::factory().build();
            (first, second)
        })
    };
    let (plain_first, plain_second) = names(false);
    let (fixed_first, fixed_second) = names(true);
    assert_eq!(fixed_first.display_name, "Fixed");
    assert_ne!(plain_first.display_name, "Fixed");
    // Every build takes its sequence number, overridden or not, and draws from its own stream:
    // the second build is the same either way.
    assert_eq!(plain_second, fixed_second);
    assert_eq!(fixed_second.email, "user2@example.com");
}

// ---- Reproducible randomness ----

fn sample() -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..3 {
        let u = User::factory().build();
        let i = Issue::factory().build();
        let m = Member::factory().build();
        out.push(format!(
            "{}|{}|{}|{}|{:?}|{}|{}",
            u.display_name,
            i.project_id,
            i.title,
            i.created_at,
            i.description,
            m.email,
            m.display_name
        ));
    }
    out
}

#[test]
fn the_same_seed_and_name_give_identical_values_whatever_runs_beside() {
    let reference = context("my_crate::tests::lists_posts", 42).sync_scope(sample);

    // The same test, again, while other threads build the same factories in other contexts
    // and in the process-wide one.
    let noise: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    if i % 2 == 0 {
                        let _ = User::factory().build();
                        let _ = Issue::factory().build();
                    } else {
                        context("other::test", i).sync_scope(|| {
                            let _ = Member::factory().build();
                        });
                    }
                }
            })
        })
        .collect();
    let again: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| context("my_crate::tests::lists_posts", 42).sync_scope(sample))
        })
        .collect();
    for handle in again {
        assert_eq!(handle.join().unwrap(), reference);
    }
    for handle in noise {
        handle.join().unwrap();
    }

    // And across runs and machines: these values are fixed by the seed, the test's name and
    // the algorithms (Xoshiro256++ per build, fake 5's data).
    let first = context("my_crate::tests::lists_posts", 42).sync_scope(|| {
        let issue = Issue::factory().build();
        (issue.project_id, User::factory().build().display_name)
    });
    // Recorded from a run; they change only if the seeding, the generator or fake's data change.
    assert_eq!(first.0.to_string(), "9ef9d654-1cb9-badf-a822-d71d013df258");
    assert_eq!(first.1, "Lilliana Bergstrom");
}

#[test]
fn a_different_test_name_or_seed_gives_different_values() {
    let a = context("my_crate::tests::a", 42).sync_scope(sample);
    let b = context("my_crate::tests::b", 42).sync_scope(sample);
    let c = context("my_crate::tests::a", 43).sync_scope(sample);
    assert_ne!(a, b);
    assert_ne!(a, c);
}

#[test]
fn uuids_and_times_come_from_the_context() {
    let draw = || {
        context("tests::uuids", 8).sync_scope(|| {
            let i = Issue::factory().build();
            (i.project_id, i.created_at)
        })
    };
    assert_eq!(draw(), draw());
    assert_ne!(draw().0, Uuid::nil());
}

// ---- Attributes ----

#[test]
fn attributes_list_exactly_the_columns() {
    context("tests::attributes", 1).sync_scope(|| {
        let attrs = User::factory().admin().attributes();
        assert_eq!(
            attrs.columns().collect::<Vec<_>>(),
            ["email", "display_name", "is_admin", "invited_by_id"],
            "generated columns are left out"
        );
        assert_eq!(attrs.get("email"), Some(&Value::from("user1@example.com")));
        assert_eq!(attrs.get("is_admin"), Some(&Value::Bool(Some(true))));
        assert_eq!(attrs.get("invited_by_id"), Some(&Value::BigInt(None)));

        let issue = Issue::factory().attributes();
        let columns: Vec<_> = issue.columns().collect();
        assert_eq!(
            columns,
            [
                "project_id",
                "number",
                "title",
                "description",
                "priority",
                "status_id",
                "reporter_id",
                "estimate_points",
                "created_at"
            ],
            "skipped fields and transients are no columns"
        );

        let webhook = Webhook::factory().attributes();
        assert!(webhook.get("secret").is_some(), "`column` renames");
        assert!(webhook.get("signing_secret").is_none());
    });
}

#[test]
fn the_table_descriptor_describes_the_columns() {
    let table = Issue::TABLE;
    assert_eq!(table.name(), "issues");
    assert_eq!(table.schema(), None);
    assert!(table.factory().ends_with("factory_build::Issue"));
    assert_eq!(table.skipped_fields(), ["label_names"]);
    let id = table.column("id").unwrap();
    assert!(id.is_generated());
    assert!(table.column("number").unwrap().is_sequence());
    assert_eq!(
        table.insert_columns().count(),
        Issue::factory().attributes().len()
    );
    assert!(Member::TABLE.column("email").unwrap().is_unique());
    assert_eq!(ApiToken::TABLE.schema(), Some("public"));
    assert_eq!(
        Webhook::TABLE.column("secret").unwrap().field(),
        "signing_secret"
    );
}

#[test]
fn attributes_bind_in_a_sea_query_insert() {
    use sea_query::{Alias, PostgresQueryBuilder, Query};
    use sea_query_sqlx::SqlxValues;

    fn insert(table: &str, attrs: Attributes) -> (String, sea_query::Values) {
        Query::insert()
            .into_table(Alias::new(table))
            .columns(attrs.columns().map(Alias::new))
            .values_panic(attrs.into_values().into_iter().map(Into::into))
            .build(PostgresQueryBuilder)
    }

    context("tests::insert", 1).sync_scope(|| {
        let (sql, values) = insert(Order::TABLE.name(), Order::factory().status(OrderStatus::Canceled).attributes());
        assert_eq!(
            sql,
            r#"INSERT INTO "order" ("organization_id", "status", "currency", "placed_at") VALUES ($1, $2::"order_status", $3, $4)"#
        );
        let labels: Vec<_> = values.iter().map(|v| format!("{v:?}")).collect();
        assert!(labels[1].contains("cancelled"), "{labels:?}");

        let (sql, values) = insert(Issue::TABLE.name(), Issue::factory().attributes());
        assert!(sql.contains(r#"$5::"issue_priority""#), "{sql}");
        assert_eq!(values.iter().count(), 9);

        let (sql, _) = insert(Webhook::TABLE.name(), Webhook::factory().attributes());
        assert!(sql.starts_with(r#"INSERT INTO "webhooks" ("project_id", "url", "secret", "events", "active")"#), "{sql}");

        let (_, values) = insert(Notification::TABLE.name(), Notification::factory().attributes());
        assert!(values.iter().any(|v| matches!(v, Value::Json(Some(_)))));

        // And through sea-query-sqlx into sqlx's arguments, as the persistence layer will.
        for attrs in [
            Order::factory().attributes(),
            Issue::factory().attributes(),
            Webhook::factory().attributes(),
            Notification::factory().attributes(),
        ] {
            let (_, values) = insert("t", attrs);
            let _args = sqlx::IntoArguments::<sqlx::Postgres>::into_arguments(SqlxValues(values));
        }
    });
}

#[test]
fn db_enums_cover_option_and_arrays() {
    #[derive(Debug, Clone, Factory)]
    #[factory(table = "issue_history")]
    struct History {
        before: Option<IssuePriority>,
        after: IssuePriority,
        seen: Vec<IssuePriority>,
    }
    use seedbed::factory::DbEnum;
    assert_eq!(IssuePriority::TYPE_NAME, "issue_priority");
    assert_eq!(IssuePriority::LABELS, ["low", "medium", "high", "urgent"]);
    assert_eq!(OrderStatus::Canceled.label(), "cancelled");
    assert_eq!(OrderStatus::from_label("paid"), Some(OrderStatus::Paid));

    context("tests::enums", 1).sync_scope(|| {
        let attrs = History::factory()
            .seen(vec![IssuePriority::Low, IssuePriority::High])
            .attributes();
        assert!(matches!(attrs.get("before"), Some(Value::Enum(e)) if !e.is_some()));
        assert!(matches!(attrs.get("after"), Some(Value::Enum(e)) if e.is_some()));
        assert!(matches!(attrs.get("seen"), Some(Value::Array(_, Some(v))) if v.len() == 2));
        // A field of the enum's type with no attribute picks variants at random.
        let picked: HashSet<_> = History::factory()
            .build_list(64)
            .into_iter()
            .map(|h| h.after)
            .collect();
        assert!(picked.len() > 1);
    });
}

#[test]
fn values_can_cross_threads() {
    fn is_send<T: Send + Sync>() {}
    is_send::<Value>();
    is_send::<Attributes>();
    is_send::<UserFactory>();
}

#[test]
fn attributes_serialize_to_json_for_api_payloads() {
    context("tests::json", 1).sync_scope(|| {
        let json = Order::factory()
            .organization_id(5)
            .status(OrderStatus::Paid)
            .attributes()
            .to_json();
        assert_eq!(json["organization_id"], 5);
        assert_eq!(json["status"], "paid");
        assert_eq!(json["currency"], "EUR");
    });
}

// ---- Shapes ----

/// No fields at all.
#[derive(Debug, Factory)]
#[factory(table = "markers")]
struct Marker {}

/// Raw identifiers: the column is the name without `r#`.
#[derive(Debug, Factory)]
#[factory(table = "events")]
struct Event {
    #[factory(default = "created")]
    r#type: String,
    #[factory(sequence = |n| n as i64)]
    r#ref: i64,
}

/// Named like nothing in particular, in a module of its own, with a field named like a crate.
mod nested {
    use seedbed::prelude::*;

    #[derive(Debug, Factory)]
    #[factory(table = "sessions")]
    pub(crate) struct Session {
        pub(crate) uuid: uuid::Uuid,
        #[factory(default = "curl/8")]
        pub(crate) user_agent: String,
    }
}

#[test]
fn unusual_shapes_work() {
    context("tests::shapes", 1).sync_scope(|| {
        let _ = Marker::factory().build();
        assert!(Marker::factory().attributes().is_empty());

        let event = Event::factory().build();
        assert_eq!(event.r#type, "created");
        assert_eq!(event.r#ref, 1);
        let attrs = Event::factory().r#type("deleted").attributes();
        assert_eq!(attrs.columns().collect::<Vec<_>>(), ["type", "ref"]);
        assert_eq!(attrs.get("type"), Some(&Value::from("deleted")));

        let session = nested::Session::factory().build();
        assert_ne!(session.uuid, Uuid::nil());
        assert_eq!(session.user_agent, "curl/8");
        assert!(
            nested::Session::TABLE
                .factory()
                .ends_with("nested::Session")
        );
    });
}

#[tokio::test]
async fn builds_inside_an_async_test_use_its_context() {
    let ctx = shared_context("tests::async", 4, "asyncx");
    let email = ctx
        .scope(async {
            tokio::task::yield_now().await;
            User::factory().build().email
        })
        .await;
    assert_eq!(email, "user1asyncx@example.com");
}

// A model declared through `macro_rules!`: its attribute values arrive wrapped in the invisible
// groups metavariables add, and read as the literals they are.
macro_rules! model_through_a_macro {
    ($name:ident, $table:literal, $sequence:literal, $default:literal) => {
        #[derive(Debug, Clone, PartialEq, Factory)]
        #[factory(table = $table)]
        struct $name {
            #[factory(generated)]
            id: i64,
            #[factory(sequence = $sequence)]
            slug: String,
            #[factory(default = $default)]
            plan: String,
        }
    };
}

model_through_a_macro!(MacroOrg, "organizations", "macro-{n}", "pro");

#[test]
fn attribute_values_from_a_macro_are_literals() {
    let first = MacroOrg::factory().build();
    let second = MacroOrg::factory().build();
    assert_eq!(MacroOrg::TABLE.name(), "organizations");
    assert!(first.slug.starts_with("macro-"), "{}", first.slug);
    assert_ne!(first.slug, second.slug);
    assert_eq!(first.plan, "pro");
}
