//! Domain values, parsed once at the edge. Past the edge nothing re-checks
//! them: a function that takes an [`Npi`] knows it is a valid NPI.

use std::fmt;

use entity::contact_method::ContactMethodType;
use uuid::Uuid;

use crate::error::ServiceError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new(id: Uuid) -> Self {
                Self(id)
            }
            pub fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A clinic: the tenant every clinical row belongs to.
    TenantId
);
id_type!(UserId);
id_type!(SessionId);
id_type!(PatientId);
id_type!(ProviderId);
id_type!(AssignmentId);
id_type!(AppointmentId);
id_type!(AuthorizationId);
id_type!(ProxyAssignmentId);
id_type!(DocumentId);
id_type!(FacilityId);
id_type!(FacilityStaffId);

/// A fresh id: a ULID (time-ordered, so new rows land at the end of the
/// primary-key index) stored as a uuid.
pub fn new_id() -> Uuid {
    ulid::Ulid::generate().into()
}

/// A National Provider Identifier: ten digits, the last one a Luhn check
/// digit computed over the prefix `80840` and the first nine digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Npi(String);

impl Npi {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let raw = raw.trim();
        if raw.len() != 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ServiceError::invalid("npi", "an NPI is exactly 10 digits"));
        }
        let digits: Vec<u32> = raw.bytes().map(|b| u32::from(b - b'0')).collect();
        if Self::check_digit(&digits[..9]) != digits[9] {
            return Err(ServiceError::invalid(
                "npi",
                "the NPI check digit does not match",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Completes nine digits into a valid NPI (for demo and test data).
    pub fn from_prefix(prefix: [u8; 9]) -> Self {
        let digits: Vec<u32> = prefix.iter().map(|d| u32::from(d % 10)).collect();
        let check = Self::check_digit(&digits);
        let mut s: String = digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
        s.push(char::from(b'0' + check as u8));
        Self(s)
    }

    fn check_digit(first_nine: &[u32]) -> u32 {
        // Luhn over 80840 + the nine digits, doubling every second digit from the right.
        let payload = [8, 0, 8, 4, 0].iter().chain(first_nine.iter());
        let payload: Vec<u32> = payload.copied().collect();
        let sum: u32 = payload
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                if i % 2 == 0 {
                    let dd = d * 2;
                    if dd > 9 { dd - 9 } else { dd }
                } else {
                    d
                }
            })
            .sum();
        (10 - sum % 10) % 10
    }
}

