//! The one-statement ceiling of operation 1: the whole page's response,
//! nested as the GraphQL response is, built by PostgreSQL in one
//! hand-written statement (`json_agg` / `json_build_object`), with the
//! READ audit caregate records for the page (`app.record_event`, one event
//! listing the page's patients) in the same statement. It runs in a transaction opened as
//! the server's guard opens it (`BEGIN` with `app.begin_request`, one
//! round trip) and ends with `COMMIT`: three round trips in all, as the
//! runtime role, row-level security on. A variant leaves the audit out.
//!
//! No GraphQL server can do less work for this page on this schema: it
//! is the bound that shows how much of caregate's cost is its own.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use sea_orm::sqlx::{self, postgres::PgPool};
use serde::Deserialize;

use crate::driver::{Op, Recorder};
use crate::fixture::{Fixture, WorkerState};
use crate::raw::{Fallible, RawTx, db};

/// The page, its care teams and their providers as one JSON document, in
/// the order and shape of caregate's response; `$1` is the page size.
/// Every table is filtered as the server filters it; row-level security
/// adds the clinic.
macro_rules! page_json {
    ($audit_cte:expr, $audit_join:expr) => {
        concat!(
            "WITH page AS ( \
                 SELECT id, organization_id, first_name, last_name FROM patients \
                 WHERE deleted_at IS NULL \
                 ORDER BY last_name, first_name, id LIMIT $1 \
             )",
            $audit_cte,
            " SELECT json_build_object('data', json_build_object('patients', \
                 json_build_object('edges', coalesce(json_agg(json_build_object('node', \
                     json_build_object('firstName', p.first_name, 'careTeam', ( \
                         SELECT coalesce(json_agg(json_build_object('provider', \
                                    CASE WHEN v.id IS NULL THEN NULL \
                                         ELSE json_build_object('name', v.name) END) \
                                    ORDER BY c.assigned_at, c.id), '[]'::json) \
                         FROM care_team_assignments c \
                         LEFT JOIN providers v ON v.organization_id = c.organization_id \
                              AND v.id = c.provider_id AND v.deleted_at IS NULL \
                         WHERE c.organization_id = p.organization_id \
                           AND c.patient_id = p.id AND c.removed_at IS NULL))) \
                     ORDER BY p.last_name, p.first_name, p.id), '[]'::json))))::text \
             FROM page p",
            $audit_join
        )
    };
}

/// With the READ audit: the CTE calls the function caregate calls for a
/// page (`audit::record_reads`), once, with the page's ids; joining its
/// single row makes PostgreSQL run it (a CTE nothing reads is skipped).
const WITH_AUDIT: &str = page_json!(
    ", audit AS ( \
         SELECT count(*) AS recorded FROM ( \
             SELECT app.record_event('READ', 'patients', ids, NULL) \
             FROM (SELECT array_agg(id ORDER BY last_name, first_name, id) AS ids FROM page) s \
             WHERE s.ids IS NOT NULL) w \
     )",
    " CROSS JOIN audit"
);

const WITHOUT_AUDIT: &str = page_json!("", "");

/// The response as a client reads it: checked, not kept.
#[derive(Deserialize)]
struct Response<'a> {
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    patients: Connection<'a>,
}

#[derive(Deserialize)]
struct Connection<'a> {
    #[serde(borrow)]
    edges: Vec<Edge<'a>>,
}

#[derive(Deserialize)]
struct Edge<'a> {
    #[serde(borrow)]
    node: Node<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node<'a> {
    #[serde(borrow)]
    first_name: Cow<'a, str>,
    #[serde(borrow)]
    care_team: Vec<Member<'a>>,
}

#[derive(Deserialize)]
struct Member<'a> {
    #[serde(borrow)]
    provider: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

pub struct CeilingOp {
    fx: Arc<Fixture>,
    pool: PgPool,
    first: i32,
    audit: bool,
    trips: AtomicU64,
}

impl CeilingOp {
    pub fn new(fx: Arc<Fixture>, pool: PgPool, first: i32, audit: bool) -> Self {
        Self {
            fx,
            pool,
            first,
            audit,
            trips: AtomicU64::new(0),
        }
    }

    /// Round trips to PostgreSQL so far, counted as the server counts its
    /// statements.
    pub fn round_trips(&self) -> u64 {
        self.trips.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One request: the page's JSON, as PostgreSQL built it.
    pub async fn page(&self, st: &WorkerState) -> Fallible<String> {
        let clinic = self.fx.clinic(st);
        let mut tx = RawTx::begin(&self.pool, &self.trips, clinic).await?;
        let sql = if self.audit {
            WITH_AUDIT
        } else {
            WITHOUT_AUDIT
        };
        let json: String = sqlx::query_scalar(sql)
            .bind(i64::from(self.first))
            .fetch_one(tx.conn())
            .await
            .map_err(db("the page's JSON"))?;
        tx.commit().await?;
        Ok(json)
    }

    /// Checks a page as the raw-SQL client checks its own: every patient
    /// of the page, each with a care team of 3 named providers.
    fn check(&self, json: &str) -> Fallible<()> {
        let page: Response = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        let edges = &page.data.patients.edges;
        let ok = edges.len() == self.first as usize
            && edges.iter().all(|e| {
                !e.node.first_name.is_empty()
                    && e.node.care_team.len() == 3
                    && e.node
                        .care_team
                        .iter()
                        .all(|m| m.provider.as_ref().is_some_and(|p| !p.name.is_empty()))
            });
        if !ok {
            return Err(format!(
                "unexpected page: {} patients, care teams of {:?}",
                edges.len(),
                edges
                    .iter()
                    .map(|e| e.node.care_team.len())
                    .collect::<Vec<_>>()
            ));
        }
        Ok(())
    }
}

impl Op for CeilingOp {
    type State = WorkerState;

    fn state(&self, worker: usize, phase: u64) -> WorkerState {
        self.fx.state(worker, phase)
    }

    async fn run(&self, st: &mut WorkerState, rec: &mut Recorder) {
        let started = Instant::now();
        match self.page(st).await.and_then(|json| self.check(&json)) {
            Ok(()) => rec.ok(started),
            Err(why) => rec.fail(started, || why),
        }
    }
}
