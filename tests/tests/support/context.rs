//! The request context, as the guard sets it, for tests that talk to the
//! database directly as the runtime role.

use sea_orm::sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Who a database-level test acts as.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub tenant: Option<Uuid>,
    pub user: Option<Uuid>,
    pub role: Option<&'static str>,
    pub request_id: Option<String>,
    /// Patient ids a portal user reaches, for every purpose.
    pub portal_patients: Vec<Uuid>,
}

impl Ctx {
    pub fn staff(tenant: Uuid, user: Uuid, role: &'static str) -> Self {
        Self {
            tenant: Some(tenant),
            user: Some(user),
            role: Some(role),
            request_id: Some(format!("req-{}", ulid::Ulid::generate())),
            portal_patients: vec![],
        }
    }

    /// Opens a transaction on the runtime pool with this context set
    /// transaction-locally, the way `app.begin_request` sets it (tenant,
    /// user, role, request id, and the portal patients under every
    /// purpose), without a session behind it: for testing the policies.
    pub async fn begin(&self, pool: &PgPool) -> Transaction<'static, Postgres> {
        let mut tx = pool.begin().await.expect("begin");
        let scope = format!(
            "{{{}}}",
            self.portal_patients
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        sea_orm::sqlx::query(
            "SELECT set_config('app.tenant_id', $1, true), set_config('app.user_id', $2, true), \
             set_config('app.role', $3, true), set_config('app.request_id', $4, true), \
             set_config('app.patients_profile', $5, true), \
             set_config('app.patients_appointments', $5, true), \
             set_config('app.patients_schedule', $5, true), \
             set_config('app.patients_billing', $5, true), \
             set_config('app.patients_notes', $5, true), \
             set_config('app.patients_message', $5, true)",
        )
        .bind(self.tenant.map(|t| t.to_string()).unwrap_or_default())
        .bind(self.user.map(|u| u.to_string()).unwrap_or_default())
        .bind(self.role.unwrap_or_default())
        .bind(self.request_id.clone().unwrap_or_default())
        .bind(scope)
        .execute(&mut *tx)
        .await
        .expect("setting the context");
        tx
    }
}
