//! Logins, sessions and which clinics a user may act in.

use std::net::IpAddr;

use anyhow::Context;
use entity::{organization, user_session};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    Statement,
};
use serde_json::json;

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::audit::record_event;
use crate::context::{self, ContextError, RequestMeta, SessionOf};
use crate::domain::{Email, SessionId, TenantId, UserId};
use crate::error::{DbResultExt, ServiceError, ServiceResult, UnauthenticatedReason};
use crate::{mfa, password};

/// Failed logins allowed per 15-minute window.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    pub per_email: u32,
    pub per_ip: u32,
}

/// A clinic the user may act in, as a clinic switcher shows it.
#[derive(Debug, Clone)]
pub struct Clinic {
    pub id: TenantId,
    pub name: String,
    pub role: Role,
}

/// The clinics the current user may act in (staff memberships first), with
/// their names and the user's role in each.
#[tracing::instrument(skip_all, name = "auth.clinics_of_current_user", level = "debug")]
pub async fn clinics_of_current_user(tx: &Tx) -> ServiceResult<Vec<Clinic>> {
    let rows = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT organization_id, name, role FROM app.user_clinics()",
        ))
        .await
        .or_db("listing a user's clinics")?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: uuid::Uuid = row
            .try_get("", "organization_id")
            .context("organization_id")?;
        let role: String = row.try_get("", "role").context("role")?;
        if let Some(role) = Role::parse(&role) {
            out.push(Clinic {
                id: id.into(),
                name: row.try_get("", "name").context("name")?,
                role,
            });
        }
    }
    Ok(out)
}

/// A login to check.
pub struct Credentials<'a> {
    pub email: &'a str,
    pub password: &'a str,
    /// The clinic to act in (default: the user's first).
    pub organization: Option<TenantId>,
}

/// The session a login opened (its id is the token's `sid`).
#[derive(Debug, Clone)]
struct OpenedSession {
    pub user: UserId,
    pub tenant: TenantId,
    pub session: SessionId,
    pub expires_at: chrono::DateTime<chrono::FixedOffset>,
    /// A super admin acting in `tenant` (every request must name it again).
    pub impersonate: bool,
}

/// What logging in needs beyond the request, the same for every request:
/// where attempts are counted, the limits, and how long sessions last.
#[derive(Clone)]
pub struct LoginSettings {
    /// Connections outside the request's transaction, so that a counted
    /// attempt stays counted when the login's transaction rolls back.
    pub counters: DatabaseConnection,
    pub attempts: AttemptLimits,
    /// How long a session lasts (the token's lifetime).
    pub session_ttl: chrono::Duration,
    /// A session unused this long is over.
    pub idle_minutes: u32,
}

/// A login that succeeded: the session it opened, and who the request now
/// acts as.
pub struct LoggedIn {
    pub actor: Actor,
    /// The active HIPAA notice is not signed yet.
    pub consent_required: bool,
    /// The clinic requires a second factor of the user, who has none yet.
    pub mfa_required: bool,
    pub expires_at: chrono::DateTime<chrono::FixedOffset>,
}

/// Checks credentials and opens a session.
///
/// Each attempt is first reserved against the limits per email and per
/// client address, in PostgreSQL (so every replica shares the count, and
/// concurrent guesses cannot outrun it), in a statement of its own on
/// `counters` (so logins from one address never queue on its counter
/// row); a successful login gives its attempt back. Beyond the limits:
/// RATE_LIMITED, with the password not even checked, and nothing written to
/// the audit trail (the log has it) — so a flood of refused logins cannot
/// flood the trail. Wrong credentials, or a clinic the user has no access
/// to, are audited as ACCESS_DENIED with the email tried. Unknown emails
/// cost the same time as wrong passwords (argon2 runs against a dummy
/// hash). A super admin who names no clinic is told to name one.
///
/// A user with a confirmed second factor gets no session from the
/// password alone: the login answers UNAUTHENTICATED / MFA_REQUIRED with a
/// challenge to answer with [`verify_mfa`] (see [`mfa`](crate::mfa)).
///
/// The request (anonymous until now) then acts as the new session, and the
/// login is audited as LOGIN.
#[tracing::instrument(skip_all, name = "auth.login", level = "debug")]
pub async fn login(
    tx: &Tx,
    settings: &LoginSettings,
    credentials: Credentials<'_>,
    meta: &RequestMeta,
) -> ServiceResult<LoggedIn> {
    let opened = open_session(
        tx,
        &settings.counters,
        settings.attempts,
        credentials,
        settings.session_ttl,
        meta,
    )
    .await?;
    enter_session(tx, settings, opened, meta, serde_json::Value::Null).await
}

