//! A clinic's facilities (sites), who works at each, and which sites a
//! staff member is limited to.
//!
//! A member limited to some facilities sees only their schedule: the guard
//! puts the facility ids into the request's context and the policies of
//! facilities, appointments, sessions and events compare each row's own
//! `facility_id` with it. Nothing here filters by scope; the database does.

use std::collections::HashMap;

use anyhow::Context;
use chrono::NaiveDate;
use entity::facility_staff::FacilityRole;
use entity::{facility, facility_staff, organization_membership};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value,
};
use uuid::Uuid;

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::codes::{Address, IanaZone, PhoneDigits};
use crate::domain::{FacilityId, FacilityStaffId, ProviderId, UserId, new_id, required_text};
use crate::error::{ConflictReason, DbResultExt, ServiceError, ServiceResult};
use crate::pagination::{NameKey, Page, PageRequest};
use crate::sql::uuid_array;

/// The largest `settings` document a facility keeps (the database holds
/// the same bound).
const MAX_SETTINGS_BYTES: usize = 16 * 1024;

pub struct NewFacility {
    pub name: String,
    pub address: Option<Address>,
    pub timezone: Option<IanaZone>,
    pub phone: Option<PhoneDigits>,
    pub settings: Option<serde_json::Value>,
}

/// What `updateFacility` changes: `None` leaves a part as it is; the inner
/// `None` of an optional part clears it.
#[derive(Default)]
pub struct FacilityChanges {
    pub name: Option<String>,
    pub address: Option<Option<Address>>,
    pub timezone: Option<Option<IanaZone>>,
    pub phone: Option<Option<PhoneDigits>>,
    pub is_active: Option<bool>,
    pub settings: Option<serde_json::Value>,
}

fn settings_of(raw: serde_json::Value) -> ServiceResult<serde_json::Value> {
    if !raw.is_object() {
        return Err(ServiceError::invalid("settings", "must be a JSON object"));
    }
    if raw.to_string().len() > MAX_SETTINGS_BYTES {
        return Err(ServiceError::invalid("settings", "at most 16 KiB"));
    }
    Ok(raw)
}

fn set_address(model: &mut facility::ActiveModel, address: Option<Address>) {
    match address {
        Some(a) => {
            model.address_line1 = Set(Some(a.line1));
            model.address_line2 = Set(a.line2);
            model.city = Set(Some(a.city));
            model.state = Set(Some(a.state.into_string()));
            model.postal_code = Set(Some(a.postal_code.into_string()));
        }
        None => {
            model.address_line1 = Set(None);
            model.address_line2 = Set(None);
            model.city = Set(None);
            model.state = Set(None);
            model.postal_code = Set(None);
        }
    }
}

/// Opens a facility (ADMIN of the whole clinic). Names are unique per
/// clinic, ignoring case (`DUPLICATE_FACILITY`).
#[tracing::instrument(skip_all, name = "facilities.create", level = "debug")]
pub async fn create(tx: &Tx, actor: &Actor, input: NewFacility) -> ServiceResult<facility::Model> {
    require_clinic_admin(actor)?;
    let mut model = facility::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(actor.tenant.into_uuid()),
        name: Set(required_text("name", &input.name, 200)?),
        timezone: Set(input.timezone.map(IanaZone::into_string)),
        phone: Set(input.phone.map(PhoneDigits::into_string)),
        settings: Set(settings_of(
            input.settings.unwrap_or_else(|| serde_json::json!({})),
        )?),
        ..Default::default()
    };
    set_address(&mut model, input.address);
    model.insert(tx).await.or_db("opening a facility")
}

/// Changes a facility (ADMIN of the whole clinic). Closing one
/// (`isActive: false`) keeps its history; no new appointment is booked there.
#[tracing::instrument(skip_all, name = "facilities.update", level = "debug", fields(facility = %id))]
pub async fn update(
    tx: &Tx,
    actor: &Actor,
    id: FacilityId,
    changes: FacilityChanges,
) -> ServiceResult<facility::Model> {
    require_clinic_admin(actor)?;
    let current = facility::Entity::find_by_id(id.into_uuid())
        .lock_exclusive()
        .one(tx)
        .await
        .or_db("reading a facility")?
        .ok_or(ServiceError::NotFound)?;
    let mut model = current.into_active_model();
    if let Some(name) = changes.name {
        model.name = Set(required_text("name", &name, 200)?);
    }
    if let Some(address) = changes.address {
        set_address(&mut model, address);
    }
    if let Some(tz) = changes.timezone {
        model.timezone = Set(tz.map(IanaZone::into_string));
    }
    if let Some(phone) = changes.phone {
        model.phone = Set(phone.map(PhoneDigits::into_string));
    }
    if let Some(active) = changes.is_active {
        model.is_active = Set(active);
    }
    if let Some(settings) = changes.settings {
        model.settings = Set(settings_of(settings)?);
    }
    model.update(tx).await.or_db("changing a facility")
}

