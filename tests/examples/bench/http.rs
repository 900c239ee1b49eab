//! The operations as GraphQL over HTTP, against the running server.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use crate::driver::{Op, Recorder};
use crate::fixture::{Fixture, Kind, WorkerState};

pub const PATIENTS_PAGE: &str = "query BenchPatientsPage($first: Int!) { patients(first: $first) { edges { node { firstName careTeam { provider { name } } } } } }";
pub const PATIENT_DETAIL: &str = "query BenchPatientDetail($id: UUID!, $from: DateTime!) { patient(id: $id) { firstName lastName contactMethods { type value } careTeam { role provider { name } } appointments(first: 10, from: $from) { edges { node { startsAt status } } } } }";
pub const PATIENT_SEARCH: &str = "query BenchPatientSearch($q: String!) { patients(first: 20, filter: {search: $q}) { edges { node { id firstName lastName } } } }";
pub const SCHEDULE: &str = "mutation BenchSchedule($patient: UUID!, $provider: UUID!, $starts: DateTime!, $ends: DateTime!) { scheduleAppointment(input: {patientId: $patient, providerId: $provider, startsAt: $starts, endsAt: $ends, reason: \"bench\"}) { id status } }";
pub const RECORD_EVENTS: &str = "mutation BenchRecordEvents($session: UUID!, $events: [SessionEventInput!]!) { recordSessionEvents(sessionId: $session, events: $events) { id } }";
pub const CANCEL: &str = "mutation BenchCancel($id: UUID!) { transitionAppointment(id: $id, to: CANCELLED, reason: \"bench\") { id status } }";

