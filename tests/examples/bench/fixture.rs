//! What both clients (GraphQL over HTTP, and raw SQL) share: the clinics,
//! the operations, and how each worker picks its patients and slots.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::dataset::ClinicIds;

/// One clinic as the workers use it.
pub struct Clinic {
    pub ids: ClinicIds,
    /// `Bearer <token>` of the admin's HTTP login.
    pub bearer: reqwest::header::HeaderValue,
    /// The admin's user id, and the session the raw-SQL client runs under.
    pub user: Uuid,
    pub session: Uuid,
    /// The clinic's therapist (a PROVIDER): `Bearer <token>` of their HTTP
    /// login, their user and the session the raw-SQL client runs under,
    /// and one in-progress therapy session per worker.
    pub therapist_bearer: reqwest::header::HeaderValue,
    pub therapist: Uuid,
    pub therapist_session: Uuid,
    pub therapy_sessions: Vec<Uuid>,
}

pub struct Fixture {
    pub clinics: Vec<Clinic>,
    pub searches: Vec<String>,
    pub concurrency: usize,
}

/// The benchmarked operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `patients(first: N) { edges { node { firstName careTeam { provider { name } } } } }`
    PatientsPage { first: i32 },
    /// One `patient(id:)` with contact methods, care team and upcoming appointments.
    PatientDetail,
    /// `patients(first: 20, filter: {search: "jon smi"})`.
    PatientSearch,
    /// `scheduleAppointment` then `transitionAppointment(to: CANCELLED)`.
    ScheduleCancel,
    /// `recordSessionEvents` with a batch of `batch` events, by the
    /// session's provider.
    RecordEvents { batch: usize },
}

impl Kind {
    pub fn label(self) -> String {
        match self {
            Kind::PatientsPage { first } => {
                format!("1. `patients(first: {first})` + careTeam.provider")
            }
            Kind::PatientDetail => {
                "2. `patient(id:)` + contacts, careTeam, appointments".to_owned()
            }
            Kind::PatientSearch => "3. `patients(first: 20, search:)` trigram".to_owned(),
            Kind::ScheduleCancel => "4. `scheduleAppointment` + cancel (per request)".to_owned(),
            Kind::RecordEvents { batch } => {
                format!("5. `recordSessionEvents` (batch of {batch})")
            }
        }
    }
}

/// A worker's position in its workload.
pub struct WorkerState {
    pub worker: usize,
    /// Index into `Fixture::clinics`: workers alternate clinics.
    pub clinic: usize,
    /// Iterations so far (offset by phase, so the timed run does not
    /// replay the warm-up's ids).
    pub n: u64,
    /// Bumped after a failed write, so a slot left booked is not retried.
    pub generation: u64,
}

impl Fixture {
    pub fn state(&self, worker: usize, phase: u64) -> WorkerState {
        WorkerState {
            worker,
            clinic: worker % self.clinics.len(),
            n: phase * 1_000_003,
            generation: 0,
        }
    }

    pub fn clinic(&self, st: &WorkerState) -> &Clinic {
        &self.clinics[st.clinic]
    }

    /// The next patient, round-robin over the clinic's patients (workers of
    /// one clinic interleave).
    pub fn next_patient(&self, st: &mut WorkerState) -> Uuid {
        let patients = &self.clinic(st).ids.patients;
        let i = (st.n as usize)
            .wrapping_mul(self.concurrency)
            .wrapping_add(st.worker)
            % patients.len();
        st.n += 1;
        patients[i]
    }

    pub fn next_search(&self, st: &mut WorkerState) -> &str {
        let i = (st.n as usize)
            .wrapping_mul(self.concurrency)
            .wrapping_add(st.worker)
            % self.searches.len();
        st.n += 1;
        &self.searches[i]
    }

    /// The worker's own provider and half-hour slot on `day` (far in the
    /// future, past every seeded appointment): no two workers ever share a
    /// time, so bookings cannot collide; a cancelled booking frees the slot
    /// for the next iteration.
    pub fn write_slot(
        &self,
        st: &WorkerState,
        day: DateTime<Utc>,
    ) -> (Uuid, DateTime<Utc>, DateTime<Utc>) {
        let providers = &self.clinic(st).ids.providers;
        let provider = providers[(st.worker / self.clinics.len()) % providers.len()];
        let slot = st.worker as u64 + st.generation * self.concurrency as u64;
        let starts = day + Duration::minutes(30 * slot as i64);
        (provider, starts, starts + Duration::minutes(30))
    }
}

impl Fixture {
    /// The worker's own in-progress therapy session (no two workers share
    /// one, so they never queue on its row).
    pub fn therapy_session(&self, st: &WorkerState) -> Uuid {
        let sessions = &self.clinic(st).therapy_sessions;
        sessions[(st.worker / self.clinics.len()) % sessions.len()]
    }

    /// A batch of events as JSON (the same for both clients).
    pub fn events(&self, st: &mut WorkerState, batch: usize) -> Vec<serde_json::Value> {
        st.n += 1;
        let at = Utc::now() - Duration::minutes(1);
        (0..batch)
            .map(|i| {
                serde_json::json!({
                    "eventType": EVENT_TYPES[i % EVENT_TYPES.len()],
                    "occurredAt": (at + Duration::milliseconds(i as i64)).to_rfc3339(),
                    "payload": {
                        "step": i,
                        "score": (st.n as usize + i) % 10,
                        "note": "tolerated well; continue",
                        "tags": ["bench", "session"],
                    },
                })
            })
            .collect()
    }
}

/// The event types the bench's clinics define (and its events cycle).
pub const EVENT_TYPES: [&str; 4] = ["NOTE", "GOAL_PROGRESS", "BEHAVIOR", "INTERVENTION"];

/// Midnight UTC, `days` from today.
pub fn day_from_today(days: i64) -> DateTime<Utc> {
    let today = Utc::now().date_naive();
    (today + Duration::days(days))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(Utc::now)
}
