//! ASC X12 005010X222A1 837P (health care claim: professional) writer.
//!
//! [`render`] turns an [`Interchange`] into one ISA/GS envelope holding one
//! ST/SE transaction set per claim, so that a claim rejected by a payer's
//! front end never takes its neighbours with it and HL numbering restarts at
//! 1 in each set. Everything is checked before the first byte is written: a
//! claim that the implementation guide (or a payer's front-end edits we can
//! check here, such as the NPI check digit or the nine-digit billing ZIP)
//! would reject comes back as [`Unrenderable`] naming the field the GraphQL
//! client knows, instead of a file that bounces days later.
//!
//! No X12 crate is used: `x12-types`/`serde_x12` model a generic 5010 837
//! with bare strings (no delimiter handling, no envelope counts, and serde,
//! nom and a proc-macro crate to pull in), and `edi` and the others only
//! parse, so a small table-driven writer is less code to trust.
//!
//! Output choices:
//! - delimiters: element `*`, component `:`, repetition `^` (ISA11), segment
//!   `~`, each segment followed by a newline so files read one segment a line
//!   (pyx12 and the common clearinghouse readers skip it);
//! - free text (names, address lines, city, contact) is upper-cased, folded to
//!   the X12 basic character set (common accented letters lose their accent;
//!   delimiters, control characters and anything else become a space; runs of
//!   spaces collapse) and then cut to the element's maximum length;
//! - identifiers (member id, payer id, group number, authorization, claim
//!   number, envelope ids) are never altered: one that holds a delimiter or a
//!   non-printable or non-ASCII character, or is too long, is refused.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime};

/// One ISA/GS envelope of 837P claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interchange {
    /// ISA13 (nine digits, zero-padded) and GS06; 1..=999_999_999.
    pub control_number: u32,
    /// ISA09/10, GS04/05 and BHT04/05.
    pub created_at: NaiveDateTime,
    /// ISA06 (padded to 15) and GS02, qualifier ZZ; 2..=15 characters.
    pub sender_id: String,
    /// ISA08 (padded to 15) and GS03, qualifier ZZ; 2..=15 characters.
    pub receiver_id: String,
    /// ISA15: `P` when true, `T` (test) otherwise.
    pub production: bool,
    /// Loop 1000A.
    pub submitter: Submitter,
    /// Loop 1000B.
    pub receiver: Receiver,
    /// One ST/SE transaction set each, in order (ST02 `0001`, `0002`, …).
    pub claims: Vec<ClaimDocument>,
}

/// Loop 1000A: who sends the file (NM1*41, PER*IC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitter {
    pub name: String,
    /// Submitter id assigned by the receiver (NM109, qualifier 46).
    pub id: String,
    pub contact_name: String,
    /// Ten digits; spaces, dots, dashes and parentheses are ignored.
    pub phone: String,
}

/// Loop 1000B: the clearinghouse or payer receiving the file (NM1*40).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    pub name: String,
    /// Receiver id (NM109, qualifier 46).
    pub id: String,
}

/// A street address (N3/N4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub line1: String,
    /// Blank is the same as `None`.
    pub line2: Option<String>,
    pub city: String,
    /// USPS code of a US state, DC, territory or military post office.
    pub state: String,
    /// 5 or 9 digits (`12345-6789` accepted); 9 required for the billing
    /// provider.
    pub postal_code: String,
}

/// Loops 2000A/2010AA: HL*…*20, NM1*85 (organization), N3, N4, REF*EI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingProvider {
    pub name: String,
    /// Type 2 (organization) NPI: 10 digits with a valid check digit.
    pub npi: String,
    /// EIN: 9 digits (`12-3456789` accepted).
    pub tax_id: String,
    /// Must be a street address with a 9-digit ZIP (no PO box).
    pub address: Address,
}

/// Loop 2010BB: NM1*PR, identified by payer id (qualifier PI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payer {
    pub name: String,
    pub payer_id: String,
    /// SBR09 claim filing indicator (e.g. `CI` commercial, `MB` Medicare
    /// part B, `MC` Medicaid, `BL` Blue Cross/Blue Shield, `HM` HMO);
    /// `None` sends `CI`.
    pub claim_filing_code: Option<String>,
}

/// The patient's relationship to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relationship {
    /// The patient is the subscriber: SBR02 `18`, no 2000C loop.
    SelfInsured,
    /// PAT01 `01`.
    Spouse,
    /// PAT01 `19`.
    Child,
    /// PAT01 `G8` (other relationship).
    Other,
}

/// DMG03 gender code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
    Unknown,
}

/// SBR01 payer responsibility sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Primary,
    Secondary,
    Tertiary,
}

/// A person named on the claim (subscriber or patient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// May be blank (NM104 is left out).
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: NaiveDate,
    pub sex: Sex,
    /// Required for the patient (the subscriber when self-insured).
    pub address: Option<Address>,
}

/// Loops 2000B/2010BA: the insurance and its subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// NM109 with qualifier MI; 2..=80 characters.
    pub member_id: String,
    /// SBR03; blank is the same as `None`.
    pub group_number: Option<String>,
    pub priority: Priority,
    pub relationship: Relationship,
    /// The subscriber. For a dependent claim only the name is sent (the
    /// guide forbids the subscriber's address and demographics there).
    pub person: Person,
}

/// Loop 2310B: NM1*82*1 with the rendering clinician's individual NPI; left
/// out when the NPI is the billing provider's (the guide sends it only when
/// it differs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderingProvider {
    /// May be blank (NM104 is left out).
    pub first_name: String,
    pub last_name: String,
    pub npi: String,
}

/// Loop 2400: LX, SV1, DTP*472.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLine {
    /// CPT or HCPCS code: 5 letters or digits.
    pub service_code: String,
    /// 0..=4 modifiers of 2 letters or digits.
    pub modifiers: Vec<String>,
    pub charge_cents: i64,
    pub units: i32,
    pub service_date: NaiveDate,
    /// 1..=4 distinct 1-based positions in the claim's diagnoses.
    pub diagnosis_pointers: Vec<u8>,
    /// Sent (SV105) only when it differs from the claim's.
    pub place_of_service: String,
}

/// One claim: one ST/SE transaction set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimDocument {
    /// CLM01, 1..=20 characters.
    pub patient_control_number: String,
    pub billing: BillingProvider,
    pub payer: Payer,
    pub subscriber: Subscriber,
    /// `Some` exactly when the relationship is not `SelfInsured`: loops
    /// 2000C/2010CA (address required).
    pub patient: Option<Person>,
    pub rendering: Option<RenderingProvider>,
    /// CLM05-1, a CMS place-of-service code (2 digits).
    pub place_of_service: String,
    /// ICD-10-CM codes as stored, with the dot (`F84.0`); written without it.
    /// The first is the principal diagnosis. 1..=12, distinct.
    pub diagnoses: Vec<String>,
    /// REF*G1 in loop 2300; blank is the same as `None`.
    pub prior_authorization: Option<String>,
    /// 1..=50 lines; CLM02 is their sum.
    pub lines: Vec<ServiceLine>,
}

/// Why a claim cannot be rendered: the first field that is missing or malformed,
/// named as the GraphQL client knows it (e.g. "insurance.memberId",
/// "organization.taxId", "organization.billingAddress", "patient.address",
/// "lines", "diagnoses", "provider.npi").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrenderable {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for Unrenderable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for Unrenderable {}

