//! Passwords and API keys: argon2id password hashes, and MAAS-shaped keys
//! drawn from MAAS's alphabet (18 + 18 + 32 characters).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use maas_store::{NewToken, Secret};
use rand::Rng;

/// The characters MAAS draws key parts from (no 0, 1, i, l, o: easy to read).
const KEY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

pub fn random_key(length: usize) -> String {
    let mut rng = rand::rng();
    (0..length)
        .map(|_| KEY_ALPHABET[rng.random_range(0..KEY_ALPHABET.len())] as char)
        .collect()
}

/// A new API key (consumer plus token) for `user_id`.
pub fn new_token(user_id: i64, consumer_name: &str) -> NewToken {
    NewToken {
        user_id,
        consumer_key: random_key(18),
        consumer_name: consumer_name.to_owned(),
        token_key: random_key(18),
        token_secret: Secret::new(random_key(32)),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

pub fn hash_password(password: &str) -> Result<Secret, HashError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| Secret::new(hash.to_string()))
        .map_err(|e| HashError(e.to_string()))
}

/// Checks `password` against a stored hash; a malformed hash never matches.
pub fn verify_password(password: &str, hash: &Secret) -> bool {
    match PasswordHash::new(hash.expose()) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The text form of an API key: `consumer_key:token_key:token_secret`.
pub fn key_text(token: &maas_store::ApiToken) -> String {
    format!(
        "{}:{}:{}",
        token.consumer_key,
        token.token_key,
        token.token_secret.expose()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_maas_keys() {
        let token = new_token(1, "MAAS consumer");
        assert_eq!(token.consumer_key.len(), 18);
        assert_eq!(token.token_key.len(), 18);
        assert_eq!(token.token_secret.expose().len(), 32);
        assert!(
            token
                .consumer_key
                .bytes()
                .all(|b| KEY_ALPHABET.contains(&b))
        );
        assert_ne!(token.consumer_key, token.token_key);
    }

    #[test]
    fn passwords_verify() {
        let hash = hash_password("s3cret").unwrap();
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("S3cret", &hash));
        assert!(!verify_password("s3cret", &Secret::new("not a hash")));
    }
}
