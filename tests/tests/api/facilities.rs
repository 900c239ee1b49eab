//! Facilities (sites), their staff, and staff limited to some sites.
//!
//! The demo's Northside has two sites: Rosa Diaz keeps the front desk at
//! Harlem only, Tom Reyes at both. Every path to an appointment, a session
//! or a facility is tried as Rosa, with Tom's answer to the same query as
//! the proof that the path does reach the other site's rows.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient, provider, sqlstate, user};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app};
use crate::support::valid_npi;

pub(crate) const ADMIN: &str = "admin@northside.example";
pub(crate) const TOM: &str = "frontdesk@northside.example";
pub(crate) const ROSA: &str = "frontdesk.harlem@northside.example";
pub(crate) const LAKESIDE_ADMIN: &str = "admin@lakeside.example";

const UWS: &str = "Northside Upper West Side";
const HARLEM: &str = "Northside Harlem";

const OKAFOR_NPI: &str = "1234567893";
const HALE_NPI: &str = "1987654328";
const MENSAH_NPI: &str = "1765432103";

const FACILITY_FIELDS: &str =
    "id name address { line1 line2 city state postalCode } timezone phone isActive settings";
const SCHEDULE: &str = "mutation($i: ScheduleAppointmentInput!) { scheduleAppointment(input: $i) {
    id startsAt facility { id name } } }";
const SET_SCOPE: &str =
    "mutation($u: UUID!, $f: [UUID!]) { setStaffFacilityScope(userId: $u, facilityIds: $f) }";
const ASSIGN: &str = "mutation($i: AssignFacilityStaffInput!) { assignFacilityStaff(input: $i) {
    id role startsOn endsOn user { id displayName email } provider { id name } } }";
const REMOVE: &str =
    "mutation($id: UUID!) { removeFacilityStaff(id: $id) { id role user { displayName } } }";
const STAFF: &str = "query($id: UUID!) { facility(id: $id) { staff {
    id role startsOn endsOn user { id displayName } provider { id name } } } }";

fn create_mutation() -> String {
    format!(
        "mutation($i: CreateFacilityInput!) {{ createFacility(input: $i) {{ {FACILITY_FIELDS} }} }}"
    )
}

fn update_mutation() -> String {
    format!(
        "mutation($id: UUID!, $i: UpdateFacilityInput!) {{ updateFacility(id: $id, input: $i) {{ {FACILITY_FIELDS} }} }}"
    )
}

/// The data of a response, asserting it carries no error.
fn ok(res: &Value) -> &Value {
    assert!(res.get("errors").is_none(), "refused: {res}");
    &res["data"]
}

/// Asserts a response is one error with `code` whose extension `key` is
/// `value` (`field` or `reason`).
fn assert_refused(res: &Value, code: &str, key: &str, value: &str) {
    assert_eq!(error_codes(res), vec![code], "{res}");
    assert_eq!(first_error(res)[key], value, "{res}");
}

/// The node ids of a connection's edges, in order (none for a null list).
fn edge_ids(conn: &Value) -> Vec<String> {
    conn["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| e["node"]["id"].as_str().expect("a node id").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every `id` anywhere in a response.
fn all_ids(v: &Value) -> HashSet<String> {
    fn walk(v: &Value, out: &mut HashSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("id", Some(s)) => {
                            out.insert(s.to_owned());
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = HashSet::new();
    walk(v, &mut out);
    out
}

fn strings(ids: &[Uuid]) -> HashSet<String> {
    ids.iter().map(Uuid::to_string).collect()
}

/// `hour`:`minute` UTC, `days` from today (UTC).
fn at(days: i64, hour: u32, minute: u32) -> DateTime<Utc> {
    (Utc::now().date_naive() + Duration::days(days))
        .and_hms_opt(hour, minute, 0)
        .expect("a time of day")
        .and_utc()
}

/// Northside, its two demo sites and the rows the tests name.
pub(crate) struct Northside {
    pub(crate) clinic: Uuid,
    pub(crate) uws: Uuid,
    pub(crate) harlem: Uuid,
    pub(crate) okafor: Uuid,
    pub(crate) hale: Uuid,
    pub(crate) mensah: Uuid,
    pub(crate) rosa: Uuid,
    pub(crate) tom: Uuid,
}

async fn facility_named(owner: &PgPool, clinic: Uuid, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM facilities WHERE organization_id = $1 AND name = $2")
        .bind(clinic)
        .bind(name)
        .fetch_one(owner)
        .await
        .expect("a demo facility")
}

pub(crate) async fn northside(owner: &PgPool) -> Northside {
    let clinic = org(owner, "northside").await;
    Northside {
        clinic,
        uws: facility_named(owner, clinic, UWS).await,
        harlem: facility_named(owner, clinic, HARLEM).await,
        okafor: provider(owner, clinic, OKAFOR_NPI).await,
        hale: provider(owner, clinic, HALE_NPI).await,
        mensah: provider(owner, clinic, MENSAH_NPI).await,
        rosa: user(owner, ROSA).await,
        tom: user(owner, TOM).await,
    }
}

/// Puts Northside's visits at no facility where the demo means them to
/// be: Dr. Hale's and Dr. Mensah's at Harlem, the rest at the Upper West
/// Side. (The demo's own placement runs before its visits are inserted and
/// places none of them: see
/// `the_demo_holds_northside_visits_at_its_two_sites`.) The isolation tests
/// do not rest on that.
pub(crate) async fn place_visits(owner: &PgPool, ns: &Northside) {
    sqlx::query(
        "UPDATE appointments SET facility_id = CASE WHEN provider_id IN ($2, $3) THEN $4 ELSE $5 END
         WHERE organization_id = $1 AND facility_id IS NULL",
    )
    .bind(ns.clinic)
    .bind(ns.hale)
    .bind(ns.mensah)
    .bind(ns.harlem)
    .bind(ns.uws)
    .execute(owner)
    .await
    .expect("placing the visits");
}

/// Ids of the live appointments at a facility.
pub(crate) async fn appointments_at(owner: &PgPool, facility: Uuid) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT id FROM appointments WHERE facility_id = $1 AND deleted_at IS NULL ORDER BY starts_at, id",
    )
    .bind(facility)
    .fetch_all(owner)
    .await
    .expect("appointments of a facility")
}

/// A Northside appointment at no facility (as history the operator wrote):
/// outside every limited scope.
async fn appointment_at_no_facility(owner: &PgPool, ns: &Northside) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO appointments (organization_id, patient_id, provider_id, starts_at, ends_at, reason)
         SELECT $1, p.id, $2, $3::timestamptz, $3::timestamptz + interval '30 minutes', 'No site recorded'
         FROM patients p WHERE p.medical_record_number = 'NS-0004'
         RETURNING id",
    )
    .bind(ns.clinic)
    .bind(ns.okafor)
    .bind(at(50, 15, 0).to_rfc3339())
    .fetch_one(owner)
    .await
    .expect("an appointment at no facility")
}

async fn book(
    app: &TestApp,
    token: &str,
    patient: Uuid,
    provider: Uuid,
    starts: DateTime<Utc>,
    facility: Option<Uuid>,
) -> Value {
    app.graphql(
        Some(token),
        SCHEDULE,
        json!({ "i": { "patientId": patient, "providerId": provider,
                       "startsAt": starts.to_rfc3339(),
                       "endsAt": (starts + Duration::minutes(30)).to_rfc3339(),
                       "reason": "Follow-up", "facilityId": facility } }),
    )
    .await
}

async fn create_facility(app: &TestApp, token: &str, input: Value) -> Value {
    app.graphql(Some(token), &create_mutation(), json!({ "i": input }))
        .await
}

async fn update_facility(app: &TestApp, token: &str, id: &Value, input: Value) -> Value {
    app.graphql(
        Some(token),
        &update_mutation(),
        json!({ "id": id, "i": input }),
    )
    .await
}

