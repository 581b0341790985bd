//! Factories for every table of the reference schema (migrations/), shared by the tests and the
//! benches: `mod models;` then `use models::*;`.
//!
//! Conventions, as a user would write them: generated ids and database defaults are
//! `#[factory(generated)]` (read back), foreign keys are `belongs_to` (the parent is created
//! unless given, or reused with `db.reuse(&row)`), nullable foreign keys are `Option`s left NULL
//! unless set. Lookup tables (roles, plans, issue_statuses) already hold their rows; their
//! factories make extra ones with ids no other test picks.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::redundant_closure,
    reason = "each test binary uses a different subset; test code; `|n, token|` closures are \
              how a sequence receives the token"
)]

use chrono::{DateTime, NaiveDate, Utc};
use fake::faker::company::en::CompanyName;
use fake::faker::lorem::en::{Sentence, Word};
use fake::faker::name::en::Name;
use rust_decimal::Decimal;
use seedbed::factory::{Value, typed_text};
use seedbed::prelude::*;
use serde_json::json;
use uuid::Uuid;

/// An id for an extra lookup row: 1000 and up, spread by the test's token so parallel tests on a
/// shared database pick different ones.
pub fn lookup_id(n: u64, token: &str) -> i16 {
    let spread = token
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    (1000 + (spread % 3000) * 10 + (n as u32 % 10)) as i16
}

// ---- Enums ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, seedbed::DbEnum)]
#[sqlx(type_name = "issue_priority", rename_all = "lowercase")]
pub enum IssuePriority {
    Low,
    Medium,
    High,
    Urgent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, seedbed::DbEnum)]
#[sqlx(type_name = "order_status", rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Paid,
    Shipped,
    Cancelled,
}

/// An `inet` value: decoded through sqlx's ipnet support, bound as text cast to `inet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(transparent)]
pub struct Inet(pub ipnet::IpNet);

impl Inet {
    pub fn localhost() -> Self {
        Inet("127.0.0.1/32".parse().unwrap())
    }
}

impl From<Inet> for Value {
    fn from(ip: Inet) -> Value {
        typed_text("inet", ip.0.to_string())
    }
}

// ---- Accounts ----

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "roles")]
pub struct Role {
    #[factory(sequence = |n, token| lookup_id(n, token))]
    pub id: i16,
    #[factory(sequence = "role-{n}")]
    pub name: String,
    #[factory(faker = Sentence(3..6))]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "plans")]
pub struct Plan {
    #[factory(sequence = |n, token| lookup_id(n, token))]
    pub id: i16,
    #[factory(sequence = "plan-{n}")]
    pub code: String,
    #[factory(default = 0)]
    pub monthly_cents: i32,
    pub max_seats: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(
    table = "organizations",
    traits(enterprise(plan_id = 3)),
    has_many(projects(Project, via = organization), teams(Team, via = organization))
)]
pub struct Organization {
    #[factory(generated)]
    pub id: i64,
    #[factory(faker = CompanyName())]
    pub name: String,
    #[factory(sequence = "org-{n}")]
    pub slug: String,
    #[factory(default = 1)]
    pub plan_id: i16,
    #[factory(generated)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "users", traits(admin(is_admin = true)))]
pub struct User {
    #[factory(generated)]
    pub id: i64,
    #[factory(sequence = "user{n}@example.com")]
    pub email: String,
    #[factory(faker = Name())]
    pub display_name: String,
    #[factory(default = false)]
    pub is_admin: bool,
    #[factory(belongs_to = User)]
    pub invited_by_id: Option<i64>,
    #[factory(generated)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "UserPreferences")]
pub struct UserPreferences {
    #[factory(belongs_to = User)]
    pub user_id: i64,
    #[factory(column = "themeName", default = "light")]
    #[sqlx(rename = "themeName")]
    pub theme_name: String,
    #[factory(default = "UTC")]
    pub timezone: String,
    #[factory(default = "en")]
    pub locale: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "memberships", traits(owner(role_id = 1)))]
pub struct Membership {
    #[factory(belongs_to = Organization)]
    pub organization_id: i64,
    #[factory(belongs_to = User)]
    pub user_id: i64,
    #[factory(default = 3)]
    pub role_id: i16,
    #[factory(generated)]
    pub joined_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "teams")]
pub struct Team {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Organization)]
    pub organization_id: i64,
    #[factory(sequence = "Team {n}")]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "team_members")]
pub struct TeamMember {
    #[factory(belongs_to = Team)]
    pub team_id: i64,
    #[factory(belongs_to = User)]
    pub user_id: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "sessions")]
