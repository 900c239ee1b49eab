//! The one error type of the service layer.
//!
//! Database refusals (unique violations, exclusion violations, check
//! violations, row-level security) are turned into precise domain errors
//! here, in [`ServiceError::from_db`] (reached from a `Result` with
//! `.or_db("what failed")`, see [`DbResultExt`]), so the API maps one enum
//! to its error codes and never sees SQL.

use sea_orm::{DbErr, RuntimeErr};

/// An enum of the stable strings clients see, with `ALL` and `as_str`
/// generated from one list, so that no value can be missing from either
/// (the README's error catalogue is tested against `ALL`).
#[macro_export]
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The stable string clients see.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }
    };
}

vocabulary! {
    /// Why a write conflicts with what is already there: `extensions.reason`.
    pub enum ConflictReason {
        PrimaryProviderExists => "PRIMARY_PROVIDER_EXISTS",
        AlreadyOnCareTeam => "ALREADY_ON_CARE_TEAM",
        DoubleBooked => "DOUBLE_BOOKED",
        UnitsExhausted => "UNITS_EXHAUSTED",
        UnitsNotReserved => "UNITS_NOT_RESERVED",
        AuthorizationNotValidToday => "AUTHORIZATION_NOT_VALID_TODAY",
        AuthorizationNotValidOnDate => "AUTHORIZATION_NOT_VALID_ON_DATE",
        DuplicateNpi => "DUPLICATE_NPI",
        DuplicateMrn => "DUPLICATE_MRN",
        DuplicateAuthorization => "DUPLICATE_AUTHORIZATION",
        ProxyAlreadyGranted => "PROXY_ALREADY_GRANTED",
        AlreadyRemoved => "ALREADY_REMOVED",
        AlreadyRevoked => "ALREADY_REVOKED",
        AlreadyDischarged => "ALREADY_DISCHARGED",
        ConsentAlreadySigned => "CONSENT_ALREADY_SIGNED",
        DuplicateCredential => "DUPLICATE_CREDENTIAL",
        CoveragePriorityTaken => "COVERAGE_PRIORITY_TAKEN",
        PrimaryDiagnosisExists => "PRIMARY_DIAGNOSIS_EXISTS",
        DuplicateDiagnosis => "DUPLICATE_DIAGNOSIS",
        DuplicateEventType => "DUPLICATE_EVENT_TYPE",
        DuplicateFee => "DUPLICATE_FEE",
        AppointmentNotCheckedIn => "APPOINTMENT_NOT_CHECKED_IN",
        SessionExists => "SESSION_EXISTS",
        SessionEnded => "SESSION_ENDED",
        SessionNotEnded => "SESSION_NOT_ENDED",
        SessionSigned => "SESSION_SIGNED",
        SessionAlreadyBilled => "SESSION_ALREADY_BILLED",
        ClaimAlreadySubmitted => "CLAIM_ALREADY_SUBMITTED",
        DuplicateFacility => "DUPLICATE_FACILITY",
        AlreadyAssigned => "ALREADY_ASSIGNED",
        RefundExceedsPayment => "REFUND_EXCEEDS_PAYMENT",
        NotRefundable => "NOT_REFUNDABLE",
        DuplicateProcessorRef => "DUPLICATE_PROCESSOR_REF",
        OverrideActive => "OVERRIDE_ACTIVE",
        NotPending => "NOT_PENDING",
        /// The user cannot take part in a thread about this patient: not
        /// staff of the clinic, not the patient, not a proxy allowed to message.
        IneligibleParticipant => "INELIGIBLE_PARTICIPANT",
        /// The message was deleted; it cannot change any more.
        MessageDeleted => "MESSAGE_DELETED",
        /// Enrolling a second factor while one is already confirmed.
        MfaAlreadyEnabled => "MFA_ALREADY_ENABLED",
        /// Confirming a second factor that was never enrolled.
        MfaNotEnrolled => "MFA_NOT_ENROLLED",
        /// Disabling a second factor the user does not have.
        MfaNotEnabled => "MFA_NOT_ENABLED",
        /// Break-glass by someone whose scope already covers every patient
        /// of the clinic: there is nothing to open.
        BreakGlassNotNeeded => "BREAK_GLASS_NOT_NEEDED",
        /// A session already holds the most live break-glass openings (25).
        BreakGlassLimit => "BREAK_GLASS_LIMIT",
        /// A break-glass opening is reviewed once.
        AlreadyReviewed => "ALREADY_REVIEWED",
    }
}

