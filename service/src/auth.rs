//! Logins, sessions and which clinics a user may act in.

use std::net::IpAddr;

use anyhow::Context;
use entity::user_session;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Set,
    Statement,
};
use serde_json::json;

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::audit::record_event;
use crate::domain::{Email, SessionId, TenantId, UserId, new_id};
use crate::error::{ServiceError, ServiceResult};
use crate::password;

/// Checks an email and password. Unknown emails cost the same time as
/// wrong passwords (argon2 runs against a dummy hash), so timing does not
/// tell which emails are registered.
pub async fn verify_credentials(
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
            .map_err(|e| ServiceError::from_db(e, "looking up a login"))?,
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
pub async fn record_denied(tx: &Tx, email: &str, reason: &str) -> ServiceResult<()> {
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
pub async fn organizations_of_current_user(tx: &Tx) -> ServiceResult<Vec<(TenantId, Role)>> {
    let rows = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT organization_id, role FROM app.user_organizations()",
        ))
        .await
        .map_err(|e| ServiceError::from_db(e, "listing a user's clinics"))?;
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

/// Where a session was opened from.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// Opens a session (one row per login; its id is the token's `sid`).
pub async fn open_session(
    tx: &Tx,
    user: UserId,
    tenant: TenantId,
    ttl: chrono::Duration,
    client: &Client,
) -> ServiceResult<user_session::Model> {
    let now = chrono::Utc::now().fixed_offset();
    let session = user_session::ActiveModel {
        id: Set(new_id()),
        user_id: Set(user.into_uuid()),
        organization_id: Set(Some(tenant.into_uuid())),
        expires_at: Set(now + ttl),
        ip: Set(client.ip.map(|ip| ip.to_string())),
        user_agent: Set(client
            .user_agent
            .as_ref()
            .map(|ua| ua.chars().take(1000).collect())),
        ..Default::default()
    };
    session
        .insert(tx)
        .await
        .map_err(|e| ServiceError::from_db(e, "opening a session"))
}

/// The actor's own session.
pub async fn session(tx: &Tx, id: SessionId) -> ServiceResult<user_session::Model> {
    user_session::Entity::find_by_id(id.into_uuid())
        .one(tx)
        .await
        .map_err(|e| ServiceError::from_db(e, "loading a session"))?
        .ok_or(ServiceError::Unauthenticated("session not found"))
}

/// Moves the actor's session to another clinic, if they may act there;
/// returns their role in it.
pub async fn switch_organization(
    tx: &Tx,
    actor: &Actor,
    target: TenantId,
) -> ServiceResult<(Role, user_session::Model)> {
    let role = organizations_of_current_user(tx)
        .await?
        .into_iter()
        .find(|(t, _)| *t == target)
        .map(|(_, role)| role)
        .ok_or(ServiceError::NotFound)?;
    user_session::Entity::update_many()
        .col_expr(
            user_session::Column::OrganizationId,
            sea_orm::sea_query::Expr::value(target.into_uuid()),
        )
        .filter(user_session::Column::Id.eq(actor.session.into_uuid()))
        .exec(tx)
        .await
        .map_err(|e| ServiceError::from_db(e, "switching a session's clinic"))?;
    Ok((role, session(tx, actor.session).await?))
}

/// Ends the actor's session: its token stops working at once.
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
        .map_err(|e| ServiceError::from_db(e, "revoking a session"))?;
    record_event(
        tx,
        "LOGOUT",
        "user_sessions",
        Some(actor.session.into_uuid()),
        serde_json::Value::Null,
    )
    .await
}

/// Whether the current user (set by the login context) is a super admin.
pub async fn is_super_admin(tx: &Tx) -> ServiceResult<bool> {
    let me = entity::user::Entity::find()
        .filter(sea_orm::sea_query::Expr::cust(
            "users.id = app.current_user_id()",
        ))
        .one(tx)
        .await
        .map_err(|e| ServiceError::from_db(e, "loading the user"))?;
    Ok(me.is_some_and(|u| u.is_super_admin))
}
