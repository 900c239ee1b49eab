//! The audit trail over the API: reads and writes are recorded with the
//! actor and the request id of the response; the trail is for the clinic's
//! ADMIN and holds only their clinic; a super admin reaches a clinic only
//! in an explicit impersonation, recorded as such.

use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient, user};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app};

const AUDIT: &str = "query($first: Int, $after: String, $f: AuditEventFilter) {
    auditEvents(first: $first, after: $after, filter: $f) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id action resourceType resourceId resourceIds actorId impersonatorId requestId changes occurredAt } }
    } }";

/// POSTs one operation with extra headers; returns status and body.
async fn post_with(
    app: &TestApp,
    token: &str,
    headers: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("sending");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON body"))
}

fn request_id(res: &Value) -> String {
    res["extensions"]["requestId"]
        .as_str()
        .unwrap_or_else(|| panic!("a request id: {res}"))
        .to_owned()
}

/// A READ event as stored.
#[derive(Debug)]
struct Read {
    organization_id: Option<Uuid>,
    actor_user_id: Option<Uuid>,
    impersonator_id: Option<Uuid>,
    resource_type: String,
    resource_id: Option<Uuid>,
}

type ReadRow = (
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
    String,
    Option<Uuid>,
);

async fn reads_of_request(owner: &PgPool, request_id: &str) -> Vec<Read> {
    let rows: Vec<ReadRow> = sqlx::query_as(
        // Each patient read: named alone, or listed in the request's event.
        "SELECT organization_id, actor_user_id, impersonator_id, resource_type,
                coalesce(listed, resource_id) AS resource_id
         FROM audit_events LEFT JOIN LATERAL unnest(resource_ids) AS listed ON true
         WHERE request_id = $1 AND action = 'READ' ORDER BY 5",
    )
    .bind(request_id)
    .fetch_all(owner)
    .await
    .expect("reading the trail");
    rows.into_iter()
        .map(
            |(organization_id, actor_user_id, impersonator_id, resource_type, resource_id)| Read {
                organization_id,
                actor_user_id,
                impersonator_id,
                resource_type,
                resource_id,
            },
        )
        .collect()
}

fn node_ids(connection: &Value) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("a connection: {connection}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<Option<Uuid>>) -> Vec<Option<Uuid>> {
    ids.sort();
    ids
}

