//! A small HTTP API over the reference schema: organizations and their owners. Its handlers take
//! a `PgPool` and use transactions, as real application code does.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// The application's routes.
pub(crate) fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/orgs", post(create_org))
        .route("/orgs/{slug}", get(show_org))
        .with_state(pool)
}

/// `POST /orgs`.
#[derive(Debug, Deserialize)]
pub(crate) struct NewOrg {
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) owner_email: String,
}

/// An organization as the API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Org {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) members: i64,
}

/// An error body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ApiError {
    pub(crate) error: String,
}

type Response<T> = Result<(StatusCode, Json<T>), (StatusCode, Json<ApiError>)>;

fn fail(status: StatusCode, error: impl Into<String>) -> (StatusCode, Json<ApiError>) {
    (
        status,
        Json(ApiError {
            error: error.into(),
        }),
    )
}

fn internal(e: sqlx::Error) -> (StatusCode, Json<ApiError>) {
    fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Creates an organization and makes `owner_email` (created if new) its owner, in one
/// transaction.
async fn create_org(State(pool): State<PgPool>, Json(new): Json<NewOrg>) -> Response<Org> {
    if new.name.trim().is_empty() {
        return Err(fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name must not be empty",
        ));
    }
    let slug_ok = !new.slug.is_empty()
        && new
            .slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !new.slug.starts_with('-');
    if !slug_ok {
        return Err(fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "slug must be lowercase letters, digits and dashes",
        ));
    }
    let mut tx = pool.begin().await.map_err(internal)?;
    let id: i64 = match sqlx::query_scalar(
        "INSERT INTO organizations (name, slug) VALUES ($1, $2) RETURNING id",
    )
    .bind(&new.name)
    .bind(&new.slug)
    .fetch_one(&mut *tx)
    .await
    {
        Ok(id) => id,
        Err(e)
            if e.as_database_error().and_then(|d| d.constraint())
                == Some("organizations_slug_key") =>
        {
            return Err(fail(
                StatusCode::CONFLICT,
                format!("slug `{}` is taken", new.slug),
            ));
        }
        Err(e) => return Err(internal(e)),
    };
    let owner: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, display_name) VALUES ($1, split_part($1, '@', 1)) \
         ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id",
    )
    .bind(&new.owner_email)
    .fetch_one(&mut *tx)
    .await
    .map_err(internal)?;
    sqlx::query("INSERT INTO memberships (organization_id, user_id, role_id) VALUES ($1, $2, 1)")
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok((
        StatusCode::CREATED,
        Json(Org {
            id,
            name: new.name,
            slug: new.slug,
            members: 1,
        }),
    ))
}

/// Shows an organization with its member count.
async fn show_org(State(pool): State<PgPool>, Path(slug): Path<String>) -> Response<Org> {
    let row: Option<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT o.id, o.name, o.slug, count(m.user_id) \
         FROM organizations o LEFT JOIN memberships m ON m.organization_id = o.id \
         WHERE o.slug = $1 GROUP BY o.id",
    )
    .bind(&slug)
    .fetch_optional(&pool)
    .await
    .map_err(internal)?;
    match row {
        Some((id, name, slug, members)) => Ok((
            StatusCode::OK,
            Json(Org {
                id,
                name,
                slug,
                members,
            }),
        )),
        None => Err(fail(
            StatusCode::NOT_FOUND,
            format!("no organization `{slug}`"),
        )),
    }
}