impl ConflictReason {
    /// The reason a named database constraint stands for, when it stands for one.
    fn from_constraint(name: &str) -> Option<Self> {
        Some(match name {
            "care_team_one_primary_key" => Self::PrimaryProviderExists,
            "care_team_one_assignment_key" => Self::AlreadyOnCareTeam,
            "appointments_no_double_booking" => Self::DoubleBooked,
            "payer_authorizations_units_check" => Self::UnitsExhausted,
            "providers_npi_key" => Self::DuplicateNpi,
            "patients_mrn_key" => Self::DuplicateMrn,
            "payer_authorizations_number_key" => Self::DuplicateAuthorization,
            "proxy_assignments_active_key" | "proxy_assignments_pending_key" => {
                Self::ProxyAlreadyGranted
            }
            "user_consents_user_id_document_id_key" => Self::ConsentAlreadySigned,
            "staff_credentials_number_key" => Self::DuplicateCredential,
            "patient_insurances_priority_key" => Self::CoveragePriorityTaken,
            "diagnoses_primary_key" => Self::PrimaryDiagnosisExists,
            "diagnoses_code_key" => Self::DuplicateDiagnosis,
            "session_event_types_code_key" => Self::DuplicateEventType,
            "fee_schedule_entries_code_key" => Self::DuplicateFee,
            "therapy_sessions_appointment_key" => Self::SessionExists,
            "claim_lines_session_key" => Self::SessionAlreadyBilled,
            "facilities_name_key" => Self::DuplicateFacility,
            "billing_transactions_refund_check" => Self::RefundExceedsPayment,
            "billing_transactions_processor_key" => Self::DuplicateProcessorRef,
            "subscription_overrides_active_key" => Self::OverrideActive,
            "facility_staff_member_key" | "facility_staff_provider_key" => Self::AlreadyAssigned,
            _ => return None,
        })
    }

    /// The reason a trigger raised (SQLSTATE CG409, the reason as message).
    fn from_trigger(message: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == message)
    }
}

vocabulary! {
    /// Why a caller may not do what they asked: `extensions.reason`.
    pub enum ForbiddenReason {
        /// The caller's role does not allow this.
        Role => "ROLE",
        /// The active HIPAA notice has not been signed yet.
        ConsentRequired => "CONSENT_REQUIRED",
        /// A proxy's grant does not include this.
        ProxyScope => "PROXY_SCOPE",
        /// Only a session's rendering provider (the provider record linked
        /// to the caller's login) records, ends and signs it.
        NotRenderingProvider => "NOT_RENDERING_PROVIDER",
        /// The provider holds no licence of the clinic's state valid on the
        /// session's day.
        NoValidLicense => "NO_VALID_LICENSE",
        /// The caller is limited to some of the clinic's facilities; this
        /// needs the whole clinic.
        FacilityScope => "FACILITY_SCOPE",
        /// Only a super admin acting in the clinic through an audited
        /// impersonation may do this.
        ImpersonationRequired => "IMPERSONATION_REQUIRED",
        /// Only a message's sender edits or deletes it.
        NotSender => "NOT_SENDER",
        /// The clinic requires a second factor of the caller's role and they
        /// have none yet: they may only enrol one.
        MfaEnrolmentRequired => "MFA_ENROLMENT_REQUIRED",
        /// Nobody reviews their own break-glass opening.
        OwnBreakGlass => "OWN_BREAK_GLASS",
    }
}

vocabulary! {
    /// Why a sign-in step was refused, where a client has something to do
    /// about it: `extensions.reason` with UNAUTHENTICATED.
    pub enum UnauthenticatedReason {
        /// The password was right; the user has a second factor: answer the
        /// challenge with `verifyMfa`.
        MfaRequired => "MFA_REQUIRED",
        /// A wrong, used or replayed second-factor code.
        InvalidMfaCode => "INVALID_MFA_CODE",
        /// The challenge is unknown, used, expired or out of attempts: log in again.
        MfaChallengeInvalid => "MFA_CHALLENGE_INVALID",
    }
}