/// A response checked only for errors; `data` is scanned, not kept.
#[derive(Deserialize)]
struct Envelope {
    errors: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Scheduled {
    data: Option<ScheduledData>,
    errors: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduledData {
    schedule_appointment: IdOnly,
}

#[derive(Deserialize)]
struct IdOnly {
    id: uuid::Uuid,
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub struct HttpOp {
    kind: Kind,
    fx: Arc<Fixture>,
    client: reqwest::Client,
    url: String,
    /// The queries as JSON strings, ready to splice into a body.
    page_q: String,
    detail_q: String,
    search_q: String,
    schedule_q: String,
    cancel_q: String,
    events_q: String,
    write_day: DateTime<Utc>,
}

impl HttpOp {
    pub fn new(
        kind: Kind,
        fx: Arc<Fixture>,
        client: reqwest::Client,
        url: String,
        write_day: DateTime<Utc>,
    ) -> Result<Self> {
        let q = |s: &str| serde_json::to_string(s).context("encoding a query");
        Ok(Self {
            kind,
            fx,
            client,
            url,
            page_q: q(PATIENTS_PAGE)?,
            detail_q: q(PATIENT_DETAIL)?,
            search_q: q(PATIENT_SEARCH)?,
            schedule_q: q(SCHEDULE)?,
            cancel_q: q(CANCEL)?,
            events_q: q(RECORD_EVENTS)?,
            write_day,
        })
    }

    /// POSTs a body; the response body when the status is 200.
    async fn post(&self, bearer: &HeaderValue, body: String) -> Result<impl AsRef<[u8]>, String> {
        post(&self.client, &self.url, bearer, body).await
    }

    /// One request whose response is only checked for errors.
    async fn read(&self, bearer: &HeaderValue, body: String, rec: &mut Recorder) {
        read(&self.client, &self.url, bearer, body, rec).await
    }

    pub fn body(&self, kind: Kind, st: &mut WorkerState) -> String {
        match kind {
            Kind::PatientsPage { first } => {
                format!(
                    r#"{{"query":{},"variables":{{"first":{first}}}}}"#,
                    self.page_q
                )
            }
            Kind::PatientDetail => {
                let id = self.fx.next_patient(st);
                let from = rfc3339(Utc::now());
                format!(
                    r#"{{"query":{},"variables":{{"id":"{id}","from":"{from}"}}}}"#,
                    self.detail_q
                )
            }
            Kind::PatientSearch => {
                // Fragments are lower-case letters and one space: no escaping needed.
                let q = self.fx.next_search(st);
                format!(r#"{{"query":{},"variables":{{"q":"{q}"}}}}"#, self.search_q)
            }
            Kind::ScheduleCancel => {
                let patient = self.fx.next_patient(st);
                let (provider, starts, ends) = self.fx.write_slot(st, self.write_day);
                format!(
                    r#"{{"query":{},"variables":{{"patient":"{patient}","provider":"{provider}","starts":"{}","ends":"{}"}}}}"#,
                    self.schedule_q,
                    rfc3339(starts),
                    rfc3339(ends)
                )
            }
            Kind::RecordEvents { batch } => {
                let session = self.fx.therapy_session(st);
                let events = Value::Array(self.fx.events(st, batch));
                format!(
                    r#"{{"query":{},"variables":{{"session":"{session}","events":{events}}}}}"#,
                    self.events_q
                )
            }
        }
    }

    async fn schedule_cancel(&self, st: &mut WorkerState, rec: &mut Recorder) {
        let bearer = &self.fx.clinic(st).bearer;
        let body = self.body(Kind::ScheduleCancel, st);
        let started = Instant::now();
        let id = match self.post(bearer, body).await {
            Ok(bytes) => match serde_json::from_slice::<Scheduled>(bytes.as_ref()) {
                Ok(Scheduled {
                    data: Some(d),
                    errors: None,
                }) => {
                    rec.ok(started);
                    d.schedule_appointment.id
                }
                _ => {
                    rec.fail(started, || {
                        format!("scheduleAppointment: {}", snippet(bytes.as_ref()))
                    });
                    st.generation += 1;
                    return;
                }
            },
            Err(why) => {
                rec.fail(started, || format!("scheduleAppointment: {why}"));
                st.generation += 1;
                return;
            }
        };
        let body = format!(
            r#"{{"query":{},"variables":{{"id":"{id}"}}}}"#,
            self.cancel_q
        );
        let before = rec.errors();
        self.read(bearer, body, rec).await;
        if rec.errors() != before {
            // The slot may still be booked: move on to a fresh one.
            st.generation += 1;
        }
    }
}

impl Op for HttpOp {
    type State = WorkerState;

    fn state(&self, worker: usize, phase: u64) -> WorkerState {
        self.fx.state(worker, phase)
    }

    async fn run(&self, st: &mut WorkerState, rec: &mut Recorder) {
        match self.kind {
            Kind::ScheduleCancel => self.schedule_cancel(st, rec).await,
            kind @ Kind::RecordEvents { .. } => {
                let body = self.body(kind, st);
                self.read(&self.fx.clinic(st).therapist_bearer, body, rec)
                    .await;
            }
            kind => {
                let body = self.body(kind, st);
                self.read(&self.fx.clinic(st).bearer, body, rec).await;
            }
        }
    }
}

/// POSTs a GraphQL body to `url`; the response body when the status is 200.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    bearer: &HeaderValue,
    body: String,
) -> Result<impl AsRef<[u8]> + use<>, String> {
    let resp = client
        .post(url)
        .header(AUTHORIZATION, bearer.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status}: {}", snippet(&bytes)));
    }
    Ok(bytes)
}

/// One GraphQL request whose response is only checked for errors (any
/// GraphQL server: caregate, or a peer).
pub async fn read(
    client: &reqwest::Client,
    url: &str,
    bearer: &HeaderValue,
    body: String,
    rec: &mut Recorder,
) {
    let started = Instant::now();
    match post(client, url, bearer, body).await {
        Ok(bytes) => {
            let bytes = bytes.as_ref();
            match serde_json::from_slice::<Envelope>(bytes) {
                Ok(Envelope { errors: None }) => rec.ok(started),
                Ok(_) => rec.fail(started, || format!("GraphQL errors: {}", snippet(bytes))),
                Err(e) => rec.fail(started, || format!("not JSON ({e}): {}", snippet(bytes))),
            }
        }
        Err(why) => rec.fail(started, || why),
    }
}

fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned()
}

/// Sends one GraphQL request and returns the whole response (for logins
/// and the smoke checks before timing).
pub async fn call(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&HeaderValue>,
    body: &Value,
) -> Result<Value> {
    let mut req = client.post(url).json(body);
    if let Some(b) = bearer {
        req = req.header(AUTHORIZATION, b.clone());
    }
    let resp = req.send().await.context("POST /graphql")?;
    let status = resp.status();
    let text = resp.text().await.context("reading a response")?;
    anyhow::ensure!(status.is_success(), "HTTP {status}: {text}");
    let value: Value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
    anyhow::ensure!(
        value.get("errors").is_none(),
        "GraphQL errors: {}",
        value["errors"]
    );
    Ok(value)
}

/// Logs in over HTTP; returns the token.
pub async fn login(
    client: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
) -> Result<String> {
    let res = call(
        client,
        url,
        None,
        &json!({
            "query": "mutation BenchLogin($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            "variables": { "e": email, "p": password },
        }),
    )
    .await
    .with_context(|| format!("logging in as {email}"))?;
    res["data"]["login"]["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("login as {email} returned no token: {res}"))
}
