//! Databases on MySQL: created and dropped by name, cloned by replaying the template's
//! definitions, and marked in seedbed's own database.
//!
//! MySQL has no database comments (MariaDB's are not in MySQL), so a database's [`Marker`] is a
//! row of `seedbed.markers`, removed with the database. A marker whose database is gone is
//! ignored.
//!
//! A clone replays the template's tables (`SHOW CREATE TABLE`, auto-increment counters
//! included), copies their rows, then its views, triggers and routines, with foreign-key checks
//! off. Events are not copied.

use sqlx::{Executor, MySqlConnection, Row};

use super::server::error_number;
use crate::backend::Marker;
use crate::error::{Error, Result};
use crate::sql::{mysql_literal as lit, quote_mysql_ident as q, quote_mysql_list};

/// seedbed's own database on a MySQL server.
pub(crate) const ADMIN_DATABASE: &str = "seedbed";

/// Prefix of the tables seedbed adds to a database it prepares (the cleaner's baselines, the
/// row journal): introspection and clones leave them out.
pub(crate) const INTERNAL_PREFIX: &str = "seedbed__";

/// The table of `seedbed` that notes the databases a test left clean: a `MEMORY` table, written
/// without a disk write and empty again after the server restarts (when nothing is known).
const CLEAN_TABLE: &str = "clean";

/// Notes that `database` is as its image made it (no test's rows, the image's schema) for the
/// next test that leases it, which can then skip looking: written by the holder of its lease as
/// the process gives it up.
///
/// Not noted while more than `own` sessions besides `conn` are connected to it (a program the
/// test started, still running, could write after the note). The note is a speed-up: when it
/// cannot be written, the next holder looks at the database.
pub(crate) async fn note_clean(conn: &mut MySqlConnection, database: &str, own: u32) {
    // Sent as text: one round trip, where a statement prepared the first time (every process
    // that runs one test) costs two.
    let sql = format!(
        "INSERT IGNORE INTO {}.{} (name) SELECT {name} FROM DUAL \
         WHERE (SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                WHERE DB = {name} AND ID <> CONNECTION_ID()) <= {own}",
        q(ADMIN_DATABASE),
        q(CLEAN_TABLE),
        name = lit(database),
    );
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await
        && error_number(&e) != Some(1146)
    {
        tracing::warn!("seedbed could not note MySQL database {database} clean: {e}");
    }
}

/// Takes the note [`note_clean`] left on `database`: `true` if it was there. The note goes in the
/// same statement, so a holder that dies while it uses the database leaves none. Without the
/// table of notes there is none to take; any other failure is an error (a note left could be
/// trusted after this holder dies).
pub(crate) async fn take_clean(conn: &mut MySqlConnection, database: &str) -> Result<bool> {
    let sql = format!(
        "DELETE FROM {}.{} WHERE name = {}",
        q(ADMIN_DATABASE),
        q(CLEAN_TABLE),
        lit(database)
    );
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(e) if error_number(&e) == Some(1146) => Ok(false),
        Err(e) => Err(Error::db(format!(
            "reading whether MySQL database {database} is clean"
        ))(e)),
    }
}

/// Makes seedbed's own database, its marker table and the table of clean notes (asked first:
/// every test process comes here once).
pub(crate) async fn ensure_admin(conn: &mut MySqlConnection) -> Result<()> {
    let row = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SELECT {}", admin_made_sql())))
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::db("looking for seedbed's database"))?;
    let made: i64 = row
        .try_get(0)
        .map_err(Error::db("looking for seedbed's database"))?;
    if made == 2 {
        return Ok(());
    }
    let sql = format!(
        "CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4; \
         CREATE TABLE IF NOT EXISTS {db}.markers (\
             name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, \
             marker TEXT NOT NULL) ENGINE=InnoDB",
        db = q(ADMIN_DATABASE),
    );
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
    {
        return Err(create_error(ADMIN_DATABASE, e));
    }
    // Without it (a server that refuses MEMORY tables: `disabled_storage_engines`, Group
    // Replication) no database is noted clean, and every lease looks at its database.
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (\
             name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY) \
             ENGINE=MEMORY",
        q(ADMIN_DATABASE),
        q(CLEAN_TABLE)
    );
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await {
        tracing::warn!(
            "seedbed cannot make its table of clean databases ({e}): every test process looks \
             at the database it leases before its test"
        );
    }
    Ok(())
}