/// Where a user's second-factor attempts are counted: with their login
/// attempts' limits, per user and per client address.
pub fn mfa_attempts<'a>(settings: &'a LoginSettings, meta: &RequestMeta) -> mfa::Attempts<'a> {
    mfa::Attempts {
        counters: &settings.counters,
        limits: settings.attempts,
        ip_key: meta.ip.map(limit_key),
    }
}

/// Answers the challenge a login of a user with a second factor opened
/// (see [`login`] and [`mfa`](crate::mfa)): with a valid code, opens the
/// session the login asked for, and the request acts as it, audited as
/// LOGIN (naming the kind of code). Attempts are limited per challenge,
/// per user and per client address.
#[tracing::instrument(skip_all, name = "auth.verify_mfa", level = "debug")]
pub async fn verify_mfa(
    tx: &Tx,
    settings: &LoginSettings,
    master: &crate::phi::MasterKeys,
    challenge: &str,
    code: &mfa::Code,
    meta: &RequestMeta,
) -> ServiceResult<LoggedIn> {
    let attempts = mfa_attempts(settings, meta);
    let passed = mfa::pass_challenge(tx, master, &attempts, challenge, code).await?;
    let opened = match start_session(
        tx,
        passed.user,
        passed.organization,
        settings.session_ttl,
        meta,
    )
    .await?
    {
        SessionStart::Opened(opened) => opened,
        // Checked when the challenge was opened; the membership ended since.
        SessionStart::OrganizationRequired | SessionStart::NoAccess => {
            return Err(ServiceError::MfaRefused(
                UnauthenticatedReason::MfaChallengeInvalid,
            ));
        }
    };
    enter_session(
        tx,
        settings,
        opened,
        meta,
        json!({ "secondFactor": passed.with }),
    )
    .await
}

/// The request (anonymous until now) acts as the session just opened; the
/// login is audited as LOGIN.
async fn enter_session(
    tx: &Tx,
    settings: &LoginSettings,
    opened: OpenedSession,
    meta: &RequestMeta,
    details: serde_json::Value,
) -> ServiceResult<LoggedIn> {
    let who = SessionOf {
        user: opened.user,
        tenant: opened.tenant,
        session: opened.session,
        impersonate: opened.impersonate,
    };
    let viewer = context::enter(tx, meta, who, settings.idle_minutes)
        .await
        .map_err(|err| match err {
            ContextError::Refused(why) => {
                tracing::warn!(reason = why, "a session just opened was refused");
                ServiceError::Unauthenticated("session refused")
            }
            ContextError::Database(err) => ServiceError::Unexpected(err),
        })?;
    record_event(
        tx,
        "LOGIN",
        "user_sessions",
        Some(opened.session.into_uuid()),
        details,
    )
    .await?;
    let actor = viewer
        .actor
        .context("app.begin_request named no caller after a login")?;
    if viewer.consent_required {
        crate::notifications::consent_required(tx, &actor).await?;
    }
    Ok(LoggedIn {
        actor,
        consent_required: viewer.consent_required,
        mfa_required: viewer.mfa_required,
        expires_at: opened.expires_at,
    })
}

