//! Field-level encryption of the most sensitive values (a patient's SSN, a
//! coverage's member id, the clinic's tax id), envelope style.
//!
//! - Each clinic has data keys (`data_keys`: version 1, 2, …), 32 random
//!   bytes each, stored only *wrapped*: AES-256-GCM under a master key that
//!   lives in a key file or the environment, never in the database.
//! - A value is stored as `0x01 ‖ data key version (u32 BE) ‖ nonce (12) ‖
//!   AES-256-GCM ciphertext and tag`, authenticated with the clinic, the
//!   column and the row id as associated data: a ciphertext copied to
//!   another row, column or clinic does not decrypt.
//! - Exact-match lookups use a blind index: HMAC-SHA256 of the normalised
//!   value under a key derived from the data key (per version), never a
//!   decryption of rows.
//!
//! The cipher, MAC and randomness come from RustCrypto (`aes-gcm`, `hmac`,
//! `sha2`); only the framing above is written here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use anyhow::{Context, anyhow, bail};
use hmac::{Hmac, Mac};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sha2::Sha256;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::{DbResultExt, ServiceError, ServiceResult};

/// The framing byte of a ciphertext of this format.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

type Secret = Zeroizing<[u8; 32]>;

/// An encrypted column: its name is part of what a ciphertext is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Ssn,
    MemberId,
    TaxId,
    ClaimX12,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Self::Ssn => "patients.ssn",
            Self::MemberId => "patient_insurances.member_id",
            Self::TaxId => "organizations.tax_id",
            Self::ClaimX12 => "claims.submitted_x12",
        }
    }
}

/// The master keys, by version; the highest wraps new data keys.
pub struct MasterKeys {
    keys: BTreeMap<i32, Secret>,
    /// The highest version (there is always one: `parse` refuses none).
    current: i32,
}

impl MasterKeys {
    /// Reads keys written one per line as `<version> <64 hex digits>`
    /// (blank lines and `#` comments ignored; `;` also separates entries,
    /// for an environment variable).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut keys = BTreeMap::new();
        for entry in text.split(['\n', ';']) {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (version, hex_key) = entry
                .split_once(char::is_whitespace)
                .context("a master key entry is `<version> <64 hex digits>`")?;
            let version: i32 = version
                .parse()
                .ok()
                .filter(|v| *v >= 1)
                .context("a master key version is a positive integer")?;
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(hex_key.trim(), key.as_mut_slice())
                .context("a master key is 64 hex digits (32 bytes)")?;
            if keys.insert(version, key).is_some() {
                bail!("master key version {version} is given twice");
            }
        }
        let Some(current) = keys.keys().next_back().copied() else {
            bail!("no master key given");
        };
        Ok(Self { keys, current })
    }

    /// A new random key entry, as `parse` reads it.
    pub fn generate_entry(version: i32) -> String {
        let key = Aes256Gcm::generate_key(OsRng);
        format!("{version} {}", hex::encode(key))
    }

    fn current(&self) -> anyhow::Result<(i32, &Secret)> {
        Ok((self.current, self.get(self.current)?))
    }

    pub fn current_version(&self) -> i32 {
        self.current
    }

    fn get(&self, version: i32) -> anyhow::Result<&Secret> {
        self.keys
            .get(&version)
            .with_context(|| format!("master key version {version} is not configured"))
    }
}

fn cipher(key: &Secret) -> Aes256Gcm {
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(**key))
}

fn nonce_of(bytes: &[u8]) -> anyhow::Result<Nonce<aes_gcm::aead::consts::U12>> {
    let raw: [u8; NONCE_LEN] = bytes.try_into().context("a nonce of 12 bytes")?;
    Ok(Nonce::from(raw))
}

