//! Password hashing with argon2id.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::ServiceError;

/// Hashes a password into a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &str) -> Result<String, ServiceError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Unexpected(anyhow::anyhow!("hashing a password: {e}")))
}

/// Checks a password against a stored hash. With no stored hash (unknown
/// email) it checks against a fixed dummy hash, so both paths cost the same
/// and the response time does not tell whether an email is registered.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let dummy = dummy_hash();
    let (target, known) = match stored {
        Some(h) => (h, true),
        None => (dummy, false),
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), target)
        .is_ok();
    ok && known
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"caregate-dummy-password-for-unknown-users")
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// [`verify`] on the blocking pool: argon2 is deliberately slow, and must not
/// stall the async workers.
pub async fn verify_blocking(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, stored.as_deref()))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_password_verifies_and_wrong_does_not() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", Some(&h)));
        assert!(!verify("wrong horse", Some(&h)));
    }

    #[test]
    fn unknown_user_never_verifies() {
        assert!(!verify("caregate-dummy-password-for-unknown-users", None));
    }
}
