//! Namespace's row journal on MySQL: an `AFTER INSERT` row trigger on every table records the
//! key of each row a connection carrying a token inserts, in `seedbed__journal`, under the
//! session variable `@seedbed_token`. A test's pool sets the variable on each of its
//! connections; rows written on any other connection are not recorded (and stay).
//!
//! A test holds the named lock `tok:<token>` while it runs; the sweep removes the rows of tokens
//! whose lock no session holds (a process that died), except tokens kept for inspection.
//!
//! Triggers: MySQL 8 and MariaDB 10.2.3+ allow several per table and event, so the application's
//! own `AFTER INSERT` triggers keep working. A table without a primary key is journaled by all
//! its columns.

use sqlx::{MySql, MySqlConnection};

use super::admin::INTERNAL_PREFIX;
use super::coord;
use crate::backend::Journal;
use crate::error::{Error, Result};
use crate::schema::{ColumnDefault, Schema};
use crate::sql::quote_mysql_ident as q;

/// The session variable that carries a test's token.
pub const TOKEN_VARIABLE: &str = "@seedbed_token";

const JOURNAL: &str = "seedbed__journal";
const TABLES: &str = "seedbed__journal_tables";
const KEPT: &str = "seedbed__journal_kept";

/// How a column's value is recorded: `i` a signed and `u` an unsigned integer, `b` a binary
/// string, `s` anything else.
fn value_kind(type_name: &str, sql_type: &str) -> char {
    match type_name {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
            if sql_type.to_ascii_lowercase().contains("unsigned") {
                'u'
            } else {
                'i'
            }
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit" => 'b',
        _ => 's',
    }
}

/// The condition matching a row `r` to the journal row `j` on the recorded column `line`
/// (`kind\tname`), its value at `index` of the JSON array.
fn matches(line: &str, index: usize, keyed: bool) -> String {
    let (kind, column) = line.split_once('\t').unwrap_or(("s", line));
    let item = format!("JSON_EXTRACT(j.pk, '$[{index}]')");
    let column = q(column);
    match kind {
        "i" => format!("r.{column} = CAST({item} AS SIGNED)"),
        "u" => format!("r.{column} = CAST({item} AS UNSIGNED)"),
        "b" => format!("r.{column} = FROM_BASE64(JSON_UNQUOTE({item}))"),
        // A key column is never NULL: `=` lets the delete use the key's index.
        _ if keyed => format!("r.{column} = JSON_UNQUOTE({item})"),
        _ => format!("r.{column} <=> IF(JSON_TYPE({item}) = 'NULL', NULL, JSON_UNQUOTE({item}))"),
    }
}

/// The lock a test holds while its token is live.
pub(crate) fn token_lock(token: &str) -> String {
    format!("tok:{token}")
}

impl Journal for MySql {
    const TOKEN_SETTING: &'static str = TOKEN_VARIABLE;

    async fn install(conn: &mut MySqlConnection, schema: &Schema) -> Result<()> {
        let context = || "installing Namespace's row journal".to_string();
        let setup = format!(
            "CREATE TABLE {j} (token VARCHAR(64) NOT NULL, tid INT NOT NULL, pk TEXT NOT NULL, \
               KEY (token, tid)) ENGINE=InnoDB; \
             CREATE TABLE {t} (tid INT PRIMARY KEY, name VARCHAR(64) NOT NULL, \
               columns TEXT NOT NULL, keyed BOOL NOT NULL) ENGINE=InnoDB; \
             CREATE TABLE {k} (token VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB",
            j = q(JOURNAL),
            t = q(TABLES),
            k = q(KEPT),
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
            .execute(&mut *conn)
            .await
            .map_err(Error::db(context()))?;
        for (tid, table) in schema.tables.iter().enumerate() {
            let name = &table.name.name;
            // Each recorded column with how its value is kept in the JSON array: integers as
            // numbers (compared as integers, exact past 2^53), binary strings in base64, the
            // rest as text.
            let recorded: Vec<(char, &str)> = table
                .columns
                .iter()
                .filter(|c| {
                    if table.primary_key.is_empty() {
                        !matches!(c.default, ColumnDefault::Generated(_))
                    } else {
                        table.primary_key.contains(&c.name)
                    }
                })
                .map(|c| (value_kind(&c.type_name, &c.sql_type), c.name.as_str()))
                .collect();
            let values = recorded
                .iter()
                .map(|(kind, c)| match kind {
                    'b' => format!("TO_BASE64(NEW.{})", q(c)),
                    _ => format!("NEW.{}", q(c)),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let columns: Vec<String> = recorded
                .iter()
                .map(|(kind, c)| format!("{kind}\t{c}"))
                .collect();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {} (tid, name, columns, keyed) VALUES (?, ?, ?, ?)",
                q(TABLES)
            )))
            .bind(i64::try_from(tid).unwrap_or(i64::MAX))
            .bind(name)
            .bind(columns.join("\n"))
            .bind(!table.primary_key.is_empty())
            .execute(&mut *conn)
            .await
            .map_err(Error::db(context()))?;
            let trigger = format!(
                "CREATE TRIGGER {trigger} AFTER INSERT ON {table} FOR EACH ROW \
                 INSERT INTO {j} (token, tid, pk) SELECT {TOKEN_VARIABLE}, {tid}, \
                 CAST(JSON_ARRAY({values}) AS CHAR) FROM DUAL WHERE {TOKEN_VARIABLE} IS NOT NULL",
                trigger = q(&format!("{INTERNAL_PREFIX}j{tid}")),
                table = q(name),
                j = q(JOURNAL),
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(trigger))
                .execute(&mut *conn)
                .await
                .map_err(|e| match super::server::binlog_privilege_advice(&e) {
                    Some(advice) => Error::Isolation {
                        strategy: crate::strategy::Strategy::Namespace,
                        message: format!(
                            "it records each test's rows with a trigger on every table, and \
                             the trigger on {name} could not be created: {advice}; or choose \
                             Template, Truncate or Rollback for these tests"
                        ),
                    },
                    None => Error::db(format!("journaling the rows of {name}"))(e),
                })?;
        }
        Ok(())
    }

