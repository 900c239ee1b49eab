//! Multi-factor sign-in: a TOTP factor per user (RFC 6238: HMAC-SHA1, six
//! digits, 30-second steps, one step of clock skew either way — what
//! standard authenticator apps do), one-time recovery codes, and the
//! challenge that stands between a correct password and a session for a
//! user who has a factor.
//!
//! - Enrolling makes a secret and shows it once (base32, and as the
//!   `otpauth://` URI a client renders as a QR code); confirming it with a
//!   first valid code turns MFA on and shows ten recovery codes, once.
//! - The secret is stored sealed under the master keys (see
//!   [`crate::phi::MasterKeys::seal_user_secret`]): users are global, so a
//!   clinic's data keys are not theirs. `caregate keys rotate` re-seals it.
//! - A code is accepted only for a time step later than the last one
//!   accepted (stored atomically), so a code seen over a shoulder or in a
//!   log cannot be used twice.
//! - A login of a user with a factor opens a challenge instead of a
//!   session: an opaque token, good for five minutes and five attempts,
//!   that `verifyMfa` exchanges with a valid code for the session the login
//!   asked for. Attempts are also counted per user and per client address,
//!   like passwords.
//!
//! Neither a secret nor a code is ever logged or written to the audit trail.

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use anyhow::{Context, anyhow};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Totp};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::audit::record_event;
use crate::domain::{TenantId, UserId};
use crate::error::{
    ConflictReason, DbResultExt, ServiceError, ServiceResult, UnauthenticatedReason,
};
use crate::phi::{MasterKeys, SealedUserSecret, UserSecret};

/// The issuer authenticator apps show beside the account.
pub const ISSUER: &str = "caregate";
/// Seconds per TOTP time step.
const STEP_SECONDS: u64 = 30;
/// Digits of a TOTP code.
const DIGITS: u8 = 6;
/// Steps of clock drift accepted either way.
const SKEW_STEPS: u16 = 1;
/// Bytes of a new TOTP secret (160 bits, RFC 4226's recommendation).
const SECRET_BYTES: usize = 20;
/// Recovery codes shown when MFA is turned on.
pub const RECOVERY_CODES: usize = 10;
/// Bytes of randomness in a recovery code: 80 bits, 16 base32 characters.
const RECOVERY_CODE_BYTES: usize = 10;
/// How long a login's challenge may be answered.
pub const CHALLENGE_TTL_SECONDS: i32 = 300;
/// Codes a challenge accepts before it is spent.
pub const CHALLENGE_MAX_ATTEMPTS: i32 = 5;
/// Bytes of randomness in a challenge token (shown as 64 hex digits).
const CHALLENGE_BYTES: usize = 32;

/// A second-factor code as a person types it: six digits from their app,
/// or one of their recovery codes (spaces and dashes ignored, any case).
#[derive(Clone, PartialEq, Eq)]
pub enum Code {
    Totp(String),
    Recovery(RecoveryCode),
}

impl std::fmt::Debug for Code {
    // A code is a credential: it never reaches a log, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Totp(_) => f.write_str("Code::Totp(..)"),
            Self::Recovery(_) => f.write_str("Code::Recovery(..)"),
        }
    }
}

impl Code {
    /// Reads a code; anything that is neither six digits nor a recovery
    /// code is BAD_USER_INPUT on `field`.
    pub fn parse(field: &'static str, raw: &str) -> ServiceResult<Self> {
        let compact: String = raw
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if compact.len() == usize::from(DIGITS) && compact.chars().all(|c| c.is_ascii_digit()) {
            return Ok(Self::Totp(compact));
        }
        RecoveryCode::parse(&compact)
            .map(Self::Recovery)
            .ok_or_else(|| {
                ServiceError::invalid(
                    field,
                    "a code is the 6 digits of an authenticator app or a recovery code",
                )
            })
    }
}