impl ForbiddenReason {
    /// The reason a trigger raised (SQLSTATE CG403, the reason as message).
    fn from_trigger(message: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Absent, or not visible to the caller: the two are never told apart.
    #[error("not found")]
    NotFound,
    #[error("conflict: {}", .0.as_str())]
    Conflict(ConflictReason),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("forbidden: {}", .0.as_str())]
    Forbidden(ForbiddenReason),
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// Wrong email or password (the two are never told apart).
    #[error("invalid email or password")]
    BadCredentials,
    #[error("too many attempts")]
    RateLimited,
    /// The password was right and the user has a second factor: no session
    /// is open yet; `challenge` (shown once) is answered with a code.
    #[error("a second factor is required")]
    MfaRequired {
        challenge: String,
        expires_at: chrono::DateTime<chrono::FixedOffset>,
    },
    /// A second-factor step refused.
    #[error("unauthenticated: {}", .0.as_str())]
    MfaRefused(UnauthenticatedReason),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    /// Turns a database refusal into the domain error it stands for; anything
    /// else is unexpected and keeps its cause (with `context`) for the log.
    pub fn from_db(err: DbErr, context: &'static str) -> Self {
        // An update that matched no row: gone, or hidden by row-level security.
        if matches!(err, DbErr::RecordNotUpdated) {
            return Self::NotFound;
        }
        if let Some(reason) = constraint_name(&err)
            .as_deref()
            .and_then(ConflictReason::from_constraint)
        {
            return Self::Conflict(reason);
        }
        let state = sqlstate(&err);
        // A rule a trigger holds, its reason as the message.
        let trigger_reason = || db_message(&err).unwrap_or_default();
        match state.as_deref() {
            Some("CG409") => {
                if let Some(reason) = ConflictReason::from_trigger(&trigger_reason()) {
                    return Self::Conflict(reason);
                }
            }
            Some("CG403") => {
                if let Some(reason) = ForbiddenReason::from_trigger(&trigger_reason()) {
                    return Self::Forbidden(reason);
                }
            }
            _ => {}
        }
        match state.as_deref() {
            // Row-level security refused the row: to the caller it does not exist.
            Some("42501") => Self::NotFound,
            // A value the database cannot hold (out of range, a character it
            // cannot store, a check it refuses): the edge refuses these
            // first, naming the argument; this covers what slips past it.
            Some("22001" | "22003" | "22008" | "22021" | "22P05" | "23514") => {
                tracing::info!(error = %err, context, "value refused by the database");
                Self::invalid("input", "a value is out of range or cannot be stored")
            }
            // The statement timeout cancelled a runaway query.
            Some("57014") => {
                Self::Unexpected(anyhow::Error::new(err).context("statement timed out"))
            }
            _ => Self::Unexpected(anyhow::Error::new(err).context(context)),
        }
    }
}

/// `.or_db("what failed")` on a database result: maps a database refusal
/// into the precise domain error via [`ServiceError::from_db`] (a conflict,
/// not found, invalid input), and anything else into an unexpected error
/// that keeps its cause with `context` for the log.
pub trait DbResultExt<T> {
    fn or_db(self, context: &'static str) -> ServiceResult<T>;
}

impl<T> DbResultExt<T> for Result<T, DbErr> {
    fn or_db(self, context: &'static str) -> ServiceResult<T> {
        self.map_err(|err| ServiceError::from_db(err, context))
    }
}

pub(crate) fn constraint_name(err: &DbErr) -> Option<String> {
    database_error(err).and_then(|e| e.constraint().map(str::to_owned))
}

/// The SQLSTATE of a database error, when the database raised one.
pub fn sqlstate(err: &DbErr) -> Option<String> {
    database_error(err).and_then(|e| e.code().map(|c| c.into_owned()))
}

/// The message of a database error, when the database raised one.
pub fn db_message(err: &DbErr) -> Option<String> {
    database_error(err).map(|e| e.message().to_owned())
}

fn database_error(err: &DbErr) -> Option<&(dyn sea_orm::sqlx::error::DatabaseError + 'static)> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            e.as_database_error()
        }
        _ => None,
    }
}
