//! Connection settings: parsing and validation, each rule in the type that carries it.

use std::fmt;
use std::str::FromStr;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// One invalid field, named as the API and the panel name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A Kafka topic name: 1 to 249 of `a-z A-Z 0-9 . _ -`, and not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

impl FromStr for TopicName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > 249 {
            return Err(format!("must be at most 249 characters (got {})", s.len()));
        }
        if s == "." || s == ".." {
            return Err(format!("{s:?} is not a valid topic name"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "may only contain letters, digits, '.', '_' and '-' (found {c:?})"
            ));
        }
        Ok(Self(s.to_string()))
    }
}

impl TryFrom<String> for TopicName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<TopicName> for String {
    fn from(t: TopicName) -> String {
        t.0
    }
}

impl TopicName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Bootstrap brokers: `host1:port1,host2:port2`, each a host name or IP (IPv6 in brackets) and
/// a port from 1 to 65535.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BrokerList(Vec<String>);

impl FromStr for BrokerList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("must list at least one broker as host:port".into());
        }
        let mut brokers = Vec::new();
        for (i, entry) in s.split(',').enumerate() {
            let n = i + 1;
            if entry.is_empty() {
                return Err(format!(
                    "entry {n} is empty; separate brokers with single commas, as host1:9092,host2:9092"
                ));
            }
            if entry.chars().any(char::is_whitespace) {
                return Err(format!(
                    "entry {n} ({entry:?}) contains a space; write host1:9092,host2:9092 without spaces"
                ));
            }
            if entry.contains("://") {
                return Err(format!(
                    "entry {n} ({entry:?}) has a URL scheme; give host:port only (the connection type sets the protocol)"
                ));
            }
            let (host, port) = match entry.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() => (h, p),
                _ => {
                    return Err(format!(
                        "entry {n} ({entry:?}) has no port; write it as host:port, e.g. {entry}:9092"
                    ));
                }
            };
            let host_ok =
                if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                    inner.parse::<std::net::Ipv6Addr>().is_ok()
                } else {
                    !host.contains(':')
                        && host
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                };
            if !host_ok {
                return Err(format!(
                    "entry {n} ({entry:?}) has an invalid host; use a host name, an IPv4 address, or an IPv6 address in brackets"
                ));
            }
            match port.parse::<u32>() {
                Ok(p) if (1..=65535).contains(&p) => {}
                _ => {
                    return Err(format!(
                        "entry {n} ({entry:?}) has port {port:?}; a port is a number from 1 to 65535"
                    ));
                }
            }
            brokers.push(entry.to_string());
        }
        Ok(Self(brokers))
    }
}

impl TryFrom<String> for BrokerList {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<BrokerList> for String {
    fn from(b: BrokerList) -> String {
        b.0.join(",")
    }
}

impl BrokerList {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn joined(&self) -> String {
        self.0.join(",")
    }
}

/// A secret (a password). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself: for the client configuration and the encrypted store only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The largest CA certificate (chain) accepted, in bytes.
pub(crate) const MAX_CA_BYTES: usize = 64 * 1024;
/// The longest SASL username and password accepted, in bytes.
pub(crate) const MAX_CREDENTIAL_BYTES: usize = 1024;

/// A CA certificate (or chain) in PEM, parsed as X.509 when accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaCertificate(String);

impl FromStr for CaCertificate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let pem = s.trim();
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(
                "must be a PEM certificate starting with -----BEGIN CERTIFICATE-----".into(),
            );
        }
        if pem.len() > MAX_CA_BYTES {
            return Err(format!(
                "must be at most {MAX_CA_BYTES} bytes (got {})",
                pem.len()
            ));
        }
        // Only certificates: a pasted file with a private key in it would otherwise be stored
        // and shown again (OpenSSL skips the blocks that are not certificates).
        if let Some(other) = pem
            .lines()
            .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
            .find(|kind| *kind != "CERTIFICATE-----")
        {
            return Err(format!(
                "must hold only certificates; it has a \"{}\" block (a private key must never be pasted here)",
                other.trim_end_matches('-')
            ));
        }
        match openssl::x509::X509::stack_from_pem(pem.as_bytes()) {
            Ok(certs) if !certs.is_empty() => Ok(Self(format!("{pem}\n"))),
            Ok(_) => Err("contains no certificate".into()),
            Err(_) => Err("does not parse as a PEM X.509 certificate".into()),
        }
    }
}