pub struct Session {
    #[factory(generated)]
    pub id: Uuid,
    #[factory(belongs_to = User)]
    pub user_id: i64,
    #[factory(default = Inet::localhost())]
    pub ip: Inet,
    pub user_agent: Option<String>,
    #[factory(lazy = |_| Utc::now() + chrono::Duration::days(1))]
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "api_tokens")]
pub struct ApiToken {
    #[factory(generated)]
    pub id: Uuid,
    #[factory(belongs_to = User)]
    pub user_id: i64,
    #[factory(default = "ci")]
    pub name: String,
    #[factory(sequence = |n, token| format!("hash-{n}-{token}").into_bytes())]
    pub token_hash: Vec<u8>,
    #[factory(default = vec!["read".to_string()])]
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

// ---- Projects ----

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(
    table = "projects",
    has_many(issues(Issue, via = project), boards(Board, via = project))
)]
pub struct Project {
    #[factory(generated)]
    pub id: Uuid,
    #[factory(belongs_to = Organization)]
    pub organization_id: i64,
    // The key CHECK allows upper case only: the closure places (no) token itself.
    #[factory(sequence = |n, _token| format!("P{n}"))]
    pub key: String,
    #[factory(faker = Word())]
    pub name: String,
    #[factory(belongs_to = User)]
    pub lead_id: Option<i64>,
    #[factory(default = false)]
    pub archived: bool,
    #[factory(generated)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "project_members")]
pub struct ProjectMember {
    #[factory(belongs_to = Project)]
    pub project_id: Uuid,
    #[factory(belongs_to = User)]
    pub user_id: i64,
    #[factory(default = false)]
    pub can_admin: bool,
}

/// Its foreign key is composite, onto `project_members`: set both with `.member_ref(&member)`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "notification_preferences")]
pub struct NotificationPreference {
    pub project_id: Uuid,
    pub user_id: i64,
    #[factory(default = true)]
    pub on_mention: bool,
    #[factory(default = true)]
    pub on_assign: bool,
    #[factory(default = "daily")]
    pub digest: String,
}

impl NotificationPreferenceFactory {
    /// The preferences of a project member (the composite foreign key).
    pub fn member_ref(self, member: &ProjectMember) -> Self {
        self.project_id(member.project_id).user_id(member.user_id)
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "boards", has_many(columns(BoardColumn, via = board)))]
pub struct Board {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Project)]
    pub project_id: Uuid,
    #[factory(default = "Sprint board")]
    pub name: String,
    /// One of the board's own columns: the two-table cycle (see `Graph`).
    #[factory(belongs_to = BoardColumn)]
    pub default_column_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "board_columns")]
pub struct BoardColumn {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Board)]
    pub board_id: i64,
    #[factory(default = "Todo")]
    pub name: String,
    #[factory(sequence = |n| n as i32)]
    pub position: i32,
    pub wip_limit: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "milestones")]
pub struct Milestone {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Project)]
    pub project_id: Uuid,
    #[factory(sequence = "Milestone {n}")]
    pub title: String,
    pub due_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "issue_statuses")]
pub struct IssueStatus {
    #[factory(sequence = |n, token| lookup_id(n, token))]
    pub id: i16,
    #[factory(sequence = "status-{n}")]
    pub name: String,
    #[factory(default = false)]
    pub is_closed: bool,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(
    table = "issues",
    traits(urgent(priority = IssuePriority::Urgent)),
    has_many(comments(Comment, via = issue), watchers(IssueWatcher, via = issue))
)]
pub struct Issue {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Project)]
    pub project_id: Uuid,
    #[factory(sequence = |n| n as i32)]
    pub number: i32,
    #[factory(faker = Sentence(2..6))]
    pub title: String,
    pub description: Option<String>,
    #[factory(default = IssuePriority::Medium)]
    pub priority: IssuePriority,
    #[factory(default = 1)]
    pub status_id: i16,
    #[factory(belongs_to = User)]
    pub reporter_id: i64,
    #[factory(belongs_to = User)]
    pub assignee_id: Option<i64>,
    #[factory(belongs_to = Milestone)]
    pub milestone_id: Option<i64>,
    #[factory(belongs_to = BoardColumn)]
    pub column_id: Option<i64>,
    pub estimate_points: Option<i32>,
    #[factory(generated)]
    pub created_at: DateTime<Utc>,
    #[factory(generated)]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "labels")]
pub struct Label {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Project)]
    pub project_id: Uuid,
    #[factory(sequence = "label-{n}")]
    pub name: String,
    #[factory(default = "#888888")]
    pub color: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "issue_labels")]
pub struct IssueLabel {
    #[factory(belongs_to = Issue)]
    pub issue_id: i64,
    #[factory(belongs_to = Label)]
    pub label_id: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "comments", has_many(replies(Comment, via = parent)))]
