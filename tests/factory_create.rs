//! Factories that write, against a real server: `create` and its read-back, `create_list` in
//! bulk, associations, reuse, has_many, graphs with a foreign-key cycle, insert statistics, and
//! the errors a constraint violation or a missing table gives.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod models;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use models::*;
use seedbed::factory::{ConstraintKind, Graph};
use seedbed::prelude::*;
use sqlx::PgPool;

type Result<T = (), E = seedbed::Error> = std::result::Result<T, E>;

async fn count(db: &TestDb, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool()).await.unwrap()
}

// ---- create: what the database stored comes back ----

#[seedbed::test]
async fn create_reads_back_generated_ids_defaults_and_trigger_effects(db: TestDb) -> Result {
    let before = Utc::now() - chrono::Duration::minutes(5);
    let user = User::factory().create(&db).await?;
    assert!(user.id > 0, "identity read back: {user:?}");
    assert!(user.created_at > before, "DEFAULT now() read back");
    assert!(user.email.starts_with("user1"));

    // A stored generated column is computed by the database and read back.
    let item = OrderItem::factory()
        .quantity(3)
        .unit_price_cents(250_i64)
        .create(&db)
        .await?;
    assert_eq!(item.total_cents, 750);

    // uuid DEFAULT gen_random_uuid(), mixed-case table and column, second schema.
    let prefs = UserPreferences::factory()
        .user_ref(&user)
        .theme_name("dark")
        .create(&db)
        .await?;
    assert_eq!(
        (prefs.user_id, prefs.theme_name.as_str()),
        (user.id, "dark")
    );

    // The trigger on issues wrote its audit row in the same statement.
    let issue = Issue::factory().urgent().create(&db).await?;
    assert_eq!(issue.priority, IssuePriority::Urgent);
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.issue_events WHERE issue_id = $1")
            .bind(issue.id)
            .fetch_one(&db.pool())
            .await?;
    assert_eq!(events, 1);
    Ok(())
}

#[seedbed::test]
async fn create_accepts_a_test_db_a_pool_and_a_connection(db: TestDb) -> Result {
    let a = User::factory().create(&db).await?;
    let b = User::factory().create(&db.pool()).await?;

    let mut tx = db.pool().begin().await?;
    let c = User::factory().create(&mut *tx).await?;
    let d = User::factory().create(&mut tx).await?;
    // A graph (several statements) inside the caller's transaction: a savepoint, same connection.
    let issue = Issue::factory().create(&mut *tx).await?;
    tx.commit().await?;

    let mut conn = db.pool().acquire().await?;
    let e = User::factory().create(&mut conn).await?;
    drop(conn);

    let ids: HashSet<i64> = [a.id, b.id, c.id, d.id, e.id].into();
    assert_eq!(ids.len(), 5);
    // One context for all of them: the test's, so the sequence went on (the issue's reporter
    // took user5).
    assert_eq!(
        [&a, &b, &c, &d, &e].map(|u| u.email.split('@').next().unwrap()[..5].to_string()),
        ["user1", "user2", "user3", "user4", "user6"]
    );
    assert!(issue.id > 0);
    assert_eq!(db.stats().table("users").rows, 6);
    Ok(())
}

#[seedbed::test]
async fn create_through_a_pool_uses_the_test_context(pool: PgPool) -> Result {
    let org = Organization::factory().create(&pool).await?;
    let ctx = seedbed::context::TestContext::current();
    assert!(org.slug.starts_with("org-1"));
    assert_eq!(ctx.insert_stats().table("organizations").rows, 1);
    Ok(())
}

#[seedbed::test(strategy = "truncate")]
async fn create_commits_under_truncate(db: TestDb) -> Result {
    let issues = Issue::factory().create_list(&db, 3).await?;
    // Committed: another connection of the pool sees them.
    let mut other = db.pool().acquire().await?;
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM issues")
        .fetch_one(&mut *other)
        .await?;
    assert_eq!(seen, 3);
    assert_eq!(issues.len(), 3);
    Ok(())
}

// ---- create_list: bulk, with per-row variation ----

#[seedbed::test]
async fn create_list_writes_20000_rows_with_per_row_variation(db: TestDb) -> Result {
    let users = User::factory()
        .create_list_with(&db, 20_000, |i, user| user.is_admin(i % 7 == 0))
        .await?;
    assert_eq!(users.len(), 20_000);
    // Returned in order, with the variation of each row.
    assert!(
        users
            .iter()
            .enumerate()
            .all(|(i, u)| u.is_admin == (i % 7 == 0))
    );
    assert!(users.windows(2).all(|w| w[0].id < w[1].id));
    let emails: HashSet<&str> = users.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(emails.len(), 20_000, "sequences advance per row");
    let names: HashSet<&str> = users.iter().map(|u| u.display_name.as_str()).collect();
    assert!(names.len() > 1000, "fakers draw per row");

    // 4 columns: 16,383 rows per statement (65,535 parameters), so 2 statements.
    let stats = db.stats().table("users");
    assert_eq!((stats.rows, stats.statements), (20_000, 2));
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 20_000);
    Ok(())
}