fn wrap_aad(org: Uuid, version: i32) -> Vec<u8> {
    let mut aad = b"caregate/data-key/".to_vec();
    aad.extend_from_slice(org.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn value_aad(field: Field, org: Uuid, row: Uuid) -> Vec<u8> {
    let mut aad = b"caregate/v1/".to_vec();
    aad.extend_from_slice(field.name().as_bytes());
    aad.push(b'/');
    aad.extend_from_slice(org.as_bytes());
    aad.extend_from_slice(row.as_bytes());
    aad
}

/// Encrypts `msg` under a master key, bound to `aad`: nonce ‖ ciphertext.
fn seal_under_master(master: &Secret, aad: &[u8], msg: &[u8]) -> anyhow::Result<Vec<u8>> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cipher(master)
        .encrypt(&nonce, Payload { msg, aad })
        .map_err(|_| anyhow!("sealing under a master key failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The plaintext of [`seal_under_master`]'s output; `None` when it does not
/// authenticate under this key and `aad`.
fn open_under_master(master: &Secret, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = sealed.split_at(NONCE_LEN);
    let nonce = nonce_of(nonce).ok()?;
    cipher(master)
        .decrypt(&nonce, Payload { msg: sealed, aad })
        .ok()
        .map(Zeroizing::new)
}

/// Wraps a data key under a master key: nonce ‖ ciphertext.
fn wrap(master: &Secret, org: Uuid, version: i32, data_key: &Secret) -> anyhow::Result<Vec<u8>> {
    seal_under_master(master, &wrap_aad(org, version), data_key.as_slice())
        .context("wrapping a data key failed")
}

fn unwrap_key(master: &Secret, org: Uuid, version: i32, wrapped: &[u8]) -> anyhow::Result<Secret> {
    if wrapped.len() <= NONCE_LEN {
        bail!("wrapped data key {org}/{version} is truncated");
    }
    let plain = open_under_master(master, &wrap_aad(org, version), wrapped).ok_or_else(|| {
        anyhow!("integrity failure: data key {org}/{version} does not unwrap under its master key")
    })?;
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        bail!("data key {org}/{version} is not 32 bytes");
    }
    key.copy_from_slice(&plain);
    Ok(key)
}

/// A secret of a user's own (users are global, and a clinic's data keys
/// are not theirs): sealed directly under a master key, bound to the user
/// and to what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSecret {
    /// The shared secret of the user's TOTP factor.
    Totp,
}

impl UserSecret {
    fn name(self) -> &'static str {
        match self {
            Self::Totp => "user_mfa_factors.secret",
        }
    }
}

fn user_secret_aad(purpose: UserSecret, user: Uuid) -> Vec<u8> {
    let mut aad = b"caregate/user-secret/".to_vec();
    aad.extend_from_slice(purpose.name().as_bytes());
    aad.push(b'/');
    aad.extend_from_slice(user.as_bytes());
    aad
}

/// A user's secret as stored: the master key version and nonce ‖ ciphertext.
#[derive(Debug, Clone)]
pub struct SealedUserSecret {
    pub master_version: i32,
    pub sealed: Vec<u8>,
}

impl MasterKeys {
    /// Seals a user's secret under the current master key (AES-256-GCM,
    /// bound to the user and the purpose: copied to another user's row or
    /// another purpose, it does not open).
    pub fn seal_user_secret(
        &self,
        purpose: UserSecret,
        user: Uuid,
        secret: &[u8],
    ) -> anyhow::Result<SealedUserSecret> {
        let (master_version, master) = self.current()?;
        Ok(SealedUserSecret {
            master_version,
            sealed: seal_under_master(master, &user_secret_aad(purpose, user), secret)?,
        })
    }

    /// Opens what [`seal_user_secret`](Self::seal_user_secret) sealed; a
    /// value that does not authenticate is an integrity failure.
    pub fn open_user_secret(
        &self,
        purpose: UserSecret,
        user: Uuid,
        stored: &SealedUserSecret,
    ) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        open_under_master(
            self.get(stored.master_version)?,
            &user_secret_aad(purpose, user),
            &stored.sealed,
        )
        .ok_or_else(|| {
            tracing::error!(purpose = purpose.name(), user = %user, "user secret integrity failure");
            anyhow!("integrity failure: {} of user {user} does not open", purpose.name())
        })
    }
}

