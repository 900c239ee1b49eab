//! Postal addresses, as given and as shown.

use async_graphql::{InputObject, SimpleObject};
use service::codes::{Address, AddressFields, RawAddress};

use crate::error::{GqlResult, IntoGql};

/// A US postal address.
#[derive(SimpleObject, Clone)]
pub struct PostalAddress {
    /// Street address.
    pub line1: String,
    /// Suite, unit, etc.; null when none.
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// The state's two-letter USPS code (e.g. `OR`).
    pub state: String,
    /// ZIP code: 5 digits or 9 (ZIP+4).
    pub postal_code: String,
}

impl PostalAddress {
    /// An address from its stored parts; null unless line 1, city, state
    /// and postal code are all there (the database stores all or none).
    pub fn from_parts(
        line1: &Option<String>,
        line2: &Option<String>,
        city: &Option<String>,
        state: &Option<String>,
        postal_code: &Option<String>,
    ) -> Option<Self> {
        Some(Self {
            line1: line1.clone()?,
            line2: line2.clone(),
            city: city.clone()?,
            state: state.clone()?,
            postal_code: postal_code.clone()?,
        })
    }
}

/// A US postal address to record. A part that breaks its rule is
/// BAD_USER_INPUT naming it (e.g. `address.state`).
#[derive(InputObject)]
pub struct AddressInput {
    /// Street address: 1 to 55 characters.
    pub line1: String,
    /// Suite, unit, etc.: up to 55 characters; blank means none.
    pub line2: Option<String>,
    /// City: 1 to 30 characters.
    pub city: String,
    /// A US state's (or DC's, or a territory's) two-letter USPS code.
    pub state: String,
    /// ZIP code: 5 digits or ZIP+4 (`97201-1234`). A clinic's billing
    /// address needs ZIP+4 to render claims.
    pub postal_code: String,
}

/// The field names of an address input under `prefix`.
macro_rules! address_fields {
    ($prefix:literal) => {
        service::codes::AddressFields {
            line1: concat!($prefix, ".line1"),
            line2: concat!($prefix, ".line2"),
            city: concat!($prefix, ".city"),
            state: concat!($prefix, ".state"),
            postal_code: concat!($prefix, ".postalCode"),
        }
    };
}
pub(crate) use address_fields;

impl AddressInput {
    pub fn parse(&self, fields: &AddressFields) -> GqlResult<Address> {
        Address::parse(
            fields,
            RawAddress {
                line1: &self.line1,
                line2: self.line2.as_deref(),
                city: &self.city,
                state: &self.state,
                postal_code: &self.postal_code,
            },
        )
        .gql()
    }
}
