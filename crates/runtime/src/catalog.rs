//! The catalog: algorithms, their published versions and settings, held in memory and written
//! through to the configuration store (the `insights_store::ConfigStore` seam, never the
//! payloads). Publishing a version snapshots the algorithm's source directory into the data
//! directory, so later edits to the source never change a published version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use insights_store::{AlgorithmRecord, ConfigStore, StoreError, VersionRecord};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::RuntimeError;

/// Settings of an algorithm, shared by all its versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmSettings {
    /// Warm worker processes per version (1 to 64).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Seconds a worker may take to load before it is declared failed (1 to 3600).
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout_seconds: u64,
}

fn default_pool_size() -> u32 {
    2
}

fn default_startup_timeout() -> u64 {
    300
}

impl Default for AlgorithmSettings {
    fn default() -> Self {
        Self {
            pool_size: default_pool_size(),
            startup_timeout_seconds: default_startup_timeout(),
        }
    }
}

impl AlgorithmSettings {
    fn validate(&self) -> Result<(), RuntimeError> {
        if !(1..=64).contains(&self.pool_size) {
            return Err(RuntimeError::invalid(
                "settings.pool_size",
                format!("must be between 1 and 64 (got {})", self.pool_size),
            ));
        }
        if !(1..=3600).contains(&self.startup_timeout_seconds) {
            return Err(RuntimeError::invalid(
                "settings.startup_timeout_seconds",
                format!(
                    "must be between 1 and 3600 (got {})",
                    self.startup_timeout_seconds
                ),
            ));
        }
        Ok(())
    }
}

/// Settings of one published version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSettings {
    /// Emit an Insights payload for every execution of this version.
    #[serde(default)]
    pub insights_enabled: bool,
    /// Add `status` and `error_type` keys to the payload. Off by default: consumers that treat
    /// every extra key as a metric (the Datadog forwarder) would otherwise see new metrics.
    #[serde(default)]
    pub insights_include_status: bool,
}

/// A partial update of [`VersionSettings`]: only the keys given change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSettingsPatch {
    pub insights_enabled: Option<bool>,
    pub insights_include_status: Option<bool>,
}

/// Where an algorithm's code lives and how to start it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A directory; published versions are snapshots of it.
    pub path: PathBuf,
    /// The program and its arguments, run in the snapshot directory.
    pub command: Vec<String>,
}

/// A request to register an algorithm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAlgorithm {
    pub name: String,
    pub source: Source,
    #[serde(default)]
    pub settings: AlgorithmSettings,
    /// Accepted for compatibility with Algorithmia's API; not used.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionType {
    Major,
    Minor,
    Revision,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionInfo {
    pub version_type: VersionType,
    /// Accepted for compatibility with Algorithmia's API; not used.
    #[serde(default)]
    pub release_notes: Option<String>,
    #[serde(default)]
    pub sample_input: Option<String>,
    #[serde(default)]
    pub sample_output: Option<String>,
}

/// A request to publish a version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub version_info: Option<VersionInfo>,
    #[serde(default)]
    pub settings: VersionSettings,
    /// Accepted for compatibility with Algorithmia's API; not used.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

/// An algorithm as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlgorithmView {
    pub owner: String,
    pub name: String,
    pub source: Source,
    pub settings: AlgorithmSettings,
    pub created_at: String,
    pub versions: Vec<VersionView>,
}

/// A published version as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionView {
    pub owner: String,
    pub name: String,
    pub version_info: VersionInfoView,
    pub settings: VersionSettings,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionInfoView {
    pub semantic_version: String,
}

/// What the runtime needs to run a version, resolved at the start of a call.
#[derive(Debug, Clone)]
pub struct ResolvedVersion {
    pub owner: String,
    pub name: String,
    pub version: Version,
    pub snapshot: PathBuf,
    pub command: Vec<String>,
    pub settings: VersionSettings,
    pub algorithm_settings: AlgorithmSettings,
}

