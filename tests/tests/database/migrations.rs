//! Every migration's `down` undoes its `up`.

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx;

use crate::support::db::TestDb;

/// Migrations alter the cluster's roles (shared by every database): two at
/// once fail with "tuple concurrently updated", so this file's tests take
/// turns.
static MIGRATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn migrating_down_to_zero_and_up_again_succeeds_on_a_populated_database() {
    let db = TestDb::seeded().await;
    let _turn = MIGRATING.lock().await;
    let owner = caregate::db::connect_owner(&db.owner_url).await.unwrap();
    Migrator::down(&owner, None).await.expect("down to zero");

    let pool = db.owner().await;
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname IN ('public', 'app') AND c.relkind IN ('r', 'v', 'S', 'f') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        left,
        vec!["seaql_migrations".to_owned()],
        "down left objects behind"
    );
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'app'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(schemas, 0);

    Migrator::up(&owner, None).await.expect("up again");
    assert!(
        service::demo::seed(&owner, &crate::support::app::test_keyring())
            .await
            .unwrap(),
        "the demo loads into the rebuilt schema"
    );
    assert!(
        caregate::db::pending_migrations(owner.get_postgres_connection_pool())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database() {
    let db = TestDb::empty().await;
    let _turn = MIGRATING.lock().await;
    let owner = caregate::db::connect_owner(&db.owner_url).await.unwrap();
    Migrator::up(&owner, None).await.unwrap();
    assert!(
        caregate::db::pending_migrations(owner.get_postgres_connection_pool())
            .await
            .unwrap()
            .is_empty()
    );
}
