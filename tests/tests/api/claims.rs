//! Claims: billing signed sessions once, the claim lifecycle, coverages of
//! dependents, claims that cannot be rendered until fixed, and the 837P
//! (through the API and `caregate claims export`) checked by pyx12.

use clap::Parser;
use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::patient;
use crate::support::app::{TestApp, error_codes, first_error, spawn_app, spawn_app_with};
use crate::support::therapy::{
    ADMIN, DOCTOR, RESPOND, STAFF, SUBMIT, X12, billable_patient, checked_in_appointment,
    completed_session, create_and_render_claim, data, end, id_of, northside_okafor,
    provider_with_login, render_valid, segments, sign, signed_session, start, try_create_claim,
    x12_of,
};
use crate::support::x12::assert_valid_837;

async fn claim_status(owner: &PgPool, claim: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM claims WHERE id = $1")
        .bind(claim)
        .fetch_one(owner)
        .await
        .expect("a claim")
}

async fn claims_of(owner: &PgPool, patient: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM claims WHERE patient_id = $1")
        .bind(patient)
        .fetch_one(owner)
        .await
        .expect("counting claims")
}

/// Live (unreleased) claim lines billing a session.
async fn live_lines(owner: &PgPool, session: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM claim_lines WHERE session_id = $1 AND released_at IS NULL",
    )
    .bind(session)
    .fetch_one(owner)
    .await
    .expect("counting lines")
}

async fn respond(app: &TestApp, token: &str, claim: Uuid, input: Value) -> Value {
    app.graphql(Some(token), RESPOND, json!({ "id": claim, "i": input }))
        .await
}

async fn submit(app: &TestApp, token: &str, claim: Uuid) -> Value {
    app.graphql(Some(token), SUBMIT, json!({ "id": claim }))
        .await
}

/// Jonathan's demo coverage, session and claim at Northside.
async fn demo_claim(owner: &PgPool) -> (Uuid, Uuid, Uuid) {
    sqlx::query_as(
        "SELECT c.insurance_id, l.session_id, c.id FROM claims c JOIN claim_lines l ON l.claim_id = c.id
         JOIN patients p ON p.id = c.patient_id WHERE p.medical_record_number = 'NS-0001'",
    )
    .fetch_one(owner)
    .await
    .expect("the demo claim")
}

#[tokio::test]
async fn a_dependent_is_billed_under_the_subscribers_coverage_in_a_valid_837p() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;

    let res = app
        .graphql(
            Some(&staff),
            "mutation($id: UUID!) { updatePatient(id: $id, input: { address: { line1: \"77 Bleecker Street\", line2: \"Apt 2R\", city: \"New York\", state: \"NY\", postalCode: \"10012\" } }) { id } }",
            json!({ "id": sofia }),
        )
        .await;
    data(&res, "updatePatient");
    let res = app
        .graphql(
            Some(&staff),
            "mutation($i: AddInsuranceInput!) { addInsurance(input: $i) {
               id memberId relationship subscriberFirstName subscriberLastName subscriberDateOfBirth subscriberSex
               subscriberAddress { line1 city state postalCode } } }",
            json!({ "i": { "patientId": sofia, "payerName": "Empire Harbor Health", "payerId": "EHH01",
                           "memberId": "XJG55012", "groupNumber": "GRP-88", "priority": "PRIMARY",
                           "effectiveFrom": "2025-01-01",
                           "subscriber": { "relationship": "CHILD", "firstName": "Maria", "lastName": "Garcia",
                                           "dateOfBirth": "1986-03-14", "sex": "FEMALE",
                                           "address": { "line1": "400 West End Avenue", "city": "New York",
                                                        "state": "NY", "postalCode": "10024-6512" } } } }),
        )
        .await;
    let coverage = data(&res, "addInsurance");
    assert_eq!(coverage["relationship"], "CHILD", "{res}");
    assert_eq!(coverage["subscriberLastName"], "Garcia");
    assert_eq!(
        coverage["subscriberAddress"],
        json!({ "line1": "400 West End Avenue", "city": "New York", "state": "NY", "postalCode": "100246512" })
    );
    let insurance = id_of(coverage);
    let res = app
        .graphql(
            Some(&staff),
            "mutation($p: UUID!) { addDiagnosis(input: { patientId: $p, code: \"F80.1\", isPrimary: true, diagnosedOn: \"2025-09-01\" }) { code } }",
            json!({ "p": sofia }),
        )
        .await;
    data(&res, "addDiagnosis");
    // Speech therapy, 30 minutes: 2 units of 92507 at 9000.
    let session = signed_session(&app, &doctor, sofia, okafor, "92507", 30).await;

    let (claim, x12) = create_and_render_claim(&app, &staff, insurance, &[session]).await;
    assert_eq!(claim["totalChargeCents"], 2 * 9000, "{claim}");
    assert_eq!(claim["diagnosisCodes"], json!(["F80.1"]));
    let segs = segments(&x12);
    for expected in [
        "HL*2*1*22*1",
        "SBR*P**GRP-88******CI",
        "NM1*IL*1*GARCIA*MARIA****MI*XJG55012",
        "HL*3*2*23*0",
        "PAT*19",
        "NM1*QC*1*GARCIA*SOFIA",
        "N3*77 BLEECKER STREET*APT 2R",
        "DMG*D8*20150903*F",
    ] {
        assert!(segs.iter().any(|s| s == expected), "{expected} in {x12}");
    }
    let res = submit(&app, &staff, id_of(&claim)).await;
    assert_eq!(data(&res, "submitClaim")["status"], "SUBMITTED");
}

