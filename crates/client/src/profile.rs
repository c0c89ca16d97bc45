//! Saved profiles: one JSON file per user, readable only by that user.
//!
//! The file is `$MAAS_CLI_CONFIG` if set, else `$XDG_CONFIG_HOME/maas/profiles.json`, else
//! `~/.config/maas/profiles.json`. Each profile keeps its name, API URL, API key, optional
//! CA certificates and the whole describe document fetched at login.

use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::oauth::Credentials;

/// Why the profile file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profiles from {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write profiles to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("profile file {path} is not valid JSON")]
    Syntax {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("profile file {path} is damaged: {detail}")]
    Damaged { path: PathBuf, detail: String },
    #[error("no profile directory: set MAAS_CLI_CONFIG, XDG_CONFIG_HOME or HOME")]
    NoLocation,
}

/// One logged-in region.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    /// The normalised API URL, e.g. `http://h:5240/MAAS/api/2.0/`.
    pub url: String,
    /// `None` for an anonymous profile.
    pub credentials: Option<Credentials>,
    /// The describe document, as fetched.
    pub description: Value,
    /// PEM CA certificates given with `--cacerts`.
    pub cacerts: Option<String>,
}

impl Profile {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "url": self.url,
            "credentials": self.credentials.as_ref().map(Credentials::to_key_string),
            "cacerts": self.cacerts,
            "description": self.description,
        })
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("a profile has no {key:?}"))
        };
        let name = text("name")?;
        let url = text("url")?;
        let credentials = match value.get("credentials") {
            None | Some(Value::Null) => None,
            Some(Value::String(key)) => Some(
                Credentials::parse(key).map_err(|error| format!("profile {name:?}: {error}"))?,
            ),
            Some(_) => return Err(format!("profile {name:?} has bad credentials")),
        };
        let cacerts = value
            .get("cacerts")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let description = value.get("description").cloned().unwrap_or(Value::Null);
        Ok(Self {
            name,
            url,
            credentials,
            description,
            cacerts,
        })
    }
}

/// Where the profile file lives, from an environment lookup (`std::env::var_os` in the binary).
pub fn default_profiles_path(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let non_empty = |name: &str| env(name).filter(|value| !value.is_empty());
    if let Some(path) = non_empty("MAAS_CLI_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let config_home = non_empty("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config_home.join("maas").join("profiles.json"))
}

/// The profiles in one file, in the order they were saved.
#[derive(Debug, Clone)]
pub struct ProfileStore {
    path: PathBuf,
    profiles: Vec<Profile>,
}