/// A clinic's data key of one version, unwrapped.
#[derive(Clone)]
struct DataKey {
    version: i32,
    key: Arc<Secret>,
}

/// The master keys and a cache of unwrapped data keys, keyed by clinic and
/// version (a data key never changes once created: rotation re-wraps it,
/// re-encryption makes a new version).
pub struct Keyring {
    master: MasterKeys,
    cache: Mutex<HashMap<(Uuid, i32), Arc<Secret>>>,
}

impl Keyring {
    pub fn new(master: MasterKeys) -> Self {
        Self {
            master,
            cache: Mutex::default(),
        }
    }

    pub fn master(&self) -> &MasterKeys {
        &self.master
    }

    /// The clinic's data key of `version`, from the cache or unwrapped from
    /// `data_keys` (read under the caller's row-level security).
    async fn data_key(
        &self,
        db: &impl ConnectionTrait,
        org: Uuid,
        version: i32,
    ) -> ServiceResult<DataKey> {
        if let Some(k) = self.cached(org, version) {
            return Ok(DataKey { version, key: k });
        }
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT master_version, wrapped FROM data_keys \
                 WHERE organization_id = $1 AND version = $2",
                [org.into(), version.into()],
            ))
            .await
            .or_db("reading a data key")?
            .ok_or_else(|| {
                tracing::error!(org = %org, version, "PHI integrity failure: a ciphertext names a data key that does not exist");
                anyhow!("integrity failure: data key {org}/{version} is missing")
            })?;
        let master_version: i32 = row
            .try_get("", "master_version")
            .context("master_version")?;
        let wrapped: Vec<u8> = row.try_get("", "wrapped").context("wrapped")?;
        let key = unwrap_key(self.master.get(master_version)?, org, version, &wrapped)
            .inspect_err(|e| tracing::error!(error = %e, "PHI key integrity failure"))?;
        let key = Arc::new(key);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert((org, version), key.clone());
        }
        Ok(DataKey { version, key })
    }

    fn cached(&self, org: Uuid, version: i32) -> Option<Arc<Secret>> {
        self.cache.lock().ok()?.get(&(org, version)).cloned()
    }

    /// The clinic's newest data key, created (version 1) on first use.
    async fn current_key(&self, db: &impl ConnectionTrait, org: Uuid) -> ServiceResult<DataKey> {
        if let Some(v) = newest_version(db, org).await? {
            return self.data_key(db, org, v).await;
        }
        self.create_key(db, org, 1).await?;
        let v = newest_version(db, org)
            .await?
            .context("a data key was just created")?;
        self.data_key(db, org, v).await
    }

    /// Creates data key `version` of a clinic (a concurrent creator of the
    /// same version wins; its key is then the one used).
    async fn create_key(
        &self,
        db: &impl ConnectionTrait,
        org: Uuid,
        version: i32,
    ) -> ServiceResult<()> {
        let key: Secret = Zeroizing::new(Aes256Gcm::generate_key(OsRng).into());
        let (master_version, master) = self.master.current()?;
        let wrapped = wrap(master, org, version, &key)?;
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO data_keys (organization_id, version, master_version, wrapped) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            [
                org.into(),
                version.into(),
                master_version.into(),
                wrapped.into(),
            ],
        ))
        .await
        .or_db("creating a data key")?;
        Ok(())
    }

    /// Encrypts `value` of `field` for row `row` of clinic `org`.
    pub async fn seal(
        &self,
        db: &impl ConnectionTrait,
        org: Uuid,
        field: Field,
        row: Uuid,
        value: &str,
    ) -> ServiceResult<Vec<u8>> {
        let key = self.current_key(db, org).await?;
        seal_with(&key, org, field, row, value)
    }

    /// Decrypts a stored value; a ciphertext that fails authentication is an
    /// integrity failure (logged; INTERNAL to the caller), never garbage.
    pub async fn open(
        &self,
        db: &impl ConnectionTrait,
        org: Uuid,
        field: Field,
        row: Uuid,
        stored: &[u8],
    ) -> ServiceResult<String> {
        let version = version_of(stored).ok_or_else(|| integrity(field, row, "malformed"))?;
        let key = self.data_key(db, org, version).await?;
        open_with(&key, org, field, row, stored)
    }

    /// A stored value: sealed, or (written before encryption, not yet
    /// re-encrypted) the legacy plaintext; `None` when neither.
    pub async fn reveal(
        &self,
        db: &impl ConnectionTrait,
        org: Uuid,
        field: Field,
        row: Uuid,
        sealed: Option<&[u8]>,
        legacy: Option<&str>,
    ) -> ServiceResult<Option<String>> {
        match (sealed, legacy) {
            (Some(s), _) => self.open(db, org, field, row, s).await.map(Some),
            (None, legacy) => Ok(legacy.map(str::to_owned)),
        }
    }

    /// The blind index of `value` under each of the clinic's data keys
    /// (rows encrypted under any version are found).
    pub async fn blind_indexes(
        &self,
        db: &impl ConnectionTrait,
        org: Uuid,
        field: Field,
        value: &str,
    ) -> ServiceResult<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for v in versions(db, org).await? {
            out.push(blind_index(
                &self.data_key(db, org, v).await?,
                field,
                value,
            )?);
        }
        Ok(out)
    }

    /// Encrypts `value` as [`seal`](Self::seal) does and gives its blind
    /// index under the same (newest) data key: what a row written now
    /// stores, for one lookup of the key.
    pub async fn seal_indexed(
        &self,
        db: &impl ConnectionTrait,
        org: Uuid,
        field: Field,
        row: Uuid,
        value: &str,
    ) -> ServiceResult<(Vec<u8>, Vec<u8>)> {
        let key = self.current_key(db, org).await?;
        Ok((
            seal_with(&key, org, field, row, value)?,
            blind_index(&key, field, value)?,
        ))
    }
}