/// What a token sees of the clinic's sites and schedule: facility names,
/// appointment ids and the appointments' `totalCount`.
async fn seen(app: &TestApp, token: &str) -> (Vec<String>, HashSet<String>, i64) {
    let res = app
        .graphql(
            Some(token),
            "{ facilities(first: 20) { edges { node { name } } }
               appointments(first: 50) { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    let data = ok(&res);
    let names = data["facilities"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
        .collect();
    let ids = edge_ids(&data["appointments"]).into_iter().collect();
    let total = data["appointments"]["totalCount"].as_i64().unwrap();
    (names, ids, total)
}

/// Two queries (a request takes at most 10 root fields) reaching
/// appointments by every list path: the root list with each filter, then
/// nested lists of a patient, providers and facilities.
const SCHEDULE_PATHS: [&str; 2] = [
    "query($okafor: UUID!, $jonathan: UUID!, $uws: UUID!, $day: Date!) {
       all: appointments(first: 20) { ...page }
       byProvider: appointments(first: 20, filter: { providerId: $okafor }) { ...page }
       byPatient: appointments(first: 20, filter: { patientId: $jonathan }) { ...page }
       byDay: appointments(first: 20, filter: { on: $day }) { ...page }
       atUws: appointments(first: 20, filter: { facilityId: $uws }) { ...page }
       atUwsOnDay: appointments(first: 20, filter: { facilityId: $uws, on: $day, providerId: $okafor }) { ...page }
     }
     fragment page on AppointmentConnection { totalCount edges { cursor node { id facility { id name } } } }",
    "query($okafor: UUID!, $hale: UUID!, $jonathan: UUID!, $uws: UUID!, $harlem: UUID!) {
       patient(id: $jonathan) { appointments(first: 20) { ...page } }
       okafor: provider(id: $okafor) { appointments(first: 20) { ...page } }
       hale: provider(id: $hale) { appointments(first: 20) { ...page } }
       uws: facility(id: $uws) { id name staff { id } appointments(first: 20) { ...page } }
       harlem: facility(id: $harlem) { id name appointments(first: 20) { ...page } }
       facilities(first: 20) { pageInfo { hasNextPage } edges { node { id name } } }
     }
     fragment page on AppointmentConnection { totalCount edges { cursor node { id facility { id name } } } }",
];

/// The data of both [`SCHEDULE_PATHS`] queries as one object.
async fn schedule_paths(app: &TestApp, token: &str, vars: &Value) -> Value {
    let mut data = serde_json::Map::new();
    for query in SCHEDULE_PATHS {
        let res = app.graphql(Some(token), query, vars.clone()).await;
        data.extend(ok(&res).as_object().expect("data").clone());
    }
    Value::Object(data)
}

/// The appointment lists of [`SCHEDULE_PATHS`] (JSON pointers into `data`).
const LISTS: [&str; 11] = [
    "/all",
    "/byProvider",
    "/byPatient",
    "/byDay",
    "/atUws",
    "/atUwsOnDay",
    "/patient/appointments",
    "/okafor/appointments",
    "/hale/appointments",
    "/uws/appointments",
    "/harlem/appointments",
];

#[tokio::test]
async fn a_site_limited_user_reads_no_appointment_of_another_site_by_any_path() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    place_visits(&owner, &ns).await;
    let jonathan = patient(&owner, "NS-0001").await;
    let nowhere = appointment_at_no_facility(&owner, &ns).await;
    let at_uws = appointments_at(&owner, ns.uws).await;
    let at_harlem = appointments_at(&owner, ns.harlem).await;
    assert!(
        at_uws.len() >= 2 && at_harlem.len() >= 2,
        "the demo has visits at both sites"
    );
    let harlem_ids = strings(&at_harlem);
    // Rows Rosa must never see: the other site, its appointments, and the
    // appointment at no site.
    let mut hidden = strings(&at_uws);
    hidden.insert(nowhere.to_string());
    hidden.insert(ns.uws.to_string());
    // A day with a visit at the Upper West Side (its clinic-local day: the
    // site keeps the clinic's time zone).
    let day: String = sqlx::query_scalar(
        "SELECT ((starts_at AT TIME ZONE 'America/New_York')::date)::text FROM appointments
         WHERE facility_id = $1 AND provider_id = $2 ORDER BY starts_at DESC LIMIT 1",
    )
    .bind(ns.uws)
    .bind(ns.okafor)
    .fetch_one(&owner)
    .await
    .unwrap();

    let vars = json!({ "okafor": ns.okafor, "hale": ns.hale, "jonathan": jonathan,
                       "uws": ns.uws, "harlem": ns.harlem, "day": day });
    let tom_token = app.login_as(TOM).await;
    let rosa_token = app.login_as(ROSA).await;
    let tom = &schedule_paths(&app, &tom_token, &vars).await;
    let rosa = &schedule_paths(&app, &rosa_token, &vars).await;

    // Tom sees both sites, and the appointment at none.
    let tom_all: HashSet<String> = edge_ids(&tom["all"]).into_iter().collect();
    assert_eq!(
        tom["all"]["totalCount"],
        at_uws.len() + at_harlem.len() + 1,
        "{tom}"
    );
    assert!(
        tom_all.is_superset(&harlem_ids) && tom_all.contains(&nowhere.to_string()),
        "{tom}"
    );
    assert_eq!(
        tom["facilities"]["edges"],
        json!([{ "node": { "id": ns.harlem, "name": HARLEM } },
               { "node": { "id": ns.uws, "name": UWS } }])
    );
    assert_eq!(tom["uws"]["name"], UWS);

    // Rosa: exactly the Harlem part of what Tom sees, on every list.
    for list in LISTS {
        let theirs = edge_ids(tom.pointer(list).unwrap_or(&Value::Null));
        let hers = edge_ids(rosa.pointer(list).unwrap_or(&Value::Null));
        let expected: Vec<String> = theirs
            .iter()
            .filter(|id| harlem_ids.contains(*id))
            .cloned()
            .collect();
        assert_eq!(hers, expected, "{list}: Rosa saw {hers:?}, Tom {theirs:?}");
        if !["/hale/appointments", "/harlem/appointments"].contains(&list) {
            assert!(
                theirs.iter().any(|id| hidden.contains(id)),
                "{list} reaches the other site for Tom: {theirs:?}"
            );
        }
        let total = &rosa.pointer(list).unwrap_or(&Value::Null)["totalCount"];
        if !total.is_null() {
            assert_eq!(total, hers.len(), "{list}: counts exclude the other site");
        }
    }
    assert_eq!(rosa["all"]["totalCount"], at_harlem.len());
    assert_eq!(rosa["atUws"]["totalCount"], 0);
    assert_eq!(rosa["byProvider"]["totalCount"], 0);
    assert_eq!(
        rosa["uws"],
        Value::Null,
        "the other site is not found by id"
    );
    assert_eq!(rosa["harlem"]["name"], HARLEM);
    assert_eq!(
        rosa["facilities"],
        json!({ "pageInfo": { "hasNextPage": false },
                "edges": [{ "node": { "id": ns.harlem, "name": HARLEM } }] })
    );
    let leaked: Vec<String> = all_ids(rosa).intersection(&hidden).cloned().collect();
    assert!(leaked.is_empty(), "Rosa saw {leaked:?}");

    // node / nodes of the other site's appointments.
    let ids = json!([at_uws[0], at_harlem[0], nowhere, at_uws[1]]);
    let query = "query($id: ID!, $ids: [ID!]!) { node(id: $id) { id } nodes(ids: $ids) { id } }";
    let res = app
        .graphql(
            Some(&rosa_token),
            query,
            json!({ "id": at_uws[0], "ids": ids }),
        )
        .await;
    assert_eq!(
        ok(&res),
        &json!({ "node": null,
                 "nodes": [null, { "id": at_harlem[0] }, null, null] })
    );
    let res = app
        .graphql(
            Some(&tom_token),
            query,
            json!({ "id": at_uws[0], "ids": ids }),
        )
        .await;
    assert_eq!(
        ok(&res),
        &json!({ "node": { "id": at_uws[0] },
                 "nodes": [{ "id": at_uws[0] }, { "id": at_harlem[0] }, { "id": nowhere }, { "id": at_uws[1] }] })
    );
}

