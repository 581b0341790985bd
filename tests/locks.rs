//! seedbed's one lock-key scheme: a lock taken by name on one connection is seen held by name from
//! another (through `pg_locks`, whose two halves of the key are split on the server), excludes a
//! second taker, and is free again once released; the same for keys whose high bit is set and
//! keys whose high bit is clear.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use seedbed::backend::postgres::coord::{LockMode, is_held, try_lock_on, unlock_on};
use seedbed::server::Server;
use sqlx::Connection;

#[tokio::test]
async fn a_lock_taken_by_name_is_seen_and_excludes_by_name() {
    let server = Server::resolve().await.expect("a server");
    let mut holder = server.connect().await.expect("holder");
    let mut other = server.connect().await.expect("other");
    let run = std::process::id();
    let (mut negative, mut positive) = (0, 0);
    for i in 0..24 {
        let name = format!("test:locks:{run}:{i}");
        // The key's sign, as the server computes it: both halves of pg_locks must match either way.
        let key: i64 = sqlx::query_scalar("SELECT hashtextextended('seedbed:' || $1, 0)")
            .bind(&name)
            .fetch_one(&mut other)
            .await
            .unwrap();
        if key < 0 {
            negative += 1;
        } else {
            positive += 1;
        }
        assert!(!is_held(&mut other, &name).await.unwrap(), "{name} free");
        assert!(
            try_lock_on(&mut holder, &name, LockMode::Exclusive)
                .await
                .unwrap()
        );
        assert!(is_held(&mut other, &name).await.unwrap(), "{name} held");
        assert!(
            !try_lock_on(&mut other, &name, LockMode::Exclusive)
                .await
                .unwrap(),
            "{name} taken twice"
        );
        unlock_on(&mut holder, &name, LockMode::Exclusive)
            .await
            .unwrap();
        assert!(!is_held(&mut other, &name).await.unwrap(), "{name} freed");
    }
    assert!(
        negative > 0 && positive > 0,
        "keys of both signs: {negative} negative, {positive} positive"
    );
    holder.close().await.unwrap();
    other.close().await.unwrap();
}