fn integrity(field: Field, row: Uuid, what: &str) -> ServiceError {
    tracing::error!(field = field.name(), row = %row, what, "PHI integrity failure");
    ServiceError::Unexpected(anyhow!(
        "integrity failure: {} of {row} is {what}",
        field.name()
    ))
}

fn version_of(stored: &[u8]) -> Option<i32> {
    if stored.len() <= HEADER_LEN || stored[0] != FORMAT {
        return None;
    }
    let v = i32::from_be_bytes(stored[1..5].try_into().ok()?);
    (v >= 1).then_some(v)
}

fn seal_with(
    key: &DataKey,
    org: Uuid,
    field: Field,
    row: Uuid,
    value: &str,
) -> ServiceResult<Vec<u8>> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cipher(&key.key)
        .encrypt(
            &nonce,
            Payload {
                msg: value.as_bytes(),
                aad: &value_aad(field, org, row),
            },
        )
        .map_err(|_| anyhow!("encrypting {} failed", field.name()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.push(FORMAT);
    out.extend_from_slice(&key.version.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open_with(
    key: &DataKey,
    org: Uuid,
    field: Field,
    row: Uuid,
    stored: &[u8],
) -> ServiceResult<String> {
    let (header, sealed) = stored.split_at(HEADER_LEN);
    let nonce = nonce_of(&header[5..]).map_err(|_| integrity(field, row, "malformed"))?;
    let plain = cipher(&key.key)
        .decrypt(
            &nonce,
            Payload {
                msg: sealed,
                aad: &value_aad(field, org, row),
            },
        )
        .map_err(|_| integrity(field, row, "not authentic"))?;
    String::from_utf8(plain).map_err(|_| integrity(field, row, "not text"))
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> anyhow::Result<[u8; 32]> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| anyhow!("an HMAC key refused"))?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().into())
}

fn blind_index(key: &DataKey, field: Field, value: &str) -> anyhow::Result<Vec<u8>> {
    // The index key is derived from the data key, per field: an index of
    // one column says nothing about another.
    let index_key: Secret = Zeroizing::new(hmac(
        key.key.as_slice(),
        &[b"caregate/blind-index/", field.name().as_bytes()],
    )?);
    Ok(hmac(index_key.as_slice(), &[value.as_bytes()])?.to_vec())
}

async fn versions(db: &impl ConnectionTrait, org: Uuid) -> ServiceResult<Vec<i32>> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT version FROM data_keys WHERE organization_id = $1 ORDER BY version",
            [org.into()],
        ))
        .await
        .or_db("listing data keys")?;
    rows.iter()
        .map(|r| Ok(r.try_get::<i32>("", "version").context("version")?))
        .collect()
}

