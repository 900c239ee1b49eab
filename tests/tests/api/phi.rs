//! Encrypted PHI: an SSN is ciphertext in the database, readable through
//! the API (masked unless a role that needs it asks), found by blind index,
//! still readable after the master key is rotated and the clinic's data key
//! is replaced, and refused (never garbage) when tampered with.

use sea_orm::sqlx;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::{TEST_MASTER_KEYS, TestApp, default_config, first_error, spawn_app};
use crate::support::db::TestDb;

const ADMIN: &str = "admin@northside.example";
const STAFF: &str = "frontdesk@northside.example";
const DOCTOR: &str = "dr.okafor@northside.example";
const JONATHAN: &str = "jonathan.smith@example.com";

async fn jonathan(app: &TestApp) -> Uuid {
    let owner = app.db.owner().await;
    sqlx::query_scalar(
        "SELECT p.id FROM patients p JOIN organizations o ON o.id = p.organization_id \
         WHERE o.slug = 'northside' AND p.medical_record_number = 'NS-0001'",
    )
    .fetch_one(&owner)
    .await
    .unwrap()
}

async fn ssn_of(app: &TestApp, token: &str, patient: Uuid, unmasked: bool) -> Value {
    app.graphql(
        Some(token),
        "query($id: UUID!, $u: Boolean!) { patient(id: $id) { ssn(unmasked: $u) } }",
        json!({ "id": patient, "u": unmasked }),
    )
    .await
}

/// A second server on the same database, with these master keys.
async fn server_with_keys(db: &TestDb, keys: &str) -> TestApp {
    let mut config = default_config();
    config.database_url = Some(db.owner_url.clone());
    config.db_pool_size = 2;
    config.phi_master_keys = Some(keys.to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = caregate::server::Server::build(config, &db.owner_url, listener)
        .await
        .expect("building the server");
    let addr = server.local_addr().unwrap();
    let state = server.state.clone();
    tokio::spawn(server.run(std::future::pending()));
    TestApp {
        addr,
        db: TestDb::borrowed(db),
        client: reqwest::Client::new(),
        state,
    }
}

#[tokio::test]
async fn the_database_holds_only_ciphertext_and_the_api_shows_the_value_by_role() {
    let app = spawn_app().await;
    let patient = jonathan(&app).await;
    let owner = app.db.owner().await;
    let (enc, index): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT ssn_enc, ssn_index FROM patients WHERE id = $1")
            .bind(patient)
            .fetch_one(&owner)
            .await
            .unwrap();
    // Read as the owner: bytes that hold neither the digits nor the last four.
    let as_text = String::from_utf8_lossy(&enc);
    assert!(
        !as_text.contains("219099999") && !as_text.contains("9999"),
        "{enc:?}"
    );
    assert_eq!(enc[0], 1, "the ciphertext format byte");
    assert_eq!(index.len(), 32);
    let wrapped: Vec<u8> = sqlx::query_scalar(
        "SELECT wrapped FROM data_keys WHERE organization_id = \
         (SELECT organization_id FROM patients WHERE id = $1)",
    )
    .bind(patient)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(wrapped.len(), 60, "only a wrapped data key is stored");
    // Nowhere else either: not in the kept 837P, not in the audit trail.
    let plain: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM claims WHERE submitted_x12 IS NOT NULL) \
              + (SELECT count(*) FROM patient_insurances WHERE member_id IS NOT NULL) \
              + (SELECT count(*) FROM organizations WHERE tax_id IS NOT NULL) \
              + (SELECT count(*) FROM audit_events \
                 WHERE changes::text ~ '219099999|XJH418827301|131234567')",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(plain, 0, "a sealed value in the clear somewhere");

    let admin = app.login_as(ADMIN).await;
    let res = ssn_of(&app, &admin, patient, true).await;
    assert_eq!(res["data"]["patient"]["ssn"], "219-09-9999", "{res}");
    let staff = app.login_as(STAFF).await;
    let res = ssn_of(&app, &staff, patient, false).await;
    assert_eq!(res["data"]["patient"]["ssn"], "***-**-9999", "{res}");
    let doctor = app.login_as(DOCTOR).await;
    let res = ssn_of(&app, &doctor, patient, false).await;
    assert_eq!(res["data"]["patient"]["ssn"], "***-**-9999", "{res}");
    let res = ssn_of(&app, &doctor, patient, true).await;
    assert_eq!(first_error(&res)["code"], "FORBIDDEN", "{res}");
    assert_eq!(first_error(&res)["reason"], "ROLE", "{res}");
    let northside: Uuid =
        sqlx::query_scalar("SELECT id FROM organizations WHERE slug = 'northside'")
            .fetch_one(&owner)
            .await
            .unwrap();
    let me = app.login_in(JONATHAN, Some(northside)).await;
    let res = ssn_of(&app, &me, patient, false).await;
    assert_eq!(res["data"]["patient"]["ssn"], "***-**-9999", "{res}");
}