/// A one-time recovery code: 16 base32 characters (80 random bits), shown
/// in four groups of four.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    fn parse(compact: &str) -> Option<Self> {
        let upper = compact.to_ascii_uppercase();
        (upper.len() == 16 && upper.chars().all(|c| matches!(c, 'A'..='Z' | '2'..='7')))
            .then_some(Self(upper))
    }

    fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; RECOVERY_CODE_BYTES]);
        OsRng.fill_bytes(bytes.as_mut_slice());
        Self(base32::encode(
            base32::Alphabet::Rfc4648 { padding: false },
            bytes.as_slice(),
        ))
    }

    /// What is stored: SHA-256 of the code. A fast hash is enough here (no
    /// salt, no argon2): the code carries 80 random bits, so there is no
    /// dictionary to try, unlike a password.
    fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }

    /// As shown to the user: `ABCD-EFGH-IJKL-MNOP`.
    fn shown(&self) -> String {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// A login's challenge token, as the client sends it back.
struct ChallengeToken(Vec<u8>);

impl ChallengeToken {
    fn generate() -> (String, Self) {
        let mut bytes = [0u8; CHALLENGE_BYTES];
        OsRng.fill_bytes(&mut bytes);
        let shown = hex::encode(bytes);
        let token = Self::parse(&shown).unwrap_or(Self(Vec::new()));
        (shown, token)
    }

    /// Only the hash of a token is stored: a database reader cannot answer
    /// a challenge with what they read.
    fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        (raw.len() == CHALLENGE_BYTES * 2 && raw.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| Self(Sha256::digest(raw.to_ascii_lowercase().as_bytes()).to_vec()))
    }
}

/// The TOTP of a secret, as every caregate factor is set up.
fn totp(secret: &[u8], account: Option<&str>) -> ServiceResult<Totp> {
    let mut builder = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec());
    if let Some(account) = account {
        builder = builder.with_account_name(account).with_issuer(Some(ISSUER));
    }
    builder
        .build()
        .map_err(|e| ServiceError::Unexpected(anyhow!("a TOTP factor could not be set up: {e}")))
}

/// The time step a six-digit code is valid for at `now` (Unix seconds),
/// within the accepted skew.
fn step_of(secret: &[u8], code: &str, now: u64) -> ServiceResult<Option<u64>> {
    Ok(totp(secret, None)?.check(code, now))
}

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

/// A new factor, shown once: the secret to type into an app, and the URI a
/// client renders as a QR code.
pub struct Enrolment {
    pub secret: String,
    pub provisioning_uri: String,
}

/// The factor of a user as stored.
struct Factor {
    sealed: SealedUserSecret,
    confirmed: bool,
    last_step: Option<i64>,
}

impl Factor {
    fn secret(&self, master: &MasterKeys, user: UserId) -> ServiceResult<Zeroizing<Vec<u8>>> {
        Ok(master.open_user_secret(UserSecret::Totp, user.into_uuid(), &self.sealed)?)
    }
}

async fn own_factor(tx: &Tx, user: UserId) -> ServiceResult<Option<Factor>> {
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT secret_sealed, master_version, confirmed_at IS NOT NULL AS confirmed, last_step \
             FROM user_mfa_factors WHERE user_id = $1 FOR UPDATE",
            [user.into_uuid().into()],
        ))
        .await
        .or_db("reading a user's MFA factor")?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Factor {
        sealed: SealedUserSecret {
            master_version: row
                .try_get("", "master_version")
                .context("master_version")?,
            sealed: row.try_get("", "secret_sealed").context("secret_sealed")?,
        },
        confirmed: row.try_get("", "confirmed").context("confirmed")?,
        last_step: row.try_get("", "last_step").context("last_step")?,
    }))
}

/// The signed-in user's email and whether MFA is on for them.
async fn own_account(tx: &Tx, user: UserId) -> ServiceResult<(String, bool)> {
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT email, mfa_enabled FROM users WHERE id = $1",
            [user.into_uuid().into()],
        ))
        .await
        .or_db("reading the user")?
        .ok_or(ServiceError::Unauthenticated("the user is gone"))?;
    Ok((
        row.try_get("", "email").context("email")?,
        row.try_get("", "mfa_enabled").context("mfa_enabled")?,
    ))
}

