//! The ceiling: the same work straight against PostgreSQL, through a pooled
//! sqlx client connected as the runtime role (so row-level security
//! applies exactly as it does to the server). Each request is one
//! transaction opened as the server's guard opens it (`BEGIN` and the
//! `app.begin_request` context call in one round trip), then the
//! statements the operation needs, the READ audit call, `COMMIT`. Rows are
//! decoded into structs and assembled, as a client would.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, FixedOffset, Utc};
use entity::appointment::AppointmentStatus;
use entity::care_team_assignment::CareTeamRole;
use entity::contact_method::ContactMethodType;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::{PgConnection, PgPool, PgRow};
use sea_orm::sqlx::{self, Executor, Postgres, Row};
use sea_orm::{FromQueryResult, QueryResult};
use uuid::Uuid;

use crate::driver::{Op, Recorder};
use crate::fixture::{Clinic, Fixture, Kind, WorkerState};

pub type Fallible<T> = Result<T, String>;

pub fn db(what: &'static str) -> impl Fn(sqlx::Error) -> String {
    move |e| format!("{what}: {e}")
}

const RECORD_READS: &str = "SELECT app.record_event('READ', 'patients', $1::uuid[], NULL)";

macro_rules! patient_cols {
    () => {
        "id, organization_id, user_id, medical_record_number, first_name, \
     last_name, date_of_birth, legal_sex, status, enrolled_at, discharged_at, address_line1, \
     address_line2, city, state, postal_code, created_at, updated_at, deleted_at"
    };
}
macro_rules! provider_cols {
    () => {
        "id, organization_id, user_id, name, npi, dea_number, specialty, \
     state_licenses, is_active, created_at, updated_at, deleted_at"
    };
}
macro_rules! care_cols {
    () => {
        "id, organization_id, patient_id, provider_id, role, assigned_at, \
     assigned_by, removed_at, removed_by, created_at, updated_at"
    };
}
macro_rules! contact_cols {
    () => {
        "id, organization_id, patient_id, type, value, is_primary, \
     is_safe_for_voicemail, created_at, updated_at, deleted_at"
    };
}
macro_rules! appointment_cols {
    () => {
        "id, organization_id, patient_id, provider_id, starts_at, ends_at, \
     type, reason, status, cancel_reason, created_by, created_at, updated_at, deleted_at"
    };
}

type Ts = DateTime<FixedOffset>;

// Rows decode into the server's own models (every column, as the server
// does), so the ceiling pays the same decoding.
type Patient = entity::patient::Model;
type Provider = entity::provider::Model;
type Assignment = entity::care_team_assignment::Model;
type Contact = entity::contact_method::Model;
type Appointment = entity::appointment::Model;

fn decode<M: FromQueryResult>(row: PgRow) -> Result<M, sea_orm::DbErr> {
    M::from_query_result(&QueryResult::from(row), "")
}

fn decode_all<M: FromQueryResult>(rows: Vec<PgRow>, what: &'static str) -> Fallible<Vec<M>> {
    rows.into_iter()
        .map(decode)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: {e}"))
}

/// One request's transaction, counting its round trips the way the
/// server's statement counter does: `BEGIN` with the context one, each
/// statement one, `COMMIT` one.
pub struct RawTx<'a> {
    conn: PoolConnection<Postgres>,
    trips: &'a AtomicU64,
    open: bool,
}

impl<'a> RawTx<'a> {
    /// `BEGIN` and the server guard's context call, with the same
    /// arguments, in one simple query (as `api/src/guard.rs` sends them).
    pub async fn begin(pool: &PgPool, trips: &'a AtomicU64, clinic: &Clinic) -> Fallible<Self> {
        Self::begin_as(
            pool,
            trips,
            clinic.ids.org,
            clinic.user,
            clinic.session,
            "ADMIN",
        )
        .await
    }