/// Checks the credentials and opens a session (see [`login`]).
async fn open_session(
    tx: &Tx,
    counters: &impl ConnectionTrait,
    limits: AttemptLimits,
    credentials: Credentials<'_>,
    ttl: chrono::Duration,
    client: &RequestMeta,
) -> ServiceResult<OpenedSession> {
    let email = credentials.email;
    // Counted as verified: the address as login reads it (trimmed, any
    // case), and a client by its address — by its /64 for IPv6, where one
    // client commonly holds a whole network.
    let email_key = match Email::parse(email) {
        Ok(parsed) => parsed.as_ref().to_lowercase(),
        Err(_) => email.trim().to_lowercase(),
    };
    let ip_key = client.ip.map(limit_key);
    let ip = client.ip.map(|ip| ip.to_string());
    let allowed = counters
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT app.reserve_login_attempt($1, $2, $3, $4) AS allowed",
            [
                email_key.clone().into(),
                ip_key.clone().into(),
                (limits.per_email as i32).into(),
                (limits.per_ip as i32).into(),
            ],
        ))
        .await
        .or_db("reserving a login attempt")?
        .map(|row| row.try_get::<bool>("", "allowed"))
        .transpose()
        .or_db("reading a login reservation")?
        .unwrap_or(false);
    if !allowed {
        tracing::warn!(
            email,
            ip = ip.as_deref(),
            "login refused: too many attempts"
        );
        return Err(ServiceError::RateLimited);
    }

    let Some(user) = verify_credentials(tx, email, credentials.password).await? else {
        record_denied(tx, email, "bad credentials").await?;
        return Err(ServiceError::BadCredentials);
    };
    // A user with a second factor gets a challenge, not a session: the
    // password was right (its attempt is given back), the code is next.
    match mfa::challenge_after_password(tx, user, credentials.organization).await? {
        mfa::AfterPassword::NoFactor => {}
        mfa::AfterPassword::Challenge { token, expires_at } => {
            refund(counters, &email_key, ip_key.as_deref()).await?;
            return Err(ServiceError::MfaRequired {
                challenge: token,
                expires_at,
            });
        }
        mfa::AfterPassword::OrganizationRequired => {
            refund(counters, &email_key, ip_key.as_deref()).await?;
            return Err(organization_required());
        }
        mfa::AfterPassword::NoAccess => {
            record_denied(tx, email, "no access to the clinic").await?;
            return Err(ServiceError::BadCredentials);
        }
    }
    match start_session(tx, user, credentials.organization, ttl, client).await? {
        SessionStart::Opened(opened) => {
            refund(counters, &email_key, ip_key.as_deref()).await?;
            Ok(opened)
        }
        SessionStart::OrganizationRequired => {
            refund(counters, &email_key, ip_key.as_deref()).await?;
            Err(organization_required())
        }
        SessionStart::NoAccess => {
            record_denied(tx, email, "no access to the clinic").await?;
            Err(ServiceError::BadCredentials)
        }
    }
}

fn organization_required() -> ServiceError {
    ServiceError::invalid(
        "organizationId",
        "a super admin acts in one clinic at a time: name it with organizationId",
    )
}

/// What `app.open_session` did.
enum SessionStart {
    Opened(OpenedSession),
    /// A super admin named no clinic.
    OrganizationRequired,
    /// The user may not act in the clinic named.
    NoAccess,
}

/// Opens a session of `user` in `organization` (or their first clinic).
async fn start_session(
    tx: &Tx,
    user: UserId,
    organization: Option<TenantId>,
    ttl: chrono::Duration,
    client: &RequestMeta,
) -> ServiceResult<SessionStart> {
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT status, session_id, organization_id, expires_at, impersonate \
             FROM app.open_session($1, $2, $3, $4::inet, $5)",
            [
                user.into_uuid().into(),
                organization.map(TenantId::into_uuid).into(),
                (ttl.num_minutes() as i32).into(),
                client.ip.map(|ip| ip.to_string()).into(),
                client
                    .user_agent
                    .as_ref()
                    .map(|ua| ua.chars().take(1000).collect::<String>())
                    .into(),
            ],
        ))
        .await
        .or_db("opening a session")?
        .context("app.open_session returned no row")?;
    let status: String = row.try_get("", "status").context("status")?;
    match status.as_str() {
        "OK" => {}
        "ORGANIZATION_REQUIRED" => return Ok(SessionStart::OrganizationRequired),
        _ => return Ok(SessionStart::NoAccess),
    }
    let session: uuid::Uuid = row.try_get("", "session_id").context("session_id")?;
    let tenant: uuid::Uuid = row
        .try_get("", "organization_id")
        .context("organization_id")?;
    Ok(SessionStart::Opened(OpenedSession {
        user,
        tenant: tenant.into(),
        session: session.into(),
        expires_at: row.try_get("", "expires_at").context("expires_at")?,
        impersonate: row.try_get("", "impersonate").context("impersonate")?,
    }))
}

/// The address a client's attempts are counted under: IPv4 as it is, IPv6
/// by its /64.
fn limit_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Gives a reserved login attempt back.
async fn refund(
    counters: &impl ConnectionTrait,
    email: &str,
    ip: Option<&str>,
) -> ServiceResult<()> {
    counters
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT app.refund_login_attempt($1, $2)",
            [email.into(), ip.map(str::to_owned).into()],
        ))
        .await
        .or_db("refunding a login attempt")?;
    Ok(())
}