#[tokio::test]
async fn the_demo_holds_northside_visits_at_its_two_sites() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    let misplaced: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT a.starts_at::text, pr.npi, f.name FROM appointments a
         JOIN providers pr ON pr.id = a.provider_id
         LEFT JOIN facilities f ON f.id = a.facility_id
         WHERE a.organization_id = $1
           AND f.name IS DISTINCT FROM CASE WHEN pr.npi IN ($2, $3) THEN $4 ELSE $5 END
         ORDER BY a.starts_at",
    )
    .bind(ns.clinic)
    .bind(HALE_NPI)
    .bind(MENSAH_NPI)
    .bind(HARLEM)
    .bind(UWS)
    .fetch_all(&owner)
    .await
    .unwrap();
    assert!(
        misplaced.is_empty(),
        "Dr. Hale's and Dr. Mensah's visits belong at Harlem, the rest at the Upper West Side; \
         (start, NPI, facility) of those elsewhere: {misplaced:#?}"
    );
    // So Rosa's schedule is Dr. Hale's and Dr. Mensah's three visits.
    let rosa = app.login_as(ROSA).await;
    let res = app
        .graphql(
            Some(&rosa),
            "{ appointments(first: 20) { totalCount edges { node { provider { npi } } } } }",
            json!({}),
        )
        .await;
    let list = &ok(&res)["appointments"];
    assert_eq!(list["totalCount"], 3, "{res}");
    assert!(
        list["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| [HALE_NPI, MENSAH_NPI]
                .contains(&e["node"]["provider"]["npi"].as_str().unwrap())),
        "{res}"
    );
}

#[tokio::test]
async fn a_cursor_of_an_unlimited_user_replayed_by_a_site_limited_one_skips_the_other_site() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    place_visits(&owner, &ns).await;
    let nowhere = appointment_at_no_facility(&owner, &ns).await;
    let harlem_ids = strings(&appointments_at(&owner, ns.harlem).await);
    let tom = app.login_as(TOM).await;
    let rosa = app.login_as(ROSA).await;

    let res = app
        .graphql(
            Some(&tom),
            "{ appointments(first: 50) { edges { cursor node { id } } } }",
            json!({}),
        )
        .await;
    let edges = ok(&res)["appointments"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    let order: Vec<String> = edges
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(order.contains(&nowhere.to_string()));
    assert!(order.len() > harlem_ids.len() + 1, "{order:?}");

    let page = "query($after: String!, $harlem: UUID!) {
        appointments(first: 50, after: $after) { totalCount edges { node { id } } }
        facility(id: $harlem) { appointments(first: 50, after: $after) { edges { node { id } } } } }";
    for (i, edge) in edges.iter().enumerate() {
        let res = app
            .graphql(
                Some(&rosa),
                page,
                json!({ "after": edge["cursor"], "harlem": ns.harlem }),
            )
            .await;
        let data = ok(&res);
        let expected: Vec<String> = order[i + 1..]
            .iter()
            .filter(|id| harlem_ids.contains(*id))
            .cloned()
            .collect();
        assert_eq!(
            edge_ids(&data["appointments"]),
            expected,
            "after Tom's edge {i}"
        );
        assert_eq!(
            edge_ids(&data["facility"]["appointments"]),
            expected,
            "Harlem's list after Tom's edge {i}"
        );
        assert_eq!(
            data["appointments"]["totalCount"],
            harlem_ids.len(),
            "the count ignores the cursor and the other site"
        );
    }

    // The same with the list of facilities (by name: Harlem, then UWS).
    let res = app
        .graphql(
            Some(&tom),
            "{ facilities(first: 1) { pageInfo { hasNextPage endCursor } edges { node { name } } } }",
            json!({}),
        )
        .await;
    let first = &ok(&res)["facilities"];
    assert_eq!(first["edges"][0]["node"]["name"], HARLEM);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let res = app
        .graphql(
            Some(&rosa),
            "query($after: String!) { facilities(first: 5, after: $after) { pageInfo { hasNextPage } edges { node { name } } } }",
            json!({ "after": first["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(
        ok(&res)["facilities"],
        json!({ "pageInfo": { "hasNextPage": false }, "edges": [] })
    );
}

#[tokio::test]
async fn a_site_limited_user_sees_no_session_or_event_of_another_site() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    let jonathan = patient(&owner, "NS-0001").await;
    let sessions: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM therapy_sessions WHERE facility_id = $1")
            .bind(ns.uws)
            .fetch_all(&owner)
            .await
            .unwrap();
    let events: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM session_events WHERE facility_id = $1")
            .bind(ns.uws)
            .fetch_all(&owner)
            .await
            .unwrap();
    assert!(
        !sessions.is_empty() && !events.is_empty(),
        "the demo's signed session takes place at the Upper West Side"
    );
    let hidden: HashSet<String> = strings(&sessions)
        .into_iter()
        .chain(strings(&events))
        .collect();
    let query = "query($p: UUID!, $s: UUID!, $ids: [ID!]!) {
        sessions(first: 20) { totalCount edges { node { id events(first: 20) { edges { node { id } } } } } }
        session(id: $s) { id }
        nodes(ids: $ids) { id }
        patient(id: $p) { sessions(first: 20) { edges { node { id } } } }
        claims(first: 20) { edges { node { id lines { session { id } } } } } }";
    let ids: Vec<Uuid> = sessions.iter().chain(&events).copied().collect();
    let vars = json!({ "p": jonathan, "s": sessions[0], "ids": ids });

    let tom = app.login_as(TOM).await;
    let res = app.graphql(Some(&tom), query, vars.clone()).await;
    let theirs = all_ids(ok(&res));
    assert!(theirs.is_superset(&hidden), "Tom sees the session: {res}");
    assert_eq!(ok(&res)["session"]["id"], sessions[0].to_string());

    let rosa = app.login_as(ROSA).await;
    let res = app.graphql(Some(&rosa), query, vars).await;
    let data = ok(&res);
    let leaked: Vec<String> = all_ids(data).intersection(&hidden).cloned().collect();
    assert!(leaked.is_empty(), "Rosa saw {leaked:?}: {res}");
    assert_eq!(data["sessions"]["totalCount"], 0);
    assert_eq!(data["session"], Value::Null);
    assert!(
        data["nodes"].as_array().unwrap().iter().all(Value::is_null),
        "{res}"
    );
}

