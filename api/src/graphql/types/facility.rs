//! Facilities (a clinic's sites) and who works at them.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object};
use entity::facility;
use service::pagination::{NameKey, Page, TimeKey};
use uuid::Uuid;

use super::address::{AddressInput, PostalAddress};
use super::appointment::{self, AppointmentConnection, AppointmentTotal};
use super::connection::page_request;
use super::enums::FacilityRole;
use super::provider::Provider;
use super::proxy::UserSummary;
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::graphql::scalars::Date;
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct Facility(pub facility::Model);

/// A site of the clinic where care takes place. Staff limited to some
/// facilities see only those (and only their appointments).
#[Object]
impl Facility {
    /// The facility's id. A Relay node id: the object's UUID, which every
    /// argument taking a UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Its name, unique in the clinic (ignoring case).
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Its postal address; null when none was given.
    async fn address(&self) -> Option<PostalAddress> {
        let m = &self.0;
        PostalAddress::from_parts(
            &m.address_line1,
            &m.address_line2,
            &m.city,
            &m.state,
            &m.postal_code,
        )
    }
    /// Its IANA time zone; null when it keeps the clinic's. Its
    /// appointments' local day (`on:` filters) is taken in this zone.
    async fn timezone(&self) -> Option<&str> {
        self.0.timezone.as_deref()
    }
    /// Its phone number (10 digits); null when none was given.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    /// False once closed: its history stays, nothing new is booked there.
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    /// The clinic's own settings for this site (a JSON object); null for
    /// patients and proxies.
    async fn settings(&self, ctx: &Context<'_>) -> GqlResult<Option<Json<serde_json::Value>>> {
        Ok(ctx
            .actor()?
            .role
            .is_staff()
            .then(|| Json(self.0.settings.clone())))
    }
    /// Who works here now (staff only): staff members and providers, by the
    /// day their assignment starts.
    async fn staff(&self, ctx: &Context<'_>) -> GqlResult<Vec<FacilityStaff>> {
        ctx.clinical_actor()?.require_staff().gql()?;
        let rows = ctx
            .loaders()?
            .facility_staff
            .load_one(self.0.id)
            .await
            .gql()?
            .unwrap_or_default();
        Ok(rows.into_iter().map(FacilityStaff).collect())
    }
    /// Appointments at this facility, by start time; with `on`, those
    /// starting on that day in the facility's time zone (else the clinic's).
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn appointments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One local day of the facility.")] on: Option<Date>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list. Omit for the first page.")]
        after: Option<String>,
    ) -> GqlResult<AppointmentConnection> {
        ctx.clinical_actor()?;
        let page = page_request::<TimeKey>(first, after)?;
        let result = ctx
            .loaders()?
            .facility_appointments
            .load_one((self.0.id, on.map(|d| d.0), page))
            .await
            .gql()?
            .ok_or_else(ApiError::internal)?;
        appointment::connection(ctx, result, AppointmentTotal(None))
    }
}

#[derive(Clone)]
pub struct FacilityStaff(pub service::facilities::Assignment);

/// A staff member's or a provider's assignment to a facility.
#[Object]
impl FacilityStaff {
    /// The assignment's id (for `removeFacilityStaff`).
    async fn id(&self) -> ID {
        ID(self.0.row.id.to_string())
    }
    /// Their role at this facility.
    async fn role(&self) -> FacilityRole {
        self.0.row.role.into()
    }
    /// The first day of the assignment.
    async fn starts_on(&self) -> Date {
        Date(self.0.row.starts_on)
    }
    /// The last day of the assignment; null when open-ended.
    async fn ends_on(&self) -> Option<Date> {
        self.0.row.ends_on.map(Date)
    }
    /// The staff member, for an assignment of a person with a login.
    async fn user(&self, ctx: &Context<'_>) -> GqlResult<Option<UserSummary>> {
        let Some(user) = self.0.user_id else {
            return Ok(None);
        };
        let name = ctx.loaders()?.user_names.load_one(user).await.gql()?;
        Ok(name.map(|n| UserSummary {
            id: user,
            display_name: n.display_name,
            email: n.email,
        }))
    }
    /// The provider, for an assignment of a provider.
    async fn provider(&self, ctx: &Context<'_>) -> GqlResult<Option<Provider>> {
        let Some(p) = self.0.row.provider_id else {
            return Ok(None);
        };
        let row = ctx.loaders()?.provider.load_one(p.into()).await.gql()?;
        Ok(row.map(Provider))
    }
}

pub type FacilityConnection = Connection<OpaqueCursor<NameKey>, Facility>;

/// The description of `FacilityConnection`.
pub const CONNECTION_DESCRIPTION: &str = "\
    A page of facilities, by name. Ask for the next page with\n\
    `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";

pub fn connection(page: Page<facility::Model>) -> FacilityConnection {
    let mut conn = Connection::new(false, page.has_next_page);
    for f in page.items {
        conn.edges.push(Edge::new(
            OpaqueCursor(service::facilities::key_of(&f)),
            Facility(f),
        ));
    }
    conn
}

/// Which facilities to list.
#[derive(InputObject, Default)]
pub struct FacilityFilter {
    /// Only open (true) or closed (false) facilities.
    pub is_active: Option<bool>,
}

/// A facility to open.
#[derive(InputObject)]
pub struct CreateFacilityInput {
    /// 1 to 200 characters, unique in the clinic ignoring case (else
    /// CONFLICT DUPLICATE_FACILITY).
    pub name: String,
    /// Its postal address.
    pub address: Option<AddressInput>,
    /// An IANA time zone (`America/Chicago`); the clinic's when omitted.
    pub timezone: Option<String>,
    /// A US phone number of 10 digits.
    pub phone: Option<String>,
    /// The clinic's own settings for the site: a JSON object of at most
    /// 16 KiB.
    pub settings: Option<Json<serde_json::Value>>,
}

/// What to change of a facility: an omitted field stays as it is; `null`
/// clears an optional one.
#[derive(InputObject)]
pub struct UpdateFacilityInput {
    /// A new name: 1 to 200 characters, unique in the clinic.
    pub name: Option<String>,
    /// A new postal address; null removes it.
    pub address: MaybeUndefined<AddressInput>,
    /// A new IANA time zone; null: the clinic's.
    pub timezone: MaybeUndefined<String>,
    /// A new phone number (10 digits); null removes it.
    pub phone: MaybeUndefined<String>,
    /// False closes the facility (nothing new is booked there).
    pub is_active: Option<bool>,
    /// Replaces the settings object.
    pub settings: Option<Json<serde_json::Value>>,
}

/// Someone to assign to a facility: exactly one of `userId` (a staff member
/// of the clinic) and `providerId`.
#[derive(InputObject)]
pub struct AssignFacilityStaffInput {
    /// The facility.
    pub facility_id: Uuid,
    /// A staff member of the clinic (their user id).
    pub user_id: Option<Uuid>,
    /// A provider of the clinic.
    pub provider_id: Option<Uuid>,
    /// Their role at the facility.
    pub role: FacilityRole,
    /// The first day; today (UTC) when omitted.
    pub starts_on: Option<Date>,
    /// The last day; open-ended when omitted.
    pub ends_on: Option<Date>,
}