/// A scalar subquery: 2 when seedbed's own database has both its tables.
pub(crate) fn admin_made_sql() -> String {
    format!(
        "(SELECT COUNT(*) FROM information_schema.TABLES \
          WHERE TABLE_SCHEMA = {} AND TABLE_NAME IN ({}, {}))",
        lit(ADMIN_DATABASE),
        lit("markers"),
        lit(CLEAN_TABLE)
    )
}

/// A failed `CREATE DATABASE` told as what to do.
pub(crate) fn create_error(database: &str, e: sqlx::Error) -> Error {
    match error_number(&e) {
        Some(1044 | 1045 | 1142 | 1227) => Error::CreateDatabase {
            database: database.to_string(),
            message: format!(
                "the server's user may not create databases ({e}). seedbed makes a database \
                 per strategy and keeps its markers in `seedbed`: use a user that may (root on a \
                 test server), or GRANT ALL PRIVILEGES ON `seedbed%`.* TO the user"
            ),
        },
        _ => Error::Database {
            context: format!("creating MySQL database {database}"),
            source: e,
        },
    }
}

/// Whether the database `name` exists.
pub async fn exists(conn: &mut MySqlConnection, name: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(name)
    .fetch_one(conn)
    .await
    .map_err(Error::db(format!("looking for MySQL database {name}")))?;
    Ok(n > 0)
}

/// Creates the empty database `name` (utf8mb4); a missing privilege says what to grant.
pub async fn create(conn: &mut MySqlConnection, name: &str) -> Result<()> {
    let sql = format!("CREATE DATABASE {} CHARACTER SET utf8mb4", q(name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(|e| create_error(name, e))?;
    Ok(())
}

/// Drops `name` and its marker, ending the sessions that use it first (a session in a
/// transaction on one of its tables would hold the drop until it ended).
pub async fn drop_database(conn: &mut MySqlConnection, name: &str) -> Result<()> {
    let context = || format!("dropping MySQL database {name}");
    let sessions: Vec<i64> = sqlx::query_scalar(
        "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST \
         WHERE DB = ? AND ID <> CONNECTION_ID()",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(context()))?;
    for id in sessions {
        // Gone already is as good.
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!("KILL CONNECTION {id}")))
            .await;
    }
    let sql = format!("DROP DATABASE IF EXISTS {}", q(name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(Error::db(context()))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {}.markers WHERE name = ?",
        q(ADMIN_DATABASE)
    )))
    .bind(name)
    .execute(conn)
    .await
    .map_err(Error::db(context()))?;
    Ok(())
}

/// The marker of `database` (`None`: no such database, or not seedbed's).
pub async fn read_marker(conn: &mut MySqlConnection, database: &str) -> Result<Option<Marker>> {
    let context = || format!("reading the marker of MySQL database {database}");
    // The schema named by a constant: the server looks that one up, where `s.SCHEMA_NAME =
    // m.name` lists every schema (0.12 ms against 0.35 on a server with a hundred databases).
    let sql = format!(
        "SELECT m.marker FROM {}.markers m \
         JOIN information_schema.SCHEMATA s ON s.SCHEMA_NAME = {name} WHERE m.name = {name}",
        q(ADMIN_DATABASE),
        name = lit(database)
    );
    // As text: one round trip (see `note_clean`).
    let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_optional(conn)
        .await
        .map_err(Error::db(context()))?;
    let text: Option<String> = match row {
        Some(row) => Some(text_column(&row, 0).map_err(Error::db(context()))?),
        None => None,
    };
    Ok(text.as_deref().and_then(Marker::parse))
}