impl AsRef<str> for Npi {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A medical record number: 1–32 letters, digits or dashes, unique per clinic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mrn(String);

impl Mrn {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let raw = raw.trim();
        if raw.is_empty()
            || raw.len() > 32
            || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(ServiceError::invalid(
                "mrn",
                "an MRN is 1 to 32 letters, digits or dashes",
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl AsRef<str> for Mrn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An email address, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let raw = raw.trim();
        let valid = raw.len() <= 320
            && raw.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !raw.chars().any(char::is_whitespace)
            });
        if !valid {
            return Err(ServiceError::invalid("email", "not an email address"));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A DEA registration number: two capital letters (the second may be `9`)
/// and seven digits, the last a check digit: the last digit of
/// (d1 + d3 + d5) + 2 × (d2 + d4 + d6). The database checks the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeaNumber(String);

impl DeaNumber {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let raw = raw.trim();
        let b = raw.as_bytes();
        let valid = b.len() == 9
            && b[0].is_ascii_uppercase()
            && (b[1].is_ascii_uppercase() || b[1] == b'9')
            && b[2..].iter().all(u8::is_ascii_digit);
        if !valid {
            return Err(ServiceError::invalid(
                "deaNumber",
                "a DEA number is two letters and seven digits",
            ));
        }
        let d = |i: usize| u32::from(b[i] - b'0');
        if (d(2) + d(4) + d(6) + 2 * (d(3) + d(5) + d(7))) % 10 != d(8) {
            return Err(ServiceError::invalid(
                "deaNumber",
                "the DEA number's check digit does not match",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// An optional argument: absent or blank means no DEA number.
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, ServiceError> {
        match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(raw) => Self::parse(raw).map(Some),
        }
    }
}

impl AsRef<str> for DeaNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The states a provider is licensed in, each a code of two capital letters
/// such as `NY`, taken as given (a code with spaces around it is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StateLicenses(Vec<String>);

impl StateLicenses {
    pub fn parse(raw: &[String]) -> Result<Self, ServiceError> {
        let valid = raw
            .iter()
            .all(|state| state.len() == 2 && state.bytes().all(|b| b.is_ascii_uppercase()));
        if !valid {
            return Err(ServiceError::invalid(
                "stateLicenses",
                "each state is a two-letter code such as NY",
            ));
        }
        Ok(Self(raw.to_vec()))
    }
}

impl AsRef<[String]> for StateLicenses {
    fn as_ref(&self) -> &[String] {
        &self.0
    }
}

/// A phone number as people write it: 7 to 15 digits, which may also hold
/// spaces and `+ - ( ) . x`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let raw = raw.trim();
        let digits = raw.chars().filter(char::is_ascii_digit).count();
        let allowed = raw
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().x".contains(c));
        if !allowed || !(7..=15).contains(&digits) {
            return Err(ServiceError::invalid(
                "phone",
                "a phone number has 7 to 15 digits",
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl AsRef<str> for Phone {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// How to reach someone, with its kind: an email address for `EMAIL`, a
/// phone number for every other kind; at most 320 characters. A refusal
/// names the argument `value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContactValue {
    kind: ContactMethodType,
    value: String,
}

impl ContactValue {
    pub fn parse(kind: ContactMethodType, raw: &str) -> Result<Self, ServiceError> {
        let value = required_text("value", raw, 320)?;
        let value = match kind {
            ContactMethodType::Email => Email::parse(&value).map_err(as_value)?.0,
            ContactMethodType::Mobile | ContactMethodType::Home | ContactMethodType::Work => {
                Phone::parse(&value).map_err(as_value)?.0
            }
        };
        Ok(Self { kind, value })
    }

    pub fn kind(&self) -> ContactMethodType {
        self.kind
    }
}

impl AsRef<str> for ContactValue {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

/// The same refusal, naming the `value` argument it arrived in.
fn as_value(err: ServiceError) -> ServiceError {
    match err {
        ServiceError::Invalid { message, .. } => ServiceError::Invalid {
            field: "value",
            message,
        },
        other => other,
    }
}

/// A person's name part or a label: trimmed, 1 to `max` characters.
pub fn required_text(field: &'static str, raw: &str, max: usize) -> Result<String, ServiceError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if value.chars().any(|c| c == '\0') {
        return Err(ServiceError::invalid(
            field,
            "must not contain NUL characters",
        ));
    }
    if value.chars().count() > max {
        return Err(ServiceError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npi_with_valid_check_digit_parses() {
        assert_eq!(Npi::parse("1234567893").unwrap().as_ref(), "1234567893");
    }

    #[test]
    fn npi_with_wrong_check_digit_is_refused() {
        assert!(matches!(
            Npi::parse("1234567890"),
            Err(ServiceError::Invalid { field: "npi", .. })
        ));
    }

    #[test]
    fn npi_of_wrong_length_or_letters_is_refused() {
        assert!(Npi::parse("123456789").is_err());
        assert!(Npi::parse("12345678931").is_err());
        assert!(Npi::parse("12345a7893").is_err());
    }

    #[test]
    fn npi_from_prefix_is_valid() {
        let npi = Npi::from_prefix([1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(npi.as_ref(), "1234567893");
        for seed in 0..50u8 {
            let npi = Npi::from_prefix([1, seed % 10, 2, 3, seed / 10, 5, 6, 7, 8]);
            assert!(Npi::parse(npi.as_ref()).is_ok());
        }
    }

    #[test]
    fn mrn_rules() {
        assert!(Mrn::parse("NS-0001").is_ok());
        assert!(Mrn::parse("").is_err());
        assert!(Mrn::parse("has space").is_err());
        assert!(Mrn::parse(&"9".repeat(33)).is_err());
    }

    #[test]
    fn email_rules() {
        assert!(Email::parse("a@b.example").is_ok());
        assert!(Email::parse("no-at-sign").is_err());
        assert!(Email::parse("two@@signs").is_err());
        assert!(Email::parse("sp ace@x.example").is_err());
    }

    fn invalid_on<T: fmt::Debug>(result: Result<T, ServiceError>) -> (&'static str, String) {
        match result {
            Err(ServiceError::Invalid { field, message }) => (field, message),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn dea_number_is_two_letters_and_seven_digits() {
        assert_eq!(DeaNumber::parse("AB1234563").unwrap().as_ref(), "AB1234563");
        assert_eq!(
            DeaNumber::parse(" AB1234563 ").unwrap().as_ref(),
            "AB1234563"
        );
    }

    #[test]
    fn dea_number_with_a_wrong_check_digit_is_refused() {
        // (1 + 3 + 5) + 2 × (2 + 4 + 6) = 33: the check digit is 3.
        assert!(DeaNumber::parse("AB1234563").is_ok());
        for bad in ["AB1234560", "AB1234564", "AB2134563"] {
            assert_eq!(
                invalid_on(DeaNumber::parse(bad)),
                (
                    "deaNumber",
                    "the DEA number's check digit does not match".to_owned()
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn dea_number_second_character_may_be_nine() {
        assert!(DeaNumber::parse("A91234563").is_ok());
        assert!(DeaNumber::parse("A81234563").is_err());
    }

    #[test]
    fn dea_number_of_wrong_shape_is_refused_on_dea_number() {
        for bad in [
            "",
            "AB123456",
            "AB12345678",
            "ab1234563",
            "1B1234563",
            "AB12345X3",
            "ÄB123456",
        ] {
            assert_eq!(
                invalid_on(DeaNumber::parse(bad)),
                (
                    "deaNumber",
                    "a DEA number is two letters and seven digits".to_owned()
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn dea_number_absent_or_blank_is_none() {
        assert_eq!(DeaNumber::parse_optional(None).unwrap(), None);
        assert_eq!(DeaNumber::parse_optional(Some("  ")).unwrap(), None);
        assert!(
            DeaNumber::parse_optional(Some("AB1234563"))
                .unwrap()
                .is_some()
        );
        assert!(DeaNumber::parse_optional(Some("AB")).is_err());
    }

    #[test]
    fn state_licenses_are_two_capital_letters_each() {
        let states = vec!["NY".to_owned(), "NJ".to_owned()];
        assert_eq!(StateLicenses::parse(&states).unwrap().as_ref(), &states[..]);
        assert!(StateLicenses::parse(&[]).unwrap().as_ref().is_empty());
    }

    #[test]
    fn state_licenses_with_one_bad_code_are_refused_on_state_licenses() {
        for bad in ["ny", "N", "NYC", " NY", "N1", ""] {
            let states = vec!["NY".to_owned(), bad.to_owned()];
            assert_eq!(
                invalid_on(StateLicenses::parse(&states)),
                (
                    "stateLicenses",
                    "each state is a two-letter code such as NY".to_owned()
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn phone_has_seven_to_fifteen_digits_and_common_punctuation() {
        assert_eq!(
            Phone::parse(" +1 (555) 010-0999 x12 ").unwrap().as_ref(),
            "+1 (555) 010-0999 x12"
        );
        assert!(Phone::parse("555.0100").is_ok());
        assert!(Phone::parse("1234567").is_ok());
        assert!(Phone::parse("123456789012345").is_ok());
    }

    #[test]
    fn phone_with_too_few_or_too_many_digits_or_other_characters_is_refused() {
        for bad in [
            "",
            "123456",
            "1234567890123456",
            "555-0100 ext 9",
            "555#0100999",
        ] {
            assert_eq!(
                invalid_on(Phone::parse(bad)),
                ("phone", "a phone number has 7 to 15 digits".to_owned()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn contact_value_is_checked_by_its_kind() {
        let email = ContactValue::parse(ContactMethodType::Email, " a@b.example ").unwrap();
        assert_eq!(email.kind(), ContactMethodType::Email);
        assert_eq!(email.as_ref(), "a@b.example");
        for kind in [
            ContactMethodType::Mobile,
            ContactMethodType::Home,
            ContactMethodType::Work,
        ] {
            let phone = ContactValue::parse(kind, " +1 555 0100 999 ").unwrap();
            assert_eq!(phone.kind(), kind);
            assert_eq!(phone.as_ref(), "+1 555 0100 999");
        }
    }

    #[test]
    fn contact_value_refusals_name_the_value() {
        let cases = [
            (
                ContactMethodType::Email,
                "+1 555 0100 999",
                "not an email address",
            ),
            (
                ContactMethodType::Mobile,
                "a@b.example",
                "a phone number has 7 to 15 digits",
            ),
            (ContactMethodType::Home, "  ", "must not be empty"),
            (
                ContactMethodType::Work,
                &"5".repeat(321),
                "must be at most 320 characters",
            ),
        ];
        for (kind, raw, message) in cases {
            assert_eq!(
                invalid_on(ContactValue::parse(kind, raw)),
                ("value", message.to_owned()),
                "{raw:?}"
            );
        }
    }
}