/// Starts (or restarts) the actor's enrolment: a new secret, pending until
/// confirmed. Enrolling again before confirming replaces the pending
/// secret (the old one never worked); with MFA already on it is CONFLICT
/// MFA_ALREADY_ENABLED (disable it first).
#[tracing::instrument(skip_all, name = "mfa.enrol", level = "debug")]
pub async fn enrol(tx: &Tx, actor: &Actor, master: &MasterKeys) -> ServiceResult<Enrolment> {
    let (email, enabled) = own_account(tx, actor.user).await?;
    if enabled {
        return Err(ServiceError::Conflict(ConflictReason::MfaAlreadyEnabled));
    }
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    OsRng.fill_bytes(secret.as_mut_slice());
    let sealed =
        master.seal_user_secret(UserSecret::Totp, actor.user.into_uuid(), secret.as_slice())?;
    let replaced = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO user_mfa_factors (user_id, secret_sealed, master_version) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed, \
                 master_version = EXCLUDED.master_version, created_at = now(), \
                 confirmed_at = NULL, last_step = NULL \
             WHERE user_mfa_factors.confirmed_at IS NULL \
             RETURNING user_id",
            [
                actor.user.into_uuid().into(),
                sealed.sealed.into(),
                sealed.master_version.into(),
            ],
        ))
        .await
        .or_db("storing a pending MFA factor")?;
    if replaced.is_none() {
        return Err(ServiceError::Conflict(ConflictReason::MfaAlreadyEnabled));
    }
    let totp = totp(secret.as_slice(), Some(&email))?;
    let provisioning_uri = totp
        .to_url()
        .map_err(|e| ServiceError::Unexpected(anyhow!("a provisioning URI: {e}")))?;
    Ok(Enrolment {
        secret: totp.secret().to_base32(),
        provisioning_uri,
    })
}

/// Checks a six-digit code against the actor's factor and uses its time
/// step: accepted only for a step later than the last one used, stored in
/// the same statement that checks it (so two requests racing with one code
/// cannot both pass).
async fn use_totp(
    tx: &Tx,
    master: &MasterKeys,
    user: UserId,
    factor: &Factor,
    code: &str,
) -> ServiceResult<bool> {
    let secret = factor.secret(master, user)?;
    let Some(step) = step_of(&secret, code, unix_now())? else {
        return Ok(false);
    };
    let step = i64::try_from(step).context("a time step")?;
    if factor.last_step.is_some_and(|last| last >= step) {
        return Ok(false);
    }
    let used = tx
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE user_mfa_factors SET last_step = $2 \
             WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2)",
            [user.into_uuid().into(), step.into()],
        ))
        .await
        .or_db("using a TOTP step")?;
    Ok(used.rows_affected() == 1)
}

/// Uses one of the actor's unused recovery codes.
async fn use_recovery_code(tx: &Tx, user: UserId, code: &RecoveryCode) -> ServiceResult<bool> {
    let used = tx
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE user_mfa_recovery_codes SET used_at = now() \
             WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            [user.into_uuid().into(), code.hash().into()],
        ))
        .await
        .or_db("using a recovery code")?;
    Ok(used.rows_affected() == 1)
}

/// Audits a refused second-factor code (never the code itself).
async fn record_refusal(tx: &Tx, user: UserId, step: &str) -> ServiceResult<()> {
    record_event(
        tx,
        "ACCESS_DENIED",
        "user_mfa",
        Some(user.into_uuid()),
        json!({ "reason": "invalid MFA code", "step": step }),
    )
    .await
}

/// A wrong code of a signed-in user (confirming or disabling): refused on
/// the argument, not as UNAUTHENTICATED, so the client keeps its session.
fn wrong_code() -> ServiceError {
    ServiceError::invalid("code", "the code is wrong, expired or already used")
}

