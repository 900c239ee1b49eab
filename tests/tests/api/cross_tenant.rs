//! Clinic A's token against clinic B's ids: direct, nested, through
//! filters, with aliases and in batches — nothing of B comes back, and
//! nothing of B changes; directly and through a transaction-mode pooler.

use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient, provider};
use crate::support::app::{Route, TestApp, error_codes, spawn_app_on};

/// A digest of every row of clinic B, to prove nothing of it changed.
async fn clinic_b_digest(owner: &PgPool, b: Uuid) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for table in [
        "patients",
        "providers",
        "contact_methods",
        "care_team_assignments",
        "appointments",
        "payer_authorizations",
        "proxy_assignments",
    ] {
        let digest: Option<String> = sqlx::query_scalar(crate::support::q(format!(
            "SELECT md5(string_agg(to_jsonb(t)::text, '' ORDER BY id)) FROM {table} t WHERE organization_id = $1"
        )))
        .bind(b)
        .fetch_one(owner)
        .await
        .unwrap();
        out.push(digest);
    }
    out
}

struct Ids {
    b: Uuid,
    b_patient: Uuid,
    b_patient2: Uuid,
    b_provider: Uuid,
    b_assignment: Uuid,
    a_patient: Uuid,
    a_provider: Uuid,
}

async fn ids(app: &TestApp) -> Ids {
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let b = org(&owner, "lakeside").await;
    let b_patient = patient(&owner, "LS-0002").await;
    let b_assignment: Uuid =
        sqlx::query_scalar("SELECT id FROM care_team_assignments WHERE patient_id = $1 LIMIT 1")
            .bind(b_patient)
            .fetch_one(&owner)
            .await
            .unwrap();
    Ids {
        b,
        b_patient,
        b_patient2: patient(&owner, "LS-0004").await,
        b_provider: provider(&owner, b, "1333333338").await,
        b_assignment,
        a_patient: patient(&owner, "NS-0002").await,
        a_provider: provider(&owner, a, "1456789019").await,
    }
}

