//! The facilities part of the query and mutation roots: a clinic's sites,
//! their staff, and which sites a staff member is limited to. Merged into
//! `Query` and `Mutation`; each resolver parses, calls one service
//! function and maps the result.

use async_graphql::{Context, MaybeUndefined, Object};
use service::codes::{IanaZone, PhoneDigits};
use service::facilities::{FacilityChanges, NewAssignment, NewFacility, StaffMember};
use service::pagination::NameKey;
use uuid::Uuid;

use super::scope::{ScopeExt, in_savepoint};
use super::types::address::address_fields;
use super::types::connection::page_request;
use super::types::facility::{
    self, AssignFacilityStaffInput, CreateFacilityInput, Facility, FacilityConnection,
    FacilityFilter, FacilityStaff, UpdateFacilityInput,
};
use crate::error::{ApiError, GqlResult, IntoGql};

#[derive(Default)]
pub struct FacilityQuery;

#[Object]
impl FacilityQuery {
    /// The clinic's facilities, by name: every one for staff of the whole
    /// clinic and portal users, a limited staff member's own otherwise.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn facilities(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Which facilities to list; all the caller may see when omitted.")]
        filter: Option<FacilityFilter>,
    ) -> GqlResult<FacilityConnection> {
        ctx.actor()?;
        let page = page_request::<NameKey>(first, after)?;
        let filter = service::facilities::FacilityFilter {
            is_active: filter.unwrap_or_default().is_active,
        };
        let scope = ctx.scope()?;
        let rows = service::facilities::list(&scope.tx, &filter, &page)
            .await
            .gql()?;
        Ok(facility::connection(rows))
    }

    /// One facility; null when it does not exist or may not be seen.
    async fn facility(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The facility's id.")] id: Uuid,
    ) -> GqlResult<Option<Facility>> {
        ctx.actor()?;
        let row = ctx.loaders()?.facility.load_one(id).await.gql()?;
        Ok(row.map(Facility))
    }
}

#[derive(Default)]
pub struct FacilityMutation;

fn zone(raw: Option<&str>) -> GqlResult<Option<IanaZone>> {
    raw.map(|z| IanaZone::parse("timezone", z))
        .transpose()
        .gql()
}

fn phone(raw: Option<&str>) -> GqlResult<Option<PhoneDigits>> {
    raw.map(|p| PhoneDigits::parse("phone", p))
        .transpose()
        .gql()
}

#[Object]
impl FacilityMutation {
    /// Opens a facility (ADMIN of the whole clinic; an admin limited to
    /// some facilities is FORBIDDEN, reason FACILITY_SCOPE).
    async fn create_facility(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The facility to open.")] input: CreateFacilityInput,
    ) -> GqlResult<Facility> {
        let actor = ctx.actor()?;
        let new = NewFacility {
            name: input.name,
            address: input
                .address
                .map(|a| a.parse(&address_fields!("address")))
                .transpose()?,
            timezone: zone(input.timezone.as_deref())?,
            phone: phone(input.phone.as_deref())?,
            settings: input.settings.map(|j| j.0),
        };
        let row = in_savepoint(ctx, async |tx| {
            service::facilities::create(tx, actor, new).await
        })
        .await?;
        Ok(Facility(row))
    }

    /// Changes a facility (ADMIN of the whole clinic).
    async fn update_facility(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The facility.")] id: Uuid,
        #[graphql(desc = "What to change.")] input: UpdateFacilityInput,
    ) -> GqlResult<Facility> {
        let actor = ctx.actor()?;
        let optional = |m: MaybeUndefined<String>| match m {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(v) => Some(Some(v)),
        };
        let changes = FacilityChanges {
            name: input.name,
            address: match input.address {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(a) => Some(Some(a.parse(&address_fields!("address"))?)),
            },
            timezone: optional(input.timezone)
                .map(|z| zone(z.as_deref()))
                .transpose()?,
            phone: optional(input.phone)
                .map(|p| phone(p.as_deref()))
                .transpose()?,
            is_active: input.is_active,
            settings: input.settings.map(|j| j.0),
        };
        let row = in_savepoint(ctx, async |tx| {
            service::facilities::update(tx, actor, id.into(), changes).await
        })
        .await?;
        Ok(Facility(row))
    }

    /// Assigns a staff member or a provider to a facility (ADMIN of the
    /// whole clinic). A second live assignment of the same person there is
    /// CONFLICT ALREADY_ASSIGNED.
    async fn assign_facility_staff(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Who, where, in which role, from when.")] input: AssignFacilityStaffInput,
    ) -> GqlResult<FacilityStaff> {
        let actor = ctx.actor()?;
        let member = match (input.user_id, input.provider_id) {
            (Some(u), None) => StaffMember::User(u.into()),
            (None, Some(p)) => StaffMember::Provider(p.into()),
            _ => {
                return Err(ApiError::bad_input(
                    "userId",
                    "give exactly one of userId and providerId",
                )
                .into());
            }
        };
        let new = NewAssignment {
            facility: input.facility_id.into(),
            member,
            role: input.role.into(),
            starts_on: input
                .starts_on
                .map(|d| d.0)
                .unwrap_or_else(|| chrono::Utc::now().date_naive()),
            ends_on: input.ends_on.map(|d| d.0),
        };
        let row = in_savepoint(ctx, async |tx| {
            service::facilities::assign_staff(tx, actor, new).await
        })
        .await?;
        Ok(FacilityStaff(row))
    }

    /// Ends a facility assignment (ADMIN of the whole clinic); it is kept,
    /// with who ended it. A second removal is CONFLICT ALREADY_REMOVED.
    async fn remove_facility_staff(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The assignment's id.")] id: Uuid,
    ) -> GqlResult<FacilityStaff> {
        let actor = ctx.actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::facilities::remove_staff(tx, actor, id.into()).await
        })
        .await?;
        Ok(FacilityStaff(row))
    }

    /// Limits a staff member to some facilities — they then see only those
    /// facilities' appointments, sessions and staff — or, with
    /// `facilityIds: null`, lets them see every facility (ADMIN of the whole
    /// clinic). Takes effect from their next request. Answers the facilities
    /// they are now limited to (empty: none, every facility).
    async fn set_staff_facility_scope(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The staff member's user id.")] user_id: Uuid,
        #[graphql(desc = "1 to 100 facilities of the clinic, or null for every one.")]
        facility_ids: Option<Vec<Uuid>>,
    ) -> GqlResult<Vec<Uuid>> {
        let actor = ctx.actor()?;
        let ids = facility_ids.map(|ids| ids.into_iter().map(Into::into).collect());
        let row = in_savepoint(ctx, async |tx| {
            service::facilities::set_scope(tx, actor, user_id.into(), ids).await
        })
        .await?;
        Ok(row.facility_scope.unwrap_or_default())
    }
}
