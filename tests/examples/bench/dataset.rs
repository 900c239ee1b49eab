//! The benchmark's data set: a fresh database, migrated, loaded with
//! set-based SQL from deterministic expressions (no randomness: every run
//! loads the same clinics, names, care teams and schedules, relative to the
//! day it runs on).

use anyhow::{Context, Result};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sea_orm::sqlx::{self, Executor, Row};
use std::str::FromStr;
use uuid::Uuid;

/// The database the benchmark creates (dropped first when present).
pub const DB_NAME: &str = "caregate_bench";
/// Password of both clinic admins.
pub const PASSWORD: &str = "bench-password";
pub const PATIENTS_PER_CLINIC: i32 = 1_000;
pub const PROVIDERS_PER_CLINIC: i32 = 20;
pub const APPOINTMENTS_PER_PATIENT: i32 = 5;

/// (slug, name, time zone, licence state).
pub const CLINICS: [(&str, &str, &str, &str); 2] = [
    (
        "bench-north",
        "Bench North Family Clinic",
        "America/New_York",
        "NY",
    ),
    (
        "bench-south",
        "Bench South Medical Group",
        "America/Chicago",
        "IL",
    ),
];

pub const FIRST_NAMES: [&str; 40] = [
    "Jonathan",
    "Maria",
    "Olivia",
    "Liam",
    "Sophia",
    "Noah",
    "Emma",
    "Ethan",
    "Ava",
    "Lucas",
    "Isabella",
    "Mason",
    "Mia",
    "Logan",
    "Amelia",
    "James",
    "Harper",
    "Benjamin",
    "Evelyn",
    "Elijah",
    "Abigail",
    "William",
    "Emily",
    "Alexander",
    "Elizabeth",
    "Michael",
    "Sofia",
    "Daniel",
    "Avery",
    "Henry",
    "Ella",
    "Jackson",
    "Scarlett",
    "Sebastian",
    "Grace",
    "Aiden",
    "Chloe",
    "Matthew",
    "Victoria",
    "Samuel",
];

pub const LAST_NAMES: [&str; 40] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
];

const SPECIALTIES: [&str; 5] = [
    "Family Medicine",
    "Cardiology",
    "Endocrinology",
    "Dermatology",
    "Physical Therapy",
];

/// The name of patient `i` of a clinic; the SQL below uses the same
/// formula. Every (first, last) pair is distinct for the first 1,000.
pub fn patient_name(i: usize) -> (&'static str, &'static str) {
    let f = FIRST_NAMES.len();
    let l = LAST_NAMES.len();
    (FIRST_NAMES[i % f], LAST_NAMES[(i / f + 3 * (i % f)) % l])
}

/// Partial-name searches ("jon smi" style: a prefix of a patient's first
/// and last names), each matching at least that patient.
pub fn search_fragments(count: usize) -> Vec<String> {
    (0..count)
        .map(|k| {
            let (first, last) = patient_name((k * 997) % PATIENTS_PER_CLINIC as usize);
            let take = 3 + k % 2;
            format!(
                "{} {}",
                &first[..take.min(first.len())].to_lowercase(),
                &last[..3.min(last.len())].to_lowercase()
            )
        })
        .collect()
}

/// `url` pointing at database `db`.
pub fn url_of(url: &str, db: &str) -> Result<String> {
    let mut u = url::Url::parse(url)
        .with_context(|| format!("parsing the database URL {}", redacted(url)))?;
    u.set_path(&format!("/{db}"));
    Ok(u.to_string())
}

/// `url` without its password, for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// A pool on `url`, as `user` (without a password: the runtime role has
/// none) when given.
pub async fn pool(url: &str, size: u32, user: Option<&str>) -> Result<PgPool> {
    let mut opts = PgConnectOptions::from_str(url).context("parsing the database URL")?;
    if let Some(user) = user {
        opts = opts.username(user).password("");
    }
    PgPoolOptions::new()
        .max_connections(size)
        .connect_with(opts.application_name("caregate-bench"))
        .await
        .with_context(|| {
            format!(
                "connecting to {} as {}",
                redacted(url),
                user.unwrap_or("its user")
            )
        })
}

/// Drops and recreates the bench database; returns its owner URL.
pub async fn recreate(admin_url: &str) -> Result<String> {
    let admin = pool(admin_url, 1, None).await?;
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"
        ))))
        .await
        .context("dropping the previous bench database")?;
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {DB_NAME}"
        ))))
        .await
        .context("creating the bench database (does the DATABASE_URL role have CREATEDB?)")?;
    admin.close().await;
    url_of(admin_url, DB_NAME)
}

