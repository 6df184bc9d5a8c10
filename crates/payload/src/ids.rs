//! Identifiers carried by every payload, in Algorithmia's formats (`req-<uuid>`, `rses-<uuid>`).

use std::fmt;

/// Identifies one execution: `req-` followed by a random UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub fn new() -> Self {
        Self(format!("req-{}", uuid::Uuid::new_v4()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies the warm worker process that served an execution: `rses-` followed by a random
/// UUID. Every execution served by the same process carries the same session id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn new() -> Self {
        Self(format!("rses-{}", uuid::Uuid::new_v4()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_algorithmia_prefixes_and_uuid_bodies() {
        let r = RequestId::new();
        let s = SessionId::new();
        let rb = r.as_str().strip_prefix("req-").expect("req- prefix");
        let sb = s.as_str().strip_prefix("rses-").expect("rses- prefix");
        assert!(uuid::Uuid::parse_str(rb).is_ok(), "{r}");
        assert!(uuid::Uuid::parse_str(sb).is_ok(), "{s}");
        assert_ne!(RequestId::new(), r);
    }
}
