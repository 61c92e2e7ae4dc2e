//! The pool and the vendored sqlx-postgres patch (vendor/README.md) against a
//! real database: a queued `BEGIN` still makes one transaction of what
//! follows, statements planned at every execution answer for their own
//! parameters, a connection released owing nothing is not pinged, and a
//! connection cut while idle is replaced before use.

use std::time::Duration;

use sqlx::{Connection, PgPool};

use crate::test_db::TestDb;

async fn one_connection(db: &TestDb) -> PgPool {
    let pool = super::connect(&db.url, 1).await.expect("pool");
    sqlx::query("CREATE TABLE IF NOT EXISTS notes (n INT PRIMARY KEY)").execute(&pool).await.unwrap();
    pool
}

async fn notes(db: &TestDb) -> Vec<i32> {
    sqlx::query_scalar("SELECT n FROM notes ORDER BY n").fetch_all(&db.pool).await.unwrap()
}

#[tokio::test]
async fn a_transaction_whose_begin_goes_out_with_its_first_statement_is_still_one_transaction() {
    let db = TestDb::new().await;
    let pool = one_connection(&db).await;

    let xact = "SELECT pg_current_xact_id()::text::bigint";
    let mut tx = pool.begin().await.unwrap();
    let first: i64 = sqlx::query_scalar(xact).fetch_one(&mut *tx).await.unwrap();
    sqlx::query("INSERT INTO notes VALUES (1)").execute(&mut *tx).await.unwrap();
    let last: i64 = sqlx::query_scalar(xact).fetch_one(&mut *tx).await.unwrap();
    assert_eq!(first, last, "the first statement, sent with the BEGIN, is in the transaction");
    assert_eq!(notes(&db).await, Vec::<i32>::new(), "not visible before the commit");
    tx.rollback().await.unwrap();
    assert_eq!(notes(&db).await, Vec::<i32>::new(), "rolled back whole");

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO notes VALUES (2)").execute(&mut *tx).await.unwrap();
    sqlx::query("INSERT INTO notes VALUES (3)").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(notes(&db).await, [2, 3]);

    // A transaction that fails at its first statement, one dropped before
    // any, and one committed empty leave the connection outside a
    // transaction: the next statement commits on its own.
    let mut tx = pool.begin().await.unwrap();
    let err = sqlx::query("INSERT INTO notes VALUES (2)").execute(&mut *tx).await.unwrap_err();
    assert_eq!(err.as_database_error().and_then(|e| e.code()).as_deref(), Some("23505"));
    drop(tx);
    drop(pool.begin().await.unwrap());
    pool.begin().await.unwrap().commit().await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("INSERT INTO notes VALUES (4)").execute(&mut *conn).await.unwrap();
    assert_eq!(notes(&db).await, [2, 3, 4], "seen from another connection at once");
}

#[tokio::test]
async fn statements_planned_at_every_execution_answer_for_their_own_parameters() {
    let db = TestDb::new().await;
    let pool = one_connection(&db).await;
    let mut conn = pool.acquire().await.unwrap();
    let plus = "SELECT $1::int + 1";
    let times = "SELECT $1::int * 10";
    for i in 0..8 {
        // Both unnamed, alternating on one connection: each is parsed again
        // with its own Bind, or the other's statement would answer.
        let a: i32 = sqlx::query_scalar(plus).bind(i).persistent(false).fetch_one(&mut *conn).await.unwrap();
        let b: i32 = sqlx::query_scalar(times).bind(i).persistent(false).fetch_one(&mut *conn).await.unwrap();
        assert_eq!((a, b), (i + 1, i * 10));
    }
    let mut tx = conn.begin().await.unwrap();
    let first: i32 = sqlx::query_scalar(times).bind(7).persistent(false).fetch_one(&mut *tx).await.unwrap();
    assert_eq!(first, 70, "a transaction's first statement, sent with its BEGIN");
    tx.commit().await.unwrap();
    let named: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_prepared_statements WHERE statement IN ($1, $2)")
        .bind(plus)
        .bind(times)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(named, 0, "the server keeps nothing of them");
}

#[tokio::test]
async fn a_connection_cut_while_idle_is_replaced_before_it_is_used() {
    let db = TestDb::new().await;
    let pool = one_connection(&db).await;
    let before: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&pool).await.unwrap();
    let cut: bool =
        sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(before).fetch_one(&db.pool).await.unwrap();
    assert!(cut);
    tokio::time::sleep(super::PING_IF_IDLE_FOR + Duration::from_millis(300)).await;
    let after: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&pool).await.expect("a new connection");
    assert_ne!(after, before);
}

/// `pg_stat_activity`'s state of a backend, `None` once it is gone.
async fn backend_state(db: &TestDb, pid: i32) -> Option<String> {
    sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
        .bind(pid)
        .fetch_optional(&db.pool)
        .await
        .unwrap()
        .flatten()
}

#[tokio::test]
async fn a_ping_flushes_what_a_connection_owes_and_makes_no_round_trip_when_it_owes_nothing() {
    let db = TestDb::new().await;
    let pool = one_connection(&db).await;
    let mut conn = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("INSERT INTO notes VALUES (1)").execute(&mut *tx).await.unwrap();
    drop(tx);
    assert_eq!(backend_state(&db, pid).await.as_deref(), Some("idle in transaction"), "its ROLLBACK is only queued");
    // The ping sqlx sends when the connection goes back to the pool.
    drop(conn);
    for _ in 0..100 {
        if backend_state(&db, pid).await.as_deref() == Some("idle") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(backend_state(&db, pid).await.as_deref(), Some("idle"), "the release's ping sent the ROLLBACK");
    assert_eq!(notes(&db).await, Vec::<i32>::new());

    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&db.pool).await.unwrap();
    for _ in 0..100 {
        if backend_state(&db, pid).await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conn.ping().await.expect("a connection in step with its server is not asked");
    assert!(super::reach_server(&mut conn).await.is_err(), "the idle check does reach the server");
}