#[tokio::test]
async fn a_session_is_billed_once_until_its_claim_is_rejected() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let insurance = billable_patient(&app, &staff, marcus, Some("HVH-5550123")).await;
    let session = signed_session(&app, &doctor, marcus, okafor, "97110", 30).await;
    let fresh = signed_session(&app, &doctor, marcus, okafor, "97110", 15).await;

    let (first, _) = create_and_render_claim(&app, &staff, insurance, &[session]).await;
    let first = id_of(&first);
    for sessions in [vec![session], vec![fresh, session]] {
        let res = try_create_claim(&app, &staff, insurance, &sessions).await;
        assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
        assert_eq!(first_error(&res)["reason"], "SESSION_ALREADY_BILLED");
    }
    assert_eq!(
        claims_of(&owner, marcus).await,
        1,
        "nothing of the refused claims stays"
    );
    assert_eq!(live_lines(&owner, fresh).await, 0);

    // The demo's session is on a submitted claim.
    let (demo_insurance, demo_session, _) = demo_claim(&owner).await;
    let res = try_create_claim(&app, &staff, demo_insurance, &[demo_session]).await;
    assert_eq!(
        first_error(&res)["reason"],
        "SESSION_ALREADY_BILLED",
        "{res}"
    );

    // A rejection releases the session.
    data(&submit(&app, &staff, first).await, "submitClaim");
    let res = respond(
        &app,
        &staff,
        first,
        json!({ "status": "REJECTED", "note": "Subscriber not found" }),
    )
    .await;
    let rejected = data(&res, "recordClaimResponse");
    assert_eq!(rejected["status"], "REJECTED", "{res}");
    assert_eq!(rejected["responseNote"], "Subscriber not found");
    assert_eq!(live_lines(&owner, session).await, 0);

    let (second, _) = create_and_render_claim(&app, &staff, insurance, &[session]).await;
    assert_eq!(second["lines"][0]["session"]["id"], session.to_string());
    let res = try_create_claim(&app, &staff, insurance, &[session]).await;
    assert_eq!(
        first_error(&res)["reason"],
        "SESSION_ALREADY_BILLED",
        "billed again, then once: {res}"
    );
    let res = app
        .graphql(
            Some(&staff),
            "query($id: UUID!) { claim(id: $id) { status lines { session { id } } } }",
            json!({ "id": first }),
        )
        .await;
    assert_eq!(
        data(&res, "claim"),
        &json!({ "status": "REJECTED", "lines": [{ "session": { "id": session.to_string() } }] }),
        "the rejected claim keeps its lines"
    );
}

