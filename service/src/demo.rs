//! The demo data set `caregate seed-demo` loads (and a zero-setup run loads
//! on first start): see `demo.sql`.

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use crate::password;

/// The password of every demo login.
pub const DEMO_PASSWORD: &str = "caregate-demo";

/// Demo logins and what each shows.
pub const DEMO_LOGINS: &[(&str, &str, &str)] = &[
    ("admin@northside.example", "northside", "ADMIN at Northside"),
    (
        "mfa.admin@northside.example",
        "northside",
        "ADMIN at Northside who signs in with a second factor (TOTP; see DEMO_MFA_SECRET)",
    ),
    (
        "frontdesk@northside.example",
        "northside",
        "STAFF at Northside",
    ),
    (
        "dr.okafor@northside.example",
        "northside",
        "PROVIDER at Northside",
    ),
    ("admin@lakeside.example", "lakeside", "ADMIN at Lakeside"),
    (
        "frontdesk@lakeside.example",
        "lakeside",
        "STAFF at Lakeside",
    ),
    (
        "jonathan.smith@example.com",
        "northside",
        "patient with a chart at both clinics",
    ),
    (
        "maria.garcia@example.com",
        "northside",
        "parent (proxy) of Sofia Garcia: profile and appointments only",
    ),
    (
        "ingrid.andersson@example.com",
        "lakeside",
        "parent (proxy) of Noah Andersson: may also book",
    ),
    (
        "support@caregate.example",
        "northside",
        "super admin, impersonating Northside (send the header below on every request)",
    ),
];

/// The demo MFA admin's TOTP secret (base32). Fixed and published so that
/// anyone trying the demo can make its codes (`oathtool --totp -b <it>`);
/// stored sealed like any user's.
pub const DEMO_MFA_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// Jonathan Smith's SSN at Northside (a made-up number), stored sealed.
pub const DEMO_SSN: &str = "219-09-9999";

/// Loads the demo data once. Returns `false` when it was already there.
///
/// Runs as the migrating (owner) role: seeding is an operator's act, not a
/// request, so it carries no tenant context.
pub async fn seed(db: &DatabaseConnection, keyring: &crate::phi::Keyring) -> anyhow::Result<bool> {
    let present = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 FROM organizations WHERE slug = 'northside'",
        ))
        .await
        .context("looking for the demo clinics")?;
    if present.is_some() {
        return Ok(false);
    }
    let hash = password::hash(DEMO_PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    // A PHC string holds only [A-Za-z0-9$=,+/.-], so it is safe inside a literal.
    anyhow::ensure!(
        hash.chars()
            .all(|c| c.is_ascii_alphanumeric() || "$=,+/.-".contains(c)),
        "unexpected character in a password hash"
    );
    let sql = include_str!("demo.sql").replace(":password_hash", &hash);
    let tx = db.begin().await.context("opening the seed transaction")?;
    tx.execute_unprepared(&sql)
        .await
        .context("loading the demo data")?;
    tx.commit().await.context("committing the demo data")?;
    // The demo's SQL writes member ids and tax ids in the clear (it holds
    // no key); sealing them is the operator's `keys reencrypt`.
    for (_, clinic, _) in clinics(db).await? {
        crate::phi::admin::reencrypt(db, keyring, clinic, 500)
            .await
            .context("sealing the demo's identifiers")?;
    }
    front_desk_work(db, keyring).await?;
    mfa_admin(db, keyring).await?;
    Ok(true)
}

/// Gives the demo MFA admin a confirmed factor with [`DEMO_MFA_SECRET`],
/// sealed through the keyring as an enrolment seals it.
async fn mfa_admin(db: &DatabaseConnection, keyring: &crate::phi::Keyring) -> anyhow::Result<()> {
    let user: uuid::Uuid = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id FROM users WHERE email = 'mfa.admin@northside.example'",
        ))
        .await
        .context("finding the demo MFA admin")?
        .context("the demo MFA admin")?
        .try_get("", "id")?;
    let secret = base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        DEMO_MFA_SECRET,
    )
    .context("the demo MFA secret is base32")?;
    let sealed = keyring
        .master()
        .seal_user_secret(crate::phi::UserSecret::Totp, user, &secret)?;
    let tx = db
        .begin()
        .await
        .context("opening the MFA seed transaction")?;
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO user_mfa_factors (user_id, secret_sealed, master_version, confirmed_at) \
         VALUES ($1, $2, $3, now())",
        [
            user.into(),
            sealed.sealed.into(),
            sealed.master_version.into(),
        ],
    ))
    .await
    .context("storing the demo MFA factor")?;
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE users SET mfa_enabled = true WHERE id = $1",
        [user.into()],
    ))
    .await
    .context("turning MFA on for the demo MFA admin")?;
    tx.commit()
        .await
        .context("committing the demo MFA factor")?;
    Ok(())
}