/// How many appointments of a patient a provider has (as the owner).
async fn bookings(owner: &PgPool, patient: Uuid, provider: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM appointments WHERE patient_id = $1 AND provider_id = $2",
    )
    .bind(patient)
    .bind(provider)
    .fetch_one(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_site_limited_user_books_only_at_their_own_site() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    place_visits(&owner, &ns).await;
    let marcus = patient(&owner, "NS-0004").await;
    let rosa = app.login_as(ROSA).await;

    // At no site: not booked (the exact refusal has a test of its own).
    let res = book(&app, &rosa, marcus, ns.hale, at(45, 14, 0), None).await;
    assert_eq!(res["data"], Value::Null, "{res}");
    assert_eq!(bookings(&owner, marcus, ns.hale).await, 0);
    let res = book(&app, &rosa, marcus, ns.hale, at(45, 14, 0), Some(ns.uws)).await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "facilityId");
    let res = book(
        &app,
        &rosa,
        marcus,
        ns.hale,
        at(45, 14, 0),
        Some(Uuid::new_v4()),
    )
    .await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "facilityId");

    let res = book(&app, &rosa, marcus, ns.hale, at(45, 14, 0), Some(ns.harlem)).await;
    let booked = &ok(&res)["scheduleAppointment"];
    assert_eq!(
        booked["facility"],
        json!({ "id": ns.harlem, "name": HARLEM })
    );
    let stored: Option<Uuid> =
        sqlx::query_scalar("SELECT facility_id FROM appointments WHERE id = $1::uuid")
            .bind(booked["id"].as_str().unwrap())
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(stored, Some(ns.harlem));

    // An unlimited user may book at no facility at all.
    let tom = app.login_as(TOM).await;
    let res = book(&app, &tom, marcus, ns.okafor, at(45, 16, 0), None).await;
    assert_eq!(
        ok(&res)["scheduleAppointment"]["facility"],
        Value::Null,
        "{res}"
    );

    // The other site's appointment cannot be moved.
    let uws_visit = appointments_at(&owner, ns.uws).await[0];
    let before: String = sqlx::query_scalar("SELECT status FROM appointments WHERE id = $1")
        .bind(uws_visit)
        .fetch_one(&owner)
        .await
        .unwrap();
    let res = app
        .graphql(
            Some(&rosa),
            "mutation($id: UUID!) { transitionAppointment(id: $id, to: CANCELLED, reason: \"x\") { id status } }",
            json!({ "id": uws_visit }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["NOT_FOUND"], "{res}");
    let after: String = sqlx::query_scalar("SELECT status FROM appointments WHERE id = $1")
        .bind(uws_visit)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(before, after);

    // Facility writes need an ADMIN: Rosa is STAFF.
    let res = create_facility(&app, &rosa, json!({ "name": "Rosa's own site" })).await;
    assert_refused(&res, "FORBIDDEN", "reason", "ROLE");
    let res = app
        .graphql(Some(&rosa), SET_SCOPE, json!({ "u": ns.rosa, "f": null }))
        .await;
    assert_refused(&res, "FORBIDDEN", "reason", "ROLE");
}

#[tokio::test]
async fn a_site_limited_user_must_name_the_facility_of_a_booking() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    let marcus = patient(&owner, "NS-0004").await;
    let rosa = app.login_as(ROSA).await;
    let res = book(&app, &rosa, marcus, ns.hale, at(45, 14, 0), None).await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "facilityId");
    assert_eq!(bookings(&owner, marcus, ns.hale).await, 0);
}

/// Makes Rosa an ADMIN of Northside, still limited to Harlem.
pub(crate) async fn rosa_as_admin(owner: &PgPool, ns: &Northside) {
    sqlx::query(
        "UPDATE organization_memberships SET role = 'ADMIN' WHERE user_id = $1 AND organization_id = $2",
    )
    .bind(ns.rosa)
    .bind(ns.clinic)
    .execute(owner)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_site_limited_admin_may_not_write_facilities_nor_lift_their_own_limit() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    rosa_as_admin(&owner, &ns).await;
    let rosa = app.login_as(ROSA).await;
    let digest = facilities_digest(&owner, ns.clinic).await;

    let mut answers = vec![
        (
            "createFacility",
            create_facility(&app, &rosa, json!({ "name": "Northside Bronx" })).await,
        ),
        (
            "updateFacility",
            update_facility(
                &app,
                &rosa,
                &json!(ns.harlem),
                json!({ "phone": "2125550111" }),
            )
            .await,
        ),
        (
            "assignFacilityStaff",
            app.graphql(
                Some(&rosa),
                ASSIGN,
                json!({ "i": { "facilityId": ns.harlem, "providerId": ns.okafor, "role": "CLINICIAN" } }),
            )
            .await,
        ),
    ];
    let harlem_assignment: Uuid = sqlx::query_scalar(
        "SELECT id FROM facility_staff WHERE facility_id = $1 AND provider_id = $2",
    )
    .bind(ns.harlem)
    .bind(ns.hale)
    .fetch_one(&owner)
    .await
    .unwrap();
    answers.push((
        "removeFacilityStaff",
        app.graphql(Some(&rosa), REMOVE, json!({ "id": harlem_assignment }))
            .await,
    ));
    answers.push((
        "setStaffFacilityScope",
        app.graphql(Some(&rosa), SET_SCOPE, json!({ "u": ns.rosa, "f": null }))
            .await,
    ));

    // Nothing changed, and she is still limited to Harlem...
    assert_eq!(
        facilities_digest(&owner, ns.clinic).await,
        digest,
        "a site-limited admin changed facilities, staff or scopes: {answers:#?}"
    );
    let (names, _, _) = seen(&app, &rosa).await;
    assert_eq!(names, vec![HARLEM], "still limited to Harlem");
    // ...and each write was refused as documented.
    let wrong: Vec<String> = answers
        .iter()
        .filter(|(_, res)| {
            error_codes(res) != ["FORBIDDEN"] || first_error(res)["reason"] != "FACILITY_SCOPE"
        })
        .map(|(what, res)| format!("{what}: {res}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "expected FORBIDDEN FACILITY_SCOPE:\n{}",
        wrong.join("\n")
    );
}

/// A digest of a clinic's facilities, their staff and the memberships'
/// scopes, to prove a refused write changed nothing.
async fn facilities_digest(owner: &PgPool, clinic: Uuid) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT md5(string_agg(to_jsonb(t)::text, '' ORDER BY id)) FROM facilities t WHERE organization_id = $1",
        "SELECT md5(string_agg(to_jsonb(t)::text, '' ORDER BY id)) FROM facility_staff t WHERE organization_id = $1",
        "SELECT md5(string_agg(user_id::text || coalesce(facility_scope::text, '-'), '' ORDER BY id)) FROM organization_memberships WHERE organization_id = $1",
    ] {
        out.push(
            sqlx::query_scalar(sql)
                .bind(clinic)
                .fetch_one(owner)
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn a_changed_facility_scope_applies_from_the_next_request_and_null_lifts_it() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    place_visits(&owner, &ns).await;
    let marcus = patient(&owner, "NS-0004").await;
    let nowhere = appointment_at_no_facility(&owner, &ns).await.to_string();
    let uws = strings(&appointments_at(&owner, ns.uws).await);
    let harlem = strings(&appointments_at(&owner, ns.harlem).await);
    let admin = app.login_as(ADMIN).await;
    let rosa = app.login_as(ROSA).await;
    let set = |ids: Value| {
        let (app, admin, rosa) = (&app, &admin, ns.rosa);
        async move {
            app.graphql(Some(admin), SET_SCOPE, json!({ "u": rosa, "f": ids }))
                .await
        }
    };

    let (names, ids, total) = seen(&app, &rosa).await;
    assert_eq!((names, &ids), (vec![HARLEM.to_owned()], &harlem));
    assert_eq!(total, harlem.len() as i64);

    // Moved to the Upper West Side: her very next request (same token).
    let res = set(json!([ns.uws])).await;
    assert_eq!(ok(&res)["setStaffFacilityScope"], json!([ns.uws]));
    let (names, ids, total) = seen(&app, &rosa).await;
    assert_eq!((names, &ids), (vec![UWS.to_owned()], &uws));
    assert_eq!(total, uws.len() as i64);
    let res = book(&app, &rosa, marcus, ns.hale, at(46, 14, 0), Some(ns.harlem)).await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "facilityId");
    let res = app
        .graphql(
            Some(&rosa),
            "query($id: UUID!) { facility(id: $id) { id } }",
            json!({ "id": ns.harlem }),
        )
        .await;
    assert_eq!(ok(&res)["facility"], Value::Null);

    // Both sites (a repeated id counts once): still not the visit at no site.
    let res = set(json!([ns.harlem, ns.uws, ns.harlem])).await;
    let mut both = vec![ns.harlem.to_string(), ns.uws.to_string()];
    both.sort();
    assert_eq!(ok(&res)["setStaffFacilityScope"], json!(both));
    let (names, ids, _) = seen(&app, &rosa).await;
    assert_eq!(names, vec![HARLEM, UWS]);
    assert_eq!(ids, uws.union(&harlem).cloned().collect::<HashSet<_>>());
    assert!(!ids.contains(&nowhere));

    // Refusals leave the scope as it is.
    for (ids, field) in [
        (json!([]), "facilityIds"),
        (json!([Uuid::new_v4()]), "facilityIds"),
    ] {
        let res = set(ids).await;
        assert_refused(&res, "BAD_USER_INPUT", "field", field);
    }
    let res = app
        .graphql(
            Some(&admin),
            SET_SCOPE,
            json!({ "u": Uuid::new_v4(), "f": [ns.harlem] }),
        )
        .await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "userId");
    let tom = app.login_as(TOM).await;
    let res = app
        .graphql(Some(&tom), SET_SCOPE, json!({ "u": ns.rosa, "f": null }))
        .await;
    assert_refused(&res, "FORBIDDEN", "reason", "ROLE");
    let (_, ids, _) = seen(&app, &rosa).await;
    assert_eq!(ids.len(), uws.len() + harlem.len());

    // null: every facility, and rows at none.
    let res = set(Value::Null).await;
    assert_eq!(ok(&res)["setStaffFacilityScope"], json!([]));
    let (names, ids, total) = seen(&app, &rosa).await;
    assert_eq!(names, vec![HARLEM, UWS]);
    assert!(ids.contains(&nowhere) && ids.is_superset(&uws) && ids.is_superset(&harlem));
    assert_eq!(total, (uws.len() + harlem.len() + 1) as i64);
    let res = book(&app, &rosa, marcus, ns.hale, at(46, 15, 0), None).await;
    assert_eq!(
        ok(&res)["scheduleAppointment"]["facility"],
        Value::Null,
        "no longer limited, no facility is needed"
    );
    let scope: Option<Vec<Uuid>> = sqlx::query_scalar(
        "SELECT facility_scope FROM organization_memberships WHERE user_id = $1",
    )
    .bind(ns.rosa)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(scope, None);

    // The unlimited one can be limited too, from his next request.
    let res = app
        .graphql(
            Some(&admin),
            SET_SCOPE,
            json!({ "u": ns.tom, "f": [ns.harlem] }),
        )
        .await;
    ok(&res);
    let (names, ids, _) = seen(&app, &tom).await;
    assert_eq!(names, vec![HARLEM]);
    assert!(ids.is_disjoint(&uws) && !ids.contains(&nowhere), "{ids:?}");
}