/// Every MRN anywhere in a response.
fn mrns(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "mrn" {
                        if let Some(s) = v.as_str() {
                            out.push(s.to_owned());
                        }
                    } else {
                        walk(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

async fn clinic_a_cannot_read_clinic_b_patient_or_provider_by_id(route: Route) {
    let app = spawn_app_on(route, |_| {}).await;
    let ids = ids(&app).await;
    let token = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(
            Some(&token),
            "query($p: UUID!, $v: UUID!) { patient(id: $p) { id mrn } provider(id: $v) { id name } }",
            json!({ "p": ids.b_patient, "v": ids.b_provider }),
        )
        .await;
    assert_eq!(
        res["data"],
        json!({ "patient": null, "provider": null }),
        "{res}"
    );
    assert!(
        res.get("errors").is_none(),
        "a foreign id looks exactly like a missing one: {res}"
    );
    let missing = app
        .graphql(
            Some(&token),
            "query($p: UUID!) { patient(id: $p) { id } }",
            json!({ "p": Uuid::from(ulid::Ulid::generate()) }),
        )
        .await;
    assert_eq!(missing["data"], json!({ "patient": null }));
}

async fn clinic_a_lists_filters_and_searches_only_its_own_patients(route: Route) {
    let app = spawn_app_on(route, |_| {}).await;
    let ids = ids(&app).await;
    let token = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(
            Some(&token),
            "query($v: UUID!) {
               all: patients(first: 100) { totalCount edges { node { mrn } } }
               byProvider: patients(filter: { providerId: $v }) { totalCount edges { node { mrn } } }
               byName: patients(filter: { search: \"olivia\" }) { totalCount edges { node { mrn } } }
               byMrn: patients(filter: { mrn: \"LS-0002\" }) { totalCount edges { node { mrn } } }
               providers(first: 100) { totalCount edges { node { npi name } } }
             }",
            json!({ "v": ids.b_provider }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    let all = mrns(&res["data"]["all"]);
    assert_eq!(all.len(), 8);
    assert!(all.iter().all(|m| m.starts_with("NS-")), "{all:?}");
    assert_eq!(res["data"]["all"]["totalCount"], 8);
    for alias in ["byProvider", "byName", "byMrn"] {
        assert_eq!(res["data"][alias]["totalCount"], 0, "{alias}: {res}");
        assert!(mrns(&res["data"][alias]).is_empty(), "{alias}");
    }
    let names: Vec<&str> = res["data"]["providers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4);
    assert!(!names.contains(&"Dr. Fatima Rahman"));
}

async fn nested_traversals_aliases_and_batches_stay_inside_clinic_a(route: Route) {
    let app = spawn_app_on(route, |_| {}).await;
    let ids = ids(&app).await;
    let token = app.login_as("admin@northside.example").await;
    let nested = app
        .graphql(
            Some(&token),
            "{ patients(first: 10) { edges { node { mrn careTeam { patient { mrn } provider { npi
                 patients(first: 5) { edges { node { mrn primaryProvider { patients(first: 5) { edges { node { mrn } } } } } } } } } } } } }",
            json!({}),
        )
        .await;
    assert!(nested.get("errors").is_none(), "{nested}");
    let seen = mrns(&nested);
    assert!(seen.len() > 10);
    assert!(seen.iter().all(|m| m.starts_with("NS-")), "{seen:?}");

    let aliased = app
        .graphql(
            Some(&token),
            "query($a: UUID!, $b: UUID!, $c: UUID!) { x: patient(id: $a) { mrn } y: patient(id: $b) { mrn } z: provider(id: $c) { name } }",
            json!({ "a": ids.b_patient, "b": ids.b_patient2, "c": ids.b_provider }),
        )
        .await;
    assert_eq!(aliased["data"], json!({ "x": null, "y": null, "z": null }));

    let (status, batch) = app
        .post(
            Some(&token),
            &json!([
                { "query": "query($a: UUID!) { patient(id: $a) { mrn } }", "variables": { "a": ids.b_patient } },
                { "query": "{ patients(filter: { search: \"smith\" }) { edges { node { mrn } } } }" },
            ]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(batch[0]["data"], json!({ "patient": null }));
    assert_eq!(mrns(&batch[1]), vec!["NS-0001".to_owned()]);
}

async fn clinic_a_cannot_change_anything_of_clinic_b(route: Route) {
    let app = spawn_app_on(route, |_| {}).await;
    let ids = ids(&app).await;
    let owner = app.db.owner().await;
    let before = clinic_b_digest(&owner, ids.b).await;
    let token = app.login_as("admin@northside.example").await;
    let attempts: Vec<(&str, Value, &str)> = vec![
        (
            "mutation($id: UUID!) { updatePatient(id: $id, input: { lastName: \"Taken\" }) { id } }",
            json!({ "id": ids.b_patient }),
            "NOT_FOUND",
        ),
        (
            "mutation($id: UUID!) { dischargePatient(id: $id) { id } }",
            json!({ "id": ids.b_patient }),
            "NOT_FOUND",
        ),
        (
            "mutation($id: UUID!) { addContactMethod(patientId: $id, input: { type: MOBILE, value: \"+1 555 0100 999\" }) { id } }",
            json!({ "id": ids.b_patient }),
            "NOT_FOUND",
        ),
        (
            "mutation($p: UUID!, $v: UUID!) { assignPrimaryProvider(patientId: $p, providerId: $v) { id } }",
            json!({ "p": ids.b_patient, "v": ids.a_provider }),
            "NOT_FOUND",
        ),
        (
            "mutation($p: UUID!, $v: UUID!) { assignPrimaryProvider(patientId: $p, providerId: $v) { id } }",
            json!({ "p": ids.a_patient, "v": ids.b_provider }),
            "BAD_USER_INPUT",
        ),
        (
            "mutation($p: UUID!, $v: UUID!) { addCareTeamMember(patientId: $p, providerId: $v, role: CONSULTANT) { id } }",
            json!({ "p": ids.b_patient, "v": ids.b_provider }),
            "NOT_FOUND",
        ),
        (
            "mutation($id: UUID!) { removeCareTeamMember(assignmentId: $id) { id } }",
            json!({ "id": ids.b_assignment }),
            "NOT_FOUND",
        ),
        (
            "mutation($id: UUID!) { switchOrganization(organizationId: $id) { token } }",
            json!({ "id": ids.b }),
            "NOT_FOUND",
        ),
    ];
    for (query, vars, code) in attempts {
        let res = app.graphql(Some(&token), query, vars).await;
        assert_eq!(error_codes(&res), vec![code.to_owned()], "{query}: {res}");
    }
    assert_eq!(
        before,
        clinic_b_digest(&owner, ids.b).await,
        "clinic B's rows changed"
    );
}

async fn the_person_with_charts_at_both_clinics_sees_the_primary_of_the_clinic_of_the_token(
    route: Route,
) {
    let app = spawn_app_on(route, |_| {}).await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let b = org(&owner, "lakeside").await;
    let query = "{ me { role organization { slug } } patients { edges { node { mrn primaryProvider { name } } } } }";
    for (clinic, slug, mrn, primary) in [
        (a, "northside", "NS-0001", "Dr. Amara Okafor"),
        (b, "lakeside", "LS-0001", "Dr. Erik Lindqvist"),
    ] {
        let token = app
            .login_in("jonathan.smith@example.com", Some(clinic))
            .await;
        let res = app.graphql(Some(&token), query, json!({})).await;
        assert!(res.get("errors").is_none(), "{res}");
        assert_eq!(
            res["data"]["me"],
            json!({ "role": "PORTAL", "organization": { "slug": slug } })
        );
        assert_eq!(
            res["data"]["patients"]["edges"],
            json!([{ "node": { "mrn": mrn, "primaryProvider": { "name": primary } } }])
        );
    }
}

crate::support::on_every_route!(
    clinic_a_cannot_read_clinic_b_patient_or_provider_by_id,
    clinic_a_lists_filters_and_searches_only_its_own_patients,
    nested_traversals_aliases_and_batches_stay_inside_clinic_a,
    clinic_a_cannot_change_anything_of_clinic_b,
    the_person_with_charts_at_both_clinics_sees_the_primary_of_the_clinic_of_the_token,
);