async fn newest_version(db: &impl ConnectionTrait, org: Uuid) -> ServiceResult<Option<i32>> {
    Ok(versions(db, org).await?.pop())
}

/// Operator commands (`caregate keys …`): run as the owner, across clinics.
pub mod admin {
    use super::*;

    /// What a rotation moved to the newest master key.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Rotated {
        /// Clinics' data keys re-wrapped.
        pub data_keys: usize,
        /// Users' own secrets (MFA factors) re-sealed.
        pub user_secrets: usize,
    }

    /// Moves everything the master keys protect to the newest one: every
    /// clinic's data key is re-wrapped, and every user's MFA secret
    /// re-sealed (resumable: each in its own statement, and a rerun takes
    /// what is left). Each move is audited.
    pub async fn rotate(db: &impl ConnectionTrait, keyring: &Keyring) -> anyhow::Result<Rotated> {
        let data_keys = rewrap_data_keys(db, keyring).await?;
        let user_secrets = reseal_user_secrets(db, keyring).await?;
        Ok(Rotated {
            data_keys,
            user_secrets,
        })
    }

    /// Re-seals every user's MFA secret not sealed under the newest master
    /// key (users are global, so these are sealed under the master keys
    /// directly, not under a clinic's data key). Returns how many.
    async fn reseal_user_secrets(
        db: &impl ConnectionTrait,
        keyring: &Keyring,
    ) -> anyhow::Result<usize> {
        let current = keyring.master.current_version();
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT user_id, master_version, secret_sealed FROM user_mfa_factors \
                 WHERE master_version <> $1 ORDER BY user_id",
                [current.into()],
            ))
            .await?;
        let mut done = 0;
        for row in rows {
            let user: Uuid = row.try_get("", "user_id")?;
            let old = SealedUserSecret {
                master_version: row.try_get("", "master_version")?,
                sealed: row.try_get("", "secret_sealed")?,
            };
            let secret = keyring
                .master
                .open_user_secret(UserSecret::Totp, user, &old)?;
            let new = keyring
                .master
                .seal_user_secret(UserSecret::Totp, user, &secret)?;
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "WITH f AS ( \
                   UPDATE user_mfa_factors SET secret_sealed = $2, master_version = $3 \
                   WHERE user_id = $1 AND master_version = $4 RETURNING user_id) \
                 INSERT INTO audit_events (action, resource_type, resource_id, changes) \
                 SELECT 'UPDATE', 'user_mfa_factors', f.user_id, \
                        jsonb_build_object('master_version', jsonb_build_object('before', $4, 'after', $3)) \
                 FROM f",
                [
                    user.into(),
                    new.sealed.into(),
                    new.master_version.into(),
                    old.master_version.into(),
                ],
            ))
            .await?;
            done += 1;
        }
        Ok(done)
    }

    /// Re-wraps every data key not wrapped under the newest master key.
    /// Returns how many.
    async fn rewrap_data_keys(
        db: &impl ConnectionTrait,
        keyring: &Keyring,
    ) -> anyhow::Result<usize> {
        let (current, master) = keyring.master.current()?;
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT organization_id, version, master_version, wrapped FROM data_keys \
                 WHERE master_version <> $1 ORDER BY organization_id, version",
                [current.into()],
            ))
            .await?;
        let mut done = 0;
        for row in rows {
            let org: Uuid = row.try_get("", "organization_id")?;
            let version: i32 = row.try_get("", "version")?;
            let old: i32 = row.try_get("", "master_version")?;
            let wrapped: Vec<u8> = row.try_get("", "wrapped")?;
            let key = unwrap_key(keyring.master.get(old)?, org, version, &wrapped)?;
            let rewrapped = wrap(master, org, version, &key)?;
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "WITH k AS ( \
                   UPDATE data_keys SET wrapped = $3, master_version = $4, rewrapped_at = now() \
                   WHERE organization_id = $1 AND version = $2 AND master_version = $5 RETURNING id) \
                 INSERT INTO audit_events (organization_id, action, resource_type, resource_id, changes) \
                 SELECT $1, 'UPDATE', 'data_keys', k.id, \
                        jsonb_build_object('master_version', jsonb_build_object('before', $5, 'after', $4)) \
                 FROM k",
                [
                    org.into(),
                    version.into(),
                    rewrapped.into(),
                    current.into(),
                    old.into(),
                ],
            ))
            .await?;
            done += 1;
        }
        Ok(done)
    }

    /// A sealed column `reencrypt` moves.
    struct Column {
        field: Field,
        table: &'static str,
        /// The column naming the clinic (`id` for the clinic's own row).
        clinic: &'static str,
        sealed: &'static str,
        /// The blind index, when the field has one.
        index: Option<&'static str>,
        /// The plaintext of values written before encryption, sealed (and
        /// cleared) by the first re-encryption.
        legacy: Option<&'static str>,
    }

    const COLUMNS: &[Column] = &[
        Column {
            field: Field::Ssn,
            table: "patients",
            clinic: "organization_id",
            sealed: "ssn_enc",
            index: Some("ssn_index"),
            legacy: None,
        },
        Column {
            field: Field::MemberId,
            table: "patient_insurances",
            clinic: "organization_id",
            sealed: "member_id_enc",
            index: None,
            legacy: Some("member_id"),
        },
        Column {
            field: Field::ClaimX12,
            table: "claims",
            clinic: "organization_id",
            sealed: "submitted_x12_enc",
            index: None,
            legacy: Some("submitted_x12"),
        },
        Column {
            field: Field::TaxId,
            table: "organizations",
            clinic: "id",
            sealed: "tax_id_enc",
            index: None,
            legacy: Some("tax_id"),
        },
    ];

    impl Column {
        /// Rows of the clinic ($1) not sealed under data key $2.
        fn behind(&self) -> String {
            let (sealed, clinic) = (self.sealed, self.clinic);
            let legacy = self
                .legacy
                .map(|l| format!(" OR {l} IS NOT NULL"))
                .unwrap_or_default();
            format!(
                "{clinic} = $1 AND (({sealed} IS NOT NULL \
                 AND substring({sealed} FROM 2 FOR 4) <> int4send($2)){legacy})"
            )
        }
    }

    /// Moves a clinic's encrypted values to a new data key, in batches of
    /// `batch` rows, each batch its own transaction (resumable: a rerun
    /// continues with the rows still under an older key, and makes no new
    /// key while the newest has not been fully adopted). Audited. Returns
    /// the new key's version and how many values moved.
    pub async fn reencrypt(
        db: &sea_orm::DatabaseConnection,
        keyring: &Keyring,
        org: Uuid,
        batch: u64,
    ) -> anyhow::Result<(i32, usize)> {
        use sea_orm::TransactionTrait;
        let newest = newest_version(db, org).await.map_err(|e| anyhow!("{e}"))?;
        // A new version, unless values are still under an older key than
        // the newest: an interrupted run, continued.
        let target = match newest {
            None => 1,
            Some(v) if pending(db, org, v).await? > 0 => v,
            Some(v) => v + 1,
        };
        if newest != Some(target) {
            keyring
                .create_key(db, org, target)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO audit_events (organization_id, action, resource_type, resource_id, changes) \
                 SELECT organization_id, 'CREATE', 'data_keys', id, jsonb_build_object('version', version) \
                 FROM data_keys WHERE organization_id = $1 AND version = $2",
                [org.into(), target.into()],
            ))
            .await?;
        }
        let key = keyring
            .data_key(db, org, target)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let mut moved = 0;
        for col in COLUMNS {
            let legacy = col.legacy.unwrap_or("NULL::text");
            loop {
                let tx = db.begin().await?;
                // Table and column names are this constant list, never input.
                let rows = tx
                    .query_all_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        format!(
                            "SELECT id, {} AS sealed, {legacy} AS legacy FROM {} \
                             WHERE {} ORDER BY id LIMIT $3 FOR UPDATE",
                            col.sealed,
                            col.table,
                            col.behind()
                        ),
                        [org.into(), target.into(), (batch as i64).into()],
                    ))
                    .await?;
                if rows.is_empty() {
                    tx.commit().await?;
                    break;
                }
                for row in &rows {
                    let id: Uuid = row.try_get("", "id")?;
                    let sealed: Option<Vec<u8>> = row.try_get("", "sealed")?;
                    let legacy: Option<String> = row.try_get("", "legacy")?;
                    let plain = match (sealed, legacy) {
                        (Some(enc), _) => {
                            let version = version_of(&enc).context("a malformed ciphertext")?;
                            let old = keyring
                                .data_key(&tx, org, version)
                                .await
                                .map_err(|e| anyhow!("{e}"))?;
                            open_with(&old, org, col.field, id, &enc).map_err(|e| anyhow!("{e}"))?
                        }
                        (None, Some(text)) => text,
                        (None, None) => continue,
                    };
                    let sealed =
                        seal_with(&key, org, col.field, id, &plain).map_err(|e| anyhow!("{e}"))?;
                    let mut set = format!("{} = $2", col.sealed);
                    let mut values: Vec<sea_orm::Value> = vec![id.into(), sealed.into()];
                    if let Some(ix) = col.index {
                        set.push_str(&format!(", {ix} = $3"));
                        values.push(blind_index(&key, col.field, &plain)?.into());
                    }
                    if let Some(l) = col.legacy {
                        set.push_str(&format!(", {l} = NULL"));
                    }
                    tx.execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        format!("UPDATE {} SET {set} WHERE id = $1", col.table),
                        values,
                    ))
                    .await?;
                }
                moved += rows.len();
                tx.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "INSERT INTO audit_events (organization_id, action, resource_type, changes) \
                     VALUES ($1, 'UPDATE', $2, jsonb_build_object('reencrypted', $3::int, 'data_key_version', $4::int))",
                    [
                        org.into(),
                        col.table.into(),
                        (rows.len() as i32).into(),
                        target.into(),
                    ],
                ))
                .await?;
                tx.commit().await?;
            }
        }
        Ok((target, moved))
    }

    /// Values of the clinic not yet sealed under data key `version`.
    async fn pending(db: &impl ConnectionTrait, org: Uuid, version: i32) -> anyhow::Result<i64> {
        let mut total = 0;
        for col in COLUMNS {
            let row = db
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    format!(
                        "SELECT count(*) AS n FROM {} WHERE {}",
                        col.table,
                        col.behind()
                    ),
                    [org.into(), version.into()],
                ))
                .await?
                .context("a count")?;
            total += row.try_get::<i64>("", "n")?;
        }
        Ok(total)
    }
}