fn refuse(field: &'static str, message: impl Into<String>) -> Unrenderable {
    Unrenderable {
        field,
        message: message.into(),
    }
}

/// Renders the whole interchange, or the first reason it cannot be sent.
pub fn render(interchange: &Interchange) -> Result<String, Unrenderable> {
    let envelope = Envelope::prepare(interchange)?;
    let several = interchange.claims.len() > 1;
    let claims = interchange
        .claims
        .iter()
        .enumerate()
        .map(|(index, claim)| {
            Claim::prepare(claim, interchange.created_at.date()).map_err(|e| {
                if several {
                    Unrenderable {
                        field: e.field,
                        message: format!("claim {}: {}", index + 1, e.message),
                    }
                } else {
                    e
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(envelope.write(&claims))
}

// ---------------------------------------------------------------------------
// Delimiters and the segment builder.

const ELEMENT: char = '*';
const COMPONENT: char = ':';
const REPETITION: char = '^';
const TERMINATOR: char = '~';

/// Joins `parts` with `separator`, dropping trailing empty parts as X12
/// requires (a segment or composite never ends with an empty element).
fn join_trimmed(head: &str, parts: &[&str], separator: char) -> String {
    let used = parts
        .iter()
        .rposition(|p| !p.is_empty())
        .map_or(0, |i| i + 1);
    let mut out = String::from(head);
    for (i, part) in parts[..used].iter().enumerate() {
        if i > 0 || !head.is_empty() {
            out.push(separator);
        }
        out.push_str(part);
    }
    out
}

/// A segment without its terminator: `seg("N3", &["1 MAIN ST", ""])` is
/// `N3*1 MAIN ST`.
fn seg(id: &str, elements: &[&str]) -> String {
    join_trimmed(id, elements, ELEMENT)
}

/// NM1 with the elements an 837P uses: entity, type (1 person, 2
/// organization), last or organization name, first name, id qualifier, id.
fn nm1(entity: &str, kind: &str, last: &str, first: &str, qualifier: &str, id: &str) -> String {
    seg(
        "NM1",
        &[entity, kind, last, first, "", "", "", qualifier, id],
    )
}

/// A composite element: `composite(&["HC", "99213", ""])` is `HC:99213`.
fn composite(components: &[&str]) -> String {
    join_trimmed("", components, COMPONENT)
}

// ---------------------------------------------------------------------------
// Field rules, one table entry per kind of element.

/// Free text: cleaned and cut to `max`; refused when shorter than `min`
/// after cleaning.
struct Text {
    min: usize,
    max: usize,
}

/// NM103 organization or last name.
const NAME: Text = Text { min: 1, max: 60 };
/// NM104 first name (may be blank).
const FIRST_NAME: Text = Text { min: 0, max: 35 };
/// PER02 contact name.
const CONTACT: Text = Text { min: 1, max: 60 };
/// N301/N302.
const ADDRESS_LINE: Text = Text { min: 1, max: 55 };
/// N401 (the guide's minimum is two characters).
const CITY: Text = Text { min: 2, max: 30 };

/// An identifier: sent exactly as given (trimmed), never cut.
struct Ident {
    min: usize,
    max: usize,
}

/// GS02/GS03, and ISA06/ISA08 which hold 15.
const ENVELOPE_ID: Ident = Ident { min: 2, max: 15 };
/// NM109 of the submitter, receiver, payer and subscriber.
const NM1_ID: Ident = Ident { min: 2, max: 80 };
/// SBR03 and REF02.
const REFERENCE: Ident = Ident { min: 1, max: 50 };
/// CLM01: the guide allows 38 but the paper claim and most payers keep 20.
const PATIENT_CONTROL_NUMBER: Ident = Ident { min: 1, max: 20 };

/// The largest charge accepted, for a line and for a claim: $99,999,999.99,
/// far above any professional claim and well inside SV102/CLM02.
const MAX_CHARGE_CENTS: i64 = 9_999_999_999;

/// USPS codes N402 takes beyond the states, DC and territories addresses
/// hold elsewhere (`codes::US_STATES`): military post offices and the freely
/// associated states.
const MORE_STATES: &[&str] = &["AA", "AE", "AP", "FM", "MH"];

/// CMS place-of-service codes (code source 237) accepted in CLM05-1/SV105.
pub(crate) const PLACES_OF_SERVICE: &[&str] = &[
    "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "31", "32", "33", "34", "41",
    "42", "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "65", "66",
    "71", "72", "81", "99",
];

/// SBR09 claim filing indicator codes of the 837P guide.
pub(crate) const CLAIM_FILING_CODES: &[&str] = &[
    "11", "12", "13", "14", "15", "16", "17", "AM", "BL", "CH", "CI", "DS", "FI", "HM", "LM", "MA",
    "MB", "MC", "OF", "TV", "VA", "WC", "ZZ",
];

/// Maps one upper-cased character into the X12 basic character set, minus
/// our delimiters; `None` becomes a space.
fn fold(c: char) -> Option<&'static str> {
    const ALLOWED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!\"&'()+,-./;?=";
    if let Some(i) = ALLOWED.find(c) {
        return Some(&ALLOWED[i..i + c.len_utf8()]);
    }
    Some(match c {
        'À'..='Å' | 'Ą' | 'Ă' | 'Ā' => "A",
        'Æ' => "AE",
        'Ç' | 'Ć' | 'Č' => "C",
        'Ð' | 'Ď' | 'Đ' => "D",
        'È'..='Ë' | 'Ę' | 'Ě' | 'Ē' => "E",
        'Ğ' => "G",
        'Ì'..='Ï' | 'İ' | 'Ī' => "I",
        'Ł' | 'Ľ' => "L",
        'Ñ' | 'Ń' | 'Ň' => "N",
        'Ò'..='Ö' | 'Ø' | 'Ő' | 'Ō' => "O",
        'Œ' => "OE",
        'Ř' => "R",
        'Ś' | 'Š' | 'Ş' => "S",
        'Ť' | 'Ţ' => "T",
        'Þ' => "TH",
        'Ù'..='Ü' | 'Ů' | 'Ű' | 'Ū' => "U",
        'Ý' | 'Ÿ' => "Y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        _ => return None,
    })
}

/// Upper-cases, folds to the basic character set, collapses spaces and cuts
/// to `max` characters (all ASCII by then, so bytes are characters).
fn clean_text(raw: &str, max: usize) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars().flat_map(char::to_uppercase) {
        match fold(c) {
            Some(s) => out.push_str(s),
            None => {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
        }
    }
    out.truncate(max);
    out.trim_end().to_string()
}

fn text(raw: &str, rule: &Text, field: &'static str, what: &str) -> Result<String, Unrenderable> {
    let cleaned = clean_text(raw, rule.max);
    if cleaned.len() < rule.min {
        return Err(if raw.trim().is_empty() {
            refuse(field, format!("{what} is missing"))
        } else {
            refuse(
                field,
                format!(
                    "{what} {raw:?} keeps fewer than {} characters that X12 can carry",
                    rule.min
                ),
            )
        });
    }
    Ok(cleaned)
}

fn ident(raw: &str, rule: &Ident, field: &'static str, what: &str) -> Result<String, Unrenderable> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(refuse(field, format!("{what} is missing")));
    }
    if let Some(bad) = value.chars().find(|&c| {
        !(c == ' ' || c.is_ascii_graphic())
            || [ELEMENT, COMPONENT, REPETITION, TERMINATOR].contains(&c)
    }) {
        return Err(refuse(
            field,
            format!("{what} contains {bad:?}, which cannot be sent in X12"),
        ));
    }
    let len = value.len();
    if len < rule.min || len > rule.max {
        return Err(refuse(
            field,
            format!(
                "{what} must be {} to {} characters long",
                rule.min, rule.max
            ),
        ));
    }
    Ok(value.to_string())
}

/// An optional identifier: blank is absent.
fn optional_ident(
    raw: Option<&str>,
    rule: &Ident,
    field: &'static str,
    what: &str,
) -> Result<Option<String>, Unrenderable> {
    match raw {
        Some(v) if !v.trim().is_empty() => ident(v, rule, field, what).map(Some),
        _ => Ok(None),
    }
}

/// Strips the formatting characters in `ignore` and returns the digits when
/// exactly `lengths` of them remain.
fn digits(raw: &str, ignore: &[char], lengths: &[usize]) -> Option<String> {
    let kept: String = raw.trim().chars().filter(|c| !ignore.contains(c)).collect();
    (kept.chars().all(|c| c.is_ascii_digit()) && lengths.contains(&kept.len())).then_some(kept)
}

/// Ten digits whose last is the Luhn check digit over `80840` and the first
/// nine, as CMS assigns them (`domain::Npi` checks it).
fn npi(raw: &str, field: &'static str) -> Result<String, Unrenderable> {
    if raw.trim().is_empty() {
        return Err(refuse(field, "NPI is missing"));
    }
    crate::domain::Npi::parse(raw)
        .map(|npi| npi.as_ref().to_owned())
        .map_err(|e| match e {
            crate::ServiceError::Invalid { message, .. } => refuse(field, message),
            other => refuse(field, other.to_string()),
        })
}

fn amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let (whole, frac) = (abs / 100, abs % 100);
    if frac == 0 {
        format!("{sign}{whole}")
    } else if frac % 10 == 0 {
        format!("{sign}{whole}.{}", frac / 10)
    } else {
        format!("{sign}{whole}.{frac:02}")
    }
}

fn date8(date: NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

/// Dates before 1900 are data-entry slips, and chrono's years beyond four
/// digits cannot be written in a D8 element.
fn plausible(date: NaiveDate) -> bool {
    (1900..=9999).contains(&date.year())
}

// ---------------------------------------------------------------------------
// Validation into ready-to-write values.

struct PreparedAddress {
    line1: String,
    line2: Option<String>,
    city: String,
    state: String,
    zip: String,
}

impl PreparedAddress {
    fn prepare(
        address: &Address,
        field: &'static str,
        nine_digit_zip: bool,
    ) -> Result<Self, Unrenderable> {
        let line1 = text(&address.line1, &ADDRESS_LINE, field, "address line 1")?;
        let line2 = address
            .line2
            .as_deref()
            .map(|l| clean_text(l, ADDRESS_LINE.max))
            .filter(|l| !l.is_empty());
        let city = text(&address.city, &CITY, field, "city")?;
        let state = address.state.trim().to_ascii_uppercase();
        if !crate::codes::US_STATES.contains(&state.as_str())
            && !MORE_STATES.contains(&state.as_str())
        {
            return Err(refuse(
                field,
                format!(
                    "state {:?} is not a US state or territory code",
                    address.state
                ),
            ));
        }
        let lengths: &[usize] = if nine_digit_zip { &[9] } else { &[5, 9] };
        let zip = digits(&address.postal_code, &['-'], lengths).ok_or_else(|| {
            refuse(
                field,
                if nine_digit_zip {
                    "ZIP code must have 9 digits (ZIP+4) for the billing provider"
                } else {
                    "ZIP code must have 5 or 9 digits"
                },
            )
        })?;
        Ok(Self {
            line1,
            line2,
            city,
            state,
            zip,
        })
    }

    fn is_post_office_box(&self) -> bool {
        std::iter::once(&self.line1)
            .chain(self.line2.as_ref())
            .any(|line| {
                let squeezed: String = line.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
                ["POBOX", "POSTOFFICEBOX", "LOCKBOX"]
                    .iter()
                    .any(|p| squeezed.starts_with(p))
            })
    }

    fn segments(&self, out: &mut Vec<String>) {
        out.push(seg(
            "N3",
            &[&self.line1, self.line2.as_deref().unwrap_or("")],
        ));
        out.push(seg("N4", &[&self.city, &self.state, &self.zip]));
    }
}

#[derive(Clone)]
struct PreparedName {
    last: String,
    first: String,
}

impl PreparedName {
    fn prepare(
        last: &str,
        first: &str,
        last_field: &'static str,
        first_field: &'static str,
    ) -> Result<Self, Unrenderable> {
        Ok(Self {
            last: text(last, &NAME, last_field, "last name")?,
            first: text(first, &FIRST_NAME, first_field, "first name")?,
        })
    }
}

/// The patient: name, address and demographics (2010BA when self-insured,
/// 2010CA otherwise).
struct PreparedPatient {
    name: PreparedName,
    address: PreparedAddress,
    date_of_birth: NaiveDate,
    sex: &'static str,
}

impl PreparedPatient {
    fn prepare(person: &Person, today: NaiveDate) -> Result<Self, Unrenderable> {
        let name = PreparedName::prepare(
            &person.last_name,
            &person.first_name,
            "patient.lastName",
            "patient.firstName",
        )?;
        let address = person.address.as_ref().ok_or_else(|| {
            refuse(
                "patient.address",
                "the patient's address is required on a claim",
            )
        })?;
        let address = PreparedAddress::prepare(address, "patient.address", false)?;
        if !plausible(person.date_of_birth) || person.date_of_birth > today {
            return Err(refuse(
                "patient.dateOfBirth",
                format!("date of birth {} is not plausible", person.date_of_birth),
            ));
        }
        Ok(Self {
            name,
            address,
            date_of_birth: person.date_of_birth,
            sex: match person.sex {
                Sex::Female => "F",
                Sex::Male => "M",
                Sex::Unknown => "U",
            },
        })
    }

    fn demographics(&self, out: &mut Vec<String>) {
        self.address.segments(out);
        out.push(seg("DMG", &["D8", &date8(self.date_of_birth), self.sex]));
    }
}

struct PreparedLine {
    procedure: String,
    charge_cents: i64,
    units: String,
    place_of_service: Option<String>,
    pointers: String,
    date: String,
}

struct Claim {
    patient_control_number: String,
    billing_name: String,
    billing_npi: String,
    billing_address: PreparedAddress,
    tax_id: String,
    payer_name: String,
    payer_id: String,
    claim_filing_code: String,
    priority: &'static str,
    member_id: String,
    group_number: Option<String>,
    subscriber_name: PreparedName,
    /// The subscriber when self-insured, otherwise the dependent.
    patient: PreparedPatient,
    /// PAT01 when the patient is not the subscriber.
    dependent: Option<&'static str>,
    rendering: Option<(PreparedName, String)>,
    place_of_service: String,
    diagnoses: Vec<String>,
    prior_authorization: Option<String>,
    lines: Vec<PreparedLine>,
    total_cents: i64,
}

fn place_of_service(raw: &str, field: &'static str) -> Result<String, Unrenderable> {
    let code = raw.trim();
    if PLACES_OF_SERVICE.contains(&code) {
        Ok(code.to_string())
    } else {
        Err(refuse(
            field,
            format!("{raw:?} is not a CMS place-of-service code"),
        ))
    }
}

/// `F84.0` → `F840`: a letter, a digit, a letter or digit, then up to four
/// letters or digits after the dot (none for a three-character code). A
/// code already stored without its dot is taken as well.
fn diagnosis(raw: &str) -> Result<String, Unrenderable> {
    let code = raw.trim().to_ascii_uppercase();
    let (category, rest) = match code.split_once('.') {
        Some((category, rest)) if !rest.is_empty() => (category, rest),
        Some(_) => ("", ""),
        None if code.is_char_boundary(3.min(code.len())) => code.split_at(3.min(code.len())),
        None => ("", ""),
    };
    let c = category.as_bytes();
    let well_formed = c.len() == 3
        && c[0].is_ascii_uppercase()
        && c[1].is_ascii_digit()
        && c[2].is_ascii_alphanumeric()
        && rest.len() <= 4
        && rest.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(refuse(
            "diagnoses",
            format!("{raw:?} is not an ICD-10-CM code such as F84.0"),
        ));
    }
    Ok(format!("{category}{rest}"))
}

impl Claim {
    fn prepare(claim: &ClaimDocument, today: NaiveDate) -> Result<Self, Unrenderable> {
        let patient_control_number = ident(
            &claim.patient_control_number,
            &PATIENT_CONTROL_NUMBER,
            "claim.patientControlNumber",
            "patient control number",
        )?;

        let billing = &claim.billing;
        let billing_name = text(&billing.name, &NAME, "organization.name", "billing name")?;
        let billing_npi = npi(&billing.npi, "organization.npi")?;
        let tax_id = digits(&billing.tax_id, &['-'], &[9]).ok_or_else(|| {
            if billing.tax_id.trim().is_empty() {
                refuse("organization.taxId", "tax id (EIN) is missing")
            } else {
                refuse("organization.taxId", "tax id (EIN) must be 9 digits")
            }
        })?;
        let billing_address =
            PreparedAddress::prepare(&billing.address, "organization.billingAddress", true)?;
        if billing_address.is_post_office_box() {
            return Err(refuse(
                "organization.billingAddress",
                "the billing provider address must be a street address, not a PO box",
            ));
        }

        let payer_name = text(
            &claim.payer.name,
            &NAME,
            "insurance.payerName",
            "payer name",
        )?;
        let payer_id = ident(
            &claim.payer.payer_id,
            &NM1_ID,
            "insurance.payerId",
            "payer id",
        )?;
        let claim_filing_code = match claim.payer.claim_filing_code.as_deref().map(str::trim) {
            None | Some("") => "CI".to_string(),
            Some(code) => {
                let code = code.to_ascii_uppercase();
                if !CLAIM_FILING_CODES.contains(&code.as_str()) {
                    return Err(refuse(
                        "insurance.claimFilingCode",
                        format!("{code:?} is not an 837P claim filing indicator code"),
                    ));
                }
                code
            }
        };

        let subscriber = &claim.subscriber;
        let member_id = ident(
            &subscriber.member_id,
            &NM1_ID,
            "insurance.memberId",
            "member id",
        )?;
        let group_number = optional_ident(
            subscriber.group_number.as_deref(),
            &REFERENCE,
            "insurance.groupNumber",
            "group number",
        )?;
        let priority = match subscriber.priority {
            Priority::Primary => "P",
            Priority::Secondary => "S",
            Priority::Tertiary => "T",
        };

        let (subscriber_name, patient, dependent) = match (subscriber.relationship, &claim.patient)
        {
            (Relationship::SelfInsured, None) => {
                let patient = PreparedPatient::prepare(&subscriber.person, today)?;
                (patient.name.clone(), patient, None)
            }
            (Relationship::SelfInsured, Some(_)) => {
                return Err(refuse(
                    "insurance.relationship",
                    "the patient is the subscriber, so no separate patient may be given",
                ));
            }
            (_, None) => {
                return Err(refuse(
                    "patient",
                    "the patient is a dependent of the subscriber but their details are missing",
                ));
            }
            (relationship, Some(person)) => {
                let name = PreparedName::prepare(
                    &subscriber.person.last_name,
                    &subscriber.person.first_name,
                    "insurance.subscriber.lastName",
                    "insurance.subscriber.firstName",
                )?;
                let code = match relationship {
                    Relationship::Spouse => "01",
                    Relationship::Child => "19",
                    _ => "G8",
                };
                (name, PreparedPatient::prepare(person, today)?, Some(code))
            }
        };

        let rendering = claim
            .rendering
            .as_ref()
            .map(|r| {
                Ok::<_, Unrenderable>((
                    PreparedName::prepare(
                        &r.last_name,
                        &r.first_name,
                        "provider.lastName",
                        "provider.firstName",
                    )?,
                    npi(&r.npi, "provider.npi")?,
                ))
            })
            .transpose()?
            // The guide sends 2310B only when it differs from the billing
            // provider.
            .filter(|(_, rendering_npi)| *rendering_npi != billing_npi);

        let place_of_service = place_of_service(&claim.place_of_service, "placeOfService")?;

        if claim.diagnoses.is_empty() || claim.diagnoses.len() > 12 {
            return Err(refuse(
                "diagnoses",
                format!(
                    "a claim needs 1 to 12 diagnoses, not {}",
                    claim.diagnoses.len()
                ),
            ));
        }
        let diagnoses = claim
            .diagnoses
            .iter()
            .map(|d| diagnosis(d))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, d) in diagnoses.iter().enumerate() {
            if diagnoses[..i].contains(d) {
                return Err(refuse(
                    "diagnoses",
                    format!("{:?} is listed twice", claim.diagnoses[i]),
                ));
            }
        }

        let prior_authorization = optional_ident(
            claim.prior_authorization.as_deref(),
            &REFERENCE,
            "priorAuthorization",
            "prior authorization number",
        )?;

        if claim.lines.is_empty() || claim.lines.len() > 50 {
            return Err(refuse(
                "lines",
                format!(
                    "a claim needs 1 to 50 service lines, not {}",
                    claim.lines.len()
                ),
            ));
        }
        let mut lines = Vec::with_capacity(claim.lines.len());
        let mut total_cents: i64 = 0;
        for (i, line) in claim.lines.iter().enumerate() {
            let prepared = prepare_line(
                line,
                i + 1,
                diagnoses.len(),
                &place_of_service,
                patient.date_of_birth,
                today,
            )?;
            total_cents = total_cents
                .checked_add(prepared.charge_cents)
                .filter(|t| *t <= MAX_CHARGE_CENTS)
                .ok_or_else(|| refuse("lines.charge", "the claim's total charge is too large"))?;
            lines.push(prepared);
        }

        Ok(Self {
            patient_control_number,
            billing_name,
            billing_npi,
            billing_address,
            tax_id,
            payer_name,
            payer_id,
            claim_filing_code,
            priority,
            member_id,
            group_number,
            subscriber_name,
            patient,
            dependent,
            rendering,
            place_of_service,
            diagnoses,
            prior_authorization,
            lines,
            total_cents,
        })
    }
}

fn prepare_line(
    line: &ServiceLine,
    number: usize,
    diagnosis_count: usize,
    claim_place: &str,
    date_of_birth: NaiveDate,
    today: NaiveDate,
) -> Result<PreparedLine, Unrenderable> {
    let at =
        |field: &'static str, message: String| refuse(field, format!("line {number}: {message}"));

    let code = line.service_code.trim().to_ascii_uppercase();
    if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(at(
            "lines.serviceCode",
            format!(
                "{:?} is not a 5-character CPT or HCPCS code",
                line.service_code
            ),
        ));
    }
    if line.modifiers.len() > 4 {
        return Err(at(
            "lines.modifiers",
            format!("at most 4 modifiers, not {}", line.modifiers.len()),
        ));
    }
    let mut modifiers = Vec::with_capacity(line.modifiers.len());
    for m in &line.modifiers {
        let m = m.trim().to_ascii_uppercase();
        if m.len() != 2 || !m.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(at(
                "lines.modifiers",
                format!("modifier {m:?} must be 2 letters or digits"),
            ));
        }
        modifiers.push(m);
    }
    let mut procedure = vec!["HC", code.as_str()];
    procedure.extend(modifiers.iter().map(String::as_str));

    if !(0..=MAX_CHARGE_CENTS).contains(&line.charge_cents) {
        return Err(at(
            "lines.charge",
            format!(
                "charge {} is negative or too large",
                amount(line.charge_cents)
            ),
        ));
    }
    if line.units <= 0 {
        return Err(at(
            "lines.units",
            format!("units must be positive, not {}", line.units),
        ));
    }
    if !plausible(line.service_date) || line.service_date > today {
        return Err(at(
            "lines.serviceDate",
            format!(
                "service date {} is in the future or before 1900",
                line.service_date
            ),
        ));
    }
    if line.service_date < date_of_birth {
        return Err(at(
            "lines.serviceDate",
            format!(
                "service date {} is before the patient's birth",
                line.service_date
            ),
        ));
    }

    let pointers = &line.diagnosis_pointers;
    if pointers.is_empty() || pointers.len() > 4 {
        return Err(at(
            "lines.diagnosisPointers",
            format!("1 to 4 diagnosis pointers, not {}", pointers.len()),
        ));
    }
    for (i, &p) in pointers.iter().enumerate() {
        if p == 0 || usize::from(p) > diagnosis_count {
            return Err(at(
                "lines.diagnosisPointers",
                format!("pointer {p} is not between 1 and {diagnosis_count}"),
            ));
        }
        if pointers[..i].contains(&p) {
            return Err(at(
                "lines.diagnosisPointers",
                format!("pointer {p} is given twice"),
            ));
        }
    }
    let pointer_text: Vec<String> = pointers.iter().map(u8::to_string).collect();
    let pointer_refs: Vec<&str> = pointer_text.iter().map(String::as_str).collect();

    let place = place_of_service(&line.place_of_service, "lines.placeOfService")
        .map_err(|e| at(e.field, e.message))?;

    Ok(PreparedLine {
        procedure: composite(&procedure),
        charge_cents: line.charge_cents,
        units: line.units.to_string(),
        place_of_service: (place != claim_place).then_some(place),
        pointers: composite(&pointer_refs),
        date: date8(line.service_date),
    })
}