/// What the demo's front desk does through the services, in a transaction
/// of a short session of theirs with the same context a request of theirs
/// has (an operator's act, like `caregate token`'s sessions): submits the
/// draft claim through `claims::submit` (which renders the 837P and keeps
/// it), and records Jonathan Smith's SSN (sealed under Northside's data
/// key, which this creates).
async fn front_desk_work(
    db: &DatabaseConnection,
    keyring: &crate::phi::Keyring,
) -> anyhow::Result<()> {
    let s = dev_session(db, "frontdesk@northside.example", Some("northside"), 1).await?;
    let meta = crate::context::RequestMeta {
        request_id: format!("seed-demo-{}", ulid::Ulid::generate()),
        ip: None,
        user_agent: Some("caregate seed-demo".into()),
        impersonate: None,
    };
    let who = crate::context::SessionOf {
        user: s.user.into(),
        tenant: s.organization.into(),
        session: s.session.into(),
        impersonate: false,
    };
    let (tx, viewer) = crate::context::open(
        db.get_postgres_connection_pool(),
        &crate::tx::TxOptions::default(),
        crate::tx::Counter::default(),
        &meta,
        Some(who),
        60,
    )
    .await
    .map_err(|e| anyhow::anyhow!("the front desk's context: {e:?}"))?;
    let actor = viewer.actor.context("the front desk's context")?;
    let claim: uuid::Uuid = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM claims WHERE organization_id = $1 AND status = 'DRAFT'",
            [s.organization.into()],
        ))
        .await
        .context("finding the demo claim")?
        .context("the demo claim")?
        .try_get("", "id")?;
    crate::claims::submit(&tx, &actor, keyring, claim)
        .await
        .map_err(|e| anyhow::anyhow!("submitting the demo claim: {e}"))?;
    let jonathan: uuid::Uuid = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM patients WHERE organization_id = $1 AND medical_record_number = 'NS-0001'",
            [s.organization.into()],
        ))
        .await
        .context("finding Jonathan Smith's chart")?
        .context("Jonathan Smith's chart")?
        .try_get("", "id")?;
    let ssn = crate::ssn::Ssn::parse("ssn", DEMO_SSN).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::ssn::set(&tx, &actor, keyring, jonathan.into(), Some(ssn))
        .await
        .map_err(|e| anyhow::anyhow!("recording the demo SSN: {e}"))?;
    tx.commit()
        .await
        .map_err(|e| anyhow::anyhow!("committing the demo claim: {e:?}"))?;
    Ok(())
}

/// A session for a user in a clinic, opened by the operator (the owner
/// role) for `caregate token` and the demo tokens printed at start.
#[derive(Debug, Clone)]
pub struct DevSession {
    pub user: uuid::Uuid,
    pub organization: uuid::Uuid,
    pub role: String,
    pub session: uuid::Uuid,
    pub expires_at: chrono::DateTime<chrono::FixedOffset>,
    /// A super admin's session in a clinic they do not belong to: every
    /// request must send `x-caregate-impersonate: <organization>`.
    pub impersonate: bool,
}

/// The demo clinics: (slug, id, name).
pub async fn clinics(db: &DatabaseConnection) -> anyhow::Result<Vec<(String, uuid::Uuid, String)>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT slug, id, name FROM organizations WHERE deleted_at IS NULL ORDER BY slug DESC",
        ))
        .await
        .context("listing the clinics")?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("", "slug")?,
                r.try_get("", "id")?,
                r.try_get("", "name")?,
            ))
        })
        .collect()
}

/// Opens a session for `email` in the clinic `org` (slug or id; default:
/// the user's first clinic). The role is the user's membership, or PORTAL
/// for a patient or proxy.
pub async fn dev_session(
    db: &DatabaseConnection,
    email: &str,
    org: Option<&str>,
    ttl_minutes: u32,
) -> anyhow::Result<DevSession> {
    // The user's own clinics first; a super admin may also name any clinic
    // (an impersonation, as at login).
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT user_id, organization_id, role, impersonate FROM ( \
               SELECT u.id AS user_id, r.organization_id, r.role, false AS impersonate, \
                      r.ordinality AS rank \
               FROM users u CROSS JOIN LATERAL app.organizations_of(u.id) WITH ORDINALITY AS r \
               JOIN organizations o ON o.id = r.organization_id \
               WHERE lower(u.email) = lower($1) AND u.deleted_at IS NULL \
                 AND ($2::text IS NULL OR o.slug = $2 OR o.id::text = $2) \
               UNION ALL \
               SELECT u.id, o.id, 'ADMIN', true, 1000000 \
               FROM users u JOIN organizations o ON o.slug = $2 OR o.id::text = $2 \
               WHERE lower(u.email) = lower($1) AND u.deleted_at IS NULL AND u.is_super_admin \
                 AND o.deleted_at IS NULL) AS found \
             ORDER BY rank LIMIT 1",
            [email.into(), org.map(str::to_owned).into()],
        ))
        .await
        .context("looking up the user")?
        .with_context(|| format!("{email} has no access to that clinic (or does not exist)"))?;
    let user: uuid::Uuid = row.try_get("", "user_id")?;
    let organization: uuid::Uuid = row.try_get("", "organization_id")?;
    let role: String = row.try_get("", "role")?;
    let impersonate: bool = row.try_get("", "impersonate")?;
    let session = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO user_sessions (user_id, organization_id, expires_at, user_agent) \
             VALUES ($1, $2, now() + make_interval(mins => $3), 'caregate token') \
             RETURNING id, expires_at",
            [
                user.into(),
                organization.into(),
                (ttl_minutes as i32).into(),
            ],
        ))
        .await
        .context("opening a session")?
        .context("no session row returned")?;
    Ok(DevSession {
        user,
        organization,
        role,
        session: session.try_get("", "id")?,
        expires_at: session.try_get("", "expires_at")?,
        impersonate,
    })
}