#[tokio::test]
async fn racing_claims_for_one_session_leave_exactly_one() {
    let app = spawn_app_with(|c| {
        c.db_pool_size = 8;
        c.db_acquire_timeout_ms = 60_000;
    })
    .await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let admin = app.login_as(ADMIN).await;
    let doctor = app.login_as(DOCTOR).await;
    let insurance = billable_patient(&app, &staff, marcus, Some("HVH-5550123")).await;
    let session = signed_session(&app, &doctor, marcus, okafor, "97110", 45).await;

    let one = [session];
    let clock = std::time::Instant::now();
    let calls = (0..20).map(|i| {
        let token = if i % 2 == 0 { &staff } else { &admin };
        try_create_claim(&app, token, insurance, &one)
    });
    let results = futures::future::join_all(calls).await;
    let elapsed = clock.elapsed();
    let winners: Vec<&Value> = results
        .iter()
        .filter(|r| r.get("errors").is_none())
        .collect();
    for r in results.iter().filter(|r| r.get("errors").is_some()) {
        assert_eq!(error_codes(r), vec!["CONFLICT"], "{r}");
        assert_eq!(first_error(r)["reason"], "SESSION_ALREADY_BILLED", "{r}");
    }
    println!(
        "20 concurrent createClaim for one session: {} created, {} refused SESSION_ALREADY_BILLED, in {elapsed:?}",
        winners.len(),
        results.len() - winners.len()
    );
    assert_eq!(winners.len(), 1);
    assert_eq!(claims_of(&owner, marcus).await, 1);
    assert_eq!(live_lines(&owner, session).await, 1);
    let winner = id_of(&winners[0]["data"]["createClaim"]);
    render_valid(&app, &staff, winner).await;
}

#[tokio::test]
async fn a_claim_without_a_member_id_is_neither_rendered_nor_submitted_until_fixed() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let insurance = billable_patient(&app, &staff, marcus, None).await;
    let session = signed_session(&app, &doctor, marcus, okafor, "97110", 30).await;

    let res = try_create_claim(&app, &staff, insurance, &[session]).await;
    let claim = data(&res, "createClaim");
    assert_eq!(claim["status"], "DRAFT", "{res}");
    let claim = id_of(claim);

    let res = x12_of(&app, &staff, claim).await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "insurance.memberId", "{res}");
    assert!(res["data"]["claim"]["x12"].is_null(), "no 837P: {res}");
    assert!(!res.to_string().contains("ISA*"), "{res}");

    let res = submit(&app, &staff, claim).await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "insurance.memberId", "{res}");
    assert_eq!(claim_status(&owner, claim).await, "DRAFT");
    let submitted_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT submitted_at FROM claims WHERE id = $1")
            .bind(claim)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert!(submitted_at.is_none());

    let res = app
        .graphql(
            Some(&staff),
            "mutation($id: UUID!) { updateInsurance(id: $id, input: { memberId: \"HVH-5550123\" }) { memberId } }",
            json!({ "id": insurance }),
        )
        .await;
    assert_eq!(data(&res, "updateInsurance")["memberId"], "HVH-5550123");
    let x12 = render_valid(&app, &staff, claim).await;
    assert!(
        segments(&x12)
            .iter()
            .any(|s| s.ends_with("*MI*HVH-5550123")),
        "{x12}"
    );
    let res = submit(&app, &staff, claim).await;
    assert_eq!(data(&res, "submitClaim")["status"], "SUBMITTED", "{res}");
    assert_eq!(claim_status(&owner, claim).await, "SUBMITTED");
}

