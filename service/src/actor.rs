//! Who is acting: the user, their clinic and their role in it, as the
//! API's guard established them (and as the database context says).

use crate::domain::{SessionId, TenantId, UserId};
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: UserId,
    pub tenant: TenantId,
    pub role: Role,
    pub session: SessionId,
    /// Set when a super admin reaches this clinic in an audited impersonation.
    pub impersonating: bool,
}

impl Actor {
    /// Refuses unless the actor has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> ServiceResult<()> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(ForbiddenReason::Role))
        }
    }

    /// Refuses portal users (patients and proxies).
    pub fn require_staff(&self) -> ServiceResult<()> {
        self.require(&[Role::Admin, Role::Provider, Role::Staff])
    }
}
