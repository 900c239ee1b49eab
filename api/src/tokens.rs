//! Access tokens: JWTs carrying `sub`, `org`, `sid`, `iat`, `exp`, `iss`
//! and `aud`. No role: the database derives it on every request, so a
//! role change takes effect at once.
//!
//! Verification accepts exactly the configured algorithm (never `none`, and
//! never a symmetric algorithm when an asymmetric key is configured), checks
//! expiry, issuer and audience. What a token cannot prove by itself — that
//! its session is live and the user still belongs to the clinic — the guard
//! checks in the database on every request.

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{Config, DEV_JWT_SECRET, JwtAlgorithm};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: Uuid,
    pub org: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

/// Signs and verifies tokens with the configured keys.
pub struct Tokens {
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

/// Why a token was refused (logged; the client only sees UNAUTHENTICATED).
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct TokenError(#[from] jsonwebtoken::errors::Error);

impl Tokens {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let (algorithm, encoding, decoding) = match config.jwt_algorithm {
            JwtAlgorithm::Hs256 => {
                let secret = config.jwt_secret.as_deref().unwrap_or(DEV_JWT_SECRET);
                (
                    Algorithm::HS256,
                    Some(EncodingKey::from_secret(secret.as_bytes())),
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::EdDsa => {
                let public = std::fs::read(
                    config
                        .jwt_public_key_file
                        .as_ref()
                        .context("JWT_PUBLIC_KEY_FILE is required for RS256 and EdDSA")?,
                )
                .context("reading JWT_PUBLIC_KEY_FILE")?;
                let private = match &config.jwt_private_key_file {
                    Some(path) => {
                        Some(std::fs::read(path).context("reading JWT_PRIVATE_KEY_FILE")?)
                    }
                    None => None,
                };
                if config.jwt_algorithm == JwtAlgorithm::Rs256 {
                    (
                        Algorithm::RS256,
                        private
                            .map(|p| EncodingKey::from_rsa_pem(&p))
                            .transpose()
                            .context("parsing the RSA private key")?,
                        DecodingKey::from_rsa_pem(&public).context("parsing the RSA public key")?,
                    )
                } else {
                    (
                        Algorithm::EdDSA,
                        private
                            .map(|p| EncodingKey::from_ed_pem(&p))
                            .transpose()
                            .context("parsing the Ed25519 private key")?,
                        DecodingKey::from_ed_pem(&public)
                            .context("parsing the Ed25519 public key")?,
                    )
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.set_issuer(&[&config.jwt_issuer]);
        validation.set_audience(&[&config.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            algorithm,
            encoding,
            decoding,
            validation,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        })
    }

    /// Verifies a token's signature, algorithm, expiry, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }

    /// Signs a token for a session. Fails when only a public key is
    /// configured (tokens are then issued elsewhere).
    pub fn issue(
        &self,
        user: Uuid,
        org: Uuid,
        sid: Uuid,
        expires_at: chrono::DateTime<chrono::FixedOffset>,
    ) -> anyhow::Result<String> {
        let key = self
            .encoding
            .as_ref()
            .context("no signing key configured (JWT_PRIVATE_KEY_FILE)")?;
        let claims = Claims {
            sub: user,
            org,
            sid,
            iat: chrono::Utc::now().timestamp(),
            exp: expires_at.timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        encode(&Header::new(self.algorithm), &claims, key).context("signing a token")
    }
}
