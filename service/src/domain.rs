//! Domain values, parsed once at the edge. Past the edge nothing re-checks
//! them: a function that takes an [`Npi`] knows it is a valid NPI.

use std::fmt;

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
}