#[seedbed::test]
async fn create_list_binds_every_column_type_of_the_schema(db: TestDb) -> Result {
    // Sent as arrays and unnested: enums, inet (text cast to inet), jsonb, uuid, bytea, dates.
    let orders = Order::factory()
        .create_list_with(&db, 4, |i, order| {
            order.status(if i % 2 == 0 {
                OrderStatus::Paid
            } else {
                OrderStatus::Shipped
            })
        })
        .await?;
    let statuses: Vec<OrderStatus> = orders.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [
            OrderStatus::Paid,
            OrderStatus::Shipped,
            OrderStatus::Paid,
            OrderStatus::Shipped
        ]
    );
    let sessions = Session::factory().create_list(&db, 3).await?;
    assert!(sessions.iter().all(|s| s.ip == Inet::localhost()));
    let issues = Issue::factory().urgent().create_list(&db, 3).await?;
    assert!(issues.iter().all(|i| i.priority == IssuePriority::Urgent));
    let notifications = Notification::factory().create_list(&db, 3).await?;
    assert_eq!(notifications[2].payload["via"], "factory");
    let entries = TimeEntry::factory().create_list(&db, 3).await?;
    assert!(entries.iter().all(|e| e.minutes > 0));
    let items = OrderItem::factory().create_list(&db, 3).await?;
    assert!(
        items
            .iter()
            .all(|i| i.total_cents == i64::from(i.quantity) * i.unit_price_cents)
    );
    // Sent as VALUES tuples: a text[] column, a numeric column.
    let tokens = ApiToken::factory().create_list(&db, 3).await?;
    assert!(tokens.iter().all(|t| t.scopes == ["read"]));
    let invoices = Invoice::factory().create_list(&db, 3).await?;
    assert!(
        invoices
            .iter()
            .all(|i| i.amount == rust_decimal::Decimal::new(4999, 2))
    );
    Ok(())
}

// ---- associations ----

#[seedbed::test]
async fn associations_are_created_unless_given(db: TestDb) -> Result {
    // Nothing set: the issue creates its project (and its organization) and its reporter.
    let issue = Issue::factory().create(&db).await?;
    let stats = db.stats();
    for table in ["organizations", "projects", "users", "issues"] {
        assert_eq!(stats.table(table).rows, 1, "{table}\n{stats}");
    }
    assert_eq!(issue.assignee_id, None, "optional associations stay NULL");

    // A builder of the parent.
    let admin_reported = Issue::factory()
        .reporter(User::factory().admin())
        .create(&db)
        .await?;
    let is_admin: bool = sqlx::query_scalar("SELECT is_admin FROM users WHERE id = $1")
        .bind(admin_reported.reporter_id)
        .fetch_one(&db.pool())
        .await?;
    assert!(is_admin);

    // An existing row, and an explicit key.
    let alice = User::factory().create(&db).await?;
    let project = Project::factory().create(&db).await?;
    let mine = Issue::factory()
        .reporter_ref(&alice)
        .assignee_ref(&alice)
        .project_id(project.id)
        .create(&db)
        .await?;
    assert_eq!(
        (mine.reporter_id, mine.assignee_id, mine.project_id),
        (alice.id, Some(alice.id), project.id)
    );
    // The last write wins: the key set after the builder replaces it.
    let last = Issue::factory()
        .reporter(User::factory())
        .reporter_id(alice.id)
        .project_ref(&project)
        .create(&db)
        .await?;
    assert_eq!(last.reporter_id, alice.id);
    Ok(())
}

#[seedbed::test]
async fn build_builds_associations_without_inserting(db: TestDb) -> Result {
    let alice = User::factory().build();
    let issue = Issue::factory().reporter_ref(&alice).build();
    assert_eq!(issue.reporter_id, alice.id);
    let _ = Issue::factory().reporter(User::factory()).build_list(3);
    let _ = Comment::factory().build();
    assert_eq!(db.stats().total_rows(), 0, "build never inserts");
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 0);
    Ok(())
}