pub struct Comment {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Issue)]
    pub issue_id: i64,
    #[factory(belongs_to = User)]
    pub author_id: i64,
    /// Threaded comments: a self-reference.
    #[factory(belongs_to = Comment)]
    pub parent_id: Option<i64>,
    #[factory(faker = Sentence(3..10))]
    pub body: String,
    #[factory(generated)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "attachments")]
pub struct Attachment {
    #[factory(generated)]
    pub id: Uuid,
    #[factory(belongs_to = Comment)]
    pub comment_id: i64,
    #[factory(sequence = "file-{n}.txt")]
    pub file_name: String,
    #[factory(default = "text/plain")]
    pub content_type: String,
    #[factory(faker = 1..1_000_000)]
    pub size_bytes: i64,
    #[factory(generated)]
    pub uploaded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "issue_watchers")]
pub struct IssueWatcher {
    #[factory(belongs_to = Issue)]
    pub issue_id: i64,
    #[factory(belongs_to = User)]
    pub user_id: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "notifications")]
pub struct Notification {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = User)]
    pub user_id: i64,
    #[factory(belongs_to = Issue)]
    pub issue_id: Option<i64>,
    #[factory(default = "mention")]
    pub kind: String,
    #[factory(default = json!({"via": "factory"}))]
    pub payload: serde_json::Value,
    pub read_at: Option<DateTime<Utc>>,
    #[factory(generated)]
    pub created_at: DateTime<Utc>,
}

/// A row of the partitioned `time_entries` (the partition follows `spent_on`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "time_entries")]
pub struct TimeEntry {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Issue)]
    pub issue_id: i64,
    #[factory(belongs_to = User)]
    pub user_id: i64,
    #[factory(default = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap())]
    pub spent_on: NaiveDate,
    #[factory(faker = 1..480)]
    pub minutes: i32,
    pub note: Option<String>,
}

// ---- Billing ----

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "subscriptions")]
pub struct Subscription {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Organization)]
    pub organization_id: i64,
    #[factory(default = 2)]
    pub plan_id: i16,
    #[factory(default = 1)]
    pub seats: i32,
    #[factory(generated)]
    pub started_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "order", has_many(items(OrderItem, via = order)))]
pub struct Order {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Organization)]
    pub organization_id: i64,
    #[factory(default = OrderStatus::Pending)]
    pub status: OrderStatus,
    #[factory(default = "EUR")]
    pub currency: String,
    #[factory(generated)]
    pub placed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "order_items")]
pub struct OrderItem {
    #[factory(belongs_to = Order)]
    pub order_id: i64,
    #[factory(sequence = |n| n as i32)]
    pub line_no: i32,
    #[factory(faker = Sentence(2..5))]
    pub description: String,
    #[factory(faker = 1..10)]
    pub quantity: i32,
    #[factory(faker = 100..10_000)]
    pub unit_price_cents: i64,
    /// A stored generated column: never written, read back.
    #[factory(generated)]
    pub total_cents: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "invoices")]
pub struct Invoice {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Order)]
    pub order_id: i64,
    #[factory(sequence = "inv-{n}")]
    pub number: String,
    #[factory(generated)]
    pub issued_on: NaiveDate,
    #[factory(default = NaiveDate::from_ymd_opt(2099, 1, 1).unwrap())]
    pub due_on: NaiveDate,
    #[factory(default = Decimal::new(4999, 2))]
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "payments")]
pub struct Payment {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Invoice)]
    pub invoice_id: i64,
    #[factory(faker = 1..100_000)]
    pub amount_cents: i64,
    #[factory(default = "card")]
    pub method: String,
    #[factory(generated)]
    pub paid_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "webhooks")]
pub struct Webhook {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Project)]
    pub project_id: Uuid,
    #[factory(sequence = "https://hooks.example.com/{n}")]
    pub url: String,
    #[factory(default = "s3cret")]
    pub secret: String,
    #[factory(default = vec!["issue.created".to_string()])]
    pub events: Vec<String>,
    #[factory(default = true)]
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "webhook_deliveries")]
pub struct WebhookDelivery {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Webhook)]
    pub webhook_id: i64,
    #[factory(default = json!({"event": "issue.created"}))]
    pub payload: serde_json::Value,
    pub status_code: Option<i16>,
    pub duration_ms: Option<f64>,
    #[factory(generated)]
    pub delivered_at: DateTime<Utc>,
}

// ---- Audit (its own schema) ----

/// Filled by a trigger on `issues`; a factory can write events too.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(schema = "audit", table = "issue_events")]
pub struct IssueEvent {
    #[factory(generated)]
    pub id: i64,
    #[factory(belongs_to = Issue)]
    pub issue_id: i64,
    #[factory(default = "UPDATE")]
    pub action: String,
    pub old_row: Option<serde_json::Value>,
    pub new_row: Option<serde_json::Value>,
    #[factory(generated)]
    pub changed_at: DateTime<Utc>,
}