impl TryFrom<String> for CaCertificate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<CaCertificate> for String {
    fn from(c: CaCertificate) -> String {
        c.0
    }
}

impl CaCertificate {
    pub fn pem(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL/SCRAM over TLS: every part required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslScram {
    pub mechanism: ScramMechanism,
    pub username: String,
    pub password: Secret,
    pub ca_certificate: CaCertificate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    Plaintext,
    SaslScramTls(SaslScram),
}

/// A validated connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub topic: TopicName,
    pub brokers: BrokerList,
    pub security: Security,
}

/// What an administrator submits (`PUT /v1/admin/insights/connection`, the config file): the
/// raw fields, validated by [`ConnectionRequest::validate`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRequest {
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub brokers: String,
    #[serde(default)]
    pub connection_type: String,
    pub sasl_mechanism: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_certificate: Option<String>,
}

/// What is wrong with a username or password, if anything (its value is never quoted).
fn credential_error(value: &str) -> Option<String> {
    if value.len() > MAX_CREDENTIAL_BYTES {
        return Some(format!(
            "must be at most {MAX_CREDENTIAL_BYTES} bytes (got {})",
            value.len()
        ));
    }
    value
        .chars()
        .any(char::is_control)
        .then(|| "must not contain control characters (a line break, a NUL byte, ...)".into())
}

impl ConnectionRequest {
    /// Validates every field, reporting all that are wrong at once. `stored_password` is the
    /// password of the connection being edited: an omitted password keeps it.
    pub fn validate(
        self,
        stored_password: Option<&Secret>,
    ) -> Result<(ConnectionSettings, Vec<String>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let topic = self
            .topic
            .parse::<TopicName>()
            .map_err(|e| errors.push(FieldError::new("topic", e)))
            .ok();
        let brokers = self
            .brokers
            .parse::<BrokerList>()
            .map_err(|e| errors.push(FieldError::new("brokers", e)))
            .ok();
        if brokers.as_ref().is_some_and(|b| b.len() == 1) {
            warnings.push(
                "only one bootstrap broker is listed: if it is down when Insights (re)connects, delivery waits for it; list two or more, since cluster membership can change".to_string(),
            );
        }
        let security = match self.connection_type.as_str() {
            "plaintext" => {
                for (field, given) in [
                    ("sasl_mechanism", self.sasl_mechanism.is_some()),
                    ("username", self.username.is_some()),
                    ("password", self.password.is_some()),
                    ("ca_certificate", self.ca_certificate.is_some()),
                ] {
                    if given {
                        errors.push(FieldError::new(
                            field,
                            "only applies to connection_type \"sasl_scram_tls\"",
                        ));
                    }
                }
                Some(Security::Plaintext)
            }
            "sasl_scram_tls" => {
                let mechanism = match self.sasl_mechanism.as_deref() {
                    Some("SCRAM-SHA-256") => Some(ScramMechanism::Sha256),
                    Some("SCRAM-SHA-512") => Some(ScramMechanism::Sha512),
                    Some(other) => {
                        errors.push(FieldError::new(
                            "sasl_mechanism",
                            format!("must be SCRAM-SHA-256 or SCRAM-SHA-512 (got {other:?})"),
                        ));
                        None
                    }
                    None => {
                        errors.push(FieldError::new(
                            "sasl_mechanism",
                            "is required for SASL/SCRAM: SCRAM-SHA-256 or SCRAM-SHA-512",
                        ));
                        None
                    }
                };
                let username = match self.username.as_deref().map(str::trim) {
                    Some("") | None => {
                        errors.push(FieldError::new("username", "is required for SASL/SCRAM"));
                        None
                    }
                    Some(u) => credential_error(u)
                        .map(|e| errors.push(FieldError::new("username", e)))
                        .is_none()
                        .then(|| u.to_string()),
                };
                if let Some(e) = self
                    .password
                    .as_ref()
                    .and_then(|p| credential_error(p.expose()))
                {
                    errors.push(FieldError::new("password", e));
                }
                let password = match self.password.filter(|p| !p.expose().is_empty()) {
                    Some(p) => Some(p),
                    None => match stored_password {
                        Some(p) => Some(p.clone()),
                        None => {
                            errors.push(FieldError::new("password", "is required for SASL/SCRAM"));
                            None
                        }
                    },
                };
                let ca = match self.ca_certificate.as_deref() {
                    Some(pem) => pem
                        .parse::<CaCertificate>()
                        .map_err(|e| errors.push(FieldError::new("ca_certificate", e)))
                        .ok(),
                    None => {
                        errors.push(FieldError::new(
                            "ca_certificate",
                            "is required for TLS: the PEM certificate of the CA that signed the brokers' certificates",
                        ));
                        None
                    }
                };
                match (mechanism, username, password, ca) {
                    (Some(mechanism), Some(username), Some(password), Some(ca_certificate)) => {
                        Some(Security::SaslScramTls(SaslScram {
                            mechanism,
                            username,
                            password,
                            ca_certificate,
                        }))
                    }
                    _ => None,
                }
            }
            other => {
                errors.push(FieldError::new(
                    "connection_type",
                    format!("must be \"plaintext\" or \"sasl_scram_tls\" (got {other:?})"),
                ));
                None
            }
        };
        match (topic, brokers, security) {
            (Some(topic), Some(brokers), Some(security)) if errors.is_empty() => Ok((
                ConnectionSettings {
                    topic,
                    brokers,
                    security,
                },
                warnings,
            )),
            _ => Err(errors),
        }
    }
}

