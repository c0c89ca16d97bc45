//! Users, API keys, SSH keys and password login.

use maas_store::{ApiToken, NewUser, SshKey, Store, User};

use crate::credentials;
use crate::error::{ServiceError, ServiceResult};

pub const DEFAULT_CONSUMER: &str = "MAAS consumer";

pub struct NewUserInput<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: Option<&'a str>,
    pub is_superuser: bool,
}

fn check_username(username: &str) -> ServiceResult<()> {
    // Django's username rule: letters, digits and @/./+/-/_, at most 150.
    let ok = !username.is_empty()
        && username.len() <= 150
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::field(
            "username",
            "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
        ))
    }
}

/// Creates a user with one API key, as MAAS gives every new user.
pub async fn create_user(
    store: &dyn Store,
    input: NewUserInput<'_>,
    now: i64,
) -> ServiceResult<User> {
    check_username(input.username)?;
    let password_hash = match input.password {
        Some(password) => Some(
            credentials::hash_password(password)
                .map_err(|e| ServiceError::bad_request(e.to_string()))?,
        ),
        None => None,
    };
    let user = store
        .create_user(
            NewUser {
                username: input.username.to_owned(),
                email: input.email.to_owned(),
                password_hash,
                is_superuser: input.is_superuser,
            },
            now,
        )
        .await
        .map_err(|e| {
            super::duplicate(e, "username", "A user with that username already exists.")
        })?;
    store
        .create_token(credentials::new_token(user.id, DEFAULT_CONSUMER), now)
        .await?;
    tracing::info!(username = %user.username, admin = user.is_superuser, "user created");
    Ok(user)
}

/// Creates a user from the dashboard's form: an admin only, with the
/// API's required fields (`username`, `email`, `password`) as field errors.
pub async fn create_from_form(
    store: &dyn Store,
    caller: &User,
    params: &crate::http::params::Params,
    now: i64,
) -> ServiceResult<User> {
    if !caller.is_superuser {
        return Err(ServiceError::admin_only());
    }
    let mut errors = crate::error::FieldErrors::new();
    let mut required = |name: &str| -> String {
        let value = params.get(name).unwrap_or("").trim().to_owned();
        if value.is_empty() {
            errors.add(name, "This field is required.");
        }
        value
    };
    let username = required("username");
    let email = required("email");
    let password = params.get("password").unwrap_or("").to_owned();
    if password.is_empty() {
        errors.add("password", "This field is required.");
    }
    let is_superuser = match params.get("is_superuser").unwrap_or("false") {
        "" => false,
        value => maas_domain::parse_bool(value).unwrap_or_else(|_| {
            errors.add(
                "is_superuser",
                format!("'{value}' value must be either True or False."),
            );
            false
        }),
    };
    errors.check()?;
    create_user(
        store,
        NewUserInput {
            username: &username,
            email: &email,
            password: Some(&password),
            is_superuser,
        },
        now,
    )
    .await
}

pub async fn user_by_name(store: &dyn Store, username: &str) -> ServiceResult<User> {
    store
        .user_by_username(username)
        .await?
        .ok_or_else(|| ServiceError::not_found("User"))
}

pub async fn delete_user(
    store: &dyn Store,
    caller: &User,
    username: &str,
    transfer_to: Option<&str>,
) -> ServiceResult<()> {
    if !caller.is_superuser {
        return Err(ServiceError::admin_only());
    }
    let user = user_by_name(store, username).await?;
    if user.id == caller.id {
        return Err(ServiceError::bad_request(
            "An administrator cannot self-delete.",
        ));
    }
    let transfer = match transfer_to {
        Some(name) => Some(store.user_by_username(name).await?.ok_or_else(|| {
            ServiceError::bad_request(format!(
                "Invalid transfer_resources_to: user '{name}' not found."
            ))
        })?),
        None => None,
    };
    if transfer.is_none() {
        let owned = store.owned_node_count(user.id).await?;
        if owned > 0 {
            return Err(ServiceError::bad_request(format!(
                "Cannot delete user {username}: the user owns {owned} node(s). \
                 Pass transfer_resources_to to hand them to another user."
            )));
        }
    }
    store.delete_user(user.id, transfer.map(|u| u.id)).await?;
    tracing::info!(username, "user deleted");
    Ok(())
}