#[tokio::test]
async fn a_facility_round_trips_through_create_and_update() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    let marcus = patient(&owner, "NS-0004").await;
    let admin = app.login_as(ADMIN).await;

    let res = create_facility(
        &app,
        &admin,
        json!({ "name": "  Northside Bronx ",
                "address": { "line1": "1 Fordham Plaza", "line2": "Suite 300", "city": "Bronx",
                             "state": "NY", "postalCode": "10458-1234" },
                "timezone": "America/Chicago", "phone": "(718) 555-0142",
                "settings": { "parking": true, "floors": 3, "hours": { "mon": "9-5" } } }),
    )
    .await;
    let created = ok(&res)["createFacility"].clone();
    let id = created["id"].clone();
    assert_eq!(
        created,
        json!({ "id": id, "name": "Northside Bronx",
                "address": { "line1": "1 Fordham Plaza", "line2": "Suite 300", "city": "Bronx",
                             "state": "NY", "postalCode": "104581234" },
                "timezone": "America/Chicago", "phone": "7185550142", "isActive": true,
                "settings": { "parking": true, "floors": 3, "hours": { "mon": "9-5" } } })
    );
    let read = format!("query($id: UUID!) {{ facility(id: $id) {{ {FACILITY_FIELDS} }} }}");
    let res = app.graphql(Some(&admin), &read, json!({ "id": id })).await;
    assert_eq!(ok(&res)["facility"], created, "read back as created");

    // An omitted field stays; null clears an optional one.
    let res = update_facility(&app, &admin, &id, json!({ "phone": "212-555-0111" })).await;
    let updated = &ok(&res)["updateFacility"];
    assert_eq!(updated["phone"], "2125550111");
    assert_eq!(updated["timezone"], "America/Chicago");
    assert_eq!(updated["address"], created["address"]);
    let res = update_facility(
        &app,
        &admin,
        &id,
        json!({ "name": "Northside Bronx Annex", "address": null, "timezone": null, "phone": null,
                "settings": { "parking": false } }),
    )
    .await;
    assert_eq!(
        ok(&res)["updateFacility"],
        json!({ "id": id, "name": "Northside Bronx Annex", "address": null, "timezone": null,
                "phone": null, "isActive": true, "settings": { "parking": false } })
    );

    // Closed: listed as closed, not bookable; reopened: bookable again.
    let res = update_facility(&app, &admin, &id, json!({ "isActive": false })).await;
    assert_eq!(ok(&res)["updateFacility"]["isActive"], false);
    let lists = "{ open: facilities(filter: { isActive: true }) { edges { node { name } } }
                   closed: facilities(filter: { isActive: false }) { edges { node { name } } } }";
    let res = app.graphql(Some(&admin), lists, json!({})).await;
    assert_eq!(
        ok(&res),
        &json!({ "open": { "edges": [{ "node": { "name": HARLEM } }, { "node": { "name": UWS } }] },
                 "closed": { "edges": [{ "node": { "name": "Northside Bronx Annex" } }] } })
    );
    let facility: Uuid = id.as_str().unwrap().parse().unwrap();
    let tom = app.login_as(TOM).await;
    let res = book(&app, &tom, marcus, ns.okafor, at(47, 14, 0), Some(facility)).await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "facilityId");
    let res = update_facility(&app, &admin, &id, json!({ "isActive": true })).await;
    ok(&res);
    let res = book(&app, &tom, marcus, ns.okafor, at(47, 14, 0), Some(facility)).await;
    assert_eq!(
        ok(&res)["scheduleAppointment"]["facility"]["name"],
        "Northside Bronx Annex"
    );

    // Refusals.
    let before = facilities_digest(&owner, ns.clinic).await;
    for (input, code, key, value) in [
        (
            json!({ "name": "NORTHSIDE harlem" }),
            "CONFLICT",
            "reason",
            "DUPLICATE_FACILITY",
        ),
        (
            json!({ "name": " northside upper west side " }),
            "CONFLICT",
            "reason",
            "DUPLICATE_FACILITY",
        ),
        (
            json!({ "name": "Queens", "timezone": "Mars/Olympus_Mons" }),
            "BAD_USER_INPUT",
            "field",
            "timezone",
        ),
        (
            json!({ "name": "Queens", "timezone": "EST5EDT-not-a-zone" }),
            "BAD_USER_INPUT",
            "field",
            "timezone",
        ),
        (
            json!({ "name": "Queens", "settings": [1, 2] }),
            "BAD_USER_INPUT",
            "field",
            "settings",
        ),
        (
            json!({ "name": "Queens", "settings": "parking" }),
            "BAD_USER_INPUT",
            "field",
            "settings",
        ),
        (
            json!({ "name": "Queens", "phone": "555-01" }),
            "BAD_USER_INPUT",
            "field",
            "phone",
        ),
        (json!({ "name": "   " }), "BAD_USER_INPUT", "field", "name"),
    ] {
        let res = create_facility(&app, &admin, input.clone()).await;
        assert_refused(&res, code, key, value);
        assert_eq!(res["data"], Value::Null, "{input}");
    }
    for (input, code, key, value) in [
        (
            json!({ "name": "Northside Harlem" }),
            "CONFLICT",
            "reason",
            "DUPLICATE_FACILITY",
        ),
        (
            json!({ "timezone": "Nowhere/Atlantis" }),
            "BAD_USER_INPUT",
            "field",
            "timezone",
        ),
        (
            json!({ "settings": [{ "parking": true }] }),
            "BAD_USER_INPUT",
            "field",
            "settings",
        ),
    ] {
        let res = update_facility(&app, &admin, &id, input.clone()).await;
        assert_eq!(error_codes(&res), vec![code], "{input}: {res}");
        assert_eq!(first_error(&res)[key], value, "{input}: {res}");
    }
    assert_eq!(
        facilities_digest(&owner, ns.clinic).await,
        before,
        "nothing refused was written"
    );
    let res = update_facility(
        &app,
        &admin,
        &json!(Uuid::new_v4()),
        json!({ "name": "Ghost" }),
    )
    .await;
    assert_eq!(error_codes(&res), vec!["NOT_FOUND"], "{res}");
}

