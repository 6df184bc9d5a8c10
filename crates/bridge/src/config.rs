//! `bridge.toml`: where to read (Kafka) and where to write (InfluxDB v1, v2 or v3), parsed and
//! validated once, every error naming its field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use insights_kafka::{ConnectionRequest, ConnectionSettings, Secret};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    kafka: KafkaFile,
    influxdb: InfluxFile,
    #[serde(default)]
    batch: BatchFile,
    #[serde(default)]
    dead_letter: DeadLetterFile,
    #[serde(default)]
    metrics: MetricsFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    /// Where `/metrics` is served (default 127.0.0.1:9273).
    listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KafkaFile {
    brokers: String,
    topic: String,
    #[serde(default = "default_group")]
    group: String,
    #[serde(default = "default_plaintext")]
    connection_type: String,
    sasl_mechanism: Option<String>,
    username: Option<String>,
    password: Option<String>,
    ca_certificate_file: Option<PathBuf>,
    /// Static group membership (`group.instance.id`): this bridge's own name in the group.
    group_instance_id: Option<String>,
    /// How often a bridge that holds no partition looks for messages nobody consumes.
    idle_check_interval_ms: Option<u64>,
}

fn default_group() -> String {
    "insights-bridge".into()
}

fn default_plaintext() -> String {
    "plaintext".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InfluxFile {
    api: String,
    url: String,
    database: Option<String>,
    retention_policy: Option<String>,
    username: Option<String>,
    password: Option<String>,
    bucket: Option<String>,
    org: Option<String>,
    token: Option<String>,
    #[serde(default = "default_measurement")]
    measurement: String,
}

fn default_measurement() -> String {
    "algorithmia".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchFile {
    max_points: Option<usize>,
    max_wait_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterFile {
    directory: Option<PathBuf>,
    /// A Kafka topic on the same cluster, instead of the directory.
    topic: Option<String>,
}

/// The keys whose values are numbers; every other key's value is a string.
pub const NUMERIC_KEYS: [&str; 3] = [
    "batch.max_points",
    "batch.max_wait_ms",
    "kafka.idle_check_interval_ms",
];

/// A TOML error named by its field (`section.key: message`) when its place is a `key = value`
/// line, else by its line number; never with the source excerpt `toml` adds, which could be a
/// line with a password. Values quoted in a message about a secret are hidden.
fn toml_error(e: &toml::de::Error, text: &str) -> ConfigError {
    ConfigError::Invalid(describe_toml_error(e, text))
}

/// [`toml_error`]'s description, for other config files (`insights serve --config`) too.
pub fn describe_toml_error(e: &toml::de::Error, text: &str) -> String {
    let Some(span) = e.span() else {
        return e.message().to_string();
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let section = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace));
    let mut message = e.message().to_string();
    if key.is_some_and(|k| k.contains("password") || k.contains("token")) {
        message = message
            .split('`')
            .enumerate()
            .map(|(i, part)| if i % 2 == 1 { "***" } else { part })
            .collect::<Vec<_>>()
            .join("`");
    }
    match (section, key) {
        (Some(section), Some(key)) => format!("{section}.{key}: {message}"),
        (None, Some(key)) => format!("{key}: {message}"),
        _ => format!("line {line_no}: {message}"),
    }
}

/// Which InfluxDB write API, with what it needs.
#[derive(Debug, Clone)]
pub enum InfluxApi {
    /// `/write?db=&rp=&precision=ns`, optional basic credentials.
    V1 {
        database: String,
        retention_policy: Option<String>,
        credentials: Option<(String, Secret)>,
    },
    /// `/api/v2/write?org=&bucket=&precision=ns`, `Authorization: Token`.
    V2 {
        org: String,
        bucket: String,
        token: Secret,
    },
    /// `/api/v3/write_lp?db=&precision=nanosecond`, bearer token.
    V3 {
        database: String,
        token: Option<Secret>,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub kafka: ConnectionSettings,
    pub group: String,
    /// `group.instance.id`: with it, a restarted bridge takes back the partitions it held,
    /// without waiting for its old session to time out (on brokers that implement KIP-345).
    pub group_instance_id: Option<String>,
    /// How often a bridge holding no partition compares the topic's end offsets with its group's
    /// committed offsets (to warn when nobody consumes them).
    pub idle_check_interval: Duration,
    pub influx_url: String,
    pub influx_api: InfluxApi,
    pub measurement: String,
    /// Points per write, at most.
    pub max_points: usize,
    /// How long a batch that is not full waits before it is written.
    pub max_wait: Duration,
    /// Where `dead-letter.jsonl` goes (when no dead-letter topic is set).
    pub dead_letter_dir: PathBuf,
    /// A topic for dead letters, on the same cluster, instead of the file.
    pub dead_letter_topic: Option<insights_kafka::TopicName>,
    /// Where `/metrics` is served.
    pub metrics_listen: std::net::SocketAddr,
}

impl BridgeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(Some(path), &[])
    }

    /// Loads the file (if any) with overrides on top; see [`BridgeConfig::parse_with`].
    ///
    /// Every path ends up absolute, resolved once here: a path in the file is relative to the
    /// file's folder; a path in an override (`--set`, `INSIGHTS_BRIDGE_*`) to the working
    /// directory at start, as a path typed on a command line is.
    pub fn load_with(
        path: Option<&Path>,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let cwd = std::env::current_dir().map_err(|source| ConfigError::Read {
            path: "the working directory".into(),
            source,
        })?;
        let (text, base) = match path {
            Some(path) => {
                let path = cwd.join(path);
                (
                    std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                        path: path.display().to_string(),
                        source,
                    })?,
                    path.parent().unwrap_or(&cwd).to_path_buf(),
                )
            }
            None => (String::new(), cwd.clone()),
        };
        let overrides: Vec<(String, String)> = overrides
            .iter()
            .map(|(key, value)| match key.as_str() {
                "kafka.ca_certificate_file" | "dead_letter.directory" if !value.is_empty() => {
                    (key.clone(), cwd.join(value).to_string_lossy().into_owned())
                }
                _ => (key.clone(), value.clone()),
            })
            .collect();
        let overrides = overrides.as_slice();
        Self::parse_with(&text, &base, overrides)
    }

    /// `INSIGHTS_BRIDGE_<SECTION>_<KEY>=value` variables as overrides, e.g.
    /// `INSIGHTS_BRIDGE_KAFKA_BROKERS` → `kafka.brokers`, `INSIGHTS_BRIDGE_DEAD_LETTER_DIRECTORY`
    /// → `dead_letter.directory`.
    pub fn env_overrides(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
        const SECTIONS: [&str; 5] = ["kafka", "influxdb", "batch", "dead_letter", "metrics"];
        let mut out = Vec::new();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("INSIGHTS_BRIDGE_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            if rest == "config" {
                continue;
            }
            if let Some(section) = SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) {
                out.push((format!("{section}.{}", &rest[section.len() + 1..]), value));
            }
        }
        out
    }

    /// Parses a config; relative paths are relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        Self::parse_with(text, base, &[])
    }

    /// Parses a config with overrides `section.key=value` applied on top (from flags or from
    /// `INSIGHTS_BRIDGE_<SECTION>_<KEY>` environment variables). A value is a string, except for
    /// the numeric keys ([`NUMERIC_KEYS`]), where it must be a number: a password of digits, or
    /// a topic named `2024`, stays a string.
    pub fn parse_with(
        text: &str,
        base: &Path,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| toml_error(&e, text))?;
        for (path, value) in overrides {
            let (section, key) = path.split_once('.').ok_or_else(|| {
                ConfigError::Invalid(format!("{path}: an override is section.key=value"))
            })?;
            let value = if NUMERIC_KEYS.contains(&path.as_str()) {
                toml::Value::Integer(value.trim().parse().map_err(|_| {
                    ConfigError::Invalid(format!("{path}: must be a whole number (got {value:?})"))
                })?)
            } else {
                toml::Value::String(value.clone())
            };
            let section = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(section) = section.as_table_mut() else {
                return Err(ConfigError::Invalid(format!(
                    "{path}: {} is not a section",
                    path
                )));
            };
            section.insert(key.to_string(), value);
        }
        // Through text again, so that an error has a place, hence a field to name.
        let merged = toml::to_string(&table).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let file: File = toml::from_str(&merged).map_err(|e| toml_error(&e, &merged))?;
        let invalid = |field: &str, msg: String| ConfigError::Invalid(format!("{field}: {msg}"));
        let rel = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let ca_certificate = match &file.kafka.ca_certificate_file {
            Some(p) => Some(std::fs::read_to_string(rel(p)).map_err(|e| {
                invalid(
                    "kafka.ca_certificate_file",
                    format!("{}: {e}", rel(p).display()),
                )
            })?),
            None => None,
        };
        let (kafka, _warnings) = ConnectionRequest {
            topic: file.kafka.topic,
            brokers: file.kafka.brokers,
            connection_type: file.kafka.connection_type,
            sasl_mechanism: file.kafka.sasl_mechanism,
            username: file.kafka.username,
            password: file.kafka.password.map(Secret::new),
            ca_certificate,
        }
        .validate(None)
        .map_err(|errors| {
            ConfigError::Invalid(
                errors
                    .iter()
                    .map(|e| format!("kafka.{e}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        if file.kafka.group.trim().is_empty() {
            return Err(invalid("kafka.group", "must not be empty".into()));
        }
        if let Some(id) = &file.kafka.group_instance_id {
            valid_group_instance_id(id).map_err(|e| invalid("kafka.group_instance_id", e))?;
        }
        let idle_check_ms = file.kafka.idle_check_interval_ms.unwrap_or(30_000);
        if !(100..=3_600_000).contains(&idle_check_ms) {
            return Err(invalid(
                "kafka.idle_check_interval_ms",
                format!("must be between 100 and 3600000 (got {idle_check_ms})"),
            ));
        }

        let i = file.influxdb;
        let url = i.url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "influxdb.url",
                format!("must start with http:// or https:// (got {url:?})"),
            ));
        }
        let authority = url.split("://").nth(1).unwrap_or("").split('/').next();
        if authority.is_some_and(|a| a.contains('@')) {
            // It would be logged with the URL; credentials have their own keys.
            return Err(invalid(
                "influxdb.url",
                "must not contain credentials (user:password@); use influxdb.username and influxdb.password, or influxdb.token".into(),
            ));
        }
        let required = |field: &str, v: Option<String>| {
            v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                invalid(
                    &format!("influxdb.{field}"),
                    format!("is required for api = {:?}", i.api),
                )
            })
        };
        let influx_api = match i.api.as_str() {
            "v1" => InfluxApi::V1 {
                database: required("database", i.database.clone())?,
                retention_policy: i.retention_policy.clone(),
                credentials: match (i.username.clone(), i.password.clone()) {
                    (Some(u), Some(p)) => Some((u, Secret::new(p))),
                    (None, None) => None,
                    _ => {
                        return Err(invalid(
                            "influxdb.password",
                            "username and password go together".into(),
                        ));
                    }
                },
            },
            "v2" => InfluxApi::V2 {
                org: required("org", i.org.clone())?,
                bucket: required("bucket", i.bucket.clone())?,
                token: Secret::new(required("token", i.token.clone())?),
            },
            "v3" => InfluxApi::V3 {
                database: required("database", i.database.clone())?,
                token: i.token.clone().map(Secret::new),
            },
            other => {
                return Err(invalid(
                    "influxdb.api",
                    format!("must be \"v1\", \"v2\" or \"v3\" (got {other:?})"),
                ));
            }
        };
        if !crate::mapping::encodable(&i.measurement) || i.measurement.starts_with('#') {
            // `#` would make every line a comment: InfluxDB would answer 204 and keep nothing.
            return Err(invalid(
                "influxdb.measurement",
                format!(
                    "must be non-empty, without line breaks, not start with # nor end with a backslash (got {:?})",
                    i.measurement
                ),
            ));
        }
        let max_points = file.batch.max_points.unwrap_or(5000);
        if !(1..=100_000).contains(&max_points) {
            return Err(invalid(
                "batch.max_points",
                format!("must be between 1 and 100000 (got {max_points})"),
            ));
        }
        let max_wait_ms = file.batch.max_wait_ms.unwrap_or(1000);
        if !(1..=60_000).contains(&max_wait_ms) {
            return Err(invalid(
                "batch.max_wait_ms",
                format!("must be between 1 and 60000 (got {max_wait_ms})"),
            ));
        }
        Ok(BridgeConfig {
            kafka,
            group: file.kafka.group,
            group_instance_id: file.kafka.group_instance_id,
            idle_check_interval: Duration::from_millis(idle_check_ms),
            influx_url: url,
            influx_api,
            measurement: i.measurement,
            max_points,
            max_wait: Duration::from_millis(max_wait_ms),
            dead_letter_topic: match file.dead_letter.topic.as_deref() {
                None => None,
                Some(t) => Some(t.parse().map_err(|e| invalid("dead_letter.topic", e))?),
            },
            dead_letter_dir: rel(&file
                .dead_letter
                .directory
                .unwrap_or_else(|| PathBuf::from("dead-letter"))),
            metrics_listen: file
                .metrics
                .listen
                .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9273))),
        })
    }
}