#[tokio::test]
async fn reading_patients_writes_one_read_event_per_request_naming_each_patient() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let admin = user(&owner, "admin@northside.example").await;
    let token = app.login_as("admin@northside.example").await;
    let reads_by_admin = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE action = 'READ' AND actor_user_id = $1",
        )
        .bind(admin)
        .fetch_one(&owner)
        .await
        .unwrap()
    };
    assert_eq!(reads_by_admin().await, 0);

    let list = "{ patients(first: 3) { edges { node { id mrn } } } }";
    let res = app.graphql(Some(&token), list, json!({})).await;
    assert!(res.get("errors").is_none(), "{res}");
    let returned = node_ids(&res["data"]["patients"]);
    assert_eq!(returned.len(), 3);
    let first_request = request_id(&res);
    let reads = reads_of_request(&owner, &first_request).await;
    assert_eq!(reads.len(), 3, "each patient returned is read: {reads:?}");
    assert_eq!(
        sorted(reads.iter().map(|r| r.resource_id).collect()),
        returned.iter().copied().map(Some).collect::<Vec<_>>()
    );
    for r in &reads {
        assert_eq!(r.resource_type, "patients");
        assert_eq!(r.actor_user_id, Some(admin));
        assert_eq!(r.organization_id, Some(a));
        assert_eq!(r.impersonator_id, None);
    }
    // ... in one event, as FHIR's AuditEvent lists many entities.
    assert_eq!(reads_by_admin().await, 1);

    // A second request: three more, under its own request id — even when
    // the same patient appears twice in it.
    let res = app
        .graphql(
            Some(&token),
            "query($p: UUID!) { patients(first: 3) { edges { node { id } } } again: patient(id: $p) { id mrn } }",
            json!({ "p": returned[0] }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    let second_request = request_id(&res);
    assert_ne!(second_request, first_request);
    let reads = reads_of_request(&owner, &second_request).await;
    assert_eq!(
        reads.len(),
        3,
        "one READ per patient per request: {reads:?}"
    );
    assert_eq!(
        sorted(reads.iter().map(|r| r.resource_id).collect()),
        returned.iter().copied().map(Some).collect::<Vec<_>>()
    );
    assert_eq!(reads_by_admin().await, 2);
    assert_eq!(reads_of_request(&owner, &first_request).await.len(), 3);

    // A request that returns no patient reads none.
    let res = app
        .graphql(Some(&token), "{ providers { totalCount } }", json!({}))
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert!(reads_of_request(&owner, &request_id(&res)).await.is_empty());
    assert_eq!(reads_by_admin().await, 2);
}

#[tokio::test]
async fn a_patient_update_is_audited_with_its_changes_and_listed_newest_first() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let admin = user(&owner, "admin@northside.example").await;
    let marcus = patient(&owner, "NS-0004").await;
    let token = app.login_as("admin@northside.example").await;
    let update = "mutation($id: UUID!, $i: UpdatePatientInput!) { updatePatient(id: $id, input: $i) { lastName firstName } }";

    let res = app
        .graphql(
            Some(&token),
            update,
            json!({ "id": marcus, "i": { "lastName": "Johnson-Reid" } }),
        )
        .await;
    assert_eq!(
        res["data"]["updatePatient"]["lastName"], "Johnson-Reid",
        "{res}"
    );
    let first_write = request_id(&res);
    let res = app
        .graphql(
            Some(&token),
            update,
            json!({ "id": marcus, "i": { "firstName": "Marc" } }),
        )
        .await;
    assert_eq!(res["data"]["updatePatient"]["firstName"], "Marc", "{res}");
    let second_write = request_id(&res);

    let filter = json!({ "resourceId": marcus, "action": "UPDATE" });
    let res = app
        .graphql(
            Some(&token),
            AUDIT,
            json!({ "first": 10, "f": filter.clone() }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    let events = &res["data"]["auditEvents"];
    assert_eq!(events["totalCount"], 2, "{res}");
    let edges = events["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    let (newest, oldest) = (&edges[0]["node"], &edges[1]["node"]);
    for e in [newest, oldest] {
        assert_eq!(e["action"], "UPDATE");
        assert_eq!(e["resourceType"], "patients");
        assert_eq!(e["resourceId"], json!(marcus));
        assert_eq!(e["actorId"], json!(admin));
        assert!(e["impersonatorId"].is_null());
    }
    assert_eq!(
        newest["changes"],
        json!({ "before": { "first_name": "Marcus" }, "after": { "first_name": "Marc" } }),
        "only the changed columns: {res}"
    );
    assert_eq!(newest["requestId"], second_write.as_str());
    assert_eq!(
        oldest["changes"],
        json!({ "before": { "last_name": "Johnson" }, "after": { "last_name": "Johnson-Reid" } }),
        "{res}"
    );
    assert_eq!(oldest["requestId"], first_write.as_str());
    let at = |e: &Value| chrono::DateTime::parse_from_rfc3339(e["occurredAt"].as_str().unwrap());
    assert!(at(newest).unwrap() >= at(oldest).unwrap(), "newest first");
    assert_eq!(events["pageInfo"]["hasNextPage"], false);

    // One at a time.
    let res = app
        .graphql(
            Some(&token),
            AUDIT,
            json!({ "first": 1, "f": filter.clone() }),
        )
        .await;
    let page = &res["data"]["auditEvents"];
    assert_eq!(page["totalCount"], 2, "{res}");
    assert_eq!(page["edges"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["edges"][0]["node"]["id"], newest["id"]);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let cursor = page["pageInfo"]["endCursor"].clone();
    assert!(cursor.is_string(), "{res}");
    let res = app
        .graphql(
            Some(&token),
            AUDIT,
            json!({ "first": 1, "after": cursor, "f": filter }),
        )
        .await;
    let page = &res["data"]["auditEvents"];
    assert_eq!(page["totalCount"], 2, "{res}");
    assert_eq!(page["edges"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["edges"][0]["node"]["id"], oldest["id"]);
    assert_eq!(page["pageInfo"]["hasNextPage"], false);

    // The other filters narrow the same trail.
    let res = app
        .graphql(
            Some(&token),
            AUDIT,
            json!({ "f": { "resourceType": "patients", "actorId": admin, "action": "UPDATE" } }),
        )
        .await;
    assert_eq!(res["data"]["auditEvents"]["totalCount"], 2, "{res}");
    let res = app
        .graphql(
            Some(&token),
            AUDIT,
            json!({ "f": { "resourceId": marcus, "action": "READ" } }),
        )
        .await;
    assert_eq!(
        res["data"]["auditEvents"]["totalCount"], 2,
        "each update returned the chart once: {res}"
    );
}

#[tokio::test]
async fn the_audit_trail_is_for_clinic_admins_and_holds_only_their_clinic() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let b = org(&owner, "lakeside").await;
    let sofia = patient(&owner, "NS-0002").await;

    for email in ["frontdesk@northside.example", "dr.okafor@northside.example"] {
        let token = app.login_as(email).await;
        let res = app
            .graphql(Some(&token), AUDIT, json!({ "first": 5 }))
            .await;
        assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{email}: {res}");
        assert_eq!(first_error(&res)["reason"], "ROLE", "{email}");
        assert!(res["data"].is_null(), "{email}: {res}");
    }
    let ingrid = app.login_as("ingrid.andersson@example.com").await;
    let res = app
        .graphql(Some(&ingrid), AUDIT, json!({ "first": 5 }))
        .await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "a proxy: {res}");

    let north = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(
            Some(&north),
            "query($p: UUID!) { patient(id: $p) { mrn } }",
            json!({ "p": sofia }),
        )
        .await;
    assert_eq!(res["data"]["patient"]["mrn"], "NS-0002", "{res}");
    let filter = json!({ "f": { "resourceId": sofia } });
    let res = app.graphql(Some(&north), AUDIT, filter.clone()).await;
    let seen = res["data"]["auditEvents"]["totalCount"]
        .as_i64()
        .unwrap_or_else(|| panic!("{res}"));
    assert!(seen >= 2, "her chart's creation and the read: {res}");

    let lake = app.login_as("admin@lakeside.example").await;
    let res = app.graphql(Some(&lake), AUDIT, filter).await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(res["data"]["auditEvents"]["totalCount"], 0, "{res}");
    assert_eq!(res["data"]["auditEvents"]["edges"], json!([]));

    // Whatever either admin lists belongs to their own clinic.
    for (token, mine) in [(&north, a), (&lake, b)] {
        let res = app
            .graphql(Some(token), AUDIT, json!({ "first": 100 }))
            .await;
        assert!(res.get("errors").is_none(), "{res}");
        let ids: Vec<Uuid> = res["data"]["auditEvents"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(!ids.is_empty());
        let foreign: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM unnest($1::uuid[]) AS listed (id)
             LEFT JOIN audit_events e ON e.id = listed.id
             WHERE e.organization_id IS DISTINCT FROM $2",
        )
        .bind(&ids)
        .bind(mine)
        .fetch_one(&owner)
        .await
        .unwrap();
        assert_eq!(foreign, 0, "events of another clinic listed");
        let total = res["data"]["auditEvents"]["totalCount"].as_i64().unwrap();
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE organization_id = $1")
                .bind(mine)
                .fetch_one(&owner)
                .await
                .unwrap();
        assert!(
            total <= stored,
            "totalCount {total} counts beyond the clinic's {stored} events"
        );
    }
}

#[tokio::test]
async fn a_super_admin_reads_a_clinic_only_through_an_audited_impersonation() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let b = org(&owner, "lakeside").await;
    let support = user(&owner, "support@caregate.example").await;
    let token = app.login_in("support@caregate.example", Some(a)).await;
    let north = a.to_string();
    let impersonate = [("x-caregate-impersonate", north.as_str())];
    let query = "{ me { role impersonating organization { slug } }
                   patients(first: 3) { totalCount edges { node { id mrn } } } }";

    let (status, res) = post_with(&app, &token, &impersonate, query, json!({})).await;
    assert_eq!(status, 200, "{res}");
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(
        res["data"]["me"],
        json!({ "role": "ADMIN", "impersonating": true, "organization": { "slug": "northside" } })
    );
    assert_eq!(res["data"]["patients"]["totalCount"], 8);
    let returned = node_ids(&res["data"]["patients"]);
    assert_eq!(returned.len(), 3);
    let reads = reads_of_request(&owner, &request_id(&res)).await;
    assert_eq!(reads.len(), 3, "{reads:?}");
    assert_eq!(
        sorted(reads.iter().map(|r| r.resource_id).collect()),
        returned.iter().copied().map(Some).collect::<Vec<_>>()
    );
    for r in &reads {
        assert_eq!(
            r.impersonator_id,
            Some(support),
            "recorded as impersonation"
        );
        assert_eq!(r.organization_id, Some(a));
    }

    // The clinic's admin sees the impersonation in the trail.
    let admin = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(
            Some(&admin),
            AUDIT,
            json!({ "f": { "action": "READ", "actorId": support } }),
        )
        .await;
    // One event, listing the three patients read.
    assert_eq!(res["data"]["auditEvents"]["totalCount"], 1, "{res}");
    let event = &res["data"]["auditEvents"]["edges"][0]["node"];
    assert_eq!(event["impersonatorId"], json!(support), "{res}");
    let listed: Vec<Uuid> = serde_json::from_value(event["resourceIds"].clone()).unwrap();
    assert_eq!(
        sorted(listed.into_iter().map(Some).collect()),
        sorted(reads.iter().map(|r| r.resource_id).collect()),
        "{res}"
    );

    // The same token without naming the clinic is refused.
    let (status, res) = post_with(&app, &token, &[], query, json!({})).await;
    assert_eq!(status, 401, "{res}");
    assert_eq!(error_codes(&res), vec!["UNAUTHENTICATED"], "{res}");
    assert!(res["data"].is_null(), "{res}");

    // A super admin names a clinic to log in at all, and is told so.
    let res = app
        .graphql(
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            json!({ "e": "support@caregate.example", "p": crate::support::app::DEMO_PASSWORD }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(
        res["errors"][0]["extensions"]["field"], "organizationId",
        "{res}"
    );
    assert!(res["data"].is_null(), "{res}");

    // The header gives nothing to someone who is not a super admin.
    let lake = b.to_string();
    let (status, res) = post_with(
        &app,
        &admin,
        &[("x-caregate-impersonate", lake.as_str())],
        query,
        json!({}),
    )
    .await;
    assert!(
        !res.to_string().contains("LS-"),
        "a clinic admin reached another clinic ({status}): {res}"
    );
    assert!(
        status == 401 || res["data"]["me"]["organization"]["slug"] == "northside",
        "{status}: {res}"
    );
}

#[tokio::test]
async fn an_impersonation_stays_in_the_clinic_the_super_admin_logged_in_to() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let b = org(&owner, "lakeside").await;
    let token = app.login_in("support@caregate.example", Some(a)).await;
    let before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = 'READ'",
    )
    .bind(b)
    .fetch_one(&owner)
    .await
    .unwrap();

    // The session was opened for Northside; naming Lakeside on a request
    // of it does not move it there (a session acts in one clinic; every
    // request must name the clinic the login named).
    let lake = b.to_string();
    let (status, res) = post_with(
        &app,
        &token,
        &[("x-caregate-impersonate", lake.as_str())],
        "{ me { organization { slug } } patients(first: 3) { totalCount edges { node { mrn } } } }",
        json!({}),
    )
    .await;
    assert!(
        !res.to_string().contains("LS-") && res["data"]["me"]["organization"]["slug"] != "lakeside",
        "a Northside impersonation session reached Lakeside ({status}): {res}"
    );
    assert_eq!(status, 401, "{res}");
    assert_eq!(error_codes(&res), vec!["UNAUTHENTICATED"], "{res}");
    let after: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE organization_id = $1 AND action = 'READ'",
    )
    .bind(b)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(after, before, "no Lakeside chart was read");
}