#[derive(Debug, Clone)]
struct Algorithm {
    source: Source,
    settings: AlgorithmSettings,
    created_at: String,
    versions: BTreeMap<Version, PublishedVersion>,
}

#[derive(Debug, Clone)]
struct PublishedVersion {
    snapshot: PathBuf,
    command: Vec<String>,
    settings: VersionSettings,
    created_at: String,
}

/// Owner and name of an algorithm.
type Key = (String, String);

pub struct Catalog {
    store: Arc<dyn ConfigStore>,
    versions_dir: PathBuf,
    state: RwLock<BTreeMap<Key, Algorithm>>,
    /// Publishing is serialized so that two publishes never compute the same version.
    publish_lock: tokio::sync::Mutex<()>,
    /// Bytes a snapshot may hold ([`MAX_SNAPSHOT_BYTES`]; smaller in tests).
    snapshot_limit: u64,
}

impl Catalog {
    /// Loads the catalog from the configuration store, once: later changes go through the
    /// catalog, which writes them through. Snapshots live under `versions_dir`.
    pub fn load(store: Arc<dyn ConfigStore>, versions_dir: PathBuf) -> Result<Self, RuntimeError> {
        if !versions_dir.is_absolute() {
            return Err(RuntimeError::Internal(format!(
                "the versions directory {} must be an absolute path",
                versions_dir.display()
            )));
        }
        let mut state = BTreeMap::new();
        for a in store.algorithms()? {
            state.insert(
                (a.owner.clone(), a.name.clone()),
                Algorithm {
                    source: Source {
                        path: a.source_path.into(),
                        command: a.command,
                    },
                    settings: serde_json::from_value(a.settings).map_err(StoreError::from)?,
                    created_at: a.created_at,
                    versions: BTreeMap::new(),
                },
            );
        }
        for v in store.versions()? {
            let version = Version::parse(&v.version).map_err(|e| {
                RuntimeError::Internal(format!("stored version {:?} is invalid: {e}", v.version))
            })?;
            if let Some(a) = state.get_mut(&(v.owner.clone(), v.name.clone())) {
                a.versions.insert(
                    version,
                    PublishedVersion {
                        // Where publishing put it, under this data directory: not the stored
                        // path, which an older release could have written relative to its
                        // working directory, and which is stale once the directory moves.
                        snapshot: versions_dir.join(&v.owner).join(&v.name).join(&v.version),
                        command: v.command,
                        settings: serde_json::from_value(v.settings).map_err(StoreError::from)?,
                        created_at: v.created_at,
                    },
                );
            }
        }
        Ok(Self {
            store,
            versions_dir,
            state: RwLock::new(state),
            publish_lock: tokio::sync::Mutex::new(()),
            snapshot_limit: MAX_SNAPSHOT_BYTES,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Key, Algorithm>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Key, Algorithm>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new algorithm. Its source directory must exist.
    pub fn register(&self, owner: &str, new: NewAlgorithm) -> Result<AlgorithmView, RuntimeError> {
        let (record, algorithm) = self.validate_new(owner, new)?;
        let key = (record.owner.clone(), record.name.clone());
        let mut state = self.write();
        if state.contains_key(&key) {
            return Err(RuntimeError::AlreadyExists(format!(
                "algorithm {}/{}",
                key.0, key.1
            )));
        }
        self.store.insert_algorithm(&record)?;
        state.insert(key.clone(), algorithm);
        Ok(view(&key, &state[&key]))
    }

    /// Registers an algorithm, or updates its source and settings when it exists (declarative
    /// configuration). Published versions are not touched.
    pub fn upsert(&self, owner: &str, new: NewAlgorithm) -> Result<AlgorithmView, RuntimeError> {
        let (mut record, algorithm) = self.validate_new(owner, new)?;
        let key = (record.owner.clone(), record.name.clone());
        let mut state = self.write();
        match state.get_mut(&key) {
            Some(existing) => {
                record.created_at = existing.created_at.clone();
                self.store.update_algorithm(&record)?;
                existing.source = algorithm.source;
                existing.settings = algorithm.settings;
            }
            None => {
                self.store.insert_algorithm(&record)?;
                state.insert(key.clone(), algorithm);
            }
        }
        Ok(view(&key, &state[&key]))
    }

    /// A source is copied whole when a version is published: `/` would copy `/proc` and the
    /// machine, and a folder holding the data directory would copy the snapshots into
    /// themselves.
    fn check_source_outside_data(&self, source: &Path) -> Result<(), RuntimeError> {
        if source.parent().is_none() {
            return Err(RuntimeError::invalid(
                "source.path",
                "must not be the root directory `/`: give the algorithm's own folder",
            ));
        }
        let data_dir = self.versions_dir.parent().unwrap_or(&self.versions_dir);
        let data_dir = data_dir
            .canonicalize()
            .unwrap_or_else(|_| data_dir.to_path_buf());
        if data_dir.starts_with(source) {
            return Err(RuntimeError::invalid(
                "source.path",
                format!(
                    "{} contains the data directory {}: give the algorithm's own folder",
                    source.display(),
                    data_dir.display()
                ),
            ));
        }
        Ok(())
    }

    fn validate_new(
        &self,
        owner: &str,
        new: NewAlgorithm,
    ) -> Result<(AlgorithmRecord, Algorithm), RuntimeError> {
        validate_owner(owner)?;
        validate_name(&new.name)?;
        new.settings.validate()?;
        if new.source.command.is_empty() || new.source.command[0].is_empty() {
            return Err(RuntimeError::invalid(
                "source.command",
                "must name a program, e.g. [\"python3\", \"-u\", \"src/Algorithm.py\"]",
            ));
        }
        let path = new.source.path.canonicalize().map_err(|e| {
            RuntimeError::invalid(
                "source.path",
                format!("{} cannot be used: {e}", new.source.path.display()),
            )
        })?;
        if !path.is_dir() {
            return Err(RuntimeError::invalid(
                "source.path",
                format!("{} is not a directory", path.display()),
            ));
        }
        self.check_source_outside_data(&path)?;
        let created_at = now();
        let record = AlgorithmRecord {
            owner: owner.to_string(),
            name: new.name.clone(),
            source_path: path.to_string_lossy().into_owned(),
            command: new.source.command.clone(),
            settings: serde_json::to_value(&new.settings).expect("settings serialize"),
            created_at: created_at.clone(),
        };
        let algorithm = Algorithm {
            source: Source {
                path,
                command: new.source.command,
            },
            settings: new.settings,
            created_at,
            versions: BTreeMap::new(),
        };
        Ok((record, algorithm))
    }

    /// Publishes the next version: a snapshot of the current source.
    ///
    /// `version_info.version_type` says which part of the last version to bump; without it,
    /// `minor` (documented in the README). The first version is 1.0.0 whatever the type, as on
    /// Algorithmia.
    pub async fn publish(
        &self,
        owner: &str,
        name: &str,
        request: PublishRequest,
    ) -> Result<VersionView, RuntimeError> {
        let _serial = self.publish_lock.lock().await;
        let version_type = request
            .version_info
            .as_ref()
            .map(|v| v.version_type)
            .unwrap_or(VersionType::Minor);
        let next = {
            let state = self.read();
            let a = lookup(&state, owner, name)?;
            match a.versions.keys().next_back() {
                None => Version::new(1, 0, 0),
                Some(last) => match version_type {
                    VersionType::Major => Version::new(last.major + 1, 0, 0),
                    VersionType::Minor => Version::new(last.major, last.minor + 1, 0),
                    VersionType::Revision => Version::new(last.major, last.minor, last.patch + 1),
                },
            }
        };
        self.publish_locked(owner, name, next, request.settings)
            .await
    }

    /// Publishes exactly `version` unless it exists; then applies `settings` to it
    /// (declarative configuration).
    pub async fn ensure_version(
        &self,
        owner: &str,
        name: &str,
        version: Version,
        settings: VersionSettings,
    ) -> Result<VersionView, RuntimeError> {
        let _serial = self.publish_lock.lock().await;
        let exists = lookup(&self.read(), owner, name)?
            .versions
            .contains_key(&version);
        if exists {
            let patch = VersionSettingsPatch {
                insights_enabled: Some(settings.insights_enabled),
                insights_include_status: Some(settings.insights_include_status),
            };
            return self.set_version_settings(owner, name, &version.to_string(), patch);
        }
        self.publish_locked(owner, name, version, settings).await
    }

    async fn publish_locked(
        &self,
        owner: &str,
        name: &str,
        version: Version,
        settings: VersionSettings,
    ) -> Result<VersionView, RuntimeError> {
        let (source, command) = {
            let state = self.read();
            let a = lookup(&state, owner, name)?;
            (a.source.path.clone(), a.source.command.clone())
        };
        let target = self
            .versions_dir
            .join(owner)
            .join(name)
            .join(version.to_string());
        let snapshot = target.clone();
        let limit = self.snapshot_limit;
        tokio::task::spawn_blocking(move || snapshot_dir(&source, &snapshot, limit))
            .await
            .map_err(|e| RuntimeError::Internal(e.to_string()))??;
        let record = VersionRecord {
            owner: owner.to_string(),
            name: name.to_string(),
            version: version.to_string(),
            snapshot_path: target.to_string_lossy().into_owned(),
            command: command.clone(),
            settings: serde_json::to_value(&settings).expect("settings serialize"),
            created_at: now(),
        };
        self.store.insert_version(&record)?;
        let mut state = self.write();
        let key = (owner.to_string(), name.to_string());
        let a = state
            .get_mut(&key)
            .ok_or_else(|| RuntimeError::AlgorithmNotFound(format!("{owner}/{name}")))?;
        a.versions.insert(
            version.clone(),
            PublishedVersion {
                snapshot: target,
                command,
                settings,
                created_at: record.created_at,
            },
        );
        Ok(version_view(&key, &version, &a.versions[&version]))
    }

    /// Changes settings of a published version; effective for the next call.
    pub fn set_version_settings(
        &self,
        owner: &str,
        name: &str,
        version: &str,
        patch: VersionSettingsPatch,
    ) -> Result<VersionView, RuntimeError> {
        let parsed = parse_version(version)?;
        let mut state = self.write();
        let key = (owner.to_string(), name.to_string());
        let a = state
            .get_mut(&key)
            .ok_or_else(|| RuntimeError::AlgorithmNotFound(format!("{owner}/{name}")))?;
        let v = a
            .versions
            .get_mut(&parsed)
            .ok_or_else(|| RuntimeError::VersionNotFound(format!("{owner}/{name}/{version}")))?;
        let mut settings = v.settings.clone();
        if let Some(on) = patch.insights_enabled {
            settings.insights_enabled = on;
        }
        if let Some(on) = patch.insights_include_status {
            settings.insights_include_status = on;
        }
        self.store.update_version_settings(
            owner,
            name,
            &parsed.to_string(),
            &serde_json::to_value(&settings).expect("settings serialize"),
        )?;
        v.settings = settings;
        Ok(version_view(&key, &parsed, v))
    }

    pub fn algorithms(&self) -> Vec<AlgorithmView> {
        self.read().iter().map(|(k, a)| view(k, a)).collect()
    }

    pub fn algorithm(&self, owner: &str, name: &str) -> Result<AlgorithmView, RuntimeError> {
        let state = self.read();
        let a = lookup(&state, owner, name)?;
        Ok(view(&(owner.to_string(), name.to_string()), a))
    }

    /// Resolves `owner/name[/version]`: no version means the latest published.
    pub fn resolve(
        &self,
        owner: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<ResolvedVersion, RuntimeError> {
        let state = self.read();
        let a = lookup(&state, owner, name)?;
        let (version, v) = match version {
            None => a.versions.iter().next_back().ok_or_else(|| {
                RuntimeError::VersionNotFound(format!(
                    "{owner}/{name} has no published version yet; publish one with POST /v1/algorithms/{owner}/{name}/versions"
                ))
            })?,
            Some(text) => {
                let parsed = parse_version(text)?;
                a.versions.get_key_value(&parsed).ok_or_else(|| {
                    RuntimeError::VersionNotFound(format!("{owner}/{name}/{text}"))
                })?
            }
        };
        Ok(ResolvedVersion {
            owner: owner.to_string(),
            name: name.to_string(),
            version: version.clone(),
            snapshot: v.snapshot.clone(),
            command: v.command.clone(),
            settings: v.settings.clone(),
            algorithm_settings: a.settings.clone(),
        })
    }
}

fn lookup<'a>(
    state: &'a BTreeMap<Key, Algorithm>,
    owner: &str,
    name: &str,
) -> Result<&'a Algorithm, RuntimeError> {
    state
        .get(&(owner.to_string(), name.to_string()))
        .ok_or_else(|| RuntimeError::AlgorithmNotFound(format!("{owner}/{name}")))
}

fn parse_version(text: &str) -> Result<Version, RuntimeError> {
    Version::parse(text).map_err(|e| {
        RuntimeError::invalid(
            "version",
            format!("{text:?} is not a semantic version like 1.0.0 ({e})"),
        )
    })
}

fn view(key: &Key, a: &Algorithm) -> AlgorithmView {
    AlgorithmView {
        owner: key.0.clone(),
        name: key.1.clone(),
        source: a.source.clone(),
        settings: a.settings.clone(),
        created_at: a.created_at.clone(),
        versions: a
            .versions
            .iter()
            .rev()
            .map(|(ver, v)| version_view(key, ver, v))
            .collect(),
    }
}

fn version_view(key: &Key, version: &Version, v: &PublishedVersion) -> VersionView {
    VersionView {
        owner: key.0.clone(),
        name: key.1.clone(),
        version_info: VersionInfoView {
            semantic_version: version.to_string(),
        },
        settings: v.settings.clone(),
        created_at: v.created_at.clone(),
    }
}

pub(crate) fn now() -> String {
    insights_store::record_time_now()
}

/// Owners: 1 to 64 letters, digits, `_` or `-`, starting with a letter or digit.
pub fn validate_owner(owner: &str) -> Result<(), RuntimeError> {
    let ok = (1..=64).contains(&owner.len())
        && owner.starts_with(|c: char| c.is_ascii_alphanumeric())
        && owner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::invalid(
            "owner",
            format!(
                "must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit (got {owner:?})"
            ),
        ))
    }
}