/// A connection as the API shows it: never the password, only whether one is set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionView {
    pub topic: String,
    pub brokers: String,
    pub connection_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub password_set: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
}

impl ConnectionSettings {
    pub fn view(&self) -> ConnectionView {
        match &self.security {
            Security::Plaintext => ConnectionView {
                topic: self.topic.to_string(),
                brokers: self.brokers.joined(),
                connection_type: "plaintext",
                sasl_mechanism: None,
                username: None,
                password_set: false,
                ca_certificate: None,
            },
            Security::SaslScramTls(s) => ConnectionView {
                topic: self.topic.to_string(),
                brokers: self.brokers.joined(),
                connection_type: "sasl_scram_tls",
                sasl_mechanism: Some(s.mechanism.as_str()),
                username: Some(s.username.clone()),
                password_set: true,
                ca_certificate: Some(s.ca_certificate.pem().to_string()),
            },
        }
    }

    /// The password, if any: for the encrypted store.
    pub fn password(&self) -> Option<&Secret> {
        match &self.security {
            Security::Plaintext => None,
            Security::SaslScramTls(s) => Some(&s.password),
        }
    }

    /// The librdkafka settings that reach the brokers: bootstrap servers and security.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.joined());
        match &self.security {
            Security::Plaintext => {
                c.set("security.protocol", "plaintext");
            }
            Security::SaslScramTls(s) => {
                c.set("security.protocol", "sasl_ssl")
                    .set("sasl.mechanism", s.mechanism.as_str())
                    .set("sasl.username", &s.username)
                    .set("sasl.password", s.password.expose())
                    .set("ssl.ca.pem", s.ca_certificate.pem())
                    .set("ssl.endpoint.identification.algorithm", "https");
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plaintext(topic: &str, brokers: &str) -> ConnectionRequest {
        ConnectionRequest {
            topic: topic.into(),
            brokers: brokers.into(),
            connection_type: "plaintext".into(),
            ..Default::default()
        }
    }

    fn errors(r: ConnectionRequest) -> Vec<FieldError> {
        r.validate(None).unwrap_err()
    }

    #[test]
    fn credentials_and_certificates_have_limits_and_no_private_keys() {
        let ca = include_str!("../tests/data/test-ca.pem");
        let sasl = |username: &str, password: &str, ca: &str| ConnectionRequest {
            topic: "t".into(),
            brokers: "k1:9093,k2:9093".into(),
            connection_type: "sasl_scram_tls".into(),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            username: Some(username.into()),
            password: Some(Secret::new(password.to_string())),
            ca_certificate: Some(ca.into()),
        };
        assert!(sasl("u", "p", ca).validate(None).is_ok());
        let key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        for (request, field, needle) in [
            (sasl("u\0x", "p", ca), "username", "control characters"),
            (sasl("u", "p\nq", ca), "password", "control characters"),
            (
                sasl("u", &"p".repeat(2000), ca),
                "password",
                "at most 1024 bytes",
            ),
            (
                sasl("u", "p", &format!("{ca}{key}")),
                "ca_certificate",
                "PRIVATE KEY",
            ),
            (
                sasl("u", "p", &ca.repeat(100)),
                "ca_certificate",
                "at most 65536 bytes",
            ),
        ] {
            let errors = request.validate(None).unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|e| e.field == field && e.message.contains(needle)),
                "{field}: {errors:?}"
            );
            assert!(
                !format!("{errors:?}").contains("pppp"),
                "values are not quoted"
            );
        }
    }