#[tokio::test]
async fn every_unmasked_read_is_an_audit_event_naming_the_field() {
    let app = spawn_app().await;
    let patient = jonathan(&app).await;
    let owner = app.db.owner().await;
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM audit_events WHERE action = 'READ' AND resource_id = $1 \
             AND changes ->> 'field' = 'ssn'",
        )
        .bind(patient)
        .fetch_one(&owner)
        .await
        .unwrap()
    };
    let staff = app.login_as(STAFF).await;
    ssn_of(&app, &staff, patient, false).await;
    assert_eq!(count().await, 0, "a masked read names no field");
    let res = ssn_of(&app, &staff, patient, true).await;
    assert_eq!(res["data"]["patient"]["ssn"], "219-09-9999", "{res}");
    assert_eq!(count().await, 1);
}

#[tokio::test]
async fn patients_are_found_by_ssn_through_the_blind_index_within_the_clinic() {
    let app = spawn_app().await;
    let patient = jonathan(&app).await;
    let staff = app.login_as(STAFF).await;
    let find = |token: String, ssn: &'static str| {
        let app = &app;
        async move {
            app.graphql(
                Some(&token),
                "query($s: String!) { patientsBySsn(ssn: $s) { id } }",
                json!({ "s": ssn }),
            )
            .await
        }
    };
    let res = find(staff.clone(), "219099999").await;
    assert_eq!(
        res["data"]["patientsBySsn"],
        json!([{ "id": patient }]),
        "{res}"
    );
    let res = find(staff.clone(), "219-09-9998").await;
    assert_eq!(res["data"]["patientsBySsn"], json!([]), "{res}");
    let res = find(staff, "000-00-0000").await;
    assert_eq!(first_error(&res)["field"], "ssn", "{res}");
    // Lakeside's staff: the same number finds nothing of Northside's.
    let lakeside = app.login_as("frontdesk@lakeside.example").await;
    let res = find(lakeside, "219-09-9999").await;
    assert_eq!(res["data"]["patientsBySsn"], json!([]), "{res}");
    let doctor = app.login_as(DOCTOR).await;
    let res = find(doctor, "219-09-9999").await;
    assert_eq!(first_error(&res)["code"], "FORBIDDEN", "{res}");
}

#[tokio::test]
async fn an_ssn_is_set_and_removed_by_staff_and_stored_sealed() {
    let app = spawn_app().await;
    let patient = jonathan(&app).await;
    let staff = app.login_as(STAFF).await;
    let set = |ssn: Value| {
        let (app, staff) = (&app, staff.clone());
        async move {
            app.graphql(
                Some(&staff),
                "mutation($id: UUID!, $s: String) { setPatientSsn(id: $id, ssn: $s) { ssn } }",
                json!({ "id": patient, "s": ssn }),
            )
            .await
        }
    };
    let res = set(json!("123-45-6789")).await;
    assert_eq!(res["data"]["setPatientSsn"]["ssn"], "***-**-6789", "{res}");
    let res = set(json!("123-45-678")).await;
    assert_eq!(first_error(&res)["field"], "ssn", "{res}");
    let res = set(Value::Null).await;
    assert_eq!(res["data"]["setPatientSsn"]["ssn"], Value::Null, "{res}");
    let owner = app.db.owner().await;
    let stored: Option<Vec<u8>> = sqlx::query_scalar("SELECT ssn_enc FROM patients WHERE id = $1")
        .bind(patient)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(stored, None);
    let doctor = app.login_as(DOCTOR).await;
    let res = app
        .graphql(
            Some(&doctor),
            "mutation($id: UUID!) { setPatientSsn(id: $id, ssn: \"123-45-6789\") { id } }",
            json!({ "id": patient }),
        )
        .await;
    assert_eq!(first_error(&res)["code"], "FORBIDDEN", "{res}");
}

#[tokio::test]
async fn tampered_ciphertext_is_refused_as_internal_never_shown() {
    let app = spawn_app().await;
    let patient = jonathan(&app).await;
    let owner = app.db.owner().await;
    sqlx::query(
        "UPDATE patients SET ssn_enc = overlay(ssn_enc PLACING \
         decode(lpad(to_hex(get_byte(ssn_enc, 30) # 1), 2, '0'), 'hex') FROM 31 FOR 1) \
         WHERE id = $1",
    )
    .bind(patient)
    .execute(&owner)
    .await
    .unwrap();
    let admin = app.login_as(ADMIN).await;
    let res = ssn_of(&app, &admin, patient, true).await;
    assert_eq!(first_error(&res)["code"], "INTERNAL", "{res}");
    assert_eq!(res["data"]["patient"]["ssn"], Value::Null, "{res}");
    // Another row's ciphertext copied over does not open either.
    sqlx::query(
        "UPDATE patients SET ssn_enc = (SELECT ssn_enc FROM patients WHERE id = $1), \
         ssn_index = (SELECT ssn_index FROM patients WHERE id = $1) \
         WHERE medical_record_number = 'NS-0002'",
    )
    .bind(patient)
    .execute(&owner)
    .await
    .unwrap();
    let sofia: Uuid =
        sqlx::query_scalar("SELECT id FROM patients WHERE medical_record_number = 'NS-0002'")
            .fetch_one(&owner)
            .await
            .unwrap();
    let res = ssn_of(&app, &admin, sofia, true).await;
    assert_eq!(first_error(&res)["code"], "INTERNAL", "{res}");
}