#[tokio::test]
async fn claim_responses_follow_the_lifecycle_and_the_charge() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let insurance = billable_patient(&app, &staff, marcus, Some("HVH-5550123")).await;
    let session = signed_session(&app, &doctor, marcus, okafor, "97110", 30).await;
    let (claim, _) = create_and_render_claim(&app, &staff, insurance, &[session]).await;
    let total = claim["totalChargeCents"].as_i64().unwrap();
    assert_eq!(total, 2 * 4500);
    let claim = id_of(&claim);

    let refused = async |input: Value, field: &str, status: &str| {
        let res = respond(&app, &staff, claim, input.clone()).await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{input}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{input}: {res}");
        assert_eq!(claim_status(&owner, claim).await, status, "{input}");
    };

    for to in [
        "ACCEPTED",
        "REJECTED",
        "PAID",
        "DENIED",
        "DRAFT",
        "SUBMITTED",
    ] {
        let mut input = json!({ "status": to });
        if to == "PAID" {
            input["paidCents"] = json!(100);
        }
        refused(input, "status", "DRAFT").await;
    }
    data(&submit(&app, &staff, claim).await, "submitClaim");
    let res = submit(&app, &staff, claim).await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "submitted once: {res}");
    assert_eq!(
        first_error(&res)["reason"],
        "CLAIM_ALREADY_SUBMITTED",
        "{res}"
    );
    for to in ["PAID", "DENIED", "DRAFT", "SUBMITTED"] {
        let mut input = json!({ "status": to });
        if to == "PAID" {
            input["paidCents"] = json!(100);
        }
        refused(input, "status", "SUBMITTED").await;
    }
    let res = respond(&app, &staff, claim, json!({ "status": "ACCEPTED" })).await;
    assert_eq!(data(&res, "recordClaimResponse")["status"], "ACCEPTED");
    refused(json!({ "status": "REJECTED" }), "status", "ACCEPTED").await;
    refused(json!({ "status": "ACCEPTED" }), "status", "ACCEPTED").await;
    refused(
        json!({ "status": "PAID", "paidCents": total + 1 }),
        "paidCents",
        "ACCEPTED",
    )
    .await;
    refused(
        json!({ "status": "PAID", "paidCents": -1 }),
        "paidCents",
        "ACCEPTED",
    )
    .await;
    refused(json!({ "status": "PAID" }), "paidCents", "ACCEPTED").await;
    refused(
        json!({ "status": "DENIED", "paidCents": 10 }),
        "paidCents",
        "ACCEPTED",
    )
    .await;

    let res = respond(
        &app,
        &staff,
        claim,
        json!({ "status": "PAID", "paidCents": total }),
    )
    .await;
    let paid = data(&res, "recordClaimResponse");
    assert_eq!(paid["status"], "PAID", "{res}");
    assert_eq!(paid["paidCents"], total, "paid in full");
    refused(json!({ "status": "DENIED" }), "status", "PAID").await;
}

#[tokio::test]
async fn the_demo_claim_renders_a_valid_837p_for_staff_only() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let (_, _, claim) = demo_claim(&owner).await;
    let control: i32 = sqlx::query_scalar("SELECT control_number FROM claims WHERE id = $1")
        .bind(claim)
        .fetch_one(&owner)
        .await
        .unwrap();
    for email in [STAFF, ADMIN] {
        let token = app.login_as(email).await;
        let x12 = render_valid(&app, &token, claim).await;
        let segs = segments(&x12);
        let clm = format!("CLM*CG{control:09}*135*");
        assert!(segs.iter().any(|s| s.starts_with(&clm)), "{clm} in {x12}");
        assert!(segs.contains(&"REF*G1*EHH-PA-55810".to_owned()), "{x12}");
        assert!(
            segs.contains(&"HI*ABK:M5450*ABF:M25561".to_owned()),
            "{x12}"
        );
    }
    let doctor = app.login_as(DOCTOR).await;
    let res = x12_of(&app, &doctor, claim).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "ROLE");
    assert!(!res.to_string().contains("ISA*"), "{res}");
}

/// `caregate claims export`, run in this process.
async fn export(
    db_url: &str,
    claims: &[Uuid],
    email: &str,
    out: &std::path::Path,
) -> anyhow::Result<i32> {
    let mut args = vec![
        "caregate".to_owned(),
        "--database-url".to_owned(),
        db_url.to_owned(),
        "--phi-master-keys".to_owned(),
        crate::support::app::TEST_MASTER_KEYS.to_owned(),
        "claims".to_owned(),
        "export".to_owned(),
    ];
    for c in claims {
        args.push("--claim".to_owned());
        args.push(c.to_string());
    }
    args.extend([
        "--as".to_owned(),
        email.to_owned(),
        "--out".to_owned(),
        out.display().to_string(),
    ]);
    let cli = caregate::cli::Cli::parse_from(args);
    caregate::cli::run(cli).await
}