/// Checks a username and password; an unknown user, a wrong password and an
/// inactive user all answer the same `None`.
pub async fn check_password(
    store: &dyn Store,
    username: &str,
    password: &str,
) -> ServiceResult<Option<User>> {
    let Some(user) = store.user_by_username(username).await? else {
        return Ok(None);
    };
    let Some(hash) = &user.password_hash else {
        return Ok(None);
    };
    if !user.is_active || !credentials::verify_password(password, hash) {
        return Ok(None);
    }
    Ok(Some(user))
}

/// The token `/MAAS/accounts/authenticate/` hands out (api.md §2.6): one
/// whose consumer is named `consumer`, or else the oldest one, creating
/// a token when there is none.
pub async fn login_token(
    store: &dyn Store,
    user: &User,
    consumer: Option<&str>,
    now: i64,
) -> ServiceResult<ApiToken> {
    let tokens = store.tokens_for_user(user.id).await?;
    let found = match consumer {
        Some(name) => tokens.into_iter().find(|t| t.consumer_name == name),
        None => tokens.into_iter().next(),
    };
    if let Some(token) = found {
        return Ok(token);
    }
    let name = consumer.unwrap_or(DEFAULT_CONSUMER);
    Ok(store
        .create_token(credentials::new_token(user.id, name), now)
        .await?)
}

pub async fn create_token(
    store: &dyn Store,
    user: &User,
    name: Option<&str>,
    now: i64,
) -> ServiceResult<ApiToken> {
    let name = name.filter(|n| !n.is_empty()).unwrap_or(DEFAULT_CONSUMER);
    Ok(store
        .create_token(credentials::new_token(user.id, name), now)
        .await?)
}

/// The key part of `ck:tk:ts`, or the text itself when it has no colons.
pub fn token_key_of(text: &str) -> &str {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() == 3 { parts[1] } else { text }
}

const SSH_KEY_TYPES: [&str; 8] = [
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Checks an OpenSSH public key line: a known type, and base64 key data
/// whose embedded type name matches.
pub fn validate_ssh_key(key: &str) -> Result<(), String> {
    use base64::Engine;
    let mut words = key.split_whitespace();
    let (Some(kind), Some(data)) = (words.next(), words.next()) else {
        return Err("key should contain 2 or more space separated parts (key type, base64-encoded key, optional comments), not 1".into());
    };
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(format!("unknown key type '{kind}'"));
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "key data is not valid base64".to_owned())?;
    let embedded = blob
        .get(0..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .and_then(|len| blob.get(4..4 + len))
        .ok_or_else(|| "key data is truncated".to_owned())?;
    if embedded != kind.as_bytes() {
        return Err("key type does not match the key data".into());
    }
    Ok(())
}

pub async fn add_ssh_key(store: &dyn Store, owner: &User, key: &str) -> ServiceResult<SshKey> {
    let key = key.trim();
    validate_ssh_key(key)
        .map_err(|why| ServiceError::field("key", format!("Invalid SSH public key: {why}")))?;
    store
        .create_sshkey(owner.id, key, "")
        .await
        .map_err(|e| super::duplicate(e, "key", "This key has already been added for this user."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_keys() {
        // A syntactically valid ed25519 key (type name + 32 bytes).
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(&[7u8; 32]);
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(&blob);
        assert!(validate_ssh_key(&format!("ssh-ed25519 {data} me@host")).is_ok());
        assert!(validate_ssh_key(&format!("ssh-rsa {data}")).is_err());
        assert!(validate_ssh_key("ssh-ed25519").is_err());
        assert!(validate_ssh_key("ssh-ed25519 !!!").is_err());
        assert!(validate_ssh_key("ssh-ed25519 AAAA").is_err());
    }

    #[test]
    fn token_keys() {
        assert_eq!(token_key_of("a:b:c"), "b");
        assert_eq!(token_key_of("b"), "b");
    }
}