/// Loads the data set as the owner (which bypasses row-level security),
/// in one transaction, then VACUUM ANALYZE.
pub async fn load(owner: &PgPool) -> Result<()> {
    let hash = service::password::hash(PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    let slugs: Vec<&str> = CLINICS.iter().map(|c| c.0).collect();
    let names: Vec<&str> = CLINICS.iter().map(|c| c.1).collect();
    let zones: Vec<&str> = CLINICS.iter().map(|c| c.2).collect();
    let states: Vec<&str> = CLINICS.iter().map(|c| c.3).collect();

    let provider_names: Vec<String> = (0..PROVIDERS_PER_CLINIC as usize)
        .map(|i| {
            format!(
                "Dr. {} {}",
                FIRST_NAMES[(i * 3 + 1) % FIRST_NAMES.len()],
                LAST_NAMES[(i * 7 + 5) % LAST_NAMES.len()]
            )
        })
        .collect();
    // NPIs ascend with the provider's index, so `ORDER BY npi` numbers them.
    let npis: Vec<String> = (0..PROVIDERS_PER_CLINIC as u8)
        .map(|i| {
            service::domain::Npi::from_prefix([1, 4, 2, 0, 0, 0, 0, i / 10, i % 10])
                .as_ref()
                .to_owned()
        })
        .collect();
    let specialties: Vec<&str> = (0..PROVIDERS_PER_CLINIC as usize)
        .map(|i| SPECIALTIES[i % SPECIALTIES.len()])
        .collect();

    let mut tx = owner
        .begin()
        .await
        .context("opening the load transaction")?;
    let step = |what: &'static str| move |e: sqlx::Error| anyhow::anyhow!("loading {what}: {e}");

    sqlx::query(
        "INSERT INTO organizations (name, slug, timezone) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
    )
    .bind(&names)
    .bind(&slugs)
    .bind(&zones)
    .execute(&mut *tx)
    .await
    .map_err(step("clinics"))?;

    sqlx::query(
        "INSERT INTO users (email, password_hash, display_name, timezone) \
         SELECT 'admin@' || slug || '.example', $1, name || ' Admin', timezone \
         FROM organizations WHERE slug = ANY ($2) ORDER BY slug",
    )
    .bind(&hash)
    .bind(&slugs)
    .execute(&mut *tx)
    .await
    .map_err(step("admins"))?;

    sqlx::query(
        "INSERT INTO organization_memberships (organization_id, user_id, role) \
         SELECT o.id, u.id, 'ADMIN' FROM organizations o \
         JOIN users u ON lower(u.email) = 'admin@' || o.slug || '.example' \
         WHERE o.slug = ANY ($1)",
    )
    .bind(&slugs)
    .execute(&mut *tx)
    .await
    .map_err(step("memberships"))?;

    sqlx::query(
        "INSERT INTO providers (organization_id, name, npi, specialty, state_licenses) \
         SELECT o.id, p.name, p.npi, p.specialty, jsonb_build_array(c.state) \
         FROM unnest($4::text[], $5::text[]) AS c (slug, state) \
         JOIN organizations o ON o.slug = c.slug \
         CROSS JOIN unnest($1::text[], $2::text[], $3::text[]) AS p (name, npi, specialty) \
         ORDER BY o.slug, p.npi",
    )
    .bind(&provider_names)
    .bind(&npis)
    .bind(&specialties)
    .bind(&slugs)
    .bind(&states)
    .execute(&mut *tx)
    .await
    .map_err(step("providers"))?;

    // The patient counter's trigger updates the clinic's row once per
    // patient, and each such UPDATE re-checks the clinic's time zone against
    // pg_timezone_names (tens of milliseconds): off for the bulk insert,
    // then counted once, as migration 0007 does.
    tx.execute(sqlx::raw_sql(
        "ALTER TABLE patients DISABLE TRIGGER patients_count",
    ))
    .await
    .map_err(step("patients (pausing the counter)"))?;
    // Patient i: names by the formula of `patient_name`, MRN P-000000 + i.
    sqlx::query(
        "INSERT INTO patients (organization_id, medical_record_number, first_name, last_name, \
                               date_of_birth, legal_sex) \
         SELECT o.id, 'P-' || lpad(g.i::text, 6, '0'), \
                ($1::text[])[1 + g.i % cardinality($1::text[])], \
                ($2::text[])[1 + (g.i / cardinality($1::text[]) + 3 * (g.i % cardinality($1::text[]))) \
                                 % cardinality($2::text[])], \
                DATE '1940-01-01' + (g.i * 7919) % 29000, \
                CASE g.i % 2 WHEN 0 THEN 'FEMALE' ELSE 'MALE' END \
         FROM organizations o CROSS JOIN generate_series(0, $3 - 1) AS g (i) \
         WHERE o.slug = ANY ($4) \
         ORDER BY o.slug, g.i",
    )
    .bind(FIRST_NAMES.as_slice())
    .bind(LAST_NAMES.as_slice())
    .bind(PATIENTS_PER_CLINIC)
    .bind(&slugs)
    .execute(&mut *tx)
    .await
    .map_err(step("patients"))?;
    tx.execute(sqlx::raw_sql(
        "ALTER TABLE patients ENABLE TRIGGER patients_count; \
         UPDATE organizations o SET patient_count = \
           (SELECT count(*) FROM patients p WHERE p.organization_id = o.id AND p.deleted_at IS NULL);",
    ))
    .await
    .map_err(step("patients (counting)"))?;

    // Patient and provider ordinals, for the rows that follow.
    tx.execute(sqlx::raw_sql(
        "CREATE TEMP TABLE bench_pt ON COMMIT DROP AS \
           SELECT organization_id, id, substr(medical_record_number, 3)::int AS i FROM patients; \
         CREATE TEMP TABLE bench_pr ON COMMIT DROP AS \
           SELECT organization_id, id, \
                  (row_number() OVER (PARTITION BY organization_id ORDER BY npi))::int - 1 AS k \
           FROM providers;",
    ))
    .await
    .map_err(step("ordinals"))?;

    sqlx::query(
        "INSERT INTO contact_methods (organization_id, patient_id, type, value, is_primary, \
                                      is_safe_for_voicemail) \
         SELECT organization_id, id, 'MOBILE', '+1-555-' || lpad((1000 + i)::text, 7, '0'), true, \
                i % 3 = 0 \
         FROM bench_pt ORDER BY organization_id, i",
    )
    .execute(&mut *tx)
    .await
    .map_err(step("contact methods"))?;

    // Three distinct providers per patient: i, i+7, i+14 (mod 20).
    sqlx::query(
        "INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role) \
         SELECT pt.organization_id, pt.id, pr.id, r.role \
         FROM bench_pt pt \
         CROSS JOIN (VALUES (0, 'PRIMARY'), (1, 'SPECIALIST'), (2, 'CONSULTANT')) AS r (n, role) \
         JOIN bench_pr pr ON pr.organization_id = pt.organization_id \
                         AND pr.k = (pt.i + r.n * 7) % $1 \
         ORDER BY pt.organization_id, pt.i, r.n",
    )
    .bind(PROVIDERS_PER_CLINIC)
    .execute(&mut *tx)
    .await
    .map_err(step("care teams"))?;

    // Appointment k = n * patients + i goes to provider k % providers, in
    // that provider's slot k / providers: 16 half-hour slots a day from
    // 14:00 UTC, from 8 days ago on. (provider, slot) is a bijection of k,
    // so no provider is double-booked; past ones are COMPLETED.
    sqlx::query(
        "INSERT INTO appointments (organization_id, patient_id, provider_id, starts_at, ends_at, \
                                   type, reason, status) \
         SELECT pt.organization_id, pt.id, pr.id, t.starts_at, t.starts_at + interval '30 minutes', \
                'IN_PERSON', 'Follow-up visit', \
                CASE WHEN t.starts_at < now() THEN 'COMPLETED' ELSE 'SCHEDULED' END \
         FROM bench_pt pt \
         CROSS JOIN generate_series(0, $2 - 1) AS s (n) \
         CROSS JOIN LATERAL (SELECT s.n * $3 + pt.i AS k) AS kk \
         JOIN bench_pr pr ON pr.organization_id = pt.organization_id AND pr.k = kk.k % $1 \
         CROSS JOIN LATERAL ( \
             SELECT date_trunc('day', now(), 'UTC') \
                    + make_interval(days => kk.k / $1 / 16 - 8, hours => 14, \
                                    mins => 30 * ((kk.k / $1) % 16)) AS starts_at) AS t \
         ORDER BY pt.organization_id, kk.k",
    )
    .bind(PROVIDERS_PER_CLINIC)
    .bind(APPOINTMENTS_PER_PATIENT)
    .bind(PATIENTS_PER_CLINIC)
    .execute(&mut *tx)
    .await
    .map_err(step("appointments"))?;

    tx.execute(sqlx::raw_sql(
        "INSERT INTO consent_documents (kind, version, title, body, is_active) VALUES \
           ('TOS', 1, 'Terms of Service', 'The terms under which caregate is provided.', true), \
           ('HIPAA_NOTICE', 1, 'Notice of Privacy Practices', \
            'How your clinic may use and disclose your health information, and your rights.', true), \
           ('PRIVACY_POLICY', 1, 'Privacy Policy', 'What caregate records about you, and why.', true); \
         INSERT INTO user_consents (user_id, document_id) \
           SELECT u.id, d.id FROM users u CROSS JOIN consent_documents d WHERE d.is_active;",
    ))
    .await
    .map_err(step("consents"))?;

    tx.commit().await.context("committing the data set")?;
    owner
        .execute(sqlx::raw_sql("VACUUM ANALYZE"))
        .await
        .context("VACUUM ANALYZE")?;
    Ok(())
}

/// Each clinic's therapist: a PROVIDER login linked to a provider with a
/// licence of the clinic's state, the clinic's event catalogue, and
/// `sessions` in-progress therapy sessions of theirs (each from its own
/// checked-in appointment), for the event-recording workload.
pub async fn load_therapy(owner: &PgPool, sessions: usize) -> Result<()> {
    let hash = service::password::hash(PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = owner
        .begin()
        .await
        .context("opening the therapy transaction")?;
    let step = |what: &'static str| move |e: sqlx::Error| anyhow::anyhow!("loading {what}: {e}");
    for (k, (slug, _, _, state)) in CLINICS.iter().enumerate() {
        let npi = service::domain::Npi::from_prefix([1, 4, 2, 9, 0, 0, 0, 0, k as u8]);
        sqlx::query(
            "WITH o AS (UPDATE organizations SET billing_state = $2 WHERE slug = $1 RETURNING id),              u AS (INSERT INTO users (email, password_hash, display_name, timezone)                    VALUES ('therapist@' || $1 || '.example', $3, 'Bench Therapist', 'UTC') RETURNING id),              m AS (INSERT INTO organization_memberships (organization_id, user_id, role)                    SELECT o.id, u.id, 'PROVIDER' FROM o, u),              c AS (INSERT INTO user_consents (user_id, document_id)                    SELECT u.id, d.id FROM u, consent_documents d WHERE d.is_active),              t AS (INSERT INTO session_event_types (organization_id, code, description)                    SELECT o.id, c.code, c.code FROM o, unnest($5::text[]) AS c (code)),              p AS (INSERT INTO providers (organization_id, user_id, name, npi, specialty)                    SELECT o.id, u.id, 'Bench Therapist', $4, 'Physical Therapy' FROM o, u RETURNING *)              INSERT INTO staff_credentials (organization_id, provider_id, kind, name, number,                                             issuing_state, valid_from)              SELECT p.organization_id, p.id, 'LICENSE', 'Physical Therapist', 'PT-1', $2, DATE '2000-01-01'              FROM p",
        )
        .bind(slug)
        .bind(state)
        .bind(&hash)
        .bind(npi.as_ref())
        .bind(crate::fixture::EVENT_TYPES.map(str::to_owned).to_vec())
        .execute(&mut *tx)
        .await
        .map_err(step("the therapist"))?;
    }
    // Sessions are history written by the operator here: the checks that
    // guard live requests (the caller is the rendering provider) are set
    // aside while they are written.
    sqlx::raw_sql("ALTER TABLE therapy_sessions DISABLE TRIGGER therapy_sessions_check")
        .execute(&mut *tx)
        .await
        .map_err(step("the session check"))?;
    sqlx::query(
        "WITH a AS (            INSERT INTO appointments (organization_id, patient_id, provider_id, starts_at, ends_at,                                      type, reason, status)            SELECT pr.organization_id, pt.id, pr.id,                   date_trunc('hour', now()) - make_interval(hours => 48 + s.n),                   date_trunc('hour', now()) - make_interval(hours => 48 + s.n, mins => -30),                   'IN_PERSON', 'Therapy', 'CHECKED_IN'            FROM providers pr            CROSS JOIN generate_series(1, $1) AS s (n)            JOIN LATERAL (SELECT id FROM patients WHERE organization_id = pr.organization_id                          ORDER BY medical_record_number OFFSET s.n LIMIT 1) pt ON true            WHERE pr.name = 'Bench Therapist' RETURNING *)          INSERT INTO therapy_sessions (organization_id, appointment_id, patient_id, provider_id,                                        service_code, place_of_service, started_at)          SELECT organization_id, id, patient_id, provider_id, '97110', '11', starts_at FROM a",
    )
    .bind(sessions as i32)
    .execute(&mut *tx)
    .await
    .map_err(step("therapy sessions"))?;
    sqlx::raw_sql("ALTER TABLE therapy_sessions ENABLE TRIGGER therapy_sessions_check")
        .execute(&mut *tx)
        .await
        .map_err(step("the session check"))?;
    tx.commit().await.context("committing the therapy data")?;
    Ok(())
}

/// A clinic's therapist: their email, user id and in-progress sessions.
pub async fn therapist(owner: &PgPool, org: Uuid) -> Result<(String, Uuid, Vec<Uuid>)> {
    let (email, user): (String, Uuid) = sqlx::query_as(
        "SELECT u.email, u.id FROM users u JOIN providers p ON p.user_id = u.id \
         WHERE p.organization_id = $1 AND p.name = 'Bench Therapist'",
    )
    .bind(org)
    .fetch_one(owner)
    .await
    .context("looking up the therapist")?;
    let sessions = sqlx::query_scalar(
        "SELECT id FROM therapy_sessions WHERE organization_id = $1 AND status = 'IN_PROGRESS' \
         ORDER BY started_at",
    )
    .bind(org)
    .fetch_all(owner)
    .await
    .context("listing therapy sessions")?;
    Ok((email, user, sessions))
}

/// What the workloads need to know about one clinic.
#[derive(Debug, Clone)]
pub struct ClinicIds {
    pub slug: &'static str,
    pub org: Uuid,
    pub admin_email: String,
    /// Patients in MRN order (patient i is `patients[i]`).
    pub patients: Vec<Uuid>,
    /// Providers in NPI order.
    pub providers: Vec<Uuid>,
}

pub async fn clinic_ids(owner: &PgPool) -> Result<Vec<ClinicIds>> {
    let mut out = Vec::new();
    for (slug, ..) in CLINICS {
        let org: Uuid = sqlx::query("SELECT id FROM organizations WHERE slug = $1")
            .bind(slug)
            .fetch_one(owner)
            .await
            .with_context(|| format!("looking up clinic {slug}"))?
            .try_get("id")?;
        let ids = |sql: &'static str| {
            sqlx::query_scalar::<_, Uuid>(sql)
                .bind(org)
                .fetch_all(owner)
        };
        let patients = ids(
            "SELECT id FROM patients WHERE organization_id = $1 ORDER BY medical_record_number",
        )
        .await
        .context("listing patients")?;
        let providers = ids("SELECT id FROM providers WHERE organization_id = $1 ORDER BY npi")
            .await
            .context("listing providers")?;
        anyhow::ensure!(
            patients.len() == PATIENTS_PER_CLINIC as usize
                && providers.len() == PROVIDERS_PER_CLINIC as usize,
            "clinic {slug}: {} patients and {} providers loaded",
            patients.len(),
            providers.len()
        );
        out.push(ClinicIds {
            slug,
            org,
            admin_email: format!("admin@{slug}.example"),
            patients,
            providers,
        });
    }
    Ok(out)
}

/// Row counts of the loaded tables, for the report.
pub async fn summary(owner: &PgPool) -> Result<String> {
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM patients) AS patients, \
                (SELECT count(*) FROM providers) AS providers, \
                (SELECT count(*) FROM care_team_assignments) AS care, \
                (SELECT count(*) FROM appointments) AS appointments, \
                (SELECT count(*) FROM contact_methods) AS contacts, \
                (SELECT count(*) FROM audit_events) AS audit",
    )
    .fetch_one(owner)
    .await
    .context("counting the data set")?;
    let n = |c: &str| row.try_get::<i64, _>(c);
    Ok(format!(
        "{} clinics, {} patients, {} providers, {} care-team rows, {} appointments, {} contact methods, {} audit events",
        CLINICS.len(),
        n("patients")?,
        n("providers")?,
        n("care")?,
        n("appointments")?,
        n("contacts")?,
        n("audit")?
    ))
}