#[tokio::test]
async fn claims_export_writes_a_valid_837p_of_one_claim_or_a_batch() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let jonathan = patient(&owner, "NS-0001").await;
    let okafor = northside_okafor(&owner).await;
    let (insurance, _, demo) = demo_claim(&owner).await;
    let dir = std::env::temp_dir().join(format!(
        "caregate-export-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    ));
    std::fs::create_dir_all(&dir).unwrap();

    let one = dir.join("demo.x12");
    assert_eq!(
        export(&app.db.owner_url, &[demo], STAFF, &one)
            .await
            .unwrap(),
        0
    );
    let text = std::fs::read_to_string(&one).expect("the exported file");
    assert_valid_837(&text);
    assert!(text.starts_with("ISA*"), "{text}");
    // A submitted claim exports the interchange kept at its submission.
    let staff = app.login_as(STAFF).await;
    let kept = app.graphql(Some(&staff), X12, json!({ "id": demo })).await;
    assert_eq!(data(&kept, "claim")["x12"], text.as_str(), "{kept}");
    // What was submitted stays what it was when the coverage changes.
    let changed = app
        .graphql(
            Some(&staff),
            "mutation($id: UUID!) { updateInsurance(id: $id, input: {memberId: \"CHANGED99\"}) { memberId } }",
            json!({ "id": insurance }),
        )
        .await;
    assert_eq!(data(&changed, "updateInsurance")["memberId"], "CHANGED99");
    let after = app.graphql(Some(&staff), X12, json!({ "id": demo })).await;
    assert_eq!(data(&after, "claim")["x12"], text.as_str(), "{after}");
    assert!(!text.contains("CHANGED99"));

    // Two drafts to the same payer: one interchange of two claims (a
    // preview, usage indicator T).
    let doctor = app.login_as(DOCTOR).await;
    let mut drafts = Vec::new();
    for minutes in [30, 45] {
        let session = signed_session(&app, &doctor, jonathan, okafor, "97110", minutes).await;
        let (claim, _) = create_and_render_claim(&app, &staff, insurance, &[session]).await;
        drafts.push(id_of(&claim));
    }
    let batch = dir.join("batch.x12");
    assert_eq!(
        export(&app.db.owner_url, &drafts, ADMIN, &batch)
            .await
            .unwrap(),
        0
    );
    let text = std::fs::read_to_string(&batch).expect("the exported batch");
    assert_valid_837(&text);
    let claims = segments(&text)
        .iter()
        .filter(|s| s.starts_with("CLM*"))
        .count();
    assert_eq!(claims, 2, "{text}");
    assert!(segments(&text)[0].ends_with("*T*:"), "a preview: {text}");

    // A batch holding a submitted claim is refused, and writes nothing.
    let mixed = dir.join("mixed.x12");
    let outcome = export(&app.db.owner_url, &[demo, drafts[0]], ADMIN, &mixed).await;
    assert!(
        !matches!(outcome, Ok(0)),
        "a batch with a submitted claim: {outcome:?}"
    );
    assert!(!mixed.exists(), "no file for a refused export");

    // Not for a provider, and nothing written.
    let refused = dir.join("refused.x12");
    let outcome = export(&app.db.owner_url, &[demo], DOCTOR, &refused).await;
    assert!(
        !matches!(outcome, Ok(0)),
        "a provider exported a claim: {outcome:?}"
    );
    assert!(!refused.exists(), "no file for a refused export");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_claim_bills_signed_sessions_of_the_coverages_patient_and_one_provider() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let priya = patient(&owner, "NS-0005").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let reyes = provider_with_login(
        &owner,
        "dr.reyes@northside.example",
        "Dr. Lucia Reyes",
        420_000_003,
    )
    .await;
    sqlx::query(
        "INSERT INTO staff_credentials (organization_id, provider_id, kind, name, number, issuing_state, valid_from)
         SELECT organization_id, id, 'LICENSE', 'Physical Therapist', 'NY-PT-778', 'NY', DATE '2019-01-01'
         FROM providers WHERE id = $1",
    )
    .bind(reyes)
    .execute(&owner)
    .await
    .unwrap();
    let other_doctor = app.login_as("dr.reyes@northside.example").await;

    let insurance = billable_patient(&app, &staff, marcus, Some("HVH-5550123")).await;
    let signed = signed_session(&app, &doctor, marcus, okafor, "97110", 30).await;
    let unsigned = completed_session(&app, &doctor, marcus, okafor, "97110", 30).await;
    let by_another = signed_session(&app, &other_doctor, marcus, reyes, "97110", 30).await;
    let of_another_patient = signed_session(&app, &doctor, priya, okafor, "97110", 30).await;
    let unpriced = signed_session(&app, &doctor, marcus, okafor, "97530", 30).await;

    for (sessions, field, why) in [
        (vec![], "sessionIds", "no session"),
        (vec![unsigned], "sessionIds", "not signed"),
        (vec![signed, unsigned], "sessionIds", "one not signed"),
        (vec![signed, by_another], "sessionIds", "two providers"),
        (vec![of_another_patient], "sessionIds", "another patient"),
        (vec![signed, signed], "sessionIds", "twice the same"),
        (
            vec![Uuid::from(ulid::Ulid::generate())],
            "sessionIds",
            "no such session",
        ),
        (vec![unpriced], "sessionIds", "no fee for 97530"),
    ] {
        let res = try_create_claim(&app, &staff, insurance, &sessions).await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{why}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{why}: {res}");
    }
    for token in [
        &doctor,
        &app.login_in("jonathan.smith@example.com", None).await,
    ] {
        let res = try_create_claim(&app, token, insurance, &[signed]).await;
        assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    }

    // Priya has a coverage but no diagnosis to bill.
    let res = app
        .graphql(
            Some(&staff),
            "mutation($i: AddInsuranceInput!) { addInsurance(input: $i) { id } }",
            json!({ "i": { "patientId": priya, "payerName": "Hudson Valley Health", "payerId": "HVH01",
                           "memberId": "HVH-1", "priority": "PRIMARY", "effectiveFrom": "2025-01-01" } }),
        )
        .await;
    let hers = id_of(data(&res, "addInsurance"));
    let res = try_create_claim(&app, &staff, hers, &[of_another_patient]).await;
    assert_eq!(first_error(&res)["field"], "diagnoses", "{res}");

    // An ended coverage is billed no more.
    let res = app
        .graphql(
            Some(&staff),
            "mutation($id: UUID!) { updateInsurance(id: $id, input: { isActive: false }) { isActive } }",
            json!({ "id": insurance }),
        )
        .await;
    assert_eq!(data(&res, "updateInsurance")["isActive"], false);
    let res = try_create_claim(&app, &staff, insurance, &[signed]).await;
    assert_eq!(first_error(&res)["field"], "insuranceId", "{res}");

    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM claims")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(claims, 1, "only the demo's claim");
}

#[tokio::test]
async fn each_line_is_charged_at_the_fee_in_force_on_its_clinic_day() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let insurance = billable_patient(&app, &staff, marcus, Some("HVH-5550123")).await;
    let yesterday: chrono::NaiveDate = sqlx::query_scalar(
        "SELECT (now() AT TIME ZONE timezone)::date - 1 FROM organizations WHERE slug = 'northside'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    let set_fee = "mutation($d: Date!) { setFee(serviceCode: \"97110\", unitChargeCents: 5200, effectiveFrom: $d) { serviceCode unitChargeCents effectiveFrom } }";
    let res = app
        .graphql(Some(&doctor), set_fee, json!({ "d": yesterday }))
        .await;
    assert_eq!(first_error(&res)["reason"], "ROLE", "{res}");
    let res = app
        .graphql(Some(&staff), set_fee, json!({ "d": yesterday }))
        .await;
    assert_eq!(
        data(&res, "setFee"),
        &json!({ "serviceCode": "97110", "unitChargeCents": 5200, "effectiveFrom": yesterday.to_string() })
    );
    let res = app
        .graphql(Some(&staff), set_fee, json!({ "d": yesterday }))
        .await;
    assert_eq!(first_error(&res)["reason"], "DUPLICATE_FEE", "{res}");

    // 03:30 UTC three days ago is the evening before in New York: that
    // day's fee, and that day on the claim.
    let utc_day = chrono::Utc::now().date_naive() - chrono::Duration::days(3);
    let evening = utc_day.and_hms_opt(3, 30, 0).unwrap().and_utc();
    let new_york_day = utc_day - chrono::Duration::days(1);
    let appointment = checked_in_appointment(&owner, marcus, okafor).await;
    let res = start(&app, &doctor, appointment, "97110", None, evening).await;
    let old = id_of(data(&res, "startTherapySession"));
    data(
        &end(&app, &doctor, old, evening + chrono::Duration::minutes(30)).await,
        "endTherapySession",
    );
    data(&sign(&app, &doctor, old).await, "signTherapySession");
    let recent = signed_session(&app, &doctor, marcus, okafor, "97110", 30).await;

    let (claim, x12) = create_and_render_claim(&app, &staff, insurance, &[old, recent]).await;
    let lines = claim["lines"].as_array().unwrap();
    assert_eq!(lines[0]["serviceDate"], new_york_day.to_string(), "{claim}");
    assert_eq!(lines[0]["chargeCents"], 2 * 4500, "{claim}");
    assert_eq!(lines[1]["chargeCents"], 2 * 5200, "{claim}");
    assert_eq!(claim["totalChargeCents"], 2 * 4500 + 2 * 5200);
    let dtp = format!("DTP*472*D8*{}", new_york_day.format("%Y%m%d"));
    assert!(segments(&x12).contains(&dtp), "{dtp} in {x12}");

    let res = app
        .graphql(
            Some(&staff),
            "{ organization { feeSchedule { serviceCode unitChargeCents effectiveFrom } } }",
            json!({}),
        )
        .await;
    let fees: Vec<&Value> = data(&res, "organization")["feeSchedule"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["serviceCode"] == "97110")
        .collect();
    assert_eq!(
        fees,
        vec![
            &json!({ "serviceCode": "97110", "unitChargeCents": 4500, "effectiveFrom": "2024-01-01" }),
            &json!({ "serviceCode": "97110", "unitChargeCents": 5200, "effectiveFrom": yesterday.to_string() }),
        ]
    );
}

#[tokio::test]
async fn a_billing_address_without_zip_plus_four_renders_no_claim() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let admin = app.login_as(ADMIN).await;
    let doctor = app.login_as(DOCTOR).await;
    let insurance = billable_patient(&app, &staff, marcus, Some("HVH-5550123")).await;
    let session = signed_session(&app, &doctor, marcus, okafor, "97110", 30).await;
    let (claim, _) = create_and_render_claim(&app, &staff, insurance, &[session]).await;
    let claim = id_of(&claim);

    let identity = async |zip: &str| {
        app.graphql(
            Some(&admin),
            "mutation($z: String!) { setBillingIdentity(input: { groupNpi: \"1230000006\", taxId: \"131234567\",
               phone: \"2125550100\", address: { line1: \"350 Amsterdam Avenue\", city: \"New York\", state: \"NY\", postalCode: $z } }) {
               billingIdentity { address { postalCode } } } }",
            json!({ "z": zip }),
        )
        .await
    };
    data(&identity("10024").await, "setBillingIdentity");
    let res = x12_of(&app, &staff, claim).await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "organization.billingAddress");
    let res = submit(&app, &staff, claim).await;
    assert_eq!(
        first_error(&res)["field"],
        "organization.billingAddress",
        "{res}"
    );
    assert_eq!(claim_status(&owner, claim).await, "DRAFT");

    data(&identity("10024-1234").await, "setBillingIdentity");
    render_valid(&app, &staff, claim).await;
    data(&submit(&app, &staff, claim).await, "submitClaim");
    assert_eq!(claim_status(&owner, claim).await, "SUBMITTED");
}

