//! The distribution check: the schema can be sharded by clinic.
//!
//! A sharded PostgreSQL (Citus) places each clinic's rows on one shard by
//! `organization_id` and refuses what it cannot enforce on one shard. Every
//! table with an `organization_id` column is distributed by it unless it is
//! on the short, commented list below, and then:
//! - its primary key and every unique index and exclusion constraint include
//!   `organization_id` (an exclusion constraint with `=` on it);
//! - `organization_id` is NOT NULL (a row without a clinic has no shard);
//! - a foreign key to another distributed table pairs `organization_id` with
//!   `organization_id`;
//! - no table that stays undistributed references a distributed one.
//!
//! And no policy on any table contains a sub-query (read from the policy's
//! node tree, not its text). `docs/scaling.md` lists the distributed and the
//! other tables; a test holds it to the catalog.

use std::collections::BTreeSet;

use sea_orm::sqlx::{self, postgres::PgPool};

use crate::support::db::TestDb;

/// Tables that have an `organization_id` column yet are not distributed by
/// it, each with the reason. `docs/scaling.md` says where each lives.
const NOT_DISTRIBUTED: &[(&str, &str)] = &[
    // A login writes events before any clinic is chosen (failed logins,
    // logouts of a session without a clinic): organization_id is NULL there.
    (
        "audit_events",
        "events outside any clinic have no organization_id",
    ),
    // A challenge is opened by an anonymous login step and found by the hash
    // of the token the client holds, which must be unique across clinics;
    // a user may have no clinic yet.
    (
        "mfa_challenges",
        "found by a token hash unique across clinics; organization_id may be NULL",
    ),
    // A session is a user's, looked up by its id on every request before a
    // clinic is known; its organization_id is the clinic the user is in, and
    // may be NULL.
    (
        "user_sessions",
        "a user's, found by id before any clinic is known; organization_id may be NULL",
    ),
];

/// Tables without organization_id that stay on the coordinator rather than
/// become reference tables (copied to every node), with the reason.
const COORDINATOR_TABLES: &[(&str, &str)] = &[
    ("seaql_migrations", "the migrations' own bookkeeping"),
    // UNLOGGED, rewritten on every failed login, read only by the login
    // functions: copying each write to every node buys nothing.
    (
        "login_attempts",
        "an unlogged rate-limit counter of the login functions",
    ),
];

/// `(name, oid, attnum of organization_id, its NOT NULL)` of every table in
/// `public` with an `organization_id` column.
async fn tables_with_organization_id(pool: &PgPool) -> Vec<(String, i64, i16, bool)> {
    sqlx::query_as(
        "SELECT c.relname::text, c.oid::bigint, a.attnum, a.attnotnull \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'organization_id' \
              AND NOT a.attisdropped \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Every violation of the rules above, each naming its object.
async fn distribution_violations(pool: &PgPool) -> (Vec<String>, Vec<String>) {
    let all = tables_with_organization_id(pool).await;
    let exempt: Vec<&str> = NOT_DISTRIBUTED.iter().map(|(t, _)| *t).collect();
    for t in &exempt {
        assert!(
            all.iter().any(|(name, ..)| name == t),
            "{t} is on the list of tables not distributed but has no organization_id"
        );
    }
    let distributed: Vec<_> = all
        .iter()
        .filter(|(name, ..)| !exempt.contains(&name.as_str()))
        .collect();
    let oids: Vec<i64> = distributed.iter().map(|(_, oid, ..)| *oid).collect();
    let mut failures = Vec::new();

    for (table, _, _, not_null) in &distributed {
        if !not_null {
            failures.push(format!("{table}: organization_id may be NULL"));
        }
    }

    // Unique indexes, the primary key's among them: organization_id must be
    // one of the key columns (not an INCLUDE column, not inside an
    // expression).
    let unique: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text \
         FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = 'organization_id' \
         WHERE i.indisunique AND i.indrelid::bigint = ANY ($1) \
           AND NOT (a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])) \
         ORDER BY 1, 2",
    )
    .bind(&oids)
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, index) in unique {
        failures.push(format!(
            "{table}: unique index {index} does not include organization_id"
        ));
    }

    // Exclusion constraints: organization_id compared with `=`.
    let exclusion: Vec<(String, String)> = sqlx::query_as(
        "SELECT x.conrelid::regclass::text, x.conname::text \
         FROM pg_constraint x \
         JOIN pg_attribute a ON a.attrelid = x.conrelid AND a.attname = 'organization_id' \
         WHERE x.contype = 'x' AND x.conrelid::bigint = ANY ($1) \
           AND NOT EXISTS ( \
             SELECT 1 FROM generate_subscripts(x.conkey, 1) k \
             JOIN pg_operator o ON o.oid = x.conexclop[k] \
             WHERE x.conkey[k] = a.attnum AND o.oprname = '=') \
         ORDER BY 1, 2",
    )
    .bind(&oids)
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, constraint) in exclusion {
        failures.push(format!(
            "{table}: exclusion constraint {constraint} does not compare organization_id with ="
        ));
    }

    // Foreign keys between two distributed tables: organization_id on one
    // side pairs with organization_id on the other.
    let unpaired: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT f.conrelid::regclass::text, f.conname::text, f.confrelid::regclass::text \
         FROM pg_constraint f \
         JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attname = 'organization_id' \
         JOIN pg_attribute b ON b.attrelid = f.confrelid AND b.attname = 'organization_id' \
         WHERE f.contype = 'f' \
           AND f.conrelid::bigint = ANY ($1) AND f.confrelid::bigint = ANY ($1) \
           AND NOT EXISTS ( \
             SELECT 1 FROM generate_subscripts(f.conkey, 1) k \
             WHERE f.conkey[k] = a.attnum AND f.confkey[k] = b.attnum) \
         ORDER BY 1, 2",
    )
    .bind(&oids)
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, fk, target) in unpaired {
        failures.push(format!(
            "{table}: foreign key {fk} to {target} does not pair organization_id on both sides"
        ));
    }

    // A table that stays undistributed (a reference or coordinator table)
    // may not reference a distributed one.
    let backwards: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT f.conrelid::regclass::text, f.conname::text, f.confrelid::regclass::text \
         FROM pg_constraint f \
         WHERE f.contype = 'f' AND f.connamespace = 'public'::regnamespace \
           AND NOT f.conrelid::bigint = ANY ($1) AND f.confrelid::bigint = ANY ($1) \
         ORDER BY 1, 2",
    )
    .bind(&oids)
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, fk, target) in backwards {
        failures.push(format!(
            "{table}: foreign key {fk} from a table that is not distributed to distributed {target}"
        ));
    }

    // Policies on every table, distributed or not: a sub-query shows in the
    // stored expression as a SubLink node.
    let sub_queries: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.polrelid::regclass::text, p.polname::text FROM pg_policy p \
         JOIN pg_class c ON c.oid = p.polrelid \
         WHERE c.relnamespace = 'public'::regnamespace \
           AND (coalesce(p.polqual::text, '') LIKE '%{SUBLINK%' \
             OR coalesce(p.polwithcheck::text, '') LIKE '%{SUBLINK%') \
         ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, policy) in sub_queries {
        failures.push(format!("{table}: policy {policy} contains a sub-query"));
    }

    let names = distributed.iter().map(|(t, ..)| t.clone()).collect();
    (names, failures)
}