/// Checks an email and password: the user, when they match.
async fn verify_credentials(
    tx: &Tx,
    email: &str,
    password_attempt: &str,
) -> ServiceResult<Option<UserId>> {
    let found = match Email::parse(email) {
        Ok(email) => tx
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT user_id, password_hash FROM app.login_lookup($1)",
                [email.as_ref().into()],
            ))
            .await
            .or_db("looking up a login")?,
        Err(_) => None,
    };
    let (user, hash) = match found {
        Some(row) => {
            let user: uuid::Uuid = row.try_get("", "user_id").context("reading user_id")?;
            let hash: String = row.try_get("", "password_hash").context("reading hash")?;
            (Some(UserId::from(user)), Some(hash))
        }
        None => (None, None),
    };
    let ok = password::verify_blocking(password_attempt.to_owned(), hash).await;
    Ok(if ok { user } else { None })
}

/// Records a refused login (with the email tried), for the audit trail.
async fn record_denied(tx: &Tx, email: &str, reason: &str) -> ServiceResult<()> {
    record_event(
        tx,
        "ACCESS_DENIED",
        "user_sessions",
        None,
        json!({ "email": email.chars().take(320).collect::<String>(), "reason": reason }),
    )
    .await
}

/// The clinics the current user may act in and their role in each: staff
/// memberships first, then clinics where they hold a chart or a proxy grant.
#[tracing::instrument(skip_all, name = "auth.organizations_of_current_user", level = "debug")]
pub async fn organizations_of_current_user(tx: &Tx) -> ServiceResult<Vec<(TenantId, Role)>> {
    let rows = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT organization_id, role FROM app.user_organizations()",
        ))
        .await
        .or_db("listing a user's clinics")?;
    let mut out = Vec::new();
    for row in rows {
        let org: uuid::Uuid = row
            .try_get("", "organization_id")
            .context("organization_id")?;
        let role: String = row.try_get("", "role").context("role")?;
        if let Some(role) = Role::parse(&role) {
            out.push((TenantId::from(org), role));
        }
    }
    Ok(out)
}

/// The actor's own session.
#[tracing::instrument(skip_all, name = "auth.session", level = "debug")]
async fn session(tx: &Tx, id: SessionId) -> ServiceResult<user_session::Model> {
    user_session::Entity::find_by_id(id.into_uuid())
        .one(tx)
        .await
        .or_db("loading a session")?
        .ok_or(ServiceError::Unauthenticated("session not found"))
}

/// Where a session moved.
pub struct Switched {
    /// The caller's role in the clinic.
    pub role: Role,
    pub session: user_session::Model,
    pub organization: organization::Model,
}

/// Moves the actor's session to another clinic, if they may act there
/// (NOT_FOUND otherwise). The request's context stays the old clinic's:
/// the new clinic is read through `app.reachable_organization`, and the
/// next request, with the new token, acts there.
#[tracing::instrument(skip_all, name = "auth.switch_organization", level = "debug", fields(clinic = %target))]
pub async fn switch_organization(
    tx: &Tx,
    actor: &Actor,
    target: TenantId,
) -> ServiceResult<Switched> {
    let role = organizations_of_current_user(tx)
        .await?
        .into_iter()
        .find(|(t, _)| *t == target)
        .map(|(_, role)| role)
        .ok_or(ServiceError::NotFound)?;
    let organization = organization::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT * FROM app.reachable_organization($1)",
            [target.into_uuid().into()],
        ))
        .one(tx)
        .await
        .or_db("reading the clinic switched to")?
        .ok_or(ServiceError::NotFound)?;
    user_session::Entity::update_many()
        .col_expr(
            user_session::Column::OrganizationId,
            sea_orm::sea_query::Expr::value(target.into_uuid()),
        )
        .filter(user_session::Column::Id.eq(actor.session.into_uuid()))
        .exec(tx)
        .await
        .or_db("switching a session's clinic")?;
    Ok(Switched {
        role,
        session: session(tx, actor.session).await?,
        organization,
    })
}

/// Ends the actor's session: its token stops working at once.
#[tracing::instrument(skip_all, name = "auth.logout", level = "debug")]
pub async fn logout(tx: &Tx, actor: &Actor) -> ServiceResult<()> {
    user_session::Entity::update_many()
        .col_expr(
            user_session::Column::RevokedAt,
            sea_orm::sea_query::Expr::current_timestamp(),
        )
        .filter(user_session::Column::Id.eq(actor.session.into_uuid()))
        .filter(user_session::Column::RevokedAt.is_null())
        .exec(tx)
        .await
        .or_db("revoking a session")?;
    record_event(
        tx,
        "LOGOUT",
        "user_sessions",
        Some(actor.session.into_uuid()),
        serde_json::Value::Null,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::limit_key;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a = limit_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = limit_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, limit_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(limit_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
    }
}