#[tokio::test]
async fn a_resource_lookup_finds_its_events_across_monthly_partitions_newest_first() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let north = org(&owner, "northside").await;
    let lake = org(&owner, "lakeside").await;
    let marcus = patient(&owner, "NS-0004").await;
    // Events of the chart in three months (each its own partition, the
    // oldest waiting in DEFAULT), and one of the other clinic naming the
    // same id, which must not show.
    sqlx::query("SELECT app.audit_partition_create('2024-07-01')")
        .execute(&owner)
        .await
        .unwrap();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO audit_events (occurred_at, organization_id, action, resource_type, resource_id) \
         VALUES ('2024-07-04T10:00:00Z', $1, 'READ', 'patients', $3), \
                ('2019-02-01T10:00:00Z', $1, 'READ', 'patients', $3), \
                (now() - interval '1 second', $1, 'READ', 'patients', $3), \
                ('2024-07-05T10:00:00Z', $2, 'READ', 'patients', $3) \
         RETURNING id",
    )
    .bind(north)
    .bind(lake)
    .bind(marcus)
    .fetch_all(&owner)
    .await
    .unwrap();
    let homes: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT tableoid::regclass::text FROM audit_events WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&owner)
    .await
    .unwrap();
    assert!(homes.len() >= 3, "{homes:?}");

    let token = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(
            Some(&token),
            AUDIT,
            json!({ "first": 2, "f": { "resourceId": marcus, "action": "READ" } }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    let events = &res["data"]["auditEvents"];
    assert_eq!(events["totalCount"], 3, "{res}");
    let mut seen: Vec<Value> = events["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].clone())
        .collect();
    assert_eq!(seen, [json!(ids[2]), json!(ids[0])], "newest first: {res}");
    let after = events["pageInfo"]["endCursor"].clone();
    let res = app
        .graphql(
            Some(&token),
            AUDIT,
            json!({ "first": 2, "after": after, "f": { "resourceId": marcus, "action": "READ" } }),
        )
        .await;
    let edges = res["data"]["auditEvents"]["edges"].as_array().unwrap();
    seen.extend(edges.iter().map(|e| e["node"]["id"].clone()));
    assert_eq!(seen, [json!(ids[2]), json!(ids[0]), json!(ids[1])], "{res}");
    assert_eq!(res["data"]["auditEvents"]["pageInfo"]["hasNextPage"], false);
}