#[tokio::test]
async fn facility_staff_are_assigned_once_listed_and_removed_once() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    let admin = app.login_as(ADMIN).await;
    let admin_id = user(&owner, ADMIN).await;
    let res = create_facility(&app, &admin, json!({ "name": "Northside Bronx" })).await;
    let facility = ok(&res)["createFacility"]["id"].clone();
    let assign = |input: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            app.graphql(Some(admin), ASSIGN, json!({ "i": input }))
                .await
        }
    };

    let res = assign(
        json!({ "facilityId": facility, "userId": ns.tom, "role": "FRONT_DESK",
                             "startsOn": "2025-01-06" }),
    )
    .await;
    let toms = ok(&res)["assignFacilityStaff"].clone();
    assert_eq!(
        toms,
        json!({ "id": toms["id"], "role": "FRONT_DESK", "startsOn": "2025-01-06", "endsOn": null,
                "user": { "id": ns.tom, "displayName": "Tom Reyes", "email": TOM },
                "provider": null })
    );
    let today = Utc::now().date_naive();
    let res = assign(
        json!({ "facilityId": facility, "providerId": ns.okafor, "role": "CLINICIAN",
                             "endsOn": "2099-12-31" }),
    )
    .await;
    let okafors = ok(&res)["assignFacilityStaff"].clone();
    assert_eq!(okafors["user"], Value::Null);
    assert_eq!(
        okafors["provider"],
        json!({ "id": ns.okafor, "name": "Dr. Amara Okafor" })
    );
    assert_eq!(okafors["endsOn"], "2099-12-31");
    let starts: NaiveDate = okafors["startsOn"].as_str().unwrap().parse().unwrap();
    assert!(
        starts == today || starts == Utc::now().date_naive(),
        "today (UTC) when omitted: {starts}"
    );

    let res = app
        .graphql(Some(&admin), STAFF, json!({ "id": facility }))
        .await;
    let staff = &ok(&res)["facility"]["staff"];
    assert_eq!(
        staff
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].clone())
            .collect::<Vec<_>>(),
        vec![toms["id"].clone(), okafors["id"].clone()],
        "by the day their assignment starts: {staff}"
    );
    assert_eq!(staff[0]["user"]["displayName"], "Tom Reyes");
    assert_eq!(staff[0]["provider"], Value::Null);
    assert_eq!(staff[1]["provider"]["name"], "Dr. Amara Okafor");
    assert_eq!(staff[1]["user"], Value::Null);

    // One live assignment per person and site.
    for input in [
        json!({ "facilityId": facility, "userId": ns.tom, "role": "MANAGER" }),
        json!({ "facilityId": facility, "providerId": ns.okafor, "role": "CLINICIAN" }),
    ] {
        let res = assign(input).await;
        assert_refused(&res, "CONFLICT", "reason", "ALREADY_ASSIGNED");
    }
    // Exactly one of userId and providerId; only the clinic's own people.
    let lakeside_admin = user(&owner, LAKESIDE_ADMIN).await;
    let portal_user = user(&owner, "jonathan.smith@example.com").await;
    for (input, field) in [
        (
            json!({ "facilityId": facility, "userId": ns.rosa, "providerId": ns.hale, "role": "MANAGER" }),
            "userId",
        ),
        (
            json!({ "facilityId": facility, "role": "MANAGER" }),
            "userId",
        ),
        (
            json!({ "facilityId": facility, "userId": lakeside_admin, "role": "MANAGER" }),
            "userId",
        ),
        (
            json!({ "facilityId": facility, "userId": portal_user, "role": "FRONT_DESK" }),
            "userId",
        ),
        (
            json!({ "facilityId": facility, "providerId": Uuid::new_v4(), "role": "CLINICIAN" }),
            "providerId",
        ),
        (
            json!({ "facilityId": Uuid::new_v4(), "userId": ns.rosa, "role": "MANAGER" }),
            "facilityId",
        ),
        (
            json!({ "facilityId": facility, "userId": ns.rosa, "role": "MANAGER",
                    "startsOn": "2026-03-01", "endsOn": "2026-02-28" }),
            "endsOn",
        ),
    ] {
        let res = assign(input.clone()).await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{input}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{input}: {res}");
    }

    // Staff may not assign or remove.
    let tom = app.login_as(TOM).await;
    let res = app
        .graphql(
            Some(&tom),
            ASSIGN,
            json!({ "i": { "facilityId": facility, "userId": ns.rosa, "role": "FRONT_DESK" } }),
        )
        .await;
    assert_refused(&res, "FORBIDDEN", "reason", "ROLE");
    let res = app
        .graphql(Some(&tom), REMOVE, json!({ "id": toms["id"] }))
        .await;
    assert_refused(&res, "FORBIDDEN", "reason", "ROLE");

    // Removed once: kept with who removed it, gone from the list.
    let res = app
        .graphql(Some(&admin), REMOVE, json!({ "id": toms["id"] }))
        .await;
    assert_eq!(
        ok(&res)["removeFacilityStaff"],
        json!({ "id": toms["id"], "role": "FRONT_DESK", "user": { "displayName": "Tom Reyes" } })
    );
    let res = app
        .graphql(Some(&admin), REMOVE, json!({ "id": toms["id"] }))
        .await;
    assert_refused(&res, "CONFLICT", "reason", "ALREADY_REMOVED");
    let res = app
        .graphql(Some(&admin), REMOVE, json!({ "id": Uuid::new_v4() }))
        .await;
    assert_eq!(error_codes(&res), vec!["NOT_FOUND"], "{res}");
    let removed_by: Option<Uuid> =
        sqlx::query_scalar("SELECT removed_by FROM facility_staff WHERE id = $1::uuid")
            .bind(toms["id"].as_str().unwrap())
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(removed_by, Some(admin_id));
    let res = app
        .graphql(Some(&admin), STAFF, json!({ "id": facility }))
        .await;
    let staff = ok(&res)["facility"]["staff"].as_array().unwrap().clone();
    assert_eq!(staff.len(), 1, "{staff:?}");
    assert_eq!(staff[0]["id"], okafors["id"]);

    // After a removal the person can be assigned there again.
    let res = assign(json!({ "facilityId": facility, "userId": ns.tom, "role": "MANAGER" })).await;
    let again = &ok(&res)["assignFacilityStaff"];
    assert_ne!(again["id"], toms["id"]);
    assert_eq!(again["role"], "MANAGER");

    // A site-limited user sees the staff of their own site only.
    let rosa = app.login_as(ROSA).await;
    let res = app
        .graphql(
            Some(&rosa),
            "query($h: UUID!, $b: UUID!) { harlem: facility(id: $h) { staff { user { displayName } provider { name } } }
                                           bronx: facility(id: $b) { staff { id } } }",
            json!({ "h": ns.harlem, "b": facility }),
        )
        .await;
    let data = ok(&res);
    assert_eq!(data["bronx"], Value::Null);
    let names: HashSet<&str> = data["harlem"]["staff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["user"]["displayName"]
                .as_str()
                .or(s["provider"]["name"].as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        HashSet::from([
            "Tom Reyes",
            "Rosa Diaz",
            "Dr. Benjamin Hale",
            "Dr. Daniel Mensah"
        ])
    );
}