/// Confirms the actor's pending factor with a first valid code: MFA is on
/// from then on, and the ten recovery codes returned are shown this once
/// (only their hashes are kept). CONFLICT MFA_NOT_ENROLLED without a
/// pending factor, MFA_ALREADY_ENABLED when it is already confirmed; a
/// wrong code is BAD_USER_INPUT on `code` (audited, and counted against the
/// user's attempts like a password).
#[tracing::instrument(skip_all, name = "mfa.confirm", level = "debug")]
pub async fn confirm(
    tx: &Tx,
    actor: &Actor,
    master: &MasterKeys,
    attempts: &Attempts<'_>,
    code: &Code,
) -> ServiceResult<Vec<String>> {
    let factor = own_factor(tx, actor.user)
        .await?
        .ok_or(ServiceError::Conflict(ConflictReason::MfaNotEnrolled))?;
    if factor.confirmed {
        return Err(ServiceError::Conflict(ConflictReason::MfaAlreadyEnabled));
    }
    attempts.reserve(actor.user).await?;
    let ok = match code {
        Code::Totp(digits) => use_totp(tx, master, actor.user, &factor, digits).await?,
        // No recovery codes exist before confirmation.
        Code::Recovery(_) => false,
    };
    if !ok {
        record_refusal(tx, actor.user, "confirm").await?;
        return Err(wrong_code());
    }
    attempts.refund(actor.user).await?;
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE user_mfa_factors SET confirmed_at = now() WHERE user_id = $1",
        [actor.user.into_uuid().into()],
    ))
    .await
    .or_db("confirming an MFA factor")?;
    // The users row's audit trigger records MFA turned on (mfa_enabled).
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE users SET mfa_enabled = true WHERE id = $1",
        [actor.user.into_uuid().into()],
    ))
    .await
    .or_db("turning MFA on")?;
    let codes: Vec<RecoveryCode> = (0..RECOVERY_CODES)
        .map(|_| RecoveryCode::generate())
        .collect();
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO user_mfa_recovery_codes (user_id, code_hash) \
         SELECT $1, decode(h, 'hex') FROM unnest($2::text[]) AS h",
        [
            actor.user.into_uuid().into(),
            // Hex digits only: the array's text form needs no quoting.
            format!(
                "{{{}}}",
                codes
                    .iter()
                    .map(|c| hex::encode(c.hash()))
                    .collect::<Vec<_>>()
                    .join(",")
            )
            .into(),
        ],
    ))
    .await
    .or_db("storing recovery codes")?;
    Ok(codes.iter().map(RecoveryCode::shown).collect())
}

/// Turns the actor's MFA off: needs a fresh code (a TOTP code for a step
/// not used yet, or an unused recovery code), so a stolen session alone
/// cannot remove the factor. The factor and every recovery code are
/// removed. CONFLICT MFA_NOT_ENABLED when MFA is off; a wrong code is
/// BAD_USER_INPUT on `code` (audited, counted).
#[tracing::instrument(skip_all, name = "mfa.disable", level = "debug")]
pub async fn disable(
    tx: &Tx,
    actor: &Actor,
    master: &MasterKeys,
    attempts: &Attempts<'_>,
    code: &Code,
) -> ServiceResult<()> {
    let (_, enabled) = own_account(tx, actor.user).await?;
    let factor = own_factor(tx, actor.user).await?;
    let Some(factor) = factor.filter(|f| f.confirmed && enabled) else {
        return Err(ServiceError::Conflict(ConflictReason::MfaNotEnabled));
    };
    attempts.reserve(actor.user).await?;
    let ok = match code {
        Code::Totp(digits) => use_totp(tx, master, actor.user, &factor, digits).await?,
        Code::Recovery(code) => use_recovery_code(tx, actor.user, code).await?,
    };
    if !ok {
        record_refusal(tx, actor.user, "disable").await?;
        return Err(wrong_code());
    }
    attempts.refund(actor.user).await?;
    tx.execute_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT app.clear_own_mfa()",
    ))
    .await
    .or_db("removing an MFA factor")?;
    // The users row's audit trigger records MFA turned off.
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE users SET mfa_enabled = false WHERE id = $1",
        [actor.user.into_uuid().into()],
    ))
    .await
    .or_db("turning MFA off")?;
    Ok(())
}

/// Where second-factor attempts are counted: the login attempt counters
/// (outside the request's transaction, so a counted attempt stays counted
/// when it rolls back), under a key of their own per user (` mfa:<user>`),
/// and per client address together with password attempts.
pub struct Attempts<'a> {
    pub counters: &'a sea_orm::DatabaseConnection,
    pub limits: crate::auth::AttemptLimits,
    /// The client's address as attempts are counted (see
    /// `auth::limit_key`).
    pub ip_key: Option<String>,
}

