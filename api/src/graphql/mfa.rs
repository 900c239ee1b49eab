//! Multi-factor sign-in: enrolling a TOTP factor, answering a login's
//! challenge with a code, turning the factor off, and what a clinic
//! requires (see `service::mfa`).

use std::sync::Arc;

use async_graphql::{Context, Enum, Object, SimpleObject};
use service::auth::LoginSettings;
use service::mfa::{Code, Requirement};
use service::phi::Keyring;

use super::mutation::payload;
use super::scope::{ScopeExt, in_savepoint};
use super::types::organization::{AuthPayload, Viewer};
use crate::error::{GqlResult, IntoGql};

/// A new TOTP factor, shown once: add it to an authenticator app, then
/// confirm it with `confirmMfa`.
#[derive(SimpleObject)]
pub struct MfaEnrollment {
    /// The shared secret, base32 (what an app asks for when typed in by hand).
    pub secret: String,
    /// The `otpauth://totp/caregate:<email>?secret=…&issuer=caregate` URI:
    /// render it as a QR code for the app to scan.
    pub provisioning_uri: String,
}

/// A confirmed factor: MFA is on.
#[derive(SimpleObject)]
pub struct MfaConfirmation {
    /// Ten one-time recovery codes (`XXXX-XXXX-XXXX-XXXX`), each usable once
    /// in place of an app's code. Shown this once: only their hashes are kept.
    pub recovery_codes: Vec<String>,
}

/// Whom a clinic requires to sign in with a second factor.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaRequirement {
    /// Nobody (each user may still turn MFA on).
    None,
    /// The clinic's admins.
    Admin,
    /// All of the clinic's staff: admins, providers and staff.
    AllStaff,
}

impl From<MfaRequirement> for Requirement {
    fn from(r: MfaRequirement) -> Self {
        match r {
            MfaRequirement::None => Self::None,
            MfaRequirement::Admin => Self::Admin,
            MfaRequirement::AllStaff => Self::AllStaff,
        }
    }
}

impl From<Requirement> for MfaRequirement {
    fn from(r: Requirement) -> Self {
        match r {
            Requirement::None => Self::None,
            Requirement::Admin => Self::Admin,
            Requirement::AllStaff => Self::AllStaff,
        }
    }
}

#[derive(Default)]
pub struct MfaMutation;

#[Object]
impl MfaMutation {
    /// Answers the challenge of a login that needed a second factor (the
    /// `extensions.mfaChallenge` of its UNAUTHENTICATED / MFA_REQUIRED
    /// error) with a code, and opens the session the login asked for. A
    /// wrong, used or replayed code is UNAUTHENTICATED / INVALID_MFA_CODE;
    /// a challenge takes at most 5 codes within 5 minutes and is used by
    /// the first valid one, after which it is UNAUTHENTICATED /
    /// MFA_CHALLENGE_INVALID (log in again). Attempts per user and per
    /// client address are limited like logins (RATE_LIMITED). Only as the
    /// sole operation of its request.
    async fn verify_mfa(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The login's `extensions.mfaChallenge`.")] challenge: String,
        #[graphql(desc = "The 6 digits the user's authenticator app shows now, \
                          or one of their unused recovery codes.")]
        code: String,
    ) -> GqlResult<AuthPayload> {
        let scope = ctx.scope()?;
        let code = Code::parse("code", &code).gql()?;
        let settings = ctx.shared::<LoginSettings>()?;
        let keyring = ctx.shared::<Arc<Keyring>>()?;
        // No savepoint: a refused code's count and audit event stand.
        let logged_in = service::auth::verify_mfa(
            &scope.tx,
            settings,
            keyring.master(),
            &challenge,
            &code,
            &scope.meta,
        )
        .await
        .gql()?;
        let shown = Viewer::of(
            &logged_in.actor,
            logged_in.consent_required,
            logged_in.mfa_required,
        );
        payload(ctx, shown, logged_in.actor.session, logged_in.expires_at)
    }

