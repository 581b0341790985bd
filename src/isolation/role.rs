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
                match found {
                    Some((true, _)) | Some((_, true)) => Err(Error::Config(format!(
                        "role `{name}` is a superuser or bypasses row-level security, so tests \
                         acting as it would not be restricted: name a role without SUPERUSER \
                         and BYPASSRLS (seedbed makes one, without login, if none exists)"
                    ))),
                    Some(_) => Ok(()),
                    None => {
                        let create = format!("CREATE ROLE {} NOLOGIN", quote_ident(&name));
                        match sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                            .execute(&mut *conn)
                            .await
                        {
                            Ok(_) => Ok(()),
                            // Another process made it meanwhile.
                            Err(sqlx::Error::Database(e))
                                if matches!(e.code().as_deref(), Some("42710" | "23505")) =>
                            {
                                Ok(())
                            }
                            Err(e) => Err(Error::db(format!(
                                "creating role {name} for the tests to act as (the server's \
                                 user needs CREATEROLE, or create the role yourself)"
                            ))(e)),
                        }
                    }
                }
            })
        })
        .await?;
    READY.insert(role);
    Ok(())
}