impl Attempts<'_> {
    /// The user's key among the login counters. It starts with a space: a
    /// login counts the email as typed but trimmed, so no email tried at
    /// login can spend (or be spent by) a user's second-factor attempts.
    fn user_key(user: UserId) -> String {
        format!(" mfa:{}", user.into_uuid())
    }

    /// Reserves one attempt; beyond the limits RATE_LIMITED, with the code
    /// not even checked.
    pub async fn reserve(&self, user: UserId) -> ServiceResult<()> {
        let allowed = self
            .counters
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT app.reserve_login_attempt($1, $2, $3, $4) AS allowed",
                [
                    Self::user_key(user).into(),
                    self.ip_key.clone().into(),
                    (self.limits.per_email as i32).into(),
                    (self.limits.per_ip as i32).into(),
                ],
            ))
            .await
            .or_db("reserving an MFA attempt")?
            .map(|row| row.try_get::<bool>("", "allowed"))
            .transpose()
            .or_db("reading an MFA reservation")?
            .unwrap_or(false);
        if !allowed {
            tracing::warn!(user = %user.into_uuid(), "MFA code refused: too many attempts");
            return Err(ServiceError::RateLimited);
        }
        Ok(())
    }

    /// Gives back the attempt of a code that was right.
    pub async fn refund(&self, user: UserId) -> ServiceResult<()> {
        self.counters
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT app.refund_login_attempt($1, $2)",
                [Self::user_key(user).into(), self.ip_key.clone().into()],
            ))
            .await
            .or_db("refunding an MFA attempt")?;
        Ok(())
    }
}

/// What a login asks of a user after their password.
pub(crate) enum AfterPassword {
    /// No factor: the session opens now.
    NoFactor,
    /// A challenge to answer with a code (the token is shown once).
    Challenge {
        token: String,
        expires_at: chrono::DateTime<chrono::FixedOffset>,
    },
    /// A super admin named no clinic.
    OrganizationRequired,
    /// The user may not act in the clinic named.
    NoAccess,
}

/// After a correct password: a challenge when the user has a confirmed
/// factor (for the clinic the login named, checked now as a session's
/// would be), or nothing.
pub(crate) async fn challenge_after_password(
    tx: &Tx,
    user: UserId,
    organization: Option<TenantId>,
) -> ServiceResult<AfterPassword> {
    let (shown, token) = ChallengeToken::generate();
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT status, expires_at FROM app.open_mfa_challenge($1, $2, $3, $4)",
            [
                user.into_uuid().into(),
                organization.map(TenantId::into_uuid).into(),
                token.0.into(),
                CHALLENGE_TTL_SECONDS.into(),
            ],
        ))
        .await
        .or_db("opening an MFA challenge")?
        .context("app.open_mfa_challenge returned no row")?;
    let status: String = row.try_get("", "status").context("status")?;
    Ok(match status.as_str() {
        "NOT_ENROLLED" => AfterPassword::NoFactor,
        "OK" => AfterPassword::Challenge {
            token: shown,
            expires_at: row.try_get("", "expires_at").context("expires_at")?,
        },
        "ORGANIZATION_REQUIRED" => AfterPassword::OrganizationRequired,
        _ => AfterPassword::NoAccess,
    })
}

/// A challenge answered with a valid code: whose login it was.
pub(crate) struct Passed {
    pub user: UserId,
    pub organization: Option<TenantId>,
    /// Which kind of code passed it, for the LOGIN event.
    pub with: &'static str,
}