/// Facility writes belong to an ADMIN who is not limited to some sites (a
/// site-limited admin could otherwise open a site outside their own scope).
fn require_clinic_admin(actor: &Actor) -> ServiceResult<()> {
    actor.require(&[Role::Admin])?;
    actor.require_whole_clinic()
}

/// Which facilities to list.
#[derive(Debug, Clone, Default)]
pub struct FacilityFilter {
    pub is_active: Option<bool>,
}

/// Facilities by name, one page: every one of the clinic's the caller may
/// see (a site-limited member sees their own).
#[tracing::instrument(skip_all, name = "facilities.list", level = "debug")]
pub async fn list(
    tx: &Tx,
    filter: &FacilityFilter,
    page: &PageRequest<NameKey>,
) -> ServiceResult<Page<facility::Model>> {
    let mut q = facility::Entity::find();
    if let Some(active) = filter.is_active {
        q = q.filter(facility::Column::IsActive.eq(active));
    }
    if let Some(key) = &page.after {
        q = q.filter(Expr::cust_with_values(
            "(name, id) > ($1, $2)",
            [Value::from(key.a.clone()), Value::from(key.id)],
        ));
    }
    let rows = q
        .order_by_asc(facility::Column::Name)
        .order_by_asc(facility::Column::Id)
        .limit(page.first + 1)
        .all(tx)
        .await
        .or_db("listing facilities")?;
    Ok(Page::from_overfetch(rows, page.first))
}

pub fn key_of(f: &facility::Model) -> NameKey {
    NameKey {
        a: f.name.clone(),
        b: String::new(),
        id: f.id,
    }
}

/// Facilities by id (those the caller may see): one statement.
#[tracing::instrument(skip_all, name = "facilities.by_ids", level = "debug", fields(ids = ids.len()))]
pub async fn by_ids(tx: &Tx, ids: &[Uuid]) -> ServiceResult<Vec<facility::Model>> {
    facility::Entity::find()
        .filter(facility::Column::Id.is_in(ids.iter().copied()))
        .all(tx)
        .await
        .or_db("loading facilities")
}

/// An active facility the caller may see, for a booking there.
pub(crate) async fn bookable(tx: &Tx, id: FacilityId) -> ServiceResult<facility::Model> {
    match by_ids(tx, &[id.into_uuid()]).await?.pop() {
        None => Err(ServiceError::invalid("facilityId", "no such facility")),
        Some(f) if !f.is_active => Err(ServiceError::invalid(
            "facilityId",
            "the facility is closed",
        )),
        Some(f) => Ok(f),
    }
}

/// Who is assigned: a staff member by their login, or a provider.
#[derive(Debug, Clone, Copy)]
pub enum StaffMember {
    User(UserId),
    Provider(ProviderId),
}

pub struct NewAssignment {
    pub facility: FacilityId,
    pub member: StaffMember,
    pub role: FacilityRole,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
}

/// A facility assignment with the login of the member it names (none for a
/// provider).
#[derive(Debug, Clone)]
pub struct Assignment {
    pub row: facility_staff::Model,
    pub user_id: Option<Uuid>,
}

/// Assigns a staff member or a provider to a facility (ADMIN of the whole
/// clinic). One live assignment per person and facility (`ALREADY_ASSIGNED`).
#[tracing::instrument(skip_all, name = "facilities.assign_staff", level = "debug", fields(facility = %input.facility))]
pub async fn assign_staff(
    tx: &Tx,
    actor: &Actor,
    input: NewAssignment,
) -> ServiceResult<Assignment> {
    require_clinic_admin(actor)?;
    if input.ends_on.is_some_and(|e| e < input.starts_on) {
        return Err(ServiceError::invalid(
            "endsOn",
            "must not be before startsOn",
        ));
    }
    let facility = by_ids(tx, &[input.facility.into_uuid()])
        .await?
        .pop()
        .ok_or_else(|| ServiceError::invalid("facilityId", "no such facility"))?;
    let (membership_id, provider_id, user_id) = match input.member {
        StaffMember::User(user) => {
            let m = membership_of(tx, actor, user).await?.ok_or_else(|| {
                ServiceError::invalid("userId", "not a staff member of the clinic")
            })?;
            (Some(m.id), None, Some(m.user_id))
        }
        StaffMember::Provider(p) => {
            let p = crate::providers::get(tx, p)
                .await?
                .ok_or_else(|| ServiceError::invalid("providerId", "no such provider"))?;
            (None, Some(p.id), None)
        }
    };
    let row = facility_staff::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(facility.organization_id),
        facility_id: Set(facility.id),
        membership_id: Set(membership_id),
        provider_id: Set(provider_id),
        role: Set(input.role),
        starts_on: Set(input.starts_on),
        ends_on: Set(input.ends_on),
        assigned_by: Set(Some(actor.user.into_uuid())),
        ..Default::default()
    }
    .insert(tx)
    .await
    .or_db("assigning facility staff")?;
    Ok(Assignment { row, user_id })
}

