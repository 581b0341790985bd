//! The role a test acts as ([`Isolation::role`](super::Isolation::role)): made if it does not
//! exist (without login or superuser), refused if it is a superuser.

use super::engine;
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};
use crate::sql::quote_ident;

/// Makes sure `role` exists on `server` and is no superuser; once per process and role.
pub(super) async fn ensure(server: &'static Server, role: &str) -> Result<()> {
    static READY: engine::KeySet = engine::KeySet::new();
    if READY.contains(role) {
        return Ok(());
    }
    let name = role.to_string();
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let found: Option<(bool, bool)> = sqlx::query_as(
                    "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1",
                )
                .bind(&name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(Error::db(format!("looking for role {name}")))?;
                let superuser: bool = sqlx::query_scalar(
                    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                )
                .fetch_one(&mut *conn)
                .await
                .map_err(Error::db("reading the connecting user's rights"))?;
                match found {
                    Some((true, _)) | Some((_, true)) => {
                        return Err(Error::Config(format!(
                            "role `{name}` is a superuser or bypasses row-level security, so \
                             tests acting as it would not be restricted: name a role without \
                             SUPERUSER and BYPASSRLS (seedbed makes one, without login, if none \
                             exists)"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        let create = format!("CREATE ROLE {} NOLOGIN", quote_ident(&name));
                        match sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                            .execute(&mut *conn)
                            .await
                        {
                            Ok(_) => {}
                            // Another process made it meanwhile.
                            Err(sqlx::Error::Database(e))
                                if matches!(e.code().as_deref(), Some("42710" | "23505")) => {}
                            Err(e) => {
                                return Err(Error::db(format!(
                                    "creating role {name} for the tests to act as (the server's \
                                     user needs CREATEROLE, or create the role yourself)"
                                ))(e));
                            }
                        }
                        if !superuser {
                            // A role its creator may act as (from PostgreSQL 16 creating a role
                            // does not make its creator a member that may SET it).
                            let grant = format!("GRANT {} TO CURRENT_USER", quote_ident(&name));
                            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(grant))
                                .execute(&mut *conn)
                                .await;
                        }
                    }
                }
                if superuser {
                    return Ok(());
                }
                let member: bool =
                    sqlx::query_scalar("SELECT pg_has_role(current_user, $1, 'MEMBER')")
                        .bind(&name)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(Error::db(format!("checking membership of role {name}")))?;
                if member {
                    Ok(())
                } else {
                    Err(Error::Config(format!(
                        "the user seedbed connects as is not a member of role `{name}`, so its \
                         connections cannot act as it: run `GRANT {} TO <that user>`",
                        quote_ident(&name)
                    )))
                }
            })
        })
        .await?;
    READY.insert(role);
    Ok(())
}