/// Takes the lease lock `lease` of the slot `database` if the lock is free and the slot is not
/// kept for inspection; whether it was taken. One statement: the lock of a kept slot is not
/// taken, not even for the moment it takes to read its marker, so `seedbed list` never shows a
/// failed test's database held.
pub(crate) async fn try_take_unless_kept(
    conn: &mut MySqlConnection,
    lease: &str,
    database: &str,
) -> Result<bool> {
    let context = || format!("taking the lease of MySQL database {database}");
    // The select list (and its GET_LOCK) is evaluated only for a row the WHERE keeps. As text:
    // one round trip (see `note_clean`).
    let sql = format!(
        "SELECT GET_LOCK({key}, 0) FROM DUAL WHERE NOT EXISTS (\
           SELECT 1 FROM {db}.markers WHERE name = {name} \
           AND CONCAT(' ', marker, ' ') LIKE {kept})",
        key = lit(&super::coord::key(lease)),
        db = q(ADMIN_DATABASE),
        name = lit(database),
        kept = lit("% state=kept %"),
    );
    let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_optional(conn)
        .await
        .map_err(Error::db(context()))?;
    let Some(row) = row else {
        return Ok(false);
    };
    let got: Option<i64> = row.try_get(0).map_err(Error::db(context()))?;
    Ok(got == Some(1))
}

/// Writes (or replaces) the marker of `database`.
pub async fn write_marker(
    conn: &mut MySqlConnection,
    database: &str,
    marker: &Marker,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO {}.markers (name, marker) VALUES (?, ?) \
         ON DUPLICATE KEY UPDATE marker = VALUES(marker)",
        q(ADMIN_DATABASE)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(database)
        .bind(marker.to_comment())
        .execute(conn)
        .await
        .map_err(Error::db(format!("marking MySQL database {database}")))?;
    Ok(())
}

/// The databases whose marker says seedbed made them, with their markers.
pub async fn list(conn: &mut MySqlConnection) -> Result<Vec<(String, Marker)>> {
    let sql = format!(
        "SELECT m.name, m.marker FROM {}.markers m \
         JOIN information_schema.SCHEMATA s ON s.SCHEMA_NAME = m.name ORDER BY m.name",
        q(ADMIN_DATABASE)
    );
    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(conn)
        .await
        .map_err(Error::db("listing seedbed's MySQL databases"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, text)| Marker::parse(&text).map(|m| (name, m)))
        .collect())
}

/// Creates `name` as a copy of `template`: its tables with their rows and counters, its views,
/// triggers and routines. On failure nothing is left.
pub async fn clone(conn: &mut MySqlConnection, name: &str, template: &str) -> Result<()> {
    create(conn, name).await?;
    let copied = copy_into(conn, name, template).await;
    if let Err(e) = copied {
        let _ = drop_database(conn, name).await;
        return Err(e);
    }
    Ok(())
}

async fn copy_into(conn: &mut MySqlConnection, name: &str, template: &str) -> Result<()> {
    let context = || format!("copying MySQL database {template} into {name}");
    let relations: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(TABLE_TYPE AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
    )
    .bind(template)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(context()))?;
    let mut script = format!("USE {}; SET SESSION FOREIGN_KEY_CHECKS = 0;", q(name));
    let mut views = Vec::new();
    for (table, kind) in &relations {
        if kind == "VIEW" {
            views.push(table.clone());
            continue;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SHOW CREATE TABLE {}.{}",
            q(template),
            q(table)
        )))
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::db(context()))?;
        let create: String = text_column(&row, 1).map_err(Error::db(context()))?;
        script.push_str(&create);
        script.push(';');
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             AND COALESCE(GENERATION_EXPRESSION, '') = '' \
             ORDER BY ORDINAL_POSITION",
        )
        .bind(template)
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db(context()))?;
        let list = quote_mysql_list(columns.iter().map(String::as_str));
        script.push_str(&format!(
            "INSERT INTO {} ({list}) SELECT {list} FROM {}.{};",
            q(table),
            q(template),
            q(table)
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut *conn)
        .await
        .map_err(Error::db(context()))?;
    // Views may read each other: each is created once the ones it reads exist.
    let mut pending = views;
    while !pending.is_empty() {
        let before = pending.len();
        let mut failed = Vec::new();
        let mut last_error = None;
        for view in pending {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SHOW CREATE VIEW {}.{}",
                q(template),
                q(&view)
            )))
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db(context()))?;
            let create: String = text_column(&row, 1).map_err(Error::db(context()))?;
            // The stored definition names the template's database: the copy reads its own.
            let create = create.replace(&format!("{}.", q(template)), &format!("{}.", q(name)));
            if let Err(e) = create_as_definer(&mut *conn, &create).await {
                failed.push(view);
                last_error = Some(e);
            }
        }
        if let Some(e) = last_error
            && failed.len() == before
        {
            // No view of this round was created: none ever will be.
            return Err(Error::db(context())(e));
        }
        pending = failed;
    }
    copy_triggers(conn, name, template).await?;
    copy_routines(conn, name, template).await?;
    sqlx::raw_sql("SET SESSION FOREIGN_KEY_CHECKS = 1")
        .execute(&mut *conn)
        .await
        .map_err(Error::db(context()))?;
    Ok(())
}