struct Envelope {
    control_number: u32,
    created_at: NaiveDateTime,
    sender_id: String,
    receiver_id: String,
    production: bool,
    submitter_name: String,
    submitter_id: String,
    contact_name: String,
    phone: String,
    receiver_name: String,
    receiver_nm1_id: String,
}

impl Envelope {
    fn prepare(ic: &Interchange) -> Result<Self, Unrenderable> {
        if !(1..=999_999_999).contains(&ic.control_number) {
            return Err(refuse(
                "interchange.controlNumber",
                "control number must be 1 to 999999999",
            ));
        }
        if !(2000..=9999).contains(&ic.created_at.year()) {
            return Err(refuse(
                "interchange.createdAt",
                "creation time is not plausible",
            ));
        }
        if ic.claims.is_empty() || ic.claims.len() > 999_999 {
            return Err(refuse(
                "claims",
                format!(
                    "an interchange holds 1 to 999999 claims, not {}",
                    ic.claims.len()
                ),
            ));
        }
        let phone = digits(&ic.submitter.phone, &[' ', '-', '.', '(', ')'], &[10])
            .ok_or_else(|| refuse("submitter.phone", "phone must have 10 digits"))?;
        Ok(Self {
            control_number: ic.control_number,
            created_at: ic.created_at,
            sender_id: ident(
                &ic.sender_id,
                &ENVELOPE_ID,
                "interchange.senderId",
                "sender id",
            )?,
            receiver_id: ident(
                &ic.receiver_id,
                &ENVELOPE_ID,
                "interchange.receiverId",
                "receiver id",
            )?,
            production: ic.production,
            submitter_name: text(
                &ic.submitter.name,
                &NAME,
                "submitter.name",
                "submitter name",
            )?,
            submitter_id: ident(&ic.submitter.id, &NM1_ID, "submitter.id", "submitter id")?,
            contact_name: text(
                &ic.submitter.contact_name,
                &CONTACT,
                "submitter.contactName",
                "contact name",
            )?,
            phone,
            receiver_name: text(&ic.receiver.name, &NAME, "receiver.name", "receiver name")?,
            receiver_nm1_id: ident(&ic.receiver.id, &NM1_ID, "receiver.id", "receiver id")?,
        })
    }