/// Answers a login's challenge. The attempt is counted on the challenge
/// first (a challenge takes at most five), then per user and per client
/// address (RATE_LIMITED beyond the limits); then the code is checked and,
/// when valid, used and the challenge consumed in one statement. An
/// unknown, used, expired or spent challenge is UNAUTHENTICATED
/// MFA_CHALLENGE_INVALID; a wrong, used or replayed code UNAUTHENTICATED
/// INVALID_MFA_CODE (audited).
pub(crate) async fn pass_challenge(
    tx: &Tx,
    master: &MasterKeys,
    attempts: &Attempts<'_>,
    challenge: &str,
    code: &Code,
) -> ServiceResult<Passed> {
    let invalid = || ServiceError::MfaRefused(UnauthenticatedReason::MfaChallengeInvalid);
    let token = ChallengeToken::parse(challenge).ok_or_else(invalid)?;
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT user_id, organization_id, secret_sealed, master_version, last_step \
             FROM app.attempt_mfa_challenge($1, $2)",
            [token.0.clone().into(), CHALLENGE_MAX_ATTEMPTS.into()],
        ))
        .await
        .or_db("counting an MFA attempt")?
        .ok_or_else(invalid)?;
    let user: UserId = row
        .try_get::<Uuid>("", "user_id")
        .context("user_id")?
        .into();
    let organization: Option<Uuid> = row
        .try_get("", "organization_id")
        .context("organization_id")?;
    attempts.reserve(user).await?;
    let (step, code_hash, with) = match code {
        Code::Totp(digits) => {
            let sealed = SealedUserSecret {
                master_version: row
                    .try_get("", "master_version")
                    .context("master_version")?,
                sealed: row.try_get("", "secret_sealed").context("secret_sealed")?,
            };
            let secret = master.open_user_secret(UserSecret::Totp, user.into_uuid(), &sealed)?;
            let last: Option<i64> = row.try_get("", "last_step").context("last_step")?;
            let step = step_of(&secret, digits, unix_now())?
                .and_then(|s| i64::try_from(s).ok())
                .filter(|s| last.is_none_or(|last| *s > last));
            (step, None, "TOTP")
        }
        Code::Recovery(code) => (None, Some(code.hash()), "RECOVERY_CODE"),
    };
    let status = if step.is_none() && code_hash.is_none() {
        "CODE_USED".to_owned()
    } else {
        let row = tx
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT app.pass_mfa_challenge($1, $2, $3) AS status",
                [token.0.into(), step.into(), code_hash.into()],
            ))
            .await
            .or_db("passing an MFA challenge")?
            .context("app.pass_mfa_challenge returned no row")?;
        row.try_get::<String>("", "status").context("status")?
    };
    match status.as_str() {
        "OK" => {}
        "CHALLENGE_INVALID" => return Err(invalid()),
        _ => {
            record_refusal(tx, user, "login").await?;
            return Err(ServiceError::MfaRefused(
                UnauthenticatedReason::InvalidMfaCode,
            ));
        }
    }
    attempts.refund(user).await?;
    Ok(Passed {
        user,
        organization: organization.map(Into::into),
        with,
    })
}

/// What a clinic requires a second factor of (`organizations.settings.mfaRequired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Nobody (the setting is absent).
    None,
    /// Its admins.
    Admin,
    /// All of its staff: admins, providers and staff.
    AllStaff,
}

impl Requirement {
    fn setting(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Admin => Some("ADMIN"),
            Self::AllStaff => Some("ALL_STAFF"),
        }
    }

    /// The requirement a clinic's settings state.
    pub fn of_settings(settings: &serde_json::Value) -> Self {
        match settings.get("mfaRequired").and_then(|v| v.as_str()) {
            Some("ADMIN") => Self::Admin,
            Some("ALL_STAFF") => Self::AllStaff,
            _ => Self::None,
        }
    }

    /// Whether it requires a second factor of `role` (what
    /// `app.begin_request` applies to every request).
    pub fn applies_to(self, role: Role) -> bool {
        match self {
            Self::None => false,
            Self::Admin => role == Role::Admin,
            Self::AllStaff => role.is_staff(),
        }
    }
}

/// Sets what the actor's clinic requires a second factor of (ADMIN only).
/// From the next request on, a session of a user it applies to who has no
/// factor may only enrol one (FORBIDDEN MFA_ENROLMENT_REQUIRED elsewhere).
#[tracing::instrument(skip_all, name = "mfa.set_requirement", level = "debug")]
pub async fn set_requirement(
    tx: &Tx,
    actor: &Actor,
    requirement: Requirement,
) -> ServiceResult<Requirement> {
    actor.require(&[Role::Admin])?;
    // The organizations row's audit trigger records the change.
    let updated = tx
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE organizations SET settings = CASE WHEN $2::text IS NULL \
                 THEN settings - 'mfaRequired' \
                 ELSE jsonb_set(settings, '{mfaRequired}', to_jsonb($2::text)) END \
             WHERE id = $1",
            [
                actor.tenant.into_uuid().into(),
                requirement.setting().map(str::to_owned).into(),
            ],
        ))
        .await
        .or_db("setting the clinic's MFA requirement")?;
    if updated.rows_affected() != 1 {
        return Err(ServiceError::NotFound);
    }
    Ok(requirement)
}