#[tokio::test]
async fn every_tenant_table_can_be_distributed_by_organization_id() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let (distributed, failures) = distribution_violations(&owner).await;
    println!(
        "distributed by organization_id: {} tables: {distributed:?}",
        distributed.len()
    );
    for (table, reason) in NOT_DISTRIBUTED.iter().chain(COORDINATOR_TABLES) {
        println!("on the coordinator: {table}: {reason}");
    }
    assert!(
        failures.is_empty(),
        "not distributable by organization_id: {failures:#?}"
    );
    assert!(distributed.len() > 20, "{distributed:?}");
}

#[tokio::test]
async fn the_distribution_check_names_each_violation() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    sqlx::raw_sql(
        "CREATE TABLE public.careless (id uuid PRIMARY KEY, organization_id uuid, \
            code text UNIQUE, patient_id uuid, \
            FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id)); \
         CREATE TABLE public.careless_child (organization_id uuid NOT NULL, careless_id uuid, \
            PRIMARY KEY (organization_id, careless_id), \
            FOREIGN KEY (careless_id) REFERENCES careless (id), \
            EXCLUDE USING gist (careless_id WITH =, organization_id WITH <>)); \
         CREATE TABLE public.careless_global (id uuid PRIMARY KEY, \
            careless_id uuid REFERENCES careless (id)); \
         ALTER TABLE public.careless ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY nosy ON public.careless USING ( \
            organization_id IN (SELECT organization_id FROM providers));",
    )
    .execute(&owner)
    .await
    .expect("creating tables that break every rule");
    let (_, failures) = distribution_violations(&owner).await;
    let expected = [
        "careless: organization_id may be NULL",
        "careless: unique index careless_pkey does not include organization_id",
        "careless: unique index careless_code_key does not include organization_id",
        "careless_child: exclusion constraint careless_child_careless_id_organization_id_excl \
         does not compare organization_id with =",
        "careless_child: foreign key careless_child_careless_id_fkey to careless \
         does not pair organization_id on both sides",
        "careless_global: foreign key careless_global_careless_id_fkey from a table that is \
         not distributed to distributed careless",
        "careless: policy nosy contains a sub-query",
    ];
    for e in expected {
        assert!(failures.iter().any(|f| f == e), "{e}\nnot in {failures:#?}");
    }
    assert_eq!(failures.len(), expected.len(), "{failures:#?}");
}

/// Table names listed between `<!-- {marker}:begin -->` and
/// `<!-- {marker}:end -->` in docs/scaling.md, one `` - `name` `` a line.
fn documented(marker: &str) -> BTreeSet<String> {
    let doc = include_str!("../../../docs/scaling.md");
    let begin = format!("<!-- {marker}:begin -->");
    let end = format!("<!-- {marker}:end -->");
    let start = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("{begin} in docs/scaling.md"));
    let stop = doc
        .find(&end)
        .unwrap_or_else(|| panic!("{end} in docs/scaling.md"));
    doc[start + begin.len()..stop]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_scaling_guide_lists_the_tables_as_the_catalog_has_them() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let (distributed, _) = distribution_violations(&owner).await;
    let distributed: BTreeSet<String> = distributed.into_iter().collect();
    let all: BTreeSet<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') \
           AND NOT c.relispartition",
    )
    .fetch_all(&owner)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let local: BTreeSet<String> = NOT_DISTRIBUTED
        .iter()
        .map(|(t, _)| *t)
        .chain(COORDINATOR_TABLES.iter().map(|(t, _)| *t))
        .map(str::to_owned)
        .collect();
    let reference: BTreeSet<String> = all
        .iter()
        .filter(|t| !distributed.contains(*t) && !local.contains(*t))
        .cloned()
        .collect();
    assert_eq!(documented("distributed-tables"), distributed);
    assert_eq!(documented("reference-tables"), reference);
    assert_eq!(documented("coordinator-tables"), local);
}