impl ProfileStore {
    /// Reads the file; a missing file is an empty store.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, ProfileError> {
        let path = path.into();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path,
                    profiles: Vec::new(),
                });
            }
            Err(source) => return Err(ProfileError::Read { path, source }),
        };
        let document: Value =
            serde_json::from_slice(&bytes).map_err(|source| ProfileError::Syntax {
                path: path.clone(),
                source,
            })?;
        let damaged = |detail: String| ProfileError::Damaged {
            path: path.clone(),
            detail,
        };
        let listed = document
            .get("profiles")
            .and_then(Value::as_array)
            .ok_or_else(|| damaged("no \"profiles\" list".to_owned()))?;
        let profiles = listed
            .iter()
            .map(Profile::from_json)
            .collect::<Result<Vec<_>, _>>()
            .map_err(damaged)?;
        Ok(Self { path, profiles })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|profile| profile.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Profile> {
        self.profiles
            .iter_mut()
            .find(|profile| profile.name == name)
    }

    /// Adds a profile, replacing one with the same name (which then moves to the end, as
    /// maascli's `INSERT OR REPLACE` does).
    pub fn insert(&mut self, profile: Profile) {
        self.remove(&profile.name);
        self.profiles.push(profile);
    }

    pub fn remove(&mut self, name: &str) -> Option<Profile> {
        let index = self
            .profiles
            .iter()
            .position(|profile| profile.name == name)?;
        Some(self.profiles.remove(index))
    }

    /// Writes the file atomically with mode 0600, creating missing directories (mode 0700).
    pub fn save(&self) -> Result<(), ProfileError> {
        let write_error = |source| ProfileError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(parent) = self
            .path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(parent).map_err(write_error)?;
        }
        let document = json!({
            "version": 1,
            "profiles": self.profiles.iter().map(Profile::to_json).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&document)
            .map_err(|error| write_error(std::io::Error::other(error)))?;
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(format!(".tmp-{}", std::process::id()));
        let temporary = PathBuf::from(temporary);
        let result =
            write_private(&temporary, &bytes).and_then(|()| fs::rename(&temporary, &self.path));
        if result.is_err() {
            // Best effort: a leftover temporary file holds secrets.
            let _ = fs::remove_file(&temporary);
        }
        result.map_err(write_error)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // The mode given to open only applies to new files; make sure of it either way.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

/// An empty JSON object, for profiles whose description is not known yet.
pub fn empty_description() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "maas-client-profile-{name}-{}-{}",
            std::process::id(),
            crate::oauth::random_u64()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn profile(name: &str, key: Option<&str>) -> Profile {
        Profile {
            name: name.to_owned(),
            url: "http://h:5240/MAAS/api/2.0/".to_owned(),
            credentials: key.map(|key| Credentials::parse(key).unwrap()),
            description: json!({"doc": "MAAS API", "hash": "abc", "resources": []}),
            cacerts: None,
        }
    }

    #[test]
    fn default_path_prefers_env_override_then_xdg_then_home() {
        fn check(vars: &[(&str, &str)], expected: Option<&str>) {
            let lookup = |name: &str| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| OsString::from(value))
            };
            assert_eq!(
                default_profiles_path(lookup),
                expected.map(PathBuf::from),
                "{vars:?}"
            );
        }
        check(
            &[("MAAS_CLI_CONFIG", "/x/p.json"), ("HOME", "/home/u")],
            Some("/x/p.json"),
        );
        check(
            &[("XDG_CONFIG_HOME", "/cfg"), ("HOME", "/home/u")],
            Some("/cfg/maas/profiles.json"),
        );
        check(
            &[("HOME", "/home/u")],
            Some("/home/u/.config/maas/profiles.json"),
        );
        check(
            &[("MAAS_CLI_CONFIG", ""), ("HOME", "/h")],
            Some("/h/.config/maas/profiles.json"),
        );
        check(&[], None);
    }

    #[test]
    fn saved_file_is_private_and_round_trips() {
        let dir = temporary_dir("roundtrip");
        let path = dir.join("nested").join("maas").join("profiles.json");
        let mut store = ProfileStore::load(&path).unwrap();
        assert!(store.profiles().is_empty());
        store.insert(profile("admin", Some("ck:tk:ts")));
        store.insert(profile("anon", None));
        store.save().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dir_mode, 0o700);
        }
        let loaded = ProfileStore::load(&path).unwrap();
        assert_eq!(loaded.profiles(), store.profiles());
        assert_eq!(
            loaded
                .get("admin")
                .unwrap()
                .credentials
                .as_ref()
                .unwrap()
                .to_key_string(),
            "ck:tk:ts"
        );
        assert!(loaded.get("anon").unwrap().credentials.is_none());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_existing_loose_file_becomes_private_on_save() {
        let dir = temporary_dir("loose");
        let path = dir.join("profiles.json");
        fs::write(&path, br#"{"version": 1, "profiles": []}"#).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let mut store = ProfileStore::load(&path).unwrap();
            store.insert(profile("admin", Some("a:b:c")));
            store.save().unwrap();
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn insert_replaces_and_moves_to_the_end() {
        let mut store = ProfileStore {
            path: PathBuf::from("unused"),
            profiles: Vec::new(),
        };
        store.insert(profile("a", None));
        store.insert(profile("b", None));
        store.insert(profile("a", Some("x:y:z")));
        let names: Vec<&str> = store.profiles().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert!(store.get("a").unwrap().credentials.is_some());
        assert!(store.remove("a").is_some());
        assert!(store.remove("a").is_none());
    }

    #[test]
    fn damaged_files_are_reported() {
        let dir = temporary_dir("damaged");
        let path = dir.join("profiles.json");
        fs::write(&path, b"not json").unwrap();
        assert!(matches!(
            ProfileStore::load(&path),
            Err(ProfileError::Syntax { .. })
        ));
        fs::write(&path, br#"{"profiles": [{"name": "x"}]}"#).unwrap();
        assert!(matches!(
            ProfileStore::load(&path),
            Err(ProfileError::Damaged { .. })
        ));
        fs::write(
            &path,
            br#"{"profiles": [{"name": "x", "url": "u", "credentials": "a:b"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            ProfileStore::load(&path),
            Err(ProfileError::Damaged { .. })
        ));
        fs::remove_dir_all(dir).unwrap();
    }
}