    /// [`RawTx::begin`] as any user of the clinic, whose role must be `role`.
    async fn begin_as(
        pool: &PgPool,
        trips: &'a AtomicU64,
        org: Uuid,
        user: Uuid,
        session: Uuid,
        expected_role: &str,
    ) -> Fallible<Self> {
        let mut conn = pool.acquire().await.map_err(db("acquiring a connection"))?;
        // The statement the server's guard sends: texts hex-encoded, ids
        // formatted from their types (every value here is a uuid, a ULID or
        // a constant).
        let hex = |t: &str| -> String { t.bytes().map(|b| format!("{b:02x}")).collect() };
        let sql = format!(
            "BEGIN; SELECT role, is_super_admin, consent_required, portal_scope \
             FROM app.begin_request(convert_from(decode('{}', 'hex'), 'UTF8'), \
             (convert_from(decode('{}', 'hex'), 'UTF8'))::inet, \
             convert_from(decode('{}', 'hex'), 'UTF8'), '{}'::uuid, '{}'::uuid, '{}'::uuid, 60, false, true)",
            hex(&ulid::Ulid::generate().to_string()),
            hex("127.0.0.1"),
            hex("caregate-bench"),
            user,
            org,
            session,
        );
        trips.fetch_add(1, Ordering::Relaxed);
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await;
        let tx = Self {
            conn,
            trips,
            open: true,
        };
        let rows = result.map_err(db("BEGIN; app.begin_request"))?;
        let row = rows.first().ok_or("app.begin_request returned no row")?;
        let role: Option<String> = row.try_get("role").map_err(db("role"))?;
        let _super: bool = row
            .try_get("is_super_admin")
            .map_err(db("is_super_admin"))?;
        let consent: bool = row
            .try_get("consent_required")
            .map_err(db("consent_required"))?;
        let _scope: Option<serde_json::Value> =
            row.try_get("portal_scope").map_err(db("portal_scope"))?;
        if role.as_deref() != Some(expected_role) || consent {
            return Err(format!(
                "app.begin_request: role {role:?}, consent required {consent}"
            ));
        }
        Ok(tx)
    }

    /// The connection, for one statement.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.trips.fetch_add(1, Ordering::Relaxed);
        &mut self.conn
    }

    pub async fn commit(mut self) -> Fallible<()> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        // As the server commits: `COMMIT` behind an empty `SELECT`, which
        // fails instead of letting an aborted transaction "commit".
        self.conn
            .execute("SELECT; COMMIT")
            .await
            .map_err(db("COMMIT"))?;
        self.open = false;
        Ok(())
    }
}

impl Drop for RawTx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Not committed (an error): the connection's transaction is
            // abandoned with it rather than reused.
            self.conn.close_on_drop();
        }
    }
}

pub struct RawOp {
    kind: Kind,
    fx: Arc<Fixture>,
    pool: PgPool,
    write_day: DateTime<Utc>,
    trips: AtomicU64,
}

impl RawOp {
    pub fn new(kind: Kind, fx: Arc<Fixture>, pool: PgPool, write_day: DateTime<Utc>) -> Self {
        Self {
            kind,
            fx,
            pool,
            write_day,
            trips: AtomicU64::new(0),
        }
    }

    /// Round trips to PostgreSQL so far, counted as the server counts its
    /// statements.
    pub fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    async fn record_reads(tx: &mut RawTx<'_>, ids: &[Uuid]) -> Fallible<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(RECORD_READS)
            .bind(ids)
            .execute(tx.conn())
            .await
            .map_err(db("READ audit"))?;
        Ok(())
    }