#[tokio::test]
async fn rotation_and_reencryption_leave_every_value_readable_and_findable() {
    let app = spawn_app().await;
    let patient = jonathan(&app).await;
    let owner = app.db.owner().await;
    let northside: Uuid =
        sqlx::query_scalar("SELECT id FROM organizations WHERE slug = 'northside'")
            .fetch_one(&owner)
            .await
            .unwrap();

    // A new master key beside the old; the data keys are re-wrapped.
    let both = format!(
        "{TEST_MASTER_KEYS}\n{}",
        service::phi::MasterKeys::generate_entry(2)
    );
    let keyring = service::phi::Keyring::new(service::phi::MasterKeys::parse(&both).unwrap());
    let db = caregate::db::connect_owner(&app.db.owner_url)
        .await
        .unwrap();
    let rewrapped = service::phi::admin::rotate(&db, &keyring)
        .await
        .unwrap()
        .data_keys;
    assert!(rewrapped >= 1);
    let again = service::phi::admin::rotate(&db, &keyring).await.unwrap();
    assert_eq!(
        (again.data_keys, again.user_secrets),
        (0, 0),
        "resumable: nothing left"
    );
    let masters: Vec<i32> = sqlx::query_scalar("SELECT DISTINCT master_version FROM data_keys")
        .fetch_all(&owner)
        .await
        .unwrap();
    assert_eq!(masters, vec![2]);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE resource_type = 'data_keys' AND action = 'UPDATE'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(audited as usize, rewrapped);

    // The clinic's values move to a new data key.
    let (version, moved) = service::phi::admin::reencrypt(&db, &keyring, northside, 1)
        .await
        .unwrap();
    // Jonathan's SSN, his coverage's member id, the clinic's tax id, the
    // submitted demo claim's 837P.
    assert_eq!((version, moved), (2, 4));
    let (again, all) = service::phi::admin::reencrypt(&db, &keyring, northside, 1)
        .await
        .unwrap();
    assert_eq!(
        (again, all),
        (3, 4),
        "a second run moves everything to a newer key"
    );
    let enc: Vec<u8> = sqlx::query_scalar("SELECT ssn_enc FROM patients WHERE id = $1")
        .bind(patient)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(&enc[1..5], &3i32.to_be_bytes(), "sealed under data key 3");

    // A server holding only the new master key reads and finds it.
    let new_only = both.lines().last().unwrap().to_owned();
    let fresh = server_with_keys(&app.db, &new_only).await;
    let admin = fresh.login_as(ADMIN).await;
    let res = ssn_of(&fresh, &admin, patient, true).await;
    assert_eq!(res["data"]["patient"]["ssn"], "219-09-9999", "{res}");
    let res = fresh
        .graphql(
            Some(&admin),
            "{ patientsBySsn(ssn: \"219-09-9999\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        res["data"]["patientsBySsn"],
        json!([{ "id": patient }]),
        "{res}"
    );
    let res = fresh
        .graphql(
            Some(&admin),
            "query($id: UUID!) { patient(id: $id) { insurances { memberId } }
               organization { billingIdentity { taxId } }
               claims(first: 5) { edges { node { x12 } } } }",
            json!({ "id": patient }),
        )
        .await;
    assert_eq!(
        res["data"]["patient"]["insurances"],
        json!([{ "memberId": "XJH418827301" }]),
        "{res}"
    );
    assert_eq!(
        res["data"]["organization"]["billingIdentity"]["taxId"], "131234567",
        "{res}"
    );
    let x12 = res["data"]["claims"]["edges"][0]["node"]["x12"]
        .as_str()
        .unwrap_or_default();
    assert!(
        x12.starts_with("ISA*") && x12.contains("XJH418827301"),
        "{res}"
    );
    // A server with only the retired master key cannot open the keys.
    let old_only = server_with_keys(&app.db, TEST_MASTER_KEYS).await;
    let admin = old_only.login_as(ADMIN).await;
    let res = ssn_of(&old_only, &admin, patient, true).await;
    assert_eq!(first_error(&res)["code"], "INTERNAL", "{res}");
}