#[tokio::test]
async fn coverage_values_an_837p_cannot_carry_are_bad_input_naming_the_field() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let staff = app.login_as(STAFF).await;
    let base = json!({
        "patientId": marcus, "payerName": "Harbor Mutual", "payerId": "HM001",
        "memberId": "HM-1", "priority": "PRIMARY", "effectiveFrom": "2025-01-01",
    });
    let subscriber = json!({
        "relationship": "SPOUSE", "firstName": "Ana", "lastName": "Johnson",
        "dateOfBirth": "1978-02-01", "sex": "FEMALE",
    });
    for (patch, field) in [
        (json!({ "payerId": "A" }), "payerId"),
        (json!({ "payerId": "ABCDEFGHIJKLMNOP" }), "payerId"),
        (
            json!({ "subscriber": { "dateOfBirth": "0001-01-01" } }),
            "subscriber.dateOfBirth",
        ),
        (
            json!({ "subscriber": { "dateOfBirth": "9999-12-31" } }),
            "subscriber.dateOfBirth",
        ),
    ] {
        let mut input = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if k == "subscriber" {
                let mut s = subscriber.clone();
                for (sk, sv) in v.as_object().unwrap() {
                    s[sk] = sv.clone();
                }
                input[k] = s;
            } else {
                input[k] = v.clone();
            }
        }
        let res = app
            .graphql(
                Some(&staff),
                "mutation($i: AddInsuranceInput!) { addInsurance(input: $i) { id } }",
                json!({ "i": input }),
            )
            .await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{patch}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{patch}: {res}");
    }
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM patient_insurances WHERE patient_id = $1")
            .bind(marcus)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(count, 0, "nothing recorded");
}