    /// Starts turning on a second factor for the caller: a new TOTP secret
    /// for their authenticator app, pending until `confirmMfa`. Enrolling
    /// again before confirming replaces the pending secret. CONFLICT /
    /// MFA_ALREADY_ENABLED when MFA is already on. Allowed while the
    /// clinic's requirement restricts the caller to enrolment.
    async fn enroll_mfa(&self, ctx: &Context<'_>) -> GqlResult<MfaEnrollment> {
        let actor = ctx.actor_enrolling_mfa()?;
        let keyring = ctx.shared::<Arc<Keyring>>()?;
        let enrolled = in_savepoint(ctx, async |tx| {
            service::mfa::enrol(tx, actor, keyring.master()).await
        })
        .await?;
        Ok(MfaEnrollment {
            secret: enrolled.secret,
            provisioning_uri: enrolled.provisioning_uri,
        })
    }

    /// Turns the caller's second factor on with a first code from their app,
    /// and returns their recovery codes (shown once). A wrong code is
    /// BAD_USER_INPUT on `code`; CONFLICT / MFA_NOT_ENROLLED without
    /// `enrollMfa` first. From the next login on, a password alone opens no
    /// session. Allowed while the clinic's requirement restricts the caller
    /// to enrolment; it lifts the restriction from the next request on.
    async fn confirm_mfa(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The 6 digits the authenticator app shows now.")] code: String,
    ) -> GqlResult<MfaConfirmation> {
        let actor = ctx.actor_enrolling_mfa()?;
        let code = Code::parse("code", &code).gql()?;
        let scope = ctx.scope()?;
        let keyring = ctx.shared::<Arc<Keyring>>()?;
        let attempts = service::auth::mfa_attempts(ctx.shared::<LoginSettings>()?, &scope.meta);
        // No savepoint: a refused code's audit event stands (a refusal
        // writes nothing else).
        let recovery_codes =
            service::mfa::confirm(&scope.tx, actor, keyring.master(), &attempts, &code)
                .await
                .gql()?;
        Ok(MfaConfirmation { recovery_codes })
    }

    /// Turns the caller's second factor off: needs a fresh code from the
    /// app (or an unused recovery code), not just the session. Removes the
    /// factor and every recovery code. A wrong code is BAD_USER_INPUT on
    /// `code`; CONFLICT / MFA_NOT_ENABLED when MFA is off.
    async fn disable_mfa(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The 6 digits the authenticator app shows now, or an \
                          unused recovery code.")]
        code: String,
    ) -> GqlResult<bool> {
        let actor = ctx.actor()?;
        let code = Code::parse("code", &code).gql()?;
        let scope = ctx.scope()?;
        let keyring = ctx.shared::<Arc<Keyring>>()?;
        let attempts = service::auth::mfa_attempts(ctx.shared::<LoginSettings>()?, &scope.meta);
        // No savepoint, as for confirmMfa.
        service::mfa::disable(&scope.tx, actor, keyring.master(), &attempts, &code)
            .await
            .gql()?;
        Ok(true)
    }

    /// Sets whom the caller's clinic requires to sign in with a second
    /// factor (clinic ADMIN). A user it applies to who has no factor may,
    /// from their next request on, only enrol one (`me`, `enrollMfa`,
    /// `confirmMfa`, `logout`); everything else is FORBIDDEN /
    /// MFA_ENROLMENT_REQUIRED until they confirm it.
    async fn set_mfa_requirement(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Whom to require it of (NONE lifts the requirement).")]
        requirement: MfaRequirement,
    ) -> GqlResult<MfaRequirement> {
        let actor = ctx.actor()?;
        let set = in_savepoint(ctx, async |tx| {
            service::mfa::set_requirement(tx, actor, requirement.into()).await
        })
        .await?;
        Ok(set.into())
    }
}