#[tokio::test]
async fn facility_staff_lists_only_who_works_there_now() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    let admin = app.login_as(ADMIN).await;
    let res = create_facility(&app, &admin, json!({ "name": "Northside Bronx" })).await;
    let facility = ok(&res)["createFacility"]["id"].clone();
    let res = app
        .graphql(
            Some(&admin),
            ASSIGN,
            json!({ "i": { "facilityId": facility, "userId": ns.tom, "role": "FRONT_DESK",
                           "startsOn": "2024-01-01", "endsOn": "2024-06-30" } }),
        )
        .await;
    ok(&res);
    let res = app
        .graphql(
            Some(&admin),
            ASSIGN,
            json!({ "i": { "facilityId": facility, "providerId": ns.okafor, "role": "CLINICIAN",
                           "startsOn": "2025-01-01" } }),
        )
        .await;
    let current = ok(&res)["assignFacilityStaff"]["id"].clone();
    let res = app
        .graphql(Some(&admin), STAFF, json!({ "id": facility }))
        .await;
    let ids: Vec<Value> = ok(&res)["facility"]["staff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![current],
        "`Facility.staff` is documented as who works there now: an assignment that ended on \
         2024-06-30 is not: {res}"
    );
}

#[tokio::test]
async fn a_day_filter_counts_days_in_the_facility_time_zone() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    let marcus = patient(&owner, "NS-0004").await;
    let admin = app.login_as(ADMIN).await;
    let tom = app.login_as(TOM).await;
    let new = |name: &'static str, tz: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            let res = create_facility(app, admin, json!({ "name": name, "timezone": tz })).await;
            let id: Uuid = ok(&res)["createFacility"]["id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            id
        }
    };
    // UTC+14 and UTC−11, neither with daylight saving time.
    let kiritimati = new("Northside Line Islands", "Pacific/Kiritimati").await;
    let pago = new("Northside Pago Pago", "Pacific/Pago_Pago").await;
    let d = Utc::now().date_naive() + Duration::days(40);
    let (prev, next) = (d - Duration::days(1), d + Duration::days(1));

    // 10:00 UTC on d is 00:00 on d+1 at Kiritimati (05:00 or 06:00 on d in
    // New York, the clinic's zone).
    let res = book(
        &app,
        &tom,
        marcus,
        ns.okafor,
        at(40, 10, 0),
        Some(kiritimati),
    )
    .await;
    let k = ok(&res)["scheduleAppointment"]["id"].clone();
    // 10:30 UTC on d+1 is 23:30 on d at Pago Pago (d+1 in New York).
    let res = book(&app, &tom, marcus, ns.okafor, at(41, 10, 30), Some(pago)).await;
    let p = ok(&res)["scheduleAppointment"]["id"].clone();
    // 03:30 UTC on d at the Upper West Side, which keeps the clinic's zone:
    // 22:30 (or 23:30) on d−1 in New York.
    let res = book(&app, &tom, marcus, ns.okafor, at(40, 3, 30), Some(ns.uws)).await;
    let u = ok(&res)["scheduleAppointment"]["id"].clone();

    let query = "query($d: Date!, $k: UUID!, $p: UUID!, $u: UUID!) {
        all: appointments(first: 100, filter: { on: $d }) { totalCount edges { node { id } } }
        k: appointments(filter: { on: $d, facilityId: $k }) { totalCount edges { node { id } } }
        p: appointments(filter: { on: $d, facilityId: $p }) { totalCount edges { node { id } } }
        u: appointments(filter: { on: $d, facilityId: $u }) { totalCount edges { node { id } } }
        kf: facility(id: $k) { appointments(on: $d) { edges { node { id } } } }
        pf: facility(id: $p) { appointments(on: $d) { edges { node { id } } } }
        uf: facility(id: $u) { appointments(on: $d) { edges { node { id } } } } }";
    let on = |day: NaiveDate| {
        let (app, tom) = (&app, &tom);
        async move {
            let res = app
                .graphql(
                    Some(tom),
                    query,
                    json!({ "d": day.to_string(), "k": kiritimati, "p": pago, "u": ns.uws }),
                )
                .await;
            ok(&res).clone()
        }
    };
    let ids = |v: &Value| -> Vec<Value> {
        edge_ids(v)
            .into_iter()
            .map(Value::String)
            .collect::<Vec<_>>()
    };
    // Which of the three each list holds on `day`: (k, p, u) for the root
    // list by facility, then for `Facility.appointments(on:)`.
    for (day, k_there, p_there, u_there) in [
        (prev, false, false, true),
        (d, false, true, false),
        (next, true, false, false),
    ] {
        let data = on(day).await;
        let all = ids(&data["all"]);
        for (id, there, list, nested) in [
            (&k, k_there, "k", "kf"),
            (&p, p_there, "p", "pf"),
            (&u, u_there, "u", "uf"),
        ] {
            let expected: Vec<Value> = if there { vec![id.clone()] } else { vec![] };
            assert_eq!(all.contains(id), there, "{day}: {list} in {data}");
            assert_eq!(ids(&data[list]), expected, "{day}: root {list}: {data}");
            assert_eq!(
                data[list]["totalCount"],
                expected.len(),
                "{day}: {list}: {data}"
            );
            assert_eq!(
                ids(&data[nested]["appointments"]),
                expected,
                "{day}: {nested}: {data}"
            );
        }
    }

    // The zone is read as it is now: without its own, Kiritimati's visit
    // falls on d (New York).
    let res = update_facility(
        &app,
        &admin,
        &json!(kiritimati),
        json!({ "timezone": null }),
    )
    .await;
    ok(&res);
    let data = on(d).await;
    assert_eq!(ids(&data["k"]), vec![k.clone()], "{data}");
    assert_eq!(ids(&data["kf"]["appointments"]), vec![k], "{data}");
}