    fn write(&self, claims: &[Claim]) -> String {
        let date = self.created_at.format("%Y%m%d").to_string();
        let time = self.created_at.format("%H%M").to_string();
        let control = format!("{:09}", self.control_number);
        let group = self.control_number.to_string();

        // ISA is fixed-width, so it is built by hand rather than trimmed.
        let isa = format!(
            "ISA*00*{blank:10}*00*{blank:10}*ZZ*{sender:<15}*ZZ*{receiver:<15}*{yymmdd}*{time}*{REPETITION}*00501*{control}*0*{usage}*{COMPONENT}",
            blank = "",
            sender = self.sender_id,
            receiver = self.receiver_id,
            yymmdd = self.created_at.format("%y%m%d"),
            usage = if self.production { 'P' } else { 'T' },
        );
        let mut segments = vec![
            isa,
            seg(
                "GS",
                &[
                    "HC",
                    &self.sender_id,
                    &self.receiver_id,
                    &date,
                    &time,
                    &group,
                    "X",
                    "005010X222A1",
                ],
            ),
        ];
        for (index, claim) in claims.iter().enumerate() {
            let st02 = format!("{:04}", index + 1);
            // BHT: original (00) chargeable claim (CH), referenced by
            // interchange and set number so it is unique per file.
            let mut set = vec![
                seg("ST", &["837", &st02, "005010X222A1"]),
                seg(
                    "BHT",
                    &[
                        "0019",
                        "00",
                        &format!("{control}-{st02}"),
                        &date,
                        &time,
                        "CH",
                    ],
                ),
                nm1(
                    "41",
                    "2",
                    &self.submitter_name,
                    "",
                    "46",
                    &self.submitter_id,
                ),
                seg("PER", &["IC", &self.contact_name, "TE", &self.phone]),
                nm1(
                    "40",
                    "2",
                    &self.receiver_name,
                    "",
                    "46",
                    &self.receiver_nm1_id,
                ),
            ];
            claim.segments(&mut set);
            let count = (set.len() + 1).to_string();
            set.push(seg("SE", &[&count, &st02]));
            segments.append(&mut set);
        }
        segments.push(seg("GE", &[&claims.len().to_string(), &group]));
        segments.push(seg("IEA", &["1", &control]));

        let mut out = String::with_capacity(segments.iter().map(|s| s.len() + 2).sum());
        for s in &segments {
            out.push_str(s);
            out.push(TERMINATOR);
            out.push('\n');
        }
        out
    }
}