#[tokio::test]
async fn a_medicaid_coverage_files_its_claims_as_medicaid() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let coverage = billable_patient(&app, &staff, marcus, Some("MCD-88120")).await;
    let res = app
        .graphql(
            Some(&staff),
            "mutation($id: UUID!, $c: String) { updateInsurance(id: $id, input: {claimFilingCode: $c}) { claimFilingCode } }",
            json!({ "id": coverage, "c": "xx" }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "claimFilingCode", "{res}");
    let res = app
        .graphql(
            Some(&staff),
            "mutation($id: UUID!, $c: String) { updateInsurance(id: $id, input: {claimFilingCode: $c}) { claimFilingCode } }",
            json!({ "id": coverage, "c": "mc" }),
        )
        .await;
    assert_eq!(data(&res, "updateInsurance")["claimFilingCode"], "MC");
    let session = signed_session(&app, &doctor, marcus, okafor, "97110", 30).await;
    let (_, text) = create_and_render_claim(&app, &staff, coverage, &[session]).await;
    let sbr = segments(&text)
        .into_iter()
        .find(|s| s.starts_with("SBR*"))
        .expect("an SBR segment");
    assert!(sbr.ends_with("*MC"), "{sbr}");
}

#[tokio::test]
async fn therapy_records_are_relay_nodes_only_to_their_clinic() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let (insurance, session, claim) = demo_claim(&owner).await;
    let query = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id \
                 ... on Claim { status } ... on TherapySession { status } \
                 ... on Insurance { payerName } } }";
    let ids = json!({ "ids": [claim, session, insurance] });
    let staff = app.login_as(STAFF).await;
    let res = app.graphql(Some(&staff), query, ids.clone()).await;
    let nodes = data(&res, "nodes");
    assert_eq!(nodes[0]["__typename"], "Claim", "{res}");
    assert_eq!(nodes[0]["status"], "SUBMITTED", "{res}");
    assert_eq!(nodes[1]["__typename"], "TherapySession", "{res}");
    assert_eq!(nodes[1]["status"], "SIGNED", "{res}");
    assert_eq!(nodes[2]["payerName"], "Empire Harbor Health", "{res}");
    let lakeside = app.login_as("admin@lakeside.example").await;
    let res = app.graphql(Some(&lakeside), query, ids).await;
    assert_eq!(data(&res, "nodes"), &json!([null, null, null]), "{res}");
}