#[seedbed::test]
async fn create_list_with_associations_writes_one_statement_per_table(db: TestDb) -> Result {
    let comments = Comment::factory().create_list(&db, 200).await?;
    assert_eq!(comments.len(), 200);
    let stats = db.stats();
    // Each comment has its own issue, project, organization, reporter and author.
    for (table, rows) in [
        ("comments", 200),
        ("issues", 200),
        ("projects", 200),
        ("organizations", 200),
        ("users", 400),
    ] {
        assert_eq!(
            (stats.table(table).rows, stats.table(table).statements),
            (rows, 1),
            "{table}\n{stats}"
        );
    }
    // Every comment points at its own issue.
    let issues: HashSet<i64> = comments.iter().map(|c| c.issue_id).collect();
    assert_eq!(issues.len(), 200);
    Ok(())
}

// ---- reuse, has_many, a whole graph without duplicate parents ----

#[seedbed::test]
async fn a_graph_with_reuse_shares_its_parents(db: TestDb) -> Result {
    let acme = Organization::factory().create(&db).await?;
    db.reuse(&acme);
    let people = User::factory().create_list(&db, 5).await?;
    db.reuse(&people[0]);

    // orgs → users → projects → issues → comments: 4 projects × 5 issues × 3 comments.
    let commenter = people[2].clone();
    let projects = Project::factory()
        .lead_ref(&people[1])
        .with_issues_each(5, move |i, issue| {
            let commenter = commenter.clone();
            issue
                .number(i as i32 + 1)
                .with_comments_each(3, move |_, c| c.author_ref(&commenter))
        })
        .create_list(&db, 4)
        .await?;
    assert_eq!(projects.len(), 4);
    assert!(projects.iter().all(|p| p.organization_id == acme.id));

    let stats = db.stats();
    let expect = [
        ("organizations", 1, 1),
        ("users", 5, 1),
        ("projects", 4, 1),
        ("issues", 20, 1),
        ("comments", 60, 1),
    ];
    for (table, rows, statements) in expect {
        assert_eq!(
            (stats.table(table).rows, stats.table(table).statements),
            (rows, statements),
            "{table}\n{stats}"
        );
    }
    // No duplicated parent: one organization, every issue reported by the reused user.
    assert_eq!(count(&db, "SELECT count(*) FROM organizations").await, 1);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT reporter_id) FROM issues").await,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM comments c JOIN issues i ON i.id = c.issue_id"
        )
        .await,
        60
    );

    // Reuse ends when asked.
    db.stop_reusing::<Organization>();
    let other = Project::factory().create(&db).await?;
    assert_ne!(other.organization_id, acme.id);
    Ok(())
}

// ---- self-references and the foreign-key cycle ----

#[seedbed::test]
async fn self_references_are_written_in_rounds(db: TestDb) -> Result {
    // A chain of invitations: three users, each invited by the next.
    let user = User::factory()
        .invited_by(User::factory().invited_by(User::factory()))
        .create(&db)
        .await?;
    let inviter = user.invited_by_id.expect("invited");
    let chain: (Option<i64>,) = sqlx::query_as("SELECT invited_by_id FROM users WHERE id = $1")
        .bind(inviter)
        .fetch_one(&db.pool())
        .await?;
    assert!(chain.0.is_some());
    assert_eq!(db.stats().table("users").statements, 3);

    // Threaded comments: each of 10 comments with 2 replies, created together.
    let threads = Comment::factory()
        .with_replies(2)
        .create_list(&db, 10)
        .await?;
    let replies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM comments WHERE parent_id = ANY($1)")
            .bind(threads.iter().map(|c| c.id).collect::<Vec<_>>())
            .fetch_one(&db.pool())
            .await?;
    assert_eq!(replies, 20);
    Ok(())
}

#[seedbed::test]
async fn a_graph_closes_the_board_column_cycle(db: TestDb) -> Result {
    let mut graph = Graph::new();
    let board = graph.add(Board::factory().name("Sprint 1"));
    let columns: Vec<_> = ["Todo", "Doing", "Done"]
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            graph.add(
                BoardColumn::factory()
                    .board(board)
                    .name(name)
                    .position(i as i32),
            )
        })
        .collect();
    graph.update(&board, |b| b.default_column(columns[0]));
    let created = graph.create(&db).await?;

    let board = created.get(&board).unwrap();
    let todo = created.get(&columns[0]).unwrap();
    assert_eq!(
        board.default_column_id,
        Some(todo.id),
        "the returned row shows the update"
    );
    for column in &columns {
        assert_eq!(created.get(column).unwrap().board_id, board.id);
    }
    let stored: Option<i64> =
        sqlx::query_scalar("SELECT default_column_id FROM boards WHERE id = $1")
            .bind(board.id)
            .fetch_one(&db.pool())
            .await?;
    assert_eq!(stored, Some(todo.id));
    let stats = db.stats();
    assert_eq!(stats.table("boards").updates, 1, "{stats}");
    assert_eq!(stats.table("board_columns").statements, 1, "{stats}");
    Ok(())
}