impl Claim {
    /// Loops 2000A through 2400 of one transaction set.
    fn segments(&self, out: &mut Vec<String>) {
        // 2000A / 2010AA
        out.push(seg("HL", &["1", "", "20", "1"]));
        out.push(nm1(
            "85",
            "2",
            &self.billing_name,
            "",
            "XX",
            &self.billing_npi,
        ));
        self.billing_address.segments(out);
        out.push(seg("REF", &["EI", &self.tax_id]));

        // 2000B / 2010BA / 2010BB
        let has_patient_level = if self.dependent.is_some() { "1" } else { "0" };
        out.push(seg("HL", &["2", "1", "22", has_patient_level]));
        out.push(seg(
            "SBR",
            &[
                self.priority,
                if self.dependent.is_none() { "18" } else { "" },
                self.group_number.as_deref().unwrap_or(""),
                "",
                "",
                "",
                "",
                "",
                &self.claim_filing_code,
            ],
        ));
        out.push(nm1(
            "IL",
            "1",
            &self.subscriber_name.last,
            &self.subscriber_name.first,
            "MI",
            &self.member_id,
        ));
        if self.dependent.is_none() {
            self.patient.demographics(out);
        }
        out.push(nm1("PR", "2", &self.payer_name, "", "PI", &self.payer_id));

        // 2000C / 2010CA
        if let Some(relationship) = self.dependent {
            out.push(seg("HL", &["3", "2", "23", "0"]));
            out.push(seg("PAT", &[relationship]));
            out.push(nm1(
                "QC",
                "1",
                &self.patient.name.last,
                &self.patient.name.first,
                "",
                "",
            ));
            self.patient.demographics(out);
        }

        // 2300: original claim (frequency 1), provider signature on file,
        // assigned, benefits assigned, release of information on file.
        let place = composite(&[&self.place_of_service, "B", "1"]);
        out.push(seg(
            "CLM",
            &[
                &self.patient_control_number,
                &amount(self.total_cents),
                "",
                "",
                &place,
                "Y",
                "A",
                "Y",
                "Y",
            ],
        ));
        if let Some(auth) = &self.prior_authorization {
            out.push(seg("REF", &["G1", auth]));
        }
        let codes: Vec<String> = self
            .diagnoses
            .iter()
            .enumerate()
            .map(|(i, d)| composite(&[if i == 0 { "ABK" } else { "ABF" }, d]))
            .collect();
        let code_refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        out.push(seg("HI", &code_refs));

        // 2310B
        if let Some((name, npi)) = &self.rendering {
            out.push(nm1("82", "1", &name.last, &name.first, "XX", npi));
        }

        // 2400
        for (i, line) in self.lines.iter().enumerate() {
            out.push(seg("LX", &[&(i + 1).to_string()]));
            out.push(seg(
                "SV1",
                &[
                    &line.procedure,
                    &amount(line.charge_cents),
                    "UN",
                    &line.units,
                    line.place_of_service.as_deref().unwrap_or(""),
                    "",
                    &line.pointers,
                ],
            ));
            out.push(seg("DTP", &["472", "D8", &line.date]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn address(line1: &str, zip: &str) -> Address {
        Address {
            line1: line1.to_string(),
            line2: None,
            city: "Springfield".to_string(),
            state: "IL".to_string(),
            postal_code: zip.to_string(),
        }
    }

    fn line(code: &str, cents: i64, pointers: &[u8]) -> ServiceLine {
        ServiceLine {
            service_code: code.to_string(),
            modifiers: vec![],
            charge_cents: cents,
            units: 1,
            service_date: date(2024, 3, 4),
            diagnosis_pointers: pointers.to_vec(),
            place_of_service: "11".to_string(),
        }
    }

    fn self_claim(pcn: &str) -> ClaimDocument {
        ClaimDocument {
            patient_control_number: pcn.to_string(),
            billing: BillingProvider {
                name: "Sunrise Pediatric Therapy".to_string(),
                npi: "1234567893".to_string(),
                tax_id: "12-3456789".to_string(),
                address: Address {
                    line2: Some("Suite 200".to_string()),
                    ..address("100 Main St", "62701-1234")
                },
            },
            payer: Payer {
                name: "Acme Health".to_string(),
                payer_id: "ACME1".to_string(),
                claim_filing_code: None,
            },
            subscriber: Subscriber {
                member_id: "W123456789".to_string(),
                group_number: Some("GRP100".to_string()),
                priority: Priority::Primary,
                relationship: Relationship::SelfInsured,
                person: Person {
                    first_name: "Jane".to_string(),
                    last_name: "Doe".to_string(),
                    date_of_birth: date(1985, 6, 15),
                    sex: Sex::Female,
                    address: Some(address("12 Elm St", "62704")),
                },
            },
            patient: None,
            rendering: Some(RenderingProvider {
                first_name: "Amara".to_string(),
                last_name: "Okafor".to_string(),
                npi: "1245319599".to_string(),
            }),
            place_of_service: "11".to_string(),
            diagnoses: vec!["F84.0".to_string(), "R62.50".to_string()],
            prior_authorization: Some("AUTH-778".to_string()),
            lines: vec![line("97153", 12_500, &[1]), line("97155", 8_050, &[1, 2])],
        }
    }

    fn child_claim(pcn: &str) -> ClaimDocument {
        let mut claim = self_claim(pcn);
        claim.subscriber.relationship = Relationship::Child;
        claim.subscriber.person.address = None;
        claim.patient = Some(Person {
            first_name: "Sam".to_string(),
            last_name: "Doe".to_string(),
            date_of_birth: date(2017, 2, 1),
            sex: Sex::Male,
            address: Some(Address {
                line1: "48 Oak Ave".to_string(),
                line2: Some("Apt 3".to_string()),
                city: "Chicago".to_string(),
                state: "il".to_string(),
                postal_code: "60601".to_string(),
            }),
        });
        claim
    }

    fn interchange(claims: Vec<ClaimDocument>) -> Interchange {
        Interchange {
            control_number: 42,
            created_at: date(2024, 3, 5).and_hms_opt(14, 7, 0).unwrap(),
            sender_id: "CAREGATE".to_string(),
            receiver_id: "CLEARHOUSE".to_string(),
            production: false,
            submitter: Submitter {
                name: "Sunrise Pediatric Therapy".to_string(),
                id: "SUB123".to_string(),
                contact_name: "Billing Office".to_string(),
                phone: "(217) 555-0100".to_string(),
            },
            receiver: Receiver {
                name: "Clearing House".to_string(),
                id: "CH999".to_string(),
            },
            claims,
        }
    }

    /// Splits rendered text back into segments of elements.
    fn parse(text: &str) -> Vec<Vec<String>> {
        text.split('~')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.split('*').map(str::to_string).collect())
            .collect()
    }

    fn find<'a>(segments: &'a [Vec<String>], id: &str) -> Vec<&'a Vec<String>> {
        segments.iter().filter(|s| s[0] == id).collect()
    }

    /// Checks every envelope count and control number against the text.
    fn check_envelope(segments: &[Vec<String>]) {
        let isa = &segments[0];
        assert_eq!(isa[0], "ISA");
        assert_eq!(isa.len(), 17);
        assert_eq!(isa[6].len(), 15);
        assert_eq!(isa[8].len(), 15);
        let iea = segments.last().unwrap();
        assert_eq!(iea[0], "IEA");
        assert_eq!(iea[1], "1");
        assert_eq!(iea[2], isa[13]);
        let gs = &segments[1];
        let ge = &segments[segments.len() - 2];
        assert_eq!(ge[0], "GE");
        assert_eq!(ge[2], gs[6]);
        assert_eq!(
            gs[6].parse::<u32>().unwrap(),
            isa[13].parse::<u32>().unwrap()
        );
        let sts = find(segments, "ST");
        assert_eq!(ge[1], sts.len().to_string());
        let mut start = None;
        for (i, s) in segments.iter().enumerate() {
            match s[0].as_str() {
                "ST" => start = Some(i),
                "SE" => {
                    let st = &segments[start.take().unwrap()];
                    assert_eq!(s[2], st[2], "SE02 matches ST02");
                    let counted = i - segments.iter().position(|x| x == st).unwrap() + 1;
                    assert_eq!(s[1], counted.to_string(), "SE01 counts ST..SE");
                }
                _ => {}
            }
        }
        assert!(start.is_none());
    }

    #[test]
    fn self_subscriber_claim_has_matching_counts_and_control_numbers() {
        let text = render(&interchange(vec![self_claim("PCN-1")])).unwrap();
        let segments = parse(&text);
        check_envelope(&segments);
        assert!(text.starts_with(
            "ISA*00*          *00*          *ZZ*CAREGATE       *ZZ*CLEARHOUSE     *240305*1407*^*00501*000000042*0*T*:~\n"
        ));
        assert!(text.contains("GS*HC*CAREGATE*CLEARHOUSE*20240305*1407*42*X*005010X222A1~\n"));
        assert!(text.contains("ST*837*0001*005010X222A1~\n"));
        assert!(text.contains("HL*1**20*1~\nNM1*85*2*SUNRISE PEDIATRIC THERAPY*****XX*1234567893~\nN3*100 MAIN ST*SUITE 200~\nN4*SPRINGFIELD*IL*627011234~\nREF*EI*123456789~\n"));
        assert!(text.contains("HL*2*1*22*0~\nSBR*P*18*GRP100******CI~\nNM1*IL*1*DOE*JANE****MI*W123456789~\nN3*12 ELM ST~\nN4*SPRINGFIELD*IL*62704~\nDMG*D8*19850615*F~\nNM1*PR*2*ACME HEALTH*****PI*ACME1~\n"));
        assert!(text.contains("CLM*PCN-1*205.5***11:B:1*Y*A*Y*Y~\nREF*G1*AUTH-778~\nHI*ABK:F840*ABF:R6250~\nNM1*82*1*OKAFOR*AMARA****XX*1245319599~\n"));
        assert!(text.contains("LX*2~\nSV1*HC:97155*80.5*UN*1***1:2~\nDTP*472*D8*20240304~\n"));
        assert!(find(&segments, "PAT").is_empty());
        assert!(text.ends_with("GE*1*42~\nIEA*1*000000042~\n"));
    }

    #[test]
    fn several_claims_get_their_own_transaction_sets() {
        let ic = interchange(vec![self_claim("A1"), child_claim("A2"), self_claim("A3")]);
        let segments = parse(&render(&ic).unwrap());
        check_envelope(&segments);
        let sts = find(&segments, "ST");
        let ids: Vec<&str> = sts.iter().map(|s| s[2].as_str()).collect();
        assert_eq!(ids, ["0001", "0002", "0003"]);
        assert_eq!(find(&segments, "GE")[0][1], "3");
    }

    #[test]
    fn dependent_claim_has_a_patient_level() {
        let text = render(&interchange(vec![child_claim("DEP-1")])).unwrap();
        let segments = parse(&text);
        check_envelope(&segments);
        assert!(text.contains("HL*2*1*22*1~\nSBR*P**GRP100******CI~\nNM1*IL*1*DOE*JANE****MI*W123456789~\nNM1*PR*2*ACME HEALTH*****PI*ACME1~\nHL*3*2*23*0~\nPAT*19~\nNM1*QC*1*DOE*SAM~\nN3*48 OAK AVE*APT 3~\nN4*CHICAGO*IL*60601~\nDMG*D8*20170201*M~\nCLM*DEP-1*"));
        // The subscriber's own address and demographics are not sent.
        assert_eq!(find(&segments, "DMG").len(), 1);
    }

    #[test]
    fn delimiters_in_text_cannot_break_the_structure() {
        let mut claim = self_claim("PCN-1");
        claim.subscriber.person.last_name = "O'Brien*~:^\n\tSmith".to_string();
        claim.subscriber.person.first_name = "Zoë".to_string();
        claim.billing.name = format!("{}~", "Wide ".repeat(20));
        let text = render(&interchange(vec![claim])).unwrap();
        assert!(text.contains("NM1*IL*1*O'BRIEN SMITH*ZOE****MI*W123456789~\n"));
        let nm1_85 = text.lines().find(|l| l.starts_with("NM1*85")).unwrap();
        assert_eq!(nm1_85.split('*').nth(3).unwrap().len(), 59); // cut at 60, then trimmed
        check_envelope(&parse(&text));
        // Every segment line holds exactly one terminator, at its end.
        for l in text.lines() {
            assert_eq!(l.matches('~').count(), 1, "{l}");
            assert!(l.ends_with('~'));
        }
    }

    #[test]
    fn identifiers_with_delimiters_are_refused_not_altered() {
        let mut claim = self_claim("PCN-1");
        claim.subscriber.member_id = "W12*34".to_string();
        let err = render(&interchange(vec![claim])).unwrap_err();
        assert_eq!(err.field, "insurance.memberId");
    }

    #[test]
    fn amounts_have_no_trailing_zeros() {
        assert_eq!(amount(12_500), "125");
        assert_eq!(amount(12_550), "125.5");
        assert_eq!(amount(12_555), "125.55");
        assert_eq!(amount(1), "0.01");
        assert_eq!(amount(10), "0.1");
        assert_eq!(amount(0), "0");
        assert_eq!(amount(-250), "-2.5");
    }

    #[test]
    fn segment_builder_drops_trailing_empty_elements() {
        assert_eq!(seg("N3", &["1 MAIN ST", ""]), "N3*1 MAIN ST");
        assert_eq!(seg("HL", &["1", "", "20", "1"]), "HL*1**20*1");
        assert_eq!(composite(&["HC", "99213", "", ""]), "HC:99213");
    }

    #[test]
    fn missing_member_id_is_reported_on_its_field() {
        let mut claim = self_claim("PCN-1");
        claim.subscriber.member_id = "   ".to_string();
        let err = render(&interchange(vec![claim])).unwrap_err();
        assert_eq!(err.field, "insurance.memberId");
    }

    /// Spoils one field of a valid claim.
    type Breakage = fn(&mut ClaimDocument);

    #[test]
    fn malformed_fields_are_named() {
        let cases: Vec<(&str, Breakage)> = vec![
            ("organization.taxId", |c| c.billing.tax_id = "12345".into()),
            ("organization.npi", |c| c.billing.npi = "1234567890".into()),
            ("provider.npi", |c| {
                c.rendering.as_mut().unwrap().npi = "12345".into()
            }),
            ("organization.billingAddress", |c| {
                c.billing.address.postal_code = "62701".into()
            }),
            ("organization.billingAddress", |c| {
                c.billing.address.line1 = "P.O. Box 12".into()
            }),
            ("patient.address", |c| c.subscriber.person.address = None),
            ("patient.address", |c| {
                c.subscriber.person.address.as_mut().unwrap().state = "XX".into()
            }),
            ("diagnoses", |c| c.diagnoses.clear()),
            ("diagnoses", |c| {
                c.diagnoses = vec!["F84.0".into(), "F840".into()]
            }),
            ("diagnoses", |c| c.diagnoses = vec!["84.0".into()]),
            ("diagnoses", |c| c.diagnoses = vec!["A00".into(); 13]),
            ("lines", |c| c.lines.clear()),
            ("lines.diagnosisPointers", |c| {
                c.lines[0].diagnosis_pointers = vec![3]
            }),
            ("lines.units", |c| c.lines[0].units = 0),
            ("lines.charge", |c| c.lines[0].charge_cents = -1),
            ("lines.serviceCode", |c| {
                c.lines[0].service_code = "9921".into()
            }),
            ("lines.modifiers", |c| {
                c.lines[0].modifiers = vec!["25".into(), "X".into()]
            }),
            ("lines.serviceDate", |c| {
                c.lines[0].service_date = date(2030, 1, 1)
            }),
            ("placeOfService", |c| c.place_of_service = "00".into()),
            ("patient", |c| {
                c.subscriber.relationship = Relationship::Spouse
            }),
            ("insurance.payerId", |c| c.payer.payer_id = "".into()),
            ("insurance.claimFilingCode", |c| {
                c.payer.claim_filing_code = Some("XX".into())
            }),
            ("claim.patientControlNumber", |c| {
                c.patient_control_number = "X".repeat(21)
            }),
        ];
        for (field, break_it) in cases {
            let mut claim = self_claim("PCN-1");
            break_it(&mut claim);
            let err = render(&interchange(vec![claim])).unwrap_err();
            assert_eq!(err.field, field, "{}", err.message);
        }
    }

    #[test]
    fn errors_in_a_batch_say_which_claim() {
        let mut bad = self_claim("B2");
        bad.lines[0].units = -1;
        let err = render(&interchange(vec![self_claim("B1"), bad])).unwrap_err();
        assert_eq!(err.field, "lines.units");
        assert!(
            err.message.starts_with("claim 2: line 1:"),
            "{}",
            err.message
        );
    }

    #[test]
    fn diagnosis_codes_lose_their_dot() {
        assert_eq!(diagnosis("F84.0").unwrap(), "F840");
        assert_eq!(diagnosis(" r62.50 ").unwrap(), "R6250");
        assert_eq!(diagnosis("S72.001A").unwrap(), "S72001A");
        assert_eq!(diagnosis("I10").unwrap(), "I10");
        assert_eq!(diagnosis("F840").unwrap(), "F840");
        for bad in ["", "F84.", "84.0", "F8.40", "F84.00000", "F84*0", "É84.0"] {
            assert_eq!(diagnosis(bad).unwrap_err().field, "diagnoses", "{bad}");
        }
    }

    #[test]
    fn npi_check_digit() {
        assert!(npi("1234567893", "provider.npi").is_ok());
        assert!(npi("1245319599", "provider.npi").is_ok());
        assert!(npi("1234567890", "provider.npi").is_err());
    }

    /// The documents the validator run covers, by name.
    fn variants() -> Vec<(&'static str, Interchange)> {
        let mut four_modifiers = self_claim("MODS");
        four_modifiers.lines[0].modifiers =
            vec!["HN".into(), "U1".into(), "GT".into(), "95".into()];
        four_modifiers.lines[1].place_of_service = "02".into();

        let mut twelve = self_claim("DX12");
        twelve.diagnoses = [
            "F84.0", "R62.50", "F80.2", "F90.0", "G47.00", "R48.8", "F41.9", "Z13.41", "R27.8",
            "F82", "R63.3", "F98.8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        twelve.lines[0].diagnosis_pointers = vec![1, 5, 9, 12];

        let mut secondary = self_claim("SEC");
        secondary.subscriber.priority = Priority::Secondary;
        secondary.payer.claim_filing_code = Some("MC".into());

        let mut bare = child_claim("BARE");
        bare.subscriber.group_number = None;
        bare.rendering = None;
        bare.prior_authorization = None;
        bare.patient.as_mut().unwrap().first_name = String::new();
        bare.subscriber.relationship = Relationship::Other;

        let mut fifty = self_claim("FIFTY");
        fifty.lines = (0..50).map(|i| line("97153", 1_000 + i, &[1])).collect();

        let mut production = interchange(vec![self_claim("PROD")]);
        production.production = true;
        production.control_number = 999_999_999;

        let mut awkward = child_claim("ODD-TEXT");
        awkward.subscriber.person.last_name = "Núñez-O'Connor*~:^".into();
        let patient = awkward.patient.as_mut().unwrap();
        patient.first_name = "Łucja\nMaría".into();
        patient.last_name = "X".repeat(80);
        let patient_address = patient.address.as_mut().unwrap();
        patient_address.line1 = "1 Rue de l'Église #4 ~ Bldg: A^B".into();
        patient_address.line2 = Some("   ".into());
        patient_address.city = "Saint-Jérôme Heights Extra Long City Name".into();
        awkward.billing.address.postal_code = "627011234".into();
        awkward.payer.name = "Blue Cross & Blue Shield (IL)".into();

        vec![
            ("self", interchange(vec![self_claim("SELF-1")])),
            ("awkward-text", interchange(vec![awkward])),
            ("child", interchange(vec![child_claim("CHILD-1")])),
            (
                "several",
                interchange(vec![self_claim("M1"), child_claim("M2"), self_claim("M3")]),
            ),
            ("four-modifiers", interchange(vec![four_modifiers])),
            ("twelve-diagnoses", interchange(vec![twelve])),
            ("secondary", interchange(vec![secondary])),
            ("no-group-no-rendering", interchange(vec![bare])),
            ("fifty-lines", interchange(vec![fifty])),
            ("production", production),
        ]
    }

    #[test]
    fn rendered_samples_pass_x12valid() {
        let Some(validator) = std::env::var_os("X12VALID") else {
            eprintln!("X12VALID is not set; skipping the validator run");
            return;
        };
        let dir = std::env::temp_dir().join(format!("caregate-837p-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, ic) in variants() {
            let text = render(&ic).unwrap();
            check_envelope(&parse(&text));
            let path = dir.join(format!("{name}.x12"));
            std::fs::write(&path, &text).unwrap();
            let output = std::process::Command::new(&validator)
                .arg(&path)
                .output()
                .unwrap();
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let ack =
                std::fs::read_to_string(dir.join(format!("{name}.x12.997"))).unwrap_or_default();
            println!("== {name}\n{report}{ack}");
            // pyx12's console script exits 1 whether or not the file passed,
            // so the verdict is read from what it prints and acknowledges.
            assert!(
                report.contains(&format!("{}: OK", path.display())),
                "{name} failed x12valid:\n{report}\n{text}"
            );
            assert!(
                !report.contains(" ERROR ") && !report.contains(" WARNING "),
                "{name} drew remarks from x12valid:\n{report}"
            );
            assert!(ack.contains("AK9*A*"), "{name} was not accepted:\n{ack}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