    #[test]
    fn topic_rules_of_kafka() {
        for ok in ["insights", "a.b_c-d", &"x".repeat(249)] {
            assert!(ok.parse::<TopicName>().is_ok(), "{ok}");
        }
        for (bad, needle) in [
            ("", "empty"),
            (".", "not a valid"),
            ("..", "not a valid"),
            ("has space", "' '"),
            ("a/b", "'/'"),
            (&"x".repeat(250), "at most 249"),
        ] {
            let e = bad.parse::<TopicName>().unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn broker_lists_name_the_entry_and_the_problem() {
        let ok: BrokerList = "k1:9092,10.0.0.2:9093,[::1]:9094,kafka-0.kafka_svc:1"
            .parse()
            .unwrap();
        assert_eq!(ok.len(), 4);
        for (bad, needle) in [
            ("", "at least one broker"),
            ("k1:9092,,k2:9092", "entry 2 is empty"),
            ("k1:9092,", "entry 2 is empty"),
            ("k1", "entry 1 (\"k1\") has no port"),
            (":9092", "has no port"),
            ("k1:9092, k2:9092", "contains a space"),
            ("kafka://k1:9092", "URL scheme"),
            ("k1:0", "from 1 to 65535"),
            ("k1:65536", "from 1 to 65535"),
            ("k1:http", "from 1 to 65535"),
            ("::1:9092", "invalid host"),
            ("k$1:9092", "invalid host"),
        ] {
            let e = bad.parse::<BrokerList>().unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn one_broker_is_accepted_with_a_warning() {
        let (s, warnings) = plaintext("t", "k1:9092").validate(None).unwrap();
        assert_eq!(s.security, Security::Plaintext);
        assert!(warnings[0].contains("only one bootstrap broker"));
        let (_, warnings) = plaintext("t", "k1:9092,k2:9092").validate(None).unwrap();
        assert!(warnings.is_empty());
    }

    #[test]
    fn every_wrong_field_is_reported_at_once() {
        let e = errors(ConnectionRequest {
            topic: "bad topic".into(),
            brokers: "k1".into(),
            connection_type: "sasl_scram_tls".into(),
            sasl_mechanism: Some("PLAIN".into()),
            username: None,
            password: None,
            ca_certificate: Some(
                "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----".into(),
            ),
        });
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "topic",
                "brokers",
                "sasl_mechanism",
                "username",
                "password",
                "ca_certificate"
            ]
        );
        assert!(
            e[5].message.contains("does not parse as a PEM X.509"),
            "{}",
            e[5]
        );
        let e = errors(ConnectionRequest {
            connection_type: "ssl".into(),
            ..plaintext("t", "k:1")
        });
        assert_eq!(e[0].field, "connection_type");
        let mut r = plaintext("t", "k:1");
        r.password = Some(Secret::new("x"));
        assert_eq!(errors(r)[0].field, "password");
    }

    #[test]
    fn an_omitted_password_keeps_the_stored_one_and_is_never_shown() {
        let ca = include_str!("../tests/data/test-ca.pem");
        let r = ConnectionRequest {
            topic: "t".into(),
            brokers: "k1:9093,k2:9093".into(),
            connection_type: "sasl_scram_tls".into(),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            username: Some("insights".into()),
            password: None,
            ca_certificate: Some(ca.into()),
        };
        assert_eq!(errors(r.clone())[0].field, "password");
        let stored = Secret::new("s3cret");
        let (s, _) = r.validate(Some(&stored)).unwrap();
        assert_eq!(s.password(), Some(&stored));
        let view = serde_json::to_string(&s.view()).unwrap();
        assert!(!view.contains("s3cret"), "{view}");
        assert!(view.contains("\"password_set\":true"));
        assert!(!format!("{s:?}").contains("s3cret"));
        let config = s.client_config();
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    }
}