// ---- errors ----

/// A table made for the exclusion-constraint case (created inside the test's transaction).
#[allow(dead_code, reason = "read back, never looked at")]
#[derive(Debug, Clone, sqlx::FromRow, Factory)]
#[factory(table = "bookings")]
struct Booking {
    #[factory(generated)]
    id: i32,
    #[factory(default = 1)]
    room: i32,
    #[factory(default = 9)]
    starts_at_hour: i32,
}

/// Writes NULL into a NOT NULL column.
#[allow(dead_code, reason = "read back, never looked at")]
#[derive(Debug, Clone, sqlx::FromRow, Factory)]
#[factory(table = "users")]
struct NamelessUser {
    #[factory(generated)]
    id: i64,
    #[factory(sequence = "nameless{n}@example.com")]
    email: String,
    display_name: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow, Factory)]
#[factory(table = "no_such_table")]
struct Ghost {
    #[factory(default = 1)]
    id: i32,
}

#[allow(dead_code, reason = "read back, never looked at")]
#[derive(Debug, Clone, sqlx::FromRow, Factory)]
#[factory(table = "users")]
struct Misspelt {
    #[factory(generated)]
    id: i64,
    #[factory(column = "emial", default = "x@example.com")]
    #[sqlx(rename = "emial")]
    email: String,
}

/// Checks a constraint violation: its kind, table and constraint, and that the detail shows
/// `value`; returns the message.
fn expect_violation(
    err: &seedbed::Error,
    expected: (ConstraintKind, &str, &str),
    value: &str,
) -> String {
    let (kind, table, constraint, detail) = violation(err);
    assert_eq!((kind, table, constraint), expected, "{err}");
    assert!(
        detail.contains(value),
        "{value} missing from the detail: {detail}"
    );
    err.to_string()
}

fn violation(err: &seedbed::Error) -> (ConstraintKind, &str, &str, &str) {
    match err {
        seedbed::Error::ConstraintViolation(v) => (
            v.kind,
            v.table.as_str(),
            v.constraint.as_str(),
            v.detail.as_str(),
        ),
        other => panic!("expected a constraint violation, got {other:?}"),
    }
}

#[seedbed::test]
async fn constraint_violations_name_the_table_the_constraint_and_the_values(db: TestDb) -> Result {
    // unique
    User::factory()
        .email("taken@example.com")
        .create(&db)
        .await?;
    let err = User::factory()
        .email("taken@example.com")
        .create(&db)
        .await
        .unwrap_err();
    let message = expect_violation(
        &err,
        (ConstraintKind::Unique, "users", "users_email_key"),
        "(email)=(taken@example.com)",
    );
    for part in [
        "factory_create::models::User",
        "users",
        "users_email_key",
        "taken@example.com",
        "sequence",
    ] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }

    // foreign key
    let err = Issue::factory()
        .reporter_id(-1_i64)
        .create(&db)
        .await
        .unwrap_err();
    let message = expect_violation(
        &err,
        (
            ConstraintKind::ForeignKey,
            "issues",
            "issues_reporter_id_fkey",
        ),
        "(reporter_id)=(-1)",
    );
    assert!(
        message.contains("is not present in table \"users\""),
        "{message}"
    );

    // NOT NULL
    let err = NamelessUser::factory().create(&db).await.unwrap_err();
    let (kind, table, constraint, _) = violation(&err);
    assert_eq!(kind, ConstraintKind::NotNull);
    assert_eq!(table, "users");
    assert!(constraint.contains("display_name"), "{constraint}");
    assert!(err.to_string().contains("column display_name"), "{err}");
    assert!(err.to_string().contains("NamelessUser"), "{err}");

    // CHECK on the table
    let err = Organization::factory()
        .slug("Not A Slug!")
        .create(&db)
        .await
        .unwrap_err();
    expect_violation(
        &err,
        (
            ConstraintKind::Check,
            "organizations",
            "organizations_slug_check",
        ),
        "Not A Slug!",
    );

    // CHECK of a domain
    let err = User::factory()
        .email("no-at-sign")
        .create(&db)
        .await
        .unwrap_err();
    let (kind, _, constraint, _) = violation(&err);
    assert_eq!(kind, ConstraintKind::Check);
    assert!(constraint.contains("email_address_check"), "{constraint}");
    assert!(err.to_string().contains("email_address"), "{err}");

    // EXCLUDE
    sqlx::raw_sql(
        "CREATE TABLE bookings (id int GENERATED ALWAYS AS IDENTITY, room int, starts_at_hour int, \
         EXCLUDE USING gist (int4range(starts_at_hour, starts_at_hour + 2) WITH &&))",
    )
    .execute(&db.pool())
    .await?;
    Booking::factory().create(&db).await?;
    let err = Booking::factory()
        .starts_at_hour(10)
        .create(&db)
        .await
        .unwrap_err();
    let (kind, table, constraint, detail) = violation(&err);
    assert_eq!((kind, table), (ConstraintKind::Exclusion, "bookings"));
    assert_eq!(constraint, "bookings_int4range_excl");
    assert!(detail.contains("conflicts with existing key"), "{detail}");

    // A failure inside a multi-statement plan leaves nothing behind (its savepoint is rolled back).
    let issues_before = count(&db, "SELECT count(*) FROM projects").await;
    let err = Issue::factory()
        .status_id(99_i16)
        .create(&db)
        .await
        .unwrap_err();
    assert_eq!(violation(&err).0, ConstraintKind::ForeignKey);
    assert_eq!(
        count(&db, "SELECT count(*) FROM projects").await,
        issues_before
    );
    Ok(())
}