/// Whether the signed-in user has MFA on.
pub async fn enabled(tx: &Tx, user: UserId) -> ServiceResult<bool> {
    Ok(own_account(tx, user).await?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_digits_are_a_totp_code_with_spaces_ignored() {
        assert_eq!(
            Code::parse("code", " 123 456 ").unwrap(),
            Code::Totp("123456".into())
        );
        assert!(Code::parse("code", "12345").is_err());
        assert!(Code::parse("code", "1234567").is_err());
        assert!(Code::parse("code", "12345a").is_err());
        assert!(Code::parse("code", "").is_err());
        assert!(
            Code::parse("code", "１２３４５６").is_err(),
            "ASCII digits only"
        );
    }

    #[test]
    fn a_recovery_code_is_read_in_any_case_with_or_without_dashes() {
        let code = RecoveryCode::generate();
        let shown = code.shown();
        assert_eq!(shown.len(), 19);
        assert_eq!(shown.matches('-').count(), 3);
        assert_eq!(
            Code::parse("code", &shown).unwrap(),
            Code::Recovery(code.clone())
        );
        assert_eq!(
            Code::parse("code", &shown.to_lowercase().replace('-', " ")).unwrap(),
            Code::Recovery(code)
        );
        // Base32 has no 0, 1, 8 or 9.
        assert!(Code::parse("code", "ABCD-EFGH-IJKL-MN01").is_err());
        assert!(Code::parse("code", "ABCD-EFGH-IJKL").is_err());
    }

    #[test]
    fn recovery_codes_differ_and_are_stored_only_as_a_hash() {
        let a = RecoveryCode::generate();
        let b = RecoveryCode::generate();
        assert!(a != b, "two codes alike");
        assert_eq!(a.hash().len(), 32);
        assert!(!a.hash().windows(16).any(|w| w == a.0.as_bytes()));
    }

    #[test]
    fn a_code_is_valid_one_step_either_side_and_names_its_step() {
        // RFC 6238 appendix B's SHA1 secret and its 8-digit value at 59 s
        // (94287082): six digits are its last six.
        let secret = b"12345678901234567890";
        assert_eq!(step_of(secret, "287082", 59).unwrap(), Some(1));
        assert_eq!(step_of(secret, "287082", 59 + 30).unwrap(), Some(1));
        assert_eq!(step_of(secret, "287082", 59 - 30).unwrap(), Some(1));
        assert_eq!(step_of(secret, "287082", 59 + 60).unwrap(), None);
        assert_eq!(step_of(secret, "287083", 59).unwrap(), None);
    }

    #[test]
    fn a_challenge_token_is_64_hex_digits_and_only_its_hash_is_kept() {
        let (shown, token) = ChallengeToken::generate();
        assert_eq!(shown.len(), 64);
        assert_eq!(token.0.len(), 32);
        assert_eq!(ChallengeToken::parse(&shown).map(|t| t.0), Some(token.0));
        assert!(ChallengeToken::parse("not a token").is_none());
        assert!(ChallengeToken::parse(&shown[..63]).is_none());
    }

    #[test]
    fn the_provisioning_uri_names_caregate_and_the_account() {
        let uri = totp(&[7u8; 20], Some("mfa.admin@northside.example"))
            .unwrap()
            .to_url()
            .unwrap();
        assert!(
            uri.starts_with("otpauth://totp/caregate:mfa.admin%40northside.example?secret="),
            "{uri}"
        );
        assert!(uri.ends_with("&issuer=caregate"), "{uri}");
    }

    #[test]
    fn the_requirement_applies_to_the_roles_it_names() {
        let admin = Requirement::of_settings(&json!({ "mfaRequired": "ADMIN" }));
        assert!(admin.applies_to(Role::Admin));
        assert!(!admin.applies_to(Role::Staff));
        let all = Requirement::of_settings(&json!({ "mfaRequired": "ALL_STAFF" }));
        assert!(all.applies_to(Role::Provider));
        assert!(!all.applies_to(Role::Portal));
        assert_eq!(Requirement::of_settings(&json!({})), Requirement::None);
    }
}