/// Algorithm names: 1 to 64 letters, digits or `_`, starting with a letter.
pub fn validate_name(name: &str) -> Result<(), RuntimeError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::invalid(
            "name",
            format!(
                "must be 1 to 64 letters, digits or '_', starting with a letter (got {name:?})"
            ),
        ))
    }
}

/// At most this much source is snapshotted per version.
const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// Copies `source` to `target` (which must not exist) through a temporary directory, so a
/// failed copy never leaves a half-made snapshot behind.
fn snapshot_dir(source: &Path, target: &Path, limit: u64) -> Result<(), RuntimeError> {
    let parent = target.parent().expect("target has a parent");
    let io = |what: String| move |e: std::io::Error| RuntimeError::Io(format!("{what}: {e}"));
    std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    if target.exists() {
        // Left behind by a publish that failed after copying; it was never recorded.
        std::fs::remove_dir_all(target).map_err(io(format!("removing {}", target.display())))?;
    }
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        uuid::Uuid::new_v4()
    ));
    let mut budget = limit;
    let result = copy_tree(source, &tmp, &mut budget, limit)
        .and_then(|()| std::fs::rename(&tmp, target).map_err(io("renaming the snapshot".into())));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn copy_tree(from: &Path, to: &Path, budget: &mut u64, limit: u64) -> Result<(), RuntimeError> {
    let io = |what: &Path| {
        let what = what.display().to_string();
        move |e: std::io::Error| RuntimeError::Io(format!("snapshotting {what}: {e}"))
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            copy_tree(&path, &dest, budget, limit)?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(&path).map_err(io(&path))?;
            std::os::unix::fs::symlink(link, &dest).map_err(io(&dest))?;
        } else if kind.is_file() {
            copy_file(&path, &dest, budget, limit)?;
        } else {
            return Err(RuntimeError::invalid(
                "source.path",
                format!(
                    "{} is not a regular file, folder or link (a socket, FIFO or device): remove it from the source, it cannot be part of a snapshot",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Copies one file, counting its bytes against `budget` as they are copied: the limit stops
/// the copy, not a check after it (a 1.1 GiB file once wrote more than 1 GiB before the 400).
fn copy_file(from: &Path, to: &Path, budget: &mut u64, limit: u64) -> Result<(), RuntimeError> {
    use std::io::Read as _;
    let io = |what: &Path| {
        let what = what.display().to_string();
        move |e: std::io::Error| RuntimeError::Io(format!("snapshotting {what}: {e}"))
    };
    let source = std::fs::File::open(from).map_err(io(from))?;
    let permissions = source.metadata().map_err(io(from))?.permissions();
    let mut dest = std::fs::File::create(to).map_err(io(to))?;
    let copied = std::io::copy(&mut source.take(*budget + 1), &mut dest).map_err(io(from))?;
    if copied > *budget {
        return Err(RuntimeError::invalid(
            "source.path",
            format!(
                "the source directory exceeds the snapshot limit of {limit} bytes (stopped at {}): publish a folder holding only the algorithm",
                from.display()
            ),
        ));
    }
    *budget -= copied;
    dest.set_permissions(permissions).map_err(io(to))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(dir: &Path) -> Catalog {
        let store = Arc::new(insights_store::Store::open(&dir.join("db.sqlite")).unwrap());
        Catalog::load(store, dir.join("versions")).unwrap()
    }

    fn new_algo(src: &Path) -> NewAlgorithm {
        NewAlgorithm {
            name: "algo".into(),
            source: Source {
                path: src.into(),
                command: vec!["python3".into(), "main.py".into()],
            },
            settings: AlgorithmSettings::default(),
            details: None,
        }
    }

    fn publish_request(t: VersionType) -> PublishRequest {
        PublishRequest {
            version_info: Some(VersionInfo {
                version_type: t,
                release_notes: None,
                sample_input: None,
                sample_output: None,
            }),
            settings: VersionSettings {
                insights_enabled: true,
                insights_include_status: false,
            },
            details: None,
        }
    }

    #[tokio::test]
    async fn versions_bump_snapshot_and_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("main.py"), "v1").unwrap();
        std::fs::write(src.join("sub/data.txt"), "d").unwrap();
        let c = catalog(dir.path());
        c.register("me", new_algo(&src)).unwrap();
        let v1 = c
            .publish("me", "algo", publish_request(VersionType::Major))
            .await
            .unwrap();
        assert_eq!(v1.version_info.semantic_version, "1.0.0");
        std::fs::write(src.join("main.py"), "v2").unwrap();
        let seq: Vec<_> = [
            VersionType::Minor,
            VersionType::Revision,
            VersionType::Major,
        ]
        .into_iter()
        .map(publish_request)
        .collect();
        let mut got = vec![];
        for r in seq {
            got.push(
                c.publish("me", "algo", r)
                    .await
                    .unwrap()
                    .version_info
                    .semantic_version,
            );
        }
        assert_eq!(got, ["1.1.0", "1.1.1", "2.0.0"]);

        let r1 = c.resolve("me", "algo", Some("1.0.0")).unwrap();
        assert_eq!(
            std::fs::read_to_string(r1.snapshot.join("main.py")).unwrap(),
            "v1"
        );
        assert_eq!(
            std::fs::read_to_string(r1.snapshot.join("sub/data.txt")).unwrap(),
            "d"
        );
        let latest = c.resolve("me", "algo", None).unwrap();
        assert_eq!(latest.version.to_string(), "2.0.0");
        assert_eq!(
            std::fs::read_to_string(latest.snapshot.join("main.py")).unwrap(),
            "v2"
        );

        c.set_version_settings(
            "me",
            "algo",
            "1.1.0",
            VersionSettingsPatch {
                insights_enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        drop(c);
        let c = catalog(dir.path());
        assert!(
            !c.resolve("me", "algo", Some("1.1.0"))
                .unwrap()
                .settings
                .insights_enabled
        );
        assert!(
            c.resolve("me", "algo", Some("1.0.0"))
                .unwrap()
                .settings
                .insights_enabled
        );
        assert_eq!(c.algorithm("me", "algo").unwrap().versions.len(), 4);
    }

    #[test]
    fn bad_registrations_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let c = catalog(&data);
        // The source may not hold the data directory, nor be `/`.
        assert_field(c.register("me", new_algo(dir.path())), "source.path");
        assert_field(c.register("me", new_algo(Path::new("/"))), "source.path");
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let dir = tempfile::TempDir::new_in(&src).unwrap();
        let mut a = new_algo(dir.path());
        a.name = "bad name".into();
        assert_field(c.register("me", a), "name");
        assert_field(c.register("me/x", new_algo(dir.path())), "owner");
        let mut a = new_algo(&dir.path().join("missing"));
        a.name = "ok".into();
        assert_field(c.register("me", a), "source.path");
        let mut a = new_algo(dir.path());
        a.source.command.clear();
        assert_field(c.register("me", a), "source.command");
        let mut a = new_algo(dir.path());
        a.settings.pool_size = 0;
        assert_field(c.register("me", a), "settings.pool_size");
        c.register("me", new_algo(dir.path())).unwrap();
        assert!(matches!(
            c.register("me", new_algo(dir.path())),
            Err(RuntimeError::AlreadyExists(_))
        ));
    }

    #[tokio::test]
    async fn without_a_version_type_publishing_bumps_the_minor_version() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let c = catalog(&data);
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        c.register("me", new_algo(&src)).unwrap();
        let bare: PublishRequest = serde_json::from_str("{}").unwrap();
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(
                c.publish("me", "algo", bare.clone())
                    .await
                    .unwrap()
                    .version_info
                    .semantic_version,
            );
        }
        assert_eq!(got, ["1.0.0", "1.1.0"]);
    }

    #[tokio::test]
    async fn publishing_stops_at_the_size_limit_and_refuses_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let mut c = catalog(&data);
        c.snapshot_limit = 1000;
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        // One file far past the limit: the copy stops at it, not after writing it whole.
        std::fs::write(src.join("main.py"), "x").unwrap();
        std::fs::File::create(src.join("weights.bin"))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        c.register("me", new_algo(&src)).unwrap();
        let err = c
            .publish("me", "algo", publish_request(VersionType::Major))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("snapshot limit of 1000 bytes"),
            "{err}"
        );
        let leftovers: u64 = walk_bytes(&data.join("versions"));
        assert_eq!(leftovers, 0, "nothing of the failed copy is left");
        std::fs::remove_file(src.join("weights.bin")).unwrap();
        crate::isolation::mkfifo(&src.join("pipe")).unwrap();
        let err = c
            .publish("me", "algo", publish_request(VersionType::Major))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is not a regular file"), "{err}");
        std::fs::remove_file(src.join("pipe")).unwrap();
        c.publish("me", "algo", publish_request(VersionType::Major))
            .await
            .unwrap();
    }

    fn walk_bytes(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .map(|e| e.unwrap())
            .map(|e| {
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    walk_bytes(&e.path())
                } else {
                    m.len()
                }
            })
            .sum()
    }

    fn assert_field<T: std::fmt::Debug>(r: Result<T, RuntimeError>, field: &str) {
        match r {
            Err(RuntimeError::InvalidField { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected an error naming {field}, got {other:?}"),
        }
    }
}