    async fn is_installed(conn: &mut MySqlConnection) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        )
        .bind(JOURNAL)
        .fetch_one(conn)
        .await
        .map_err(Error::db("looking for Namespace's row journal"))?;
        Ok(n > 0)
    }

    async fn clean(conn: &mut MySqlConnection, token: &str) -> Result<()> {
        let owned = token.to_string();
        again_on_deadlock(conn, move |conn| {
            let token = owned.clone();
            Box::pin(async move { clean_once(conn, &token).await })
        })
        .await
        .map_err(Error::db(format!("removing the rows of token {token}")))
    }

    async fn forget(conn: &mut MySqlConnection, token: &str) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE token = ?",
            q(JOURNAL)
        )))
        .bind(token)
        .execute(conn)
        .await
        .map_err(Error::db(format!("forgetting the rows of token {token}")))?;
        Ok(())
    }

    async fn sweep(conn: &mut MySqlConnection) -> Result<Vec<String>> {
        let tokens: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT token FROM {} WHERE token NOT IN (SELECT token FROM {})",
            q(JOURNAL),
            q(KEPT)
        )))
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db("listing the tokens in Namespace's journal"))?;
        let mut swept = Vec::new();
        for token in tokens {
            // Taken while its rows go: a process that takes the key meanwhile waits for none
            // of them, and none of its rows are removed.
            let lock = token_lock(&token);
            if coord::try_take(conn, &lock).await? {
                let cleaned = <MySql as Journal>::clean(conn, &token).await;
                coord::give_back(conn, &lock).await?;
                cleaned?;
                swept.push(token);
            }
        }
        Ok(swept)
    }
}

/// Moves the rows recorded under `key` to `token` (a failed test's) and keeps them from the
/// sweep, for inspection; `seedbed sweep --kept` removes them.
pub(crate) async fn hand_over(conn: &mut MySqlConnection, key: &str, token: &str) -> Result<()> {
    let (key_owned, token_owned) = (key.to_string(), token.to_string());
    again_on_deadlock(conn, move |conn| {
        let (key, token) = (key_owned.clone(), token_owned.clone());
        Box::pin(async move { hand_over_once(conn, &key, &token).await })
    })
    .await
    .map_err(Error::db(format!("keeping the rows of token {token}")))
}

async fn hand_over_once(
    conn: &mut MySqlConnection,
    key: &str,
    token: &str,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT IGNORE INTO {} (token) VALUES (?)",
        q(KEPT)
    )))
    .bind(token)
    .execute(&mut *conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET token = ? WHERE token = ?",
        q(JOURNAL)
    )))
    .bind(token)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Runs `once` again (up to 5 more times, a few milliseconds apart) when InnoDB chose it as a
