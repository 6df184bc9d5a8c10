//! Who may call what: API keys for `/v1/algo` (created and revoked by the admin, kept as
//! SHA-256 hashes in the configuration store, `insights_store::ConfigStore`, and verified
//! against a copy in memory), the admin token for writes and `/v1/admin`, and the panel's sign-in
//! sessions ([`sessions`], with the [`Admin`] extractor every admin handler takes). This sits
//! below both the JSON API and the panel, so that neither imports the other.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use insights_store::{ApiKeyRecord, ConfigStore, hash_secret};

use crate::error::ApiError;

pub(crate) mod sessions;

pub(crate) use sessions::Admin;
pub use sessions::{PanelConfig, Sessions};

/// `last_used_at` is written at most this often per key, so that calls do not become writes.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

struct KeyEntry {
    id: String,
    last_touch: Option<Instant>,
}

/// The API keys, verified in memory, written through to the configuration store.
pub struct ApiKeys {
    store: Arc<dyn ConfigStore>,
    by_hash: RwLock<HashMap<String, KeyEntry>>,
}

/// A newly created key: the only time the secret is shown.
#[derive(Debug, serde::Serialize)]
pub struct CreatedKey {
    pub id: String,
    pub name: String,
    pub key: String,
    pub created_at: String,
}

impl ApiKeys {
    /// Loads every key's hash from the configuration store, once: keys are created and
    /// revoked through this cache, which writes them through.
    pub fn load(store: Arc<dyn ConfigStore>) -> Result<Self, insights_store::StoreError> {
        let by_hash = store
            .api_keys()?
            .into_iter()
            .map(|k| {
                (
                    k.key_hash,
                    KeyEntry {
                        id: k.id,
                        last_touch: None,
                    },
                )
            })
            .collect();
        Ok(Self {
            store,
            by_hash: RwLock::new(by_hash),
        })
    }

    pub fn create(&self, name: &str) -> Result<CreatedKey, ApiError> {
        let name = name.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > 100 {
            return Err(ApiError::invalid(
                "name",
                format!("must be 1 to 100 characters (got {chars})"),
            ));
        }
        // A name is shown in the panel and the log: no line breaks, NULs or escape codes.
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(ApiError::invalid(
                "name",
                format!(
                    "must not contain control characters (found {}); use letters, digits, spaces and punctuation",
                    c.escape_unicode()
                ),
            ));
        }
        // `sim` as Algorithmia's keys begin, then 128 random bits.
        let key = format!("sim{}", random_hex(16));
        let record = ApiKeyRecord {
            id: format!("key-{}", uuid::Uuid::new_v4()),
            name: name.to_string(),
            key_hash: hash_secret(&key),
            created_at: insights_store::record_time_now(),
            last_used_at: None,
        };
        self.store.insert_api_key(&record)?;
        self.write().insert(
            record.key_hash.clone(),
            KeyEntry {
                id: record.id.clone(),
                last_touch: None,
            },
        );
        Ok(CreatedKey {
            id: record.id,
            name: record.name,
            key,
            created_at: record.created_at,
        })
    }

    pub fn revoke(&self, id: &str) -> Result<(), ApiError> {
        self.store.delete_api_key(id)?;
        self.write().retain(|_, e| e.id != id);
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<ApiKeyRecord>, ApiError> {
        Ok(self.store.api_keys()?)
    }

    /// Whether `key` is a valid key, without recording a use.
    pub fn is_valid(&self, key: &str) -> bool {
        self.by_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&hash_secret(key))
    }

    /// The id of the key, if it is valid.
    pub fn verify(&self, key: &str) -> Option<String> {
        let hash = hash_secret(key);
        let (id, touch) = {
            let map = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
            let entry = map.get(&hash)?;
            let due = entry.last_touch.is_none_or(|t| t.elapsed() >= TOUCH_EVERY);
            (entry.id.clone(), due)
        };
        if touch {
            if let Some(e) = self.write().get_mut(&hash) {
                e.last_touch = Some(Instant::now());
            }
            let (store, id2) = (self.store.clone(), id.clone());
            tokio::task::spawn_blocking(move || {
                let now = insights_store::record_time_now();
                if let Err(e) = store.touch_api_key(&id2, &now) {
                    tracing::warn!(error = %e, "recording when an API key was last used failed");
                }
            });
        }
        Some(id)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, KeyEntry>> {
        self.by_hash.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The credential in an `Authorization` header: `Simple <key>`, `Bearer <token>`, or the bare
/// key as the official Python client sends it.
pub fn credential(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let cred = match value.split_once(char::is_whitespace) {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("Simple") || scheme.eq_ignore_ascii_case("Bearer") =>
        {
            rest.trim()
        }
        _ if value.eq_ignore_ascii_case("Simple") || value.eq_ignore_ascii_case("Bearer") => "",
        _ => value,
    };
    (!cred.is_empty()).then_some(cred)
}

/// The admin token, compared by hash.
pub struct AdminToken {
    hash: String,
}

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self {
            hash: hash_secret(token),
        }
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match credential(headers) {
            Some(t) if hash_secret(t) == self.hash => Ok(()),
            Some(_) => Err(ApiError::unauthorized(
                "the admin token is wrong; send `Authorization: Bearer <token>` with the token from INSIGHTS_ADMIN_TOKEN or <data-dir>/admin-token",
            )),
            None => Err(ApiError::unauthorized(
                "this endpoint needs the admin token: send `Authorization: Bearer <token>` (INSIGHTS_ADMIN_TOKEN, or <data-dir>/admin-token)",
            )),
        }
    }

    pub fn matches(&self, credential: &str) -> bool {
        hash_secret(credential) == self.hash
    }
}

/// The admin token: `from_env` when given, else the one in `<data_dir>/admin-token`, else a new
/// random one written there with mode 0600. Returns the token and whether it was just created.
pub fn load_or_create_admin_token(
    data_dir: &Path,
    from_env: Option<String>,
) -> std::io::Result<(String, bool)> {
    if let Some(t) = from_env.filter(|t| !t.trim().is_empty()) {
        return Ok((t.trim().to_string(), false));
    }
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok((t.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = random_hex(32);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    writeln!(f, "{token}")?;
    f.sync_all()?;
    Ok((token, true))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn all_three_authorization_spellings() {
        for (header, want) in [
            ("Simple simABC", Some("simABC")),
            ("simABC", Some("simABC")),
            ("Bearer tok", Some("tok")),
            ("", None),
            ("Simple ", None),
            ("Bearer", None),
            ("simple  simABC ", Some("simABC")),
        ] {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(header).unwrap());
            assert_eq!(credential(&h), want, "{header:?}");
        }
        assert_eq!(credential(&HeaderMap::new()), None);
    }

    #[test]
    fn admin_token_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (t1, created) = load_or_create_admin_token(dir.path(), None).unwrap();
        assert!(created);
        let mode = std::fs::metadata(dir.path().join("admin-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (t2, created) = load_or_create_admin_token(dir.path(), None).unwrap();
        assert!(!created);
        assert_eq!(t1, t2);
        let (t3, _) = load_or_create_admin_token(dir.path(), Some("from-env".into())).unwrap();
        assert_eq!(t3, "from-env");
    }
}