async fn copy_triggers(conn: &mut MySqlConnection, name: &str, template: &str) -> Result<()> {
    let context = || format!("copying the triggers of MySQL database {template}");
    let triggers: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT CAST(TRIGGER_NAME AS CHAR), CAST(ACTION_TIMING AS CHAR), \
         CAST(EVENT_MANIPULATION AS CHAR), CAST(EVENT_OBJECT_TABLE AS CHAR), \
         CAST(ACTION_STATEMENT AS CHAR) FROM information_schema.TRIGGERS \
         WHERE EVENT_OBJECT_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
    )
    .bind(template)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(context()))?;
    for (trigger, timing, event, table, body) in triggers {
        if trigger.starts_with(INTERNAL_PREFIX) {
            continue;
        }
        let sql = format!(
            "CREATE TRIGGER {db}.{t} {timing} {event} ON {db}.{table} FOR EACH ROW {body}",
            db = q(name),
            t = q(&trigger),
            timing = keyword(&timing, &["BEFORE", "AFTER"])?,
            event = keyword(&event, &["INSERT", "UPDATE", "DELETE"])?,
            table = q(&table),
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(|e| copy_error(name, "trigger", &trigger, context(), e))?;
    }
    Ok(())
}

/// A failed copy of a trigger or routine: what to do when binary logging stops this user (error
/// 1419), else the server's error.
fn copy_error(database: &str, kind: &str, object: &str, context: String, e: sqlx::Error) -> Error {
    match super::server::binlog_privilege_advice(&e) {
        Some(advice) => Error::CreateDatabase {
            database: database.to_string(),
            message: format!("copying the template's {kind} {object}: {advice}"),
        },
        None => Error::db(context)(e),
    }
}

async fn copy_routines(conn: &mut MySqlConnection, name: &str, template: &str) -> Result<()> {
    let context = || format!("copying the routines of MySQL database {template}");
    let routines: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(ROUTINE_NAME AS CHAR), CAST(ROUTINE_TYPE AS CHAR) \
         FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?",
    )
    .bind(template)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(context()))?;
    if routines.is_empty() {
        return Ok(());
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("USE {}", q(name))))
        .execute(&mut *conn)
        .await
        .map_err(Error::db(context()))?;
    for (routine, kind) in routines {
        let kind = keyword(&kind, &["PROCEDURE", "FUNCTION"])?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SHOW CREATE {kind} {}.{}",
            q(template),
            q(&routine)
        )))
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::db(context()))?;
        let create: Option<String> = text_column(&row, 2).map_err(Error::db(context()))?;
        let Some(create) = create else {
            return Err(Error::CreateDatabase {
                database: name.to_string(),
                message: format!(
                    "the server hides the definition of {kind} {routine} from this user: grant \
                     it SHOW_ROUTINE (MySQL) or SELECT on mysql.proc (MariaDB)"
                ),
            });
        };
        create_as_definer(&mut *conn, &create)
            .await
            .map_err(|e| copy_error(name, "routine", &routine, context(), e))?;
    }
    Ok(())
}