/// deadlock's victim or it waited too long for a row lock: tests changing the shared journal at
/// once lock rows of the same index, and the loser's statement is rolled back whole.
async fn again_on_deadlock<T>(
    conn: &mut MySqlConnection,
    mut once: impl for<'a> FnMut(
        &'a mut MySqlConnection,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<T, sqlx::Error>> + Send + 'a>,
    >,
) -> std::result::Result<T, sqlx::Error> {
    let mut attempt = 0;
    loop {
        match once(&mut *conn).await {
            Err(e) if attempt < 5 && matches!(super::error_number(&e), Some(1213 | 1205)) => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// The temporary table a removal reads the token's journal entries from: a `DELETE` that read
/// `seedbed__journal` itself could not fire a trigger that writes to it (error 1442), and the
/// application's triggers fire journal triggers (an audit row written when a row goes).
const MOVED: &str = "seedbed__journal_moved";

/// Rounds of removal at most: rows the application's triggers write while the token's rows go
/// are the token's too, removed in the next round. Entries left after the last round stay in
/// the journal under the token, for the sweep.
const ROUNDS: usize = 8;

/// One attempt at removing the rows of `token`, children and parents alike (foreign-key checks
/// off: every row removed is the test's), in one transaction.
///
/// Each round moves the token's journal entries into a temporary table and deletes the rows
/// they name. The session records under `token` meanwhile, so the rows the application's own
/// triggers write as rows go (an audit trail) are journaled and removed in the next round; the
/// session's own token is given back at the end.
async fn clean_once(
    conn: &mut MySqlConnection,
    token: &str,
) -> std::result::Result<(), sqlx::Error> {
    // Read committed: a delete locks the rows it removes, not the gaps around the rows it reads.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET @seedbed__saved_token = {TOKEN_VARIABLE}, {TOKEN_VARIABLE} = ?"
    )))
    .bind(token)
    .execute(&mut *conn)
    .await?;
    let setup = format!(
        "SET SESSION FOREIGN_KEY_CHECKS = 0; \
         CREATE TEMPORARY TABLE IF NOT EXISTS {m} (tid INT NOT NULL, pk TEXT NOT NULL, KEY (tid)); \
         DELETE FROM {m}; \
         SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION",
        m = q(MOVED)
    );
    let deleted = async {
        sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
            .execute(&mut *conn)
            .await?;
        for _ in 0..ROUNDS {
            if !clean_round(conn, token).await? {
                break;
            }
        }
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await
    }
    .await;
    if deleted.is_err() {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    let restored = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET SESSION FOREIGN_KEY_CHECKS = 1, {TOKEN_VARIABLE} = @seedbed__saved_token; \
         DROP TEMPORARY TABLE IF EXISTS {}",
        q(MOVED)
    )))
    .execute(&mut *conn)
    .await;
    deleted?;
    restored.map(|_| ())
}

/// One round of [`clean_once`]: moves the token's journal entries out and deletes their rows.
/// Returns whether there were any.
async fn clean_round(
    conn: &mut MySqlConnection,
    token: &str,
) -> std::result::Result<bool, sqlx::Error> {
    let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {m} (tid, pk) SELECT tid, pk FROM {j} WHERE token = ?",
        m = q(MOVED),
        j = q(JOURNAL)
    )))
    .bind(token)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(false);
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {} WHERE token = ?",
        q(JOURNAL)
    )))
    .bind(token)
    .execute(&mut *conn)
    .await?;
    let tables: Vec<(i32, String, String, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT t.tid, t.name, t.columns, t.keyed FROM {t} t \
         WHERE t.tid IN (SELECT m.tid FROM {m} m)",
        t = q(TABLES),
        m = q(MOVED)
    )))
    .fetch_all(&mut *conn)
    .await?;
    for (tid, name, columns, keyed) in &tables {
        let on = columns
            .split('\n')
            .enumerate()
            .map(|(i, line)| matches(line, i, *keyed))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "DELETE r FROM {m} j JOIN {t} r ON {on} WHERE j.tid = ?",
            m = q(MOVED),
            t = q(name),
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tid)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DELETE FROM {}", q(MOVED))))
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// The tokens of failed tests whose rows are kept.
pub(crate) async fn kept_tokens(conn: &mut MySqlConnection) -> Result<Vec<String>> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT token FROM {} ORDER BY token",
        q(KEPT)
    )))
    .fetch_all(conn)
    .await
    .map_err(Error::db("listing the rows kept for failed tests"))
}

/// Lets the sweep take the rows kept for failed tests: returns their tokens.
pub(crate) async fn release_kept(conn: &mut MySqlConnection) -> Result<Vec<String>> {
    let context = "releasing the rows kept for failed tests";
    let tokens: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT token FROM {}",
        q(KEPT)
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(context))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DELETE FROM {}", q(KEPT))))
        .execute(&mut *conn)
        .await
        .map_err(Error::db(context))?;
    Ok(tokens)
}