/// Ends an assignment now (ADMIN of the whole clinic); the row stays, with
/// who removed it and when (`ALREADY_REMOVED` the second time).
#[tracing::instrument(skip_all, name = "facilities.remove_staff", level = "debug", fields(assignment = %id))]
pub async fn remove_staff(
    tx: &Tx,
    actor: &Actor,
    id: FacilityStaffId,
) -> ServiceResult<Assignment> {
    require_clinic_admin(actor)?;
    let current = facility_staff::Entity::find_by_id(id.into_uuid())
        .lock_exclusive()
        .one(tx)
        .await
        .or_db("reading a facility assignment")?
        .ok_or(ServiceError::NotFound)?;
    if current.removed_at.is_some() {
        return Err(ServiceError::Conflict(ConflictReason::AlreadyRemoved));
    }
    let mut model = current.into_active_model();
    model.removed_at = Set(Some(chrono::Utc::now().fixed_offset()));
    model.removed_by = Set(Some(actor.user.into_uuid()));
    let row = model.update(tx).await.or_db("removing facility staff")?;
    let user_id = match row.membership_id {
        Some(m) => organization_membership::Entity::find_by_id(m)
            .one(tx)
            .await
            .or_db("reading a membership")?
            .map(|m| m.user_id),
        None => None,
    };
    Ok(Assignment { row, user_id })
}

#[derive(FromQueryResult)]
struct AssignmentRow {
    user_id: Option<Uuid>,
}

/// Who works at several facilities now (staff only): assignments not
/// removed whose period holds the clinic's today, by start date: one
/// statement.
#[tracing::instrument(skip_all, name = "facilities.staff_of", level = "debug", fields(facilities = facilities.len()))]
pub async fn staff_of(
    tx: &Tx,
    actor: &Actor,
    facilities: &[Uuid],
) -> ServiceResult<HashMap<Uuid, Vec<Assignment>>> {
    actor.require_staff()?;
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT s.*, m.user_id FROM facility_staff s \
             LEFT JOIN organization_memberships m \
               ON m.organization_id = s.organization_id AND m.id = s.membership_id \
             JOIN organizations o ON o.id = s.organization_id \
             WHERE s.facility_id = ANY ($1::uuid[]) AND s.removed_at IS NULL \
               AND s.starts_on <= (now() AT TIME ZONE o.timezone)::date \
               AND (s.ends_on IS NULL OR s.ends_on >= (now() AT TIME ZONE o.timezone)::date) \
             ORDER BY s.facility_id, s.starts_on, s.id",
            [uuid_array(facilities.iter().copied())],
        ))
        .await
        .or_db("loading facility staff")?;
    let mut out: HashMap<Uuid, Vec<Assignment>> = HashMap::new();
    for r in rows {
        let row = facility_staff::Model::from_query_result(&r, "").context("an assignment")?;
        let extra = AssignmentRow::from_query_result(&r, "").context("its member")?;
        out.entry(row.facility_id).or_default().push(Assignment {
            row,
            user_id: extra.user_id,
        });
    }
    Ok(out)
}

/// The user's membership of the active clinic (a user's own memberships of
/// other clinics are visible to them too: the clinic is named here).
async fn membership_of(
    tx: &Tx,
    actor: &Actor,
    user: UserId,
) -> ServiceResult<Option<organization_membership::Model>> {
    organization_membership::Entity::find()
        .filter(organization_membership::Column::OrganizationId.eq(actor.tenant.into_uuid()))
        .filter(organization_membership::Column::UserId.eq(user.into_uuid()))
        .filter(organization_membership::Column::DeletedAt.is_null())
        .one(tx)
        .await
        .or_db("reading a membership")
}

/// Limits a staff member to some facilities, or (`None`) lets them see every
/// one (ADMIN of the whole clinic). Takes effect from their next request.
#[tracing::instrument(skip_all, name = "facilities.set_scope", level = "debug", fields(user = %user))]
pub async fn set_scope(
    tx: &Tx,
    actor: &Actor,
    user: UserId,
    facilities: Option<Vec<FacilityId>>,
) -> ServiceResult<organization_membership::Model> {
    require_clinic_admin(actor)?;
    let scope = match facilities {
        None => None,
        Some(ids) => {
            let mut ids: Vec<Uuid> = ids.into_iter().map(FacilityId::into_uuid).collect();
            ids.sort();
            ids.dedup();
            if ids.is_empty() || ids.len() > 100 {
                return Err(ServiceError::invalid(
                    "facilityIds",
                    "1 to 100 facilities, or null for every facility",
                ));
            }
            if by_ids(tx, &ids).await?.len() != ids.len() {
                return Err(ServiceError::invalid("facilityIds", "no such facility"));
            }
            Some(ids)
        }
    };
    let current = membership_of(tx, actor, user)
        .await?
        .ok_or_else(|| ServiceError::invalid("userId", "not a staff member of the clinic"))?;
    let mut model = current.into_active_model();
    model.facility_scope = Set(scope);
    model
        .update(tx)
        .await
        .or_db("limiting a member to facilities")
}