#[seedbed::test]
async fn a_missing_table_or_column_names_it_and_the_factory(db: TestDb) -> Result {
    let err = Ghost::factory().create(&db).await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, seedbed::Error::SchemaMismatch { .. }),
        "{err:?}"
    );
    assert!(message.contains("table no_such_table"), "{message}");
    assert!(message.contains("factory_create::Ghost"), "{message}");
    assert!(
        message.contains("check #[factory(table = …, schema = …)]") && !message.contains("  "),
        "the advice reads as one sentence: {message}"
    );

    let err = Misspelt::factory().create(&db).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("column emial of table users"), "{message}");
    assert!(message.contains("factory_create::Misspelt"), "{message}");
    Ok(())
}

// ---- every table of the reference schema ----

#[seedbed::test]
async fn every_reference_table_has_a_working_factory(db: TestDb) -> Result {
    Role::factory().create(&db).await?;
    Plan::factory().create(&db).await?;
    IssueStatus::factory().create(&db).await?;
    let org = Organization::factory().enterprise().create(&db).await?;
    db.reuse(&org);
    let user = User::factory().create(&db).await?;
    db.reuse(&user);
    UserPreferences::factory().create(&db).await?;
    Membership::factory().owner().create(&db).await?;
    TeamMember::factory().create(&db).await?;
    Session::factory()
        .user_agent("curl".to_string())
        .create(&db)
        .await?;
    ApiToken::factory().create(&db).await?;
    let project = Project::factory().create(&db).await?;
    db.reuse(&project);
    let member = ProjectMember::factory().create(&db).await?;
    NotificationPreference::factory()
        .member_ref(&member)
        .create(&db)
        .await?;
    let board = Board::factory().with_columns(2).create(&db).await?;
    let milestone = Milestone::factory().create(&db).await?;
    let issue = Issue::factory()
        .milestone_ref(&milestone)
        .create(&db)
        .await?;
    db.reuse(&issue);
    IssueLabel::factory().create(&db).await?;
    let comment = Comment::factory().create(&db).await?;
    Attachment::factory()
        .comment_ref(&comment)
        .create(&db)
        .await?;
    IssueWatcher::factory().create(&db).await?;
    Notification::factory()
        .issue_ref(&issue)
        .create(&db)
        .await?;
    TimeEntry::factory().create(&db).await?;
    Subscription::factory().create(&db).await?;
    let order = Order::factory()
        .status(OrderStatus::Paid)
        .with_items(2)
        .create(&db)
        .await?;
    let invoice = Invoice::factory().order_ref(&order).create(&db).await?;
    Payment::factory().invoice_ref(&invoice).create(&db).await?;
    WebhookDelivery::factory().create(&db).await?;
    IssueEvent::factory().create(&db).await?;

    let stats = db.stats();
    let tables: HashSet<&str> = stats.tables().map(|(t, _)| t).collect();
    assert_eq!(tables.len(), 33, "{stats}");
    assert_eq!(board.default_column_id, None);
    assert_eq!(count(&db, "SELECT count(*) FROM board_columns").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM order_items").await, 2);
    let placed: DateTime<Utc> = order.placed_at;
    assert!(placed <= Utc::now());
    println!("{stats}");
    Ok(())
}
