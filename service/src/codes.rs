//! Billing and postal codes, parsed once at the edge: service codes and
//! their modifiers, places of service, ICD-10-CM diagnoses, US states,
//! postal codes, tax ids and addresses. Each check matches the database's
//! own (`0015_therapy.up.sql`), which refuses anything that slips past.

use crate::domain::required_text;
use crate::error::ServiceError;

fn invalid(field: &'static str, message: &str) -> ServiceError {
    ServiceError::invalid(field, message)
}

fn alnum_upper(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_uppercase()
}

/// A CPT or HCPCS Level II code: five characters, e.g. `97153` or `H2019`
/// (a letter or digit, three digits, a digit or letter).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceCode(String);

impl ServiceCode {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        let code = raw.trim().to_ascii_uppercase();
        let b = code.as_bytes();
        let ok = b.len() == 5
            && alnum_upper(b[0])
            && b[1..4].iter().all(u8::is_ascii_digit)
            && alnum_upper(b[4]);
        if !ok {
            return Err(invalid(
                field,
                "a CPT/HCPCS code is 5 characters, e.g. 97153 or H2019",
            ));
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Up to four two-character procedure modifiers (e.g. `HN`, `59`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Modifiers(Vec<String>);

impl Modifiers {
    pub const MAX: usize = 4;

    pub fn parse(field: &'static str, raw: &[String]) -> Result<Self, ServiceError> {
        if raw.len() > Self::MAX {
            return Err(invalid(field, "at most 4 modifiers"));
        }
        let mut out: Vec<String> = Vec::with_capacity(raw.len());
        for m in raw {
            let m = m.trim().to_ascii_uppercase();
            if m.len() != 2 || !m.bytes().all(alnum_upper) {
                return Err(invalid(field, "a modifier is 2 letters or digits"));
            }
            if out.contains(&m) {
                return Err(invalid(field, "a modifier is given once"));
            }
            out.push(m);
        }
        Ok(Self(out))
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// A CMS place-of-service code (e.g. `11` office, `02` telehealth, `12`
/// home): one of the codes an 837P accepts, so that a signed session can
/// always be billed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOfService(String);

impl PlaceOfService {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        let code = raw.trim();
        if !crate::x12::PLACES_OF_SERVICE.contains(&code) {
            return Err(invalid(
                field,
                "a CMS place-of-service code, e.g. 11 (office) or 02 (telehealth)",
            ));
        }
        Ok(Self(code.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An ICD-10-CM diagnosis code, stored with its dot (`F84.0`): a letter,
/// a digit, a digit or A/B, then optionally a dot and 1 to 4 letters or
/// digits. Given without the dot (`F840`), the dot is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcdCode(String);

impl IcdCode {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        let mut code = raw.trim().to_ascii_uppercase();
        // Only ASCII is ever a code (and only then is byte 3 a char boundary).
        if !code.is_ascii() {
            return Err(invalid(field, "an ICD-10-CM code is letters and digits"));
        }
        if code.len() > 3 && !code.contains('.') {
            code.insert(3, '.');
        }
        let b = code.as_bytes();
        let category = b.len() >= 3
            && b[0].is_ascii_uppercase()
            && b[1].is_ascii_digit()
            && (b[2].is_ascii_digit() || b[2] == b'A' || b[2] == b'B');
        let rest = &b[3.min(b.len())..];
        let subcategory = rest.is_empty()
            || (rest[0] == b'.'
                && (2..=5).contains(&rest.len())
                && rest[1..].iter().all(|&c| alnum_upper(c)));
        if !category || !subcategory {
            return Err(invalid(
                field,
                "an ICD-10-CM code is like F84.0: a letter, two characters, then a dot and up to 4 more",
            ));
        }
        Ok(Self(code))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An 837P claim filing indicator (SBR09): the kind of plan a payer runs,
/// e.g. `CI` commercial, `MB` Medicare part B, `MC` Medicaid, `BL` Blue
/// Cross/Blue Shield, `HM` HMO, `CH` TRICARE, `VA`, `WC` workers'
/// compensation (the 23 codes of the 005010X222A1 guide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimFilingCode(String);

impl ClaimFilingCode {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        let code = raw.trim().to_ascii_uppercase();
        if !crate::x12::CLAIM_FILING_CODES.contains(&code.as_str()) {
            return Err(invalid(
                field,
                "a claim filing indicator of the 837P guide, e.g. CI, MB, MC, BL or HM",
            ));
        }
        Ok(Self(code))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// USPS codes of the states, DC and the territories.
pub(crate) const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY", "AS", "GU", "MP", "PR", "VI",
];

/// A US state (or DC, or a territory) by its USPS code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsState(String);

impl UsState {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        let code = raw.trim().to_ascii_uppercase();
        if !US_STATES.contains(&code.as_str()) {
            return Err(invalid(field, "a US state's two-letter code, e.g. OR"));
        }
        Ok(Self(code))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A ZIP code: 5 digits or ZIP+4 (stored as 9 digits; `97201-1234` is
/// accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostalCode(String);

impl PostalCode {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        let digits: String = raw.trim().replacen('-', "", 1);
        if !(digits.len() == 5 || digits.len() == 9) || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid(field, "a ZIP code: 5 digits or ZIP+4"));
        }
        Ok(Self(digits))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An employer identification number (EIN): 9 digits (`12-3456789` is
/// accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxId(String);

impl TaxId {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        let digits: String = raw.trim().replacen('-', "", 1);
        if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(field, "a tax id (EIN) is 9 digits"));
        }
        Ok(Self(digits))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A US phone number as the 10 digits a claim carries (punctuation and a
/// leading country code 1 are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneDigits(String);

impl PhoneDigits {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        let mut digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        if digits.len() == 11 && digits.starts_with('1') {
            digits.remove(0);
        }
        let allowed = |c: char| c.is_ascii_digit() || " ()+-.".contains(c);
        if digits.len() != 10 || !raw.trim().chars().all(allowed) {
            return Err(invalid(field, "a US phone number of 10 digits"));
        }
        Ok(Self(digits))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A US postal address, every part checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub state: UsState,
    pub postal_code: PostalCode,
}

/// An address as a client sends it.
pub struct RawAddress<'a> {
    pub line1: &'a str,
    pub line2: Option<&'a str>,
    pub city: &'a str,
    pub state: &'a str,
    pub postal_code: &'a str,
}

/// The input names of an address's parts, for errors (`address.city`, …).
pub struct AddressFields {
    pub line1: &'static str,
    pub line2: &'static str,
    pub city: &'static str,
    pub state: &'static str,
    pub postal_code: &'static str,
}

impl Address {
    pub fn parse(fields: &AddressFields, raw: RawAddress<'_>) -> Result<Self, ServiceError> {
        let line2 = match raw.line2.map(str::trim) {
            None | Some("") => None,
            Some(l) => Some(required_text(fields.line2, l, 55)?),
        };
        Ok(Self {
            line1: required_text(fields.line1, raw.line1, 55)?,
            line2,
            city: required_text(fields.city, raw.city, 30)?,
            state: UsState::parse(fields.state, raw.state)?,
            postal_code: PostalCode::parse(fields.postal_code, raw.postal_code)?,
        })
    }
}

/// An IANA time zone name (`America/Chicago`), as the database checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IanaZone(chrono_tz::Tz);

impl IanaZone {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        raw.trim()
            .parse()
            .map(Self)
            .map_err(|_| invalid(field, "an IANA time zone such as America/Chicago"))
    }

    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }

    pub fn into_string(self) -> String {
        self.0.name().to_owned()
    }
}

/// A code of a clinic's session event catalogue: an upper-case letter, then
/// up to 39 upper-case letters, digits or underscores (`GOAL_PROGRESS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeCode(String);

impl EventTypeCode {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        let code = raw.trim();
        let b = code.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 40
            && b[0].is_ascii_uppercase()
            && b.iter().all(|&c| alnum_upper(c) || c == b'_');
        if !ok {
            return Err(invalid(
                field,
                "an event type is upper-case letters, digits and _ (e.g. GOAL_PROGRESS)",
            ));
        }
        Ok(Self(code.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_are_cpt_or_hcpcs_shaped() {
        assert_eq!(
            ServiceCode::parse("c", " 97153 ").unwrap().as_str(),
            "97153"
        );
        assert_eq!(ServiceCode::parse("c", "h2019").unwrap().as_str(), "H2019");
        for bad in ["9715", "971533", "97A53", "", "97-53"] {
            assert!(ServiceCode::parse("c", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modifiers_are_at_most_four_pairs() {
        let four: Vec<String> = ["hn", "59", "GT", "U1"].map(String::from).into();
        assert_eq!(
            Modifiers::parse("m", &four).unwrap().into_vec(),
            ["HN", "59", "GT", "U1"]
        );
        let five: Vec<String> = ["HN", "59", "GT", "U1", "U2"].map(String::from).into();
        assert!(Modifiers::parse("m", &five).is_err());
        assert!(Modifiers::parse("m", &["H".into()]).is_err());
        assert!(Modifiers::parse("m", &["H*".into()]).is_err());
        assert!(Modifiers::parse("m", &["GP".into(), "gp".into()]).is_err());
    }

    #[test]
    fn icd10_codes_are_checked_and_get_their_dot() {
        assert_eq!(IcdCode::parse("d", "f84.0").unwrap().into_string(), "F84.0");
        assert_eq!(IcdCode::parse("d", "F840").unwrap().into_string(), "F84.0");
        assert_eq!(IcdCode::parse("d", "Z00").unwrap().into_string(), "Z00");
        assert_eq!(
            IcdCode::parse("d", "S72.0011").unwrap().into_string(),
            "S72.0011"
        );
        for bad in ["F8", "F84.", "F84.00000", "184.0", "F8C.0", "F84*0"] {
            assert!(IcdCode::parse("d", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn states_postal_codes_tax_ids_and_phones() {
        assert_eq!(UsState::parse("s", "or").unwrap().into_string(), "OR");
        assert!(UsState::parse("s", "XX").is_err());
        assert_eq!(
            PostalCode::parse("z", "97201-1234").unwrap().into_string(),
            "972011234"
        );
        assert!(PostalCode::parse("z", "9720").is_err());
        assert_eq!(
            TaxId::parse("t", "12-3456789").unwrap().into_string(),
            "123456789"
        );
        assert!(TaxId::parse("t", "12345678").is_err());
        assert_eq!(
            PhoneDigits::parse("p", "+1 (503) 555-0100")
                .unwrap()
                .into_string(),
            "5035550100"
        );
        assert!(PhoneDigits::parse("p", "503-555-010").is_err());
        assert!(PhoneDigits::parse("p", "503*555*0100").is_err());
    }

    #[test]
    fn places_of_service_and_event_types() {
        assert!(PlaceOfService::parse("p", "11").is_ok());
        assert!(PlaceOfService::parse("p", "1").is_err());
        assert!(PlaceOfService::parse("p", "00").is_err());
        assert!(PlaceOfService::parse("p", "35").is_err());
        assert_eq!(
            ClaimFilingCode::parse("f", " mc ").unwrap().into_string(),
            "MC"
        );
        assert!(ClaimFilingCode::parse("f", "XX").is_err());
        assert!(EventTypeCode::parse("e", "GOAL_PROGRESS").is_ok());
        assert!(EventTypeCode::parse("e", "goal").is_err());
        assert!(EventTypeCode::parse("e", "_X").is_err());
    }
}