/// `***-**-1234`: an SSN with all but its last four digits hidden.
pub fn mask_ssn(ssn: &str) -> String {
    let last4: String = ssn
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("***-**-{last4}")
}

/// All but the last four characters hidden (`********7301`).
pub fn mask_tail(value: &str) -> String {
    let n = value.chars().count();
    let shown: String = value.chars().skip(n.saturating_sub(4)).collect();
    format!("{}{shown}", "*".repeat(n.saturating_sub(4).max(1)))
}

/// Writes the audit events of a value shown in full: a READ of each row,
/// naming the field (one statement for all of them).
pub(crate) async fn audit_unmasked(
    tx: &crate::Tx,
    resource_type: &str,
    rows: impl IntoIterator<Item = Uuid>,
    field: &str,
) -> ServiceResult<()> {
    crate::audit::record_event(
        tx,
        "READ",
        resource_type,
        rows,
        serde_json::json!({ "field": field, "unmasked": true }),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(version: i32, byte: u8) -> DataKey {
        DataKey {
            version,
            key: Arc::new(Zeroizing::new([byte; 32])),
        }
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_clinic_field_and_row() {
        let (org, row) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let k = key(3, 7);
        let sealed = seal_with(&k, org, Field::Ssn, row, "123456789").unwrap();
        assert_eq!(version_of(&sealed), Some(3));
        assert!(!sealed.windows(9).any(|w| w == b"123456789"));
        assert_eq!(
            open_with(&k, org, Field::Ssn, row, &sealed).unwrap(),
            "123456789"
        );
        assert!(open_with(&k, org, Field::Ssn, Uuid::from_u128(9), &sealed).is_err());
        assert!(open_with(&k, Uuid::from_u128(9), Field::Ssn, row, &sealed).is_err());
        assert!(open_with(&key(3, 8), org, Field::Ssn, row, &sealed).is_err());
    }

    #[test]
    fn a_tampered_ciphertext_is_an_integrity_failure() {
        let (org, row) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let k = key(1, 7);
        let mut sealed = seal_with(&k, org, Field::Ssn, row, "123456789").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(open_with(&k, org, Field::Ssn, row, &sealed).is_err());
    }

    #[test]
    fn a_data_key_unwraps_only_under_its_master_key_and_identity() {
        let master = Zeroizing::new([5u8; 32]);
        let data = Zeroizing::new([9u8; 32]);
        let org = Uuid::from_u128(1);
        let w = wrap(&master, org, 2, &data).unwrap();
        assert_eq!(*unwrap_key(&master, org, 2, &w).unwrap(), *data);
        assert!(unwrap_key(&master, org, 3, &w).is_err());
        assert!(unwrap_key(&master, Uuid::from_u128(2), 2, &w).is_err());
        assert!(unwrap_key(&Zeroizing::new([6u8; 32]), org, 2, &w).is_err());
    }

    #[test]
    fn the_blind_index_is_stable_per_key() {
        let k = key(1, 7);
        assert_eq!(
            blind_index(&k, Field::Ssn, "123456789").unwrap(),
            blind_index(&k, Field::Ssn, "123456789").unwrap()
        );
        assert_ne!(
            blind_index(&k, Field::Ssn, "123456789").unwrap(),
            blind_index(&k, Field::Ssn, "123456780").unwrap()
        );
        assert_ne!(
            blind_index(&k, Field::Ssn, "123456789").unwrap(),
            blind_index(&key(2, 8), Field::Ssn, "123456789").unwrap()
        );
    }

    #[test]
    fn master_keys_are_read_by_version_and_the_highest_is_current() {
        let text = format!(
            "# keys\n{}\n\n{}",
            MasterKeys::generate_entry(1),
            MasterKeys::generate_entry(2)
        );
        let keys = MasterKeys::parse(&text).unwrap();
        assert_eq!(keys.current_version(), 2);
        assert!(keys.get(1).is_ok());
        assert!(MasterKeys::parse("").is_err());
        assert!(MasterKeys::parse("1 abcd").is_err());
        assert!(MasterKeys::parse(&format!("0 {}", "00".repeat(32))).is_err());
        let twice = format!("1 {}\n1 {}", "00".repeat(32), "11".repeat(32));
        assert!(MasterKeys::parse(&twice).is_err());
    }

    #[test]
    fn an_ssn_mask_shows_only_the_last_four() {
        assert_eq!(mask_ssn("123456789"), "***-**-6789");
        assert_eq!(mask_tail("XJH418827301"), "********7301");
        assert_eq!(mask_tail("AB"), "*AB");
    }
}