    async fn providers_by_ids(
        tx: &mut RawTx<'_>,
        ids: &[Uuid],
    ) -> Fallible<HashMap<Uuid, Provider>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            provider_cols!(),
            " FROM providers WHERE id = ANY ($1) AND deleted_at IS NULL"
        ))
        .bind(ids)
        .fetch_all(tx.conn())
        .await
        .map_err(db("providers"))?;
        Ok(decode_all::<Provider>(rows, "providers")?
            .into_iter()
            .map(|p| (p.id, p))
            .collect())
    }

    /// Operation 1: a page of patients by name, their care teams and the
    /// providers on them.
    async fn patients_page(&self, st: &mut WorkerState, first: i32) -> Fallible<usize> {
        let clinic = self.fx.clinic(st);
        let mut tx = RawTx::begin(&self.pool, &self.trips, clinic).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            patient_cols!(),
            " FROM patients WHERE deleted_at IS NULL \
             ORDER BY last_name, first_name, id LIMIT $1"
        ))
        .bind(i64::from(first) + 1)
        .fetch_all(tx.conn())
        .await
        .map_err(db("patients"))?;
        let mut patients = decode_all::<Patient>(rows, "patients")?;
        patients.truncate(first as usize);
        let ids: Vec<Uuid> = patients.iter().map(|p| p.id).collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            care_cols!(),
            " FROM care_team_assignments \
             WHERE patient_id = ANY ($1) AND removed_at IS NULL ORDER BY assigned_at, id"
        ))
        .bind(&ids)
        .fetch_all(tx.conn())
        .await
        .map_err(db("care teams"))?;
        let team = decode_all::<Assignment>(rows, "care teams")?;
        let mut provider_ids: Vec<Uuid> = team.iter().map(|a| a.provider_id).collect();
        provider_ids.sort_unstable();
        provider_ids.dedup();
        let providers = Self::providers_by_ids(&mut tx, &provider_ids).await?;
        Self::record_reads(&mut tx, &ids).await?;
        tx.commit().await?;

        // Assemble what the GraphQL response carries.
        let mut teams: HashMap<Uuid, Vec<&str>> = HashMap::with_capacity(ids.len());
        for a in &team {
            let name = providers
                .get(&a.provider_id)
                .map(|p| p.name.as_str())
                .ok_or("a care-team provider is missing")?;
            teams.entry(a.patient_id).or_default().push(name);
        }
        let out: Vec<(&str, Vec<&str>)> = patients
            .iter()
            .map(|p| {
                (
                    p.first_name.as_str(),
                    teams.remove(&p.id).unwrap_or_default(),
                )
            })
            .collect();
        if out.len() != first as usize || out.iter().any(|(_, t)| t.len() != 3) {
            return Err(format!(
                "unexpected page: {} patients, care teams of {:?}",
                out.len(),
                out.iter().map(|(_, t)| t.len()).collect::<Vec<_>>()
            ));
        }
        Ok(std::hint::black_box(out).len())
    }

    /// Operation 2: one patient with contact methods, care team (and its
    /// providers) and the next 10 appointments.
    async fn patient_detail(&self, st: &mut WorkerState) -> Fallible<usize> {
        let id = self.fx.next_patient(st);
        let from = Utc::now();
        let clinic = self.fx.clinic(st);
        let mut tx = RawTx::begin(&self.pool, &self.trips, clinic).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            patient_cols!(),
            " FROM patients WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(tx.conn())
        .await
        .map_err(db("patient"))?
        .ok_or("patient not found")?;
        let patient = decode::<Patient>(row).map_err(|e| format!("patient: {e}"))?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            contact_cols!(),
            " FROM contact_methods WHERE patient_id = $1 \
             AND deleted_at IS NULL ORDER BY is_primary DESC, created_at, id"
        ))
        .bind(id)
        .fetch_all(tx.conn())
        .await
        .map_err(db("contact methods"))?;
        let contacts = decode_all::<Contact>(rows, "contact methods")?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            care_cols!(),
            " FROM care_team_assignments WHERE patient_id = $1 \
             AND removed_at IS NULL ORDER BY assigned_at, id"
        ))
        .bind(id)
        .fetch_all(tx.conn())
        .await
        .map_err(db("care team"))?;
        let team = decode_all::<Assignment>(rows, "care team")?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            appointment_cols!(),
            " FROM appointments WHERE patient_id = $1 \
             AND deleted_at IS NULL AND ends_at > $2 ORDER BY starts_at, id LIMIT 11"
        ))
        .bind(id)
        .bind(from)
        .fetch_all(tx.conn())
        .await
        .map_err(db("appointments"))?;
        let mut appointments = decode_all::<Appointment>(rows, "appointments")?;
        appointments.truncate(10);
        let provider_ids: Vec<Uuid> = team.iter().map(|a| a.provider_id).collect();
        let providers = Self::providers_by_ids(&mut tx, &provider_ids).await?;
        Self::record_reads(&mut tx, &[patient.id]).await?;
        tx.commit().await?;

        let contacts: Vec<(ContactMethodType, &str)> = contacts
            .iter()
            .map(|c| (c.r#type, c.value.as_str()))
            .collect();
        let team: Vec<(CareTeamRole, Option<&str>)> = team
            .iter()
            .map(|a| {
                (
                    a.role,
                    providers.get(&a.provider_id).map(|p| p.name.as_str()),
                )
            })
            .collect();
        let appointments: Vec<(Ts, AppointmentStatus)> = appointments
            .iter()
            .map(|a| (a.starts_at, a.status))
            .collect();
        if contacts.len() != 1 || team.len() != 3 || team.iter().any(|(_, p)| p.is_none()) {
            return Err(format!(
                "unexpected patient: {} contact methods, care team {team:?}",
                contacts.len()
            ));
        }
        let out = (
            patient.first_name.as_str(),
            patient.last_name.as_str(),
            contacts,
            team,
            appointments,
        );
        Ok(std::hint::black_box(out).4.len())
    }

    /// Operation 3: a trigram name search.
    async fn patient_search(&self, st: &mut WorkerState) -> Fallible<usize> {
        let q = self.fx.next_search(st);
        let terms = service::pagination::search_terms(q);
        let [a, b] = terms.as_slice() else {
            return Err(format!("search {q:?} is not two words"));
        };
        let clinic = self.fx.clinic(st);
        let mut tx = RawTx::begin(&self.pool, &self.trips, clinic).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            patient_cols!(),
            " FROM patients WHERE deleted_at IS NULL \
             AND search_name LIKE $1 AND search_name LIKE $2 \
             ORDER BY last_name, first_name, id LIMIT 21"
        ))
        .bind(a)
        .bind(b)
        .fetch_all(tx.conn())
        .await
        .map_err(db("search"))?;
        let mut patients = decode_all::<Patient>(rows, "search")?;
        patients.truncate(20);
        let ids: Vec<Uuid> = patients.iter().map(|p| p.id).collect();
        Self::record_reads(&mut tx, &ids).await?;
        tx.commit().await?;
        if patients.is_empty() {
            return Err(format!("search {q:?} found no one"));
        }
        let out: Vec<(Uuid, &str, &str)> = patients
            .iter()
            .map(|p| (p.id, p.first_name.as_str(), p.last_name.as_str()))
            .collect();
        Ok(std::hint::black_box(out).len())
    }

    /// Operation 4, first request: book the worker's slot.
    async fn schedule(&self, st: &mut WorkerState) -> Fallible<Uuid> {
        let patient_id = self.fx.next_patient(st);
        let (provider_id, starts, ends) = self.fx.write_slot(st, self.write_day);
        let clinic = self.fx.clinic(st);
        let mut tx = RawTx::begin(&self.pool, &self.trips, clinic).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            patient_cols!(),
            " FROM patients WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(patient_id)
        .fetch_optional(tx.conn())
        .await
        .map_err(db("patient"))?
        .ok_or("no such patient")?;
        if decode::<Patient>(row)
            .map_err(|e| format!("patient: {e}"))?
            .status
            != entity::patient::PatientStatus::Active
        {
            return Err("the patient is not active".to_owned());
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            provider_cols!(),
            " FROM providers WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(provider_id)
        .fetch_optional(tx.conn())
        .await
        .map_err(db("provider"))?
        .ok_or("no such provider")?;
        if !decode::<Provider>(row)
            .map_err(|e| format!("provider: {e}"))?
            .is_active
        {
            return Err("the provider is not active".to_owned());
        }
        let row = sqlx::query(concat!(
            "INSERT INTO appointments (id, organization_id, patient_id, provider_id, starts_at, \
                                       ends_at, type, reason, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, 'IN_PERSON', 'bench', $7) RETURNING ",
            appointment_cols!()
        ))
        .bind(Uuid::from(ulid::Ulid::generate()))
        .bind(clinic.ids.org)
        .bind(patient_id)
        .bind(provider_id)
        .bind(starts)
        .bind(ends)
        .bind(clinic.user)
        .fetch_one(tx.conn())
        .await
        .map_err(db("scheduling"))?;
        let booked = decode::<Appointment>(row).map_err(|e| format!("appointment: {e}"))?;
        Self::record_reads(&mut tx, &[booked.patient_id]).await?;
        tx.commit().await?;
        Ok(booked.id)
    }

    /// Operation 5: a batch of events, as `sessions::record_events` writes
    /// them (one statement), then the READ audit of the session's patient.
    async fn record_events(&self, st: &mut WorkerState, batch: usize) -> Fallible<()> {
        let session = self.fx.therapy_session(st);
        let events = self.fx.events(st, batch);
        let clinic = self.fx.clinic(st);
        let mut types = Vec::with_capacity(batch);
        let mut times = Vec::with_capacity(batch);
        let mut payloads = Vec::with_capacity(batch);
        for e in &events {
            types.push(e["eventType"].as_str().unwrap_or_default().to_owned());
            let at = e["occurredAt"].as_str().unwrap_or_default();
            times.push(DateTime::parse_from_rfc3339(at).map_err(|e| format!("occurredAt: {e}"))?);
            payloads.push(sqlx::types::Json(e["payload"].clone()));
        }
        let corrects = vec![String::new(); batch];
        let mut tx = RawTx::begin_as(
            &self.pool,
            &self.trips,
            clinic.ids.org,
            clinic.therapist,
            clinic.therapist_session,
            "PROVIDER",
        )
        .await?;
        let rows = sqlx::query(
            "INSERT INTO session_events (organization_id, session_id, event_type, \
                 occurred_at, payload, corrects_id) \
             SELECT app.current_tenant_id(), $1, e.event_type, e.occurred_at, e.payload, \
                    nullif(e.corrects_id, '')::uuid \
             FROM unnest($2::text[], $3::timestamptz[], $4::jsonb[], $5::text[]) \
                  WITH ORDINALITY AS e (event_type, occurred_at, payload, corrects_id, n) \
             ORDER BY e.n \
             RETURNING *",
        )
        .bind(session)
        .bind(&types)
        .bind(&times)
        .bind(&payloads)
        .bind(&corrects)
        .fetch_all(tx.conn())
        .await
        .map_err(db("recording events"))?;
        let recorded = decode_all::<entity::session_event::Model>(rows, "events")?;
        if recorded.len() != batch {
            return Err(format!("{} events recorded, not {batch}", recorded.len()));
        }
        Self::record_reads(&mut tx, &[recorded[0].patient_id]).await?;
        tx.commit().await
    }

    /// Operation 4, second request: cancel it.
    async fn cancel(&self, st: &WorkerState, id: Uuid) -> Fallible<()> {
        let clinic = self.fx.clinic(st);
        let mut tx = RawTx::begin(&self.pool, &self.trips, clinic).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            appointment_cols!(),
            " FROM appointments WHERE id = $1 AND deleted_at IS NULL \
             FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(tx.conn())
        .await
        .map_err(db("locking the appointment"))?
        .ok_or("appointment not found")?;
        let current = decode::<Appointment>(row).map_err(|e| format!("appointment: {e}"))?;
        if !matches!(
            current.status,
            AppointmentStatus::Scheduled | AppointmentStatus::Confirmed
        ) {
            return Err(format!("cannot cancel from {:?}", current.status));
        }
        let row = sqlx::query(concat!(
            "UPDATE appointments SET cancel_reason = $2, status = 'CANCELLED' WHERE id = $1 \
             RETURNING ",
            appointment_cols!()
        ))
        .bind(id)
        .bind("bench")
        .fetch_one(tx.conn())
        .await
        .map_err(db("cancelling"))?;
        let cancelled = decode::<Appointment>(row).map_err(|e| format!("appointment: {e}"))?;
        Self::record_reads(&mut tx, &[cancelled.patient_id]).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Op for RawOp {
    type State = WorkerState;

    fn state(&self, worker: usize, phase: u64) -> WorkerState {
        self.fx.state(worker, phase)
    }

    async fn run(&self, st: &mut WorkerState, rec: &mut Recorder) {
        let started = Instant::now();
        let result = match self.kind {
            Kind::PatientsPage { first } => self.patients_page(st, first).await.map(drop),
            Kind::PatientDetail => self.patient_detail(st).await.map(drop),
            Kind::PatientSearch => self.patient_search(st).await.map(drop),
            Kind::RecordEvents { batch } => self.record_events(st, batch).await,
            Kind::ScheduleCancel => match self.schedule(st).await {
                Ok(id) => {
                    rec.ok(started);
                    let started = Instant::now();
                    let result = self.cancel(st, id).await;
                    if result.is_err() {
                        st.generation += 1;
                    }
                    match result {
                        Ok(()) => rec.ok(started),
                        Err(why) => rec.fail(started, || why),
                    }
                    return;
                }
                Err(why) => {
                    st.generation += 1;
                    Err(why)
                }
            },
        };
        match result {
            Ok(()) => rec.ok(started),
            Err(why) => rec.fail(started, || why),
        }
    }
}