/// Kafka's rule for `group.instance.id` (that of topic names): 1 to 249 of `a-z A-Z 0-9 . _ -`,
/// not `.` or `..`. Checked here so that a broker's refusal does not surface later as a join
/// error in the log, and because the id is how the broker tells this bridge from the others.
fn valid_group_instance_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 249 {
        return Err(format!(
            "must be 1 to 249 characters long (got {})",
            id.len()
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("must not be {id:?}"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "may hold only letters a-z and A-Z, digits, '.', '_' and '-' (got {c:?} in {id:?})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"
topic = "insights"
group = "insights-bridge"
connection_type = "plaintext"
[influxdb]
api = "v1"
url = "http://127.0.0.1:8086"
database = "insights"
"#;

    #[test]
    fn the_documented_shape_parses() {
        let c = BridgeConfig::parse(GOOD, Path::new("/etc/insights")).unwrap();
        assert_eq!(c.group, "insights-bridge");
        assert!(
            matches!(c.influx_api, InfluxApi::V1 { ref database, .. } if database == "insights")
        );
        assert_eq!(c.measurement, "algorithmia");
        assert_eq!(c.dead_letter_dir, Path::new("/etc/insights/dead-letter"));
    }

    #[test]
    fn every_path_is_absolute_from_the_file_s_folder_or_the_working_directory() {
        let cwd = std::env::current_dir().unwrap();
        let dir = tempfile::tempdir_in(&cwd).unwrap();
        let file = dir.path().join("bridge.toml");
        std::fs::write(&file, GOOD).unwrap();
        // The file named relatively, as a user types it: its paths against its own folder.
        let relative = Path::new(dir.path().file_name().unwrap()).join("bridge.toml");
        let c = BridgeConfig::load_with(Some(&relative), &[]).unwrap();
        assert!(
            c.dead_letter_dir.is_absolute(),
            "{}",
            c.dead_letter_dir.display()
        );
        assert!(
            c.dead_letter_dir.starts_with(dir.path()),
            "{}",
            c.dead_letter_dir.display()
        );
        // A path in an override: against the working directory.
        let set = [("dead_letter.directory".to_string(), "dl".to_string())];
        let c = BridgeConfig::load_with(Some(&relative), &set).unwrap();
        assert_eq!(c.dead_letter_dir, cwd.join("dl"));
    }

    #[test]
    fn flags_and_environment_override_the_file() {
        let env = BridgeConfig::env_overrides(
            [
                (
                    "INSIGHTS_BRIDGE_KAFKA_BROKERS".to_string(),
                    "k1:9092,k2:9092".to_string(),
                ),
                (
                    "INSIGHTS_BRIDGE_BATCH_MAX_POINTS".to_string(),
                    "77".to_string(),
                ),
                (
                    "INSIGHTS_BRIDGE_DEAD_LETTER_DIRECTORY".to_string(),
                    "/var/dl".to_string(),
                ),
                ("UNRELATED".to_string(), "x".to_string()),
            ]
            .into_iter(),
        );
        assert_eq!(
            env[0],
            ("kafka.brokers".to_string(), "k1:9092,k2:9092".to_string())
        );
        let c = BridgeConfig::parse_with(GOOD, Path::new("."), &env).unwrap();
        assert_eq!(c.kafka.brokers.len(), 2);
        assert_eq!(c.max_points, 77);
        assert_eq!(c.dead_letter_dir, Path::new("/var/dl"));
        // Everything from overrides, no file at all.
        let all = [
            ("kafka.brokers", "k:1"),
            ("kafka.topic", "t"),
            ("influxdb.api", "v3"),
            ("influxdb.url", "http://h:1"),
            ("influxdb.database", "d"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = BridgeConfig::parse_with("", Path::new("."), &all).unwrap();
        assert!(matches!(c.influx_api, InfluxApi::V3 { .. }));
        let err = BridgeConfig::parse_with(
            GOOD,
            Path::new("."),
            &[("batch.max_points".into(), "0".into())],
        )
        .unwrap_err();
        assert!(err.to_string().contains("batch.max_points"), "{err}");
        let err = BridgeConfig::parse_with(
            GOOD,
            Path::new("."),
            &[("batch.max_wait_ms".into(), "soon".into())],
        )
        .unwrap_err();
        assert!(err.to_string().contains("batch.max_wait_ms"), "{err}");
    }

    #[test]
    fn static_membership_is_off_unless_named_and_can_come_from_the_environment() {
        let c = BridgeConfig::parse(GOOD, Path::new(".")).unwrap();
        assert_eq!(c.group_instance_id, None);
        assert_eq!(c.idle_check_interval, Duration::from_secs(30));
        let env = BridgeConfig::env_overrides(
            [
                (
                    "INSIGHTS_BRIDGE_KAFKA_GROUP_INSTANCE_ID".to_string(),
                    "bridge-1.eu_west".to_string(),
                ),
                (
                    "INSIGHTS_BRIDGE_KAFKA_IDLE_CHECK_INTERVAL_MS".to_string(),
                    "1000".to_string(),
                ),
            ]
            .into_iter(),
        );
        let c = BridgeConfig::parse_with(GOOD, Path::new("."), &env).unwrap();
        assert_eq!(c.group_instance_id.as_deref(), Some("bridge-1.eu_west"));
        assert_eq!(c.idle_check_interval, Duration::from_secs(1));
        let err = BridgeConfig::parse_with(
            GOOD,
            Path::new("."),
            &[("kafka.group_instance_id".into(), "x".repeat(250))],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("kafka.group_instance_id: must be 1 to 249"),
            "{err}"
        );
    }

    #[test]
    fn override_values_are_strings_so_a_numeric_password_or_topic_works() {
        let overrides = [
            ("kafka.topic", "2024"),
            ("influxdb.username", "u"),
            ("influxdb.password", "12345678"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = BridgeConfig::parse_with(GOOD, Path::new("."), &overrides).unwrap();
        assert_eq!(c.kafka.topic.as_str(), "2024");
        match c.influx_api {
            InfluxApi::V1 {
                credentials: Some((user, password)),
                ..
            } => assert_eq!((user.as_str(), password.expose()), ("u", "12345678")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_stay_out_of_config_errors() {
        // A syntax error on the password's line: the message has the line, not the line's text.
        let text = GOOD.replace(
            "database = \"insights\"",
            "database = \"insights\"\npassword = \"hunter2-secret",
        );
        let err = BridgeConfig::parse(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("influxdb.password:"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // A password of the wrong type is named without its value.
        let text = GOOD.replace(
            "database = \"insights\"",
            "database = \"insights\"\nusername = \"u\"\npassword = 31337",
        );
        let err = BridgeConfig::parse(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("influxdb.password:") && !err.contains("31337"),
            "{err}"
        );
        // Credentials in the URL would be logged with it.
        let text = GOOD.replace(
            "http://127.0.0.1:8086",
            "http://admin:hunter2@127.0.0.1:8086",
        );
        let err = BridgeConfig::parse(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("influxdb.url") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn every_wrong_field_is_named() {
        for (from, to, needle) in [
            ("127.0.0.1:9092", "127.0.0.1", "kafka.brokers"),
            (
                "topic = \"insights\"",
                "topic = \"in sights\"",
                "kafka.topic",
            ),
            ("\"plaintext\"", "\"tls\"", "kafka.connection_type"),
            ("api = \"v1\"", "api = \"v4\"", "influxdb.api"),
            (
                "url = \"http://127.0.0.1:8086\"",
                "url = \"127.0.0.1:8086\"",
                "influxdb.url",
            ),
            ("database = \"insights\"", "", "influxdb.database"),
            ("group = \"insights-bridge\"", "group = \"\"", "kafka.group"),
            (
                "group = \"insights-bridge\"",
                "group = \"insights-bridge\"\ngroup_instance_id = \"bridge 1\"",
                "kafka.group_instance_id",
            ),
            (
                "group = \"insights-bridge\"",
                "group = \"insights-bridge\"\ngroup_instance_id = \"\"",
                "kafka.group_instance_id",
            ),
            (
                "group = \"insights-bridge\"",
                "group = \"insights-bridge\"\nidle_check_interval_ms = 5",
                "kafka.idle_check_interval_ms",
            ),
            ("[influxdb]", "[influxdb]\nbukket = \"x\"", "bukket"),
            ("api = \"v1\"", "api = \"v2\"", "influxdb.org"),
            // Every line would be a comment: InfluxDB would keep nothing, answering 204.
            (
                "database = \"insights\"",
                "database = \"insights\"\nmeasurement = \"#m\"",
                "influxdb.measurement",
            ),
        ] {
            let text = GOOD.replace(from, to);
            let err = BridgeConfig::parse(&text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
