//! Who is acting: the user, their clinic and their role in it, as the
//! API's guard established them (and as the database context says).

use std::collections::HashSet;
use std::sync::Arc;

use uuid::Uuid;

use crate::domain::{PatientId, SessionId, TenantId, UserId};
use crate::error::{ForbiddenReason, ServiceError, ServiceResult};

/// A caller's role in the active clinic. Staff roles come from a
/// membership; `Portal` is a patient or a proxy (parent, guardian) who
/// reaches only the charts they hold or were granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Provider,
    Staff,
    Portal,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "ADMIN" => Self::Admin,
            "PROVIDER" => Self::Provider,
            "STAFF" => Self::Staff,
            "PORTAL" => Self::Portal,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "ADMIN",
            Self::Provider => "PROVIDER",
            Self::Staff => "STAFF",
            Self::Portal => "PORTAL",
        }
    }

    pub fn is_staff(self) -> bool {
        !matches!(self, Self::Portal)
    }
}

/// What a portal user may do for a patient: the six flags of a proxy grant
/// (a patient holding their own chart has all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Profile,
    Appointments,
    Schedule,
    Notes,
    Billing,
    Message,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Profile => "profile",
            Self::Appointments => "appointments",
            Self::Schedule => "schedule",
            Self::Notes => "notes",
            Self::Billing => "billing",
            Self::Message => "message",
        }
    }

    pub const ALL: [Purpose; 6] = [
        Self::Profile,
        Self::Appointments,
        Self::Schedule,
        Self::Notes,
        Self::Billing,
        Self::Message,
    ];
}

/// The patients a portal user reaches, per purpose, for this request (the
/// same sets the database policies read from the request context).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortalScope {
    by_purpose: Vec<(Purpose, HashSet<Uuid>)>,
}

impl PortalScope {
    pub fn new(by_purpose: impl IntoIterator<Item = (Purpose, HashSet<Uuid>)>) -> Self {
        Self {
            by_purpose: by_purpose.into_iter().collect(),
        }
    }

    pub fn allows(&self, purpose: Purpose, patient: PatientId) -> bool {
        self.by_purpose
            .iter()
            .any(|(p, ids)| *p == purpose && ids.contains(&patient.into_uuid()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: UserId,
    pub tenant: TenantId,
    pub role: Role,
    pub session: SessionId,
    /// Set when a super admin reaches this clinic in an audited impersonation.
    pub impersonating: bool,
    /// For `Role::Portal`: the patients reachable per purpose.
    pub portal: Option<Arc<PortalScope>>,
    /// For staff limited to some facilities: their ids (`None`: every one).
    pub facility_scope: Option<Arc<[Uuid]>>,
    /// Patients outside that scope this session opened in an emergency
    /// (break-glass), while each opening lasts: the database's policies
    /// admit their rows, and reads of them are audited as such.
    pub break_glass: Arc<[Uuid]>,
}

impl Actor {
    /// Refuses a staff member limited to some facilities: billing and the
    /// audit trail are the whole clinic's (the row policies agree).
    pub fn require_whole_clinic(&self) -> ServiceResult<()> {
        if self.facility_scope.is_some() {
            return Err(ServiceError::Forbidden(ForbiddenReason::FacilityScope));
        }
        Ok(())
    }

    /// Refuses unless the actor has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> ServiceResult<()> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(ForbiddenReason::Role))
        }
    }

    /// Staff may act for any patient of the clinic; a portal user only for
    /// the patients their grant (or own chart) covers for `purpose`.
    pub fn may(&self, purpose: Purpose, patient: PatientId) -> ServiceResult<()> {
        if self.role.is_staff() {
            return Ok(());
        }
        match &self.portal {
            Some(scope) if scope.allows(purpose, patient) => Ok(()),
            _ => Err(ServiceError::Forbidden(ForbiddenReason::ProxyScope)),
        }
    }

    /// Refuses portal users (patients and proxies).
    pub fn require_staff(&self) -> ServiceResult<()> {
        self.require(&[Role::Admin, Role::Provider, Role::Staff])
    }
}