#[tokio::test]
async fn another_clinic_sees_none_of_northside_facilities_and_cannot_staff_them() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    let lakeside = org(&owner, "lakeside").await;
    let lakeside_staff = user(&owner, "frontdesk@lakeside.example").await;
    let olivia = patient(&owner, "LS-0002").await;
    let rahman = provider(&owner, lakeside, "1333333338").await;
    let tom_assignment: Uuid = sqlx::query_scalar(
        "SELECT s.id FROM facility_staff s JOIN organization_memberships m ON m.id = s.membership_id
         WHERE s.facility_id = $1 AND m.user_id = $2",
    )
    .bind(ns.harlem)
    .bind(ns.tom)
    .fetch_one(&owner)
    .await
    .unwrap();
    let before = facilities_digest(&owner, ns.clinic).await;

    let token = app.login_as(LAKESIDE_ADMIN).await;
    // Names are unique per clinic: Lakeside may use Northside's.
    let res = create_facility(&app, &token, json!({ "name": "Northside Harlem" })).await;
    let own: Uuid = ok(&res)["createFacility"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let res = app
        .graphql(
            Some(&token),
            "query($h: UUID!, $u: UUID!, $ids: [ID!]!) {
               facilities(first: 20) { edges { node { id name } } }
               harlem: facility(id: $h) { id } uws: facility(id: $u) { id }
               node(id: $h) { id } nodes(ids: $ids) { id }
               atHarlem: appointments(filter: { facilityId: $h }) { totalCount edges { node { id } } } }",
            json!({ "h": ns.harlem, "u": ns.uws, "ids": [ns.harlem, ns.uws] }),
        )
        .await;
    assert_eq!(
        ok(&res),
        &json!({ "facilities": { "edges": [{ "node": { "id": own, "name": "Northside Harlem" } }] },
                 "harlem": null, "uws": null, "node": null, "nodes": [null, null],
                 "atHarlem": { "totalCount": 0, "edges": [] } })
    );

    let assign = |input: Value| {
        let (app, token) = (&app, &token);
        async move {
            app.graphql(Some(token), ASSIGN, json!({ "i": input }))
                .await
        }
    };
    for (input, field) in [
        (
            json!({ "facilityId": ns.harlem, "userId": lakeside_staff, "role": "FRONT_DESK" }),
            "facilityId",
        ),
        (
            json!({ "facilityId": own, "userId": ns.tom, "role": "FRONT_DESK" }),
            "userId",
        ),
        (
            json!({ "facilityId": own, "providerId": ns.hale, "role": "CLINICIAN" }),
            "providerId",
        ),
    ] {
        let res = assign(input.clone()).await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{input}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{input}: {res}");
    }
    let res = app
        .graphql(Some(&token), REMOVE, json!({ "id": tom_assignment }))
        .await;
    assert_eq!(error_codes(&res), vec!["NOT_FOUND"], "{res}");
    let res = update_facility(&app, &token, &json!(ns.harlem), json!({ "name": "Taken" })).await;
    assert_eq!(error_codes(&res), vec!["NOT_FOUND"], "{res}");
    let res = app
        .graphql(
            Some(&token),
            SET_SCOPE,
            json!({ "u": lakeside_staff, "f": [ns.harlem] }),
        )
        .await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "facilityIds");
    let res = app
        .graphql(Some(&token), SET_SCOPE, json!({ "u": ns.rosa, "f": [own] }))
        .await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "userId");
    let res = book(&app, &token, olivia, rahman, at(30, 15, 0), Some(ns.harlem)).await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "facilityId");

    // Nor does Northside reach Lakeside's.
    let admin = app.login_as(ADMIN).await;
    let res = app
        .graphql(Some(&admin), SET_SCOPE, json!({ "u": ns.rosa, "f": [own] }))
        .await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "facilityIds");
    let res = app
        .graphql(
            Some(&admin),
            "query($id: UUID!) { facility(id: $id) { id } facilities { edges { node { id } } } }",
            json!({ "id": own }),
        )
        .await;
    assert_eq!(ok(&res)["facility"], Value::Null);
    assert!(!all_ids(ok(&res)).contains(&own.to_string()));

    assert_eq!(
        facilities_digest(&owner, ns.clinic).await,
        before,
        "Northside's facilities, staff and scopes are untouched"
    );
}

#[tokio::test]
async fn a_facility_is_found_again_by_its_node_id_in_its_own_clinic() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    let query =
        "query($id: ID!, $ids: [ID!]!) { node(id: $id) { __typename id } nodes(ids: $ids) { id } }";
    let vars = json!({ "id": ns.harlem, "ids": [ns.uws, ns.harlem] });
    let tom = app.login_as(TOM).await;
    let res = app.graphql(Some(&tom), query, vars.clone()).await;
    assert_eq!(
        ok(&res),
        &json!({ "node": { "__typename": "Facility", "id": ns.harlem },
                 "nodes": [{ "id": ns.uws }, { "id": ns.harlem }] }),
        "`Facility.id` is documented as a Relay node id"
    );
    let rosa = app.login_as(ROSA).await;
    let res = app.graphql(Some(&rosa), query, vars).await;
    assert_eq!(
        ok(&res)["nodes"],
        json!([null, { "id": ns.harlem }]),
        "a site-limited user finds only their own site"
    );
}

#[tokio::test]
async fn a_dea_number_needs_its_check_digit() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let admin = app.login_as(ADMIN).await;
    let create =
        "mutation($i: CreateProviderInput!) { createProvider(input: $i) { id deaNumber } }";
    let provider = |dea: &'static str, seed: u32| {
        json!({ "i": { "name": "Dr. Iris Vale", "npi": valid_npi(seed), "deaNumber": dea,
                       "stateLicenses": ["NY"] } })
    };
    // (1 + 3 + 5) + 2 × (2 + 4 + 6) = 33: the check digit is 3.
    let res = app
        .graphql(Some(&admin), create, provider("AB1234564", 700_001))
        .await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "deaNumber");
    let res = app
        .graphql(Some(&admin), create, provider("AB1234563", 700_002))
        .await;
    let created = &ok(&res)["createProvider"];
    assert_eq!(created["deaNumber"], "AB1234563");

    // The database holds the same rule for every new or changed number.
    let err = sqlx::query("UPDATE providers SET dea_number = 'AB1234564' WHERE id = $1::uuid")
        .bind(created["id"].as_str().unwrap())
        .execute(&owner)
        .await
        .expect_err("an invalid check digit is refused");
    assert_eq!(sqlstate(&err), "23514");
}

#[tokio::test]
async fn billing_and_the_audit_trail_are_hidden_from_site_limited_staff() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    // Rosa as an ADMIN, still limited to Harlem: the demo's claim bills a
    // visit at the Upper West Side.
    rosa_as_admin(&owner, &ns).await;
    let claim: Uuid = sqlx::query_scalar("SELECT id FROM claims WHERE organization_id = $1")
        .bind(ns.clinic)
        .fetch_one(&owner)
        .await
        .unwrap();
    let rosa = app.login_as(ROSA).await;
    let res = app
        .graphql(
            Some(&rosa),
            "query($c: UUID!) { claims(first: 10) { totalCount edges { node { id } } }
               claim(id: $c) { id } node(id: $c) { id } }",
            json!({ "c": claim }),
        )
        .await;
    let data = ok(&res);
    assert_eq!(data["claims"]["totalCount"], 0, "{res}");
    assert_eq!(data["claim"], Value::Null, "{res}");
    assert_eq!(data["node"], Value::Null, "{res}");
    let res = app
        .graphql(
            Some(&rosa),
            "mutation($c: UUID!) { recordClaimResponse(id: $c, input: {status: REJECTED}) { id } }",
            json!({ "c": claim }),
        )
        .await;
    assert_refused(&res, "FORBIDDEN", "reason", "FACILITY_SCOPE");
    let res = app
        .graphql(
            Some(&rosa),
            "{ auditEvents(first: 5) { totalCount edges { node { resourceType } } } }",
            json!({}),
        )
        .await;
    assert_refused(&res, "FORBIDDEN", "reason", "FACILITY_SCOPE");
    let status: String = sqlx::query_scalar("SELECT status FROM claims WHERE id = $1")
        .bind(claim)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(status, "SUBMITTED");
    // The whole clinic's admin still sees both.
    let admin = app.login_as(ADMIN).await;
    let res = app
        .graphql(
            Some(&admin),
            "{ claims(first: 10) { totalCount } auditEvents(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(ok(&res)["claims"]["totalCount"], 1, "{res}");
}

#[tokio::test]
async fn a_day_outside_the_calendar_is_bad_input_not_an_error_of_the_server() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    let tom = app.login_as(TOM).await;
    for day in ["9999-12-31", "0001-01-01"] {
        let res = app
            .graphql(
                Some(&tom),
                "query($f: UUID!, $d: Date!) { facility(id: $f) { appointments(on: $d) { edges { node { id } } } }
                   appointments(filter: {on: $d}) { edges { node { id } } } }",
                json!({ "f": ns.harlem, "d": day }),
            )
            .await;
        assert!(
            error_codes(&res).iter().all(|c| c == "BAD_USER_INPUT")
                && !error_codes(&res).is_empty(),
            "{day}: {res}"
        );
        assert_eq!(first_error(&res)["field"], "on", "{day}: {res}");
    }
}