/// Runs `create` (a view's or routine's definition as `SHOW CREATE` gives it) with its
/// definer, the account that migrated the template; when this user may not name another
/// account (error 1227: that takes SUPER or SET USER, which a test user rarely has), without
/// it, so that the copy's definer is this user.
async fn create_as_definer(
    conn: &mut MySqlConnection,
    create: &str,
) -> std::result::Result<(), sqlx::Error> {
    match sqlx::raw_sql(sqlx::AssertSqlSafe(create.to_string()))
        .execute(&mut *conn)
        .await
    {
        Err(e) if super::error_number(&e) == Some(ACCESS_DENIED_NEEDS_PRIVILEGE) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(without_definer(create)))
                .execute(&mut *conn)
                .await
                .map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

/// The server's error when a statement needs a privilege the user lacks (SUPER, SET USER…).
const ACCESS_DENIED_NEEDS_PRIVILEGE: u16 = 1227;

/// `create` (a `SHOW CREATE VIEW|PROCEDURE|FUNCTION` statement) without its `DEFINER=` clause,
/// so that the copy's definer is the user making it: naming another account (the one that
/// migrated the template) takes the SUPER or SET USER privilege, which a test user rarely has.
fn without_definer(create: &str) -> String {
    let upper = create.to_ascii_uppercase();
    // The clause is in the header, before what the statement creates.
    let header_end = [" VIEW ", " PROCEDURE ", " FUNCTION "]
        .iter()
        .filter_map(|k| upper.find(k))
        .min()
        .unwrap_or(upper.len());
    let Some(start) = upper[..header_end].find("DEFINER=") else {
        return create.to_string();
    };
    let bytes = create.as_bytes();
    // One part of `user`@`host`: a quoted name (a doubled quote inside) or a bare word.
    let part_end = |mut i: usize| -> usize {
        match bytes.get(i) {
            Some(&quote @ (b'`' | b'\'' | b'"')) => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        return i + 1;
                    }
                    i += 1;
                }
                i
            }
            _ => {
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'@' {
                    i += 1;
                }
                i
            }
        }
    };
    let mut end = part_end(start + "DEFINER=".len());
    if bytes.get(end) == Some(&b'@') {
        end = part_end(end + 1);
    }
    while bytes.get(end).is_some_and(u8::is_ascii_whitespace) {
        end += 1;
    }
    format!("{}{}", &create[..start], &create[end..])
}

/// `word` when it is one of `allowed` (catalog text written back into SQL).
fn keyword<'a>(word: &str, allowed: &[&'a str]) -> Result<&'a str> {
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(word))
        .copied()
        .ok_or_else(|| Error::Internal(format!("unexpected catalog keyword `{word}`")))
}

/// A text column that MySQL may send as binary (`SHOW CREATE …` on some versions).
fn text_column<T: FromText>(
    row: &sqlx::mysql::MySqlRow,
    index: usize,
) -> std::result::Result<T, sqlx::Error> {
    T::from_row(row, index)
}

trait FromText: Sized {
    fn from_row(
        row: &sqlx::mysql::MySqlRow,
        index: usize,
    ) -> std::result::Result<Self, sqlx::Error>;
}

impl FromText for String {
    fn from_row(
        row: &sqlx::mysql::MySqlRow,
        index: usize,
    ) -> std::result::Result<Self, sqlx::Error> {
        match row.try_get::<String, _>(index) {
            Ok(s) => Ok(s),
            Err(_) => {
                let bytes: Vec<u8> = row.try_get(index)?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
        }
    }
}

impl FromText for Option<String> {
    fn from_row(
        row: &sqlx::mysql::MySqlRow,
        index: usize,
    ) -> std::result::Result<Self, sqlx::Error> {
        match row.try_get::<Option<String>, _>(index) {
            Ok(s) => Ok(s),
            Err(_) => {
                let bytes: Option<Vec<u8>> = row.try_get(index)?;
                Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::without_definer;

    #[test]
    fn the_definer_clause_goes_and_the_rest_stays() {
        assert_eq!(
            without_definer(
                "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER \
                 VIEW `v` AS select 1 AS `DEFINER=x`"
            ),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1 AS `DEFINER=x`"
        );
        assert_eq!(
            without_definer("CREATE DEFINER=`a``b`@`%` PROCEDURE `p`() BEGIN END"),
            "CREATE PROCEDURE `p`() BEGIN END"
        );
        assert_eq!(
            without_definer("CREATE DEFINER=root@localhost FUNCTION `f`() RETURNS INT RETURN 1"),
            "CREATE FUNCTION `f`() RETURNS INT RETURN 1"
        );
        assert_eq!(
            without_definer("CREATE VIEW `v` AS select 'DEFINER=`x`@`y` ' AS a"),
            "CREATE VIEW `v` AS select 'DEFINER=`x`@`y` ' AS a"
        );
    }
}
