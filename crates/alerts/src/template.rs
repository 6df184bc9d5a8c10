//! Message templates: `{{check}} is {{level}}: {{metric}} = {{value}}`.
//!
//! A template is parsed when it is saved, and a variable it names that does not exist is
//! refused then, by name (InfluxDB accepts such a template and its task dies silently at the
//! first status, influxdb#15269). Rendering cannot fail.

use std::collections::BTreeMap;

/// The variables every message may use.
pub(crate) const VARIABLES: [&str; 12] = [
    "check",
    "level",
    "previous_level",
    "value",
    "metric",
    "fn",
    "algorithm",
    "version",
    "window",
    "time",
    "since",
    "rule",
];

pub(crate) const DEFAULT_CHECK_MESSAGE: &str = "{{check}}: {{algorithm}} {{version}} is {{level}} ({{fn}} of {{metric}} over {{window}} = {{value}})";

pub(crate) const DEFAULT_DEADMAN_MESSAGE: &str =
    "{{check}}: {{algorithm}} {{version}} is {{level}}: no payload since {{since}}";

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var(String),
    Tag(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

pub(crate) const MAX_TEMPLATE_BYTES: usize = 4096;

impl Template {
    /// Parses `source`. `tags` are the tag keys `{{tags.key}}` may name; `None` allows any
    /// key (a rule's template, whose checks' tags are not known in advance; a missing tag
    /// renders empty).
    pub fn parse(
        source: &str,
        tags: Option<&BTreeMap<String, String>>,
    ) -> Result<Template, String> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(format!(
                "is {} bytes; at most {MAX_TEMPLATE_BYTES}",
                source.len()
            ));
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| "has a `{{` without its `}}`".to_string())?;
            let name = after[..close].trim();
            if let Some(key) = name.strip_prefix("tags.") {
                if key.is_empty() {
                    return Err("names `{{tags.}}` without a tag key".into());
                }
                if let Some(tags) = tags
                    && !tags.contains_key(key)
                {
                    return Err(format!(
                        "names the tag `{key}`, which the check does not have (its tags: {})",
                        if tags.is_empty() {
                            "none".to_string()
                        } else {
                            tags.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ));
                }
                parts.push(Part::Tag(key.to_string()));
            } else if VARIABLES.contains(&name) {
                parts.push(Part::Var(name.to_string()));
            } else {
                let shown: String = name.chars().take(64).collect();
                return Err(format!(
                    "names the unknown variable `{}`; use {}, or tags.<key>",
                    shown.escape_debug(),
                    VARIABLES.join(", ")
                ));
            }
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders with `vars` (a variable without a value renders empty).
    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(name) => {
                    if let Some(v) = vars.values.get(name.as_str()) {
                        out.push_str(v);
                    }
                }
                Part::Tag(key) => {
                    if let Some(v) = vars.tags.get(key) {
                        out.push_str(v);
                    }
                }
            }
        }
        out
    }
}

/// The values a message is rendered with.
#[derive(Debug)]
pub struct Vars<'a> {
    pub values: BTreeMap<&'static str, String>,
    pub tags: &'a BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables_and_tags() {
        let tags = BTreeMap::from([("team".to_string(), "ml".to_string())]);
        let t =
            Template::parse("{{check}} is {{ level }} for {{tags.team}}!", Some(&tags)).unwrap();
        let mut vars = Vars {
            values: BTreeMap::new(),
            tags: &tags,
        };
        vars.values.insert("check", "Risk".into());
        vars.values.insert("level", "crit".into());
        assert_eq!(t.render(&vars), "Risk is crit for ml!");
    }

    #[test]
    fn unknown_variables_and_tags_are_refused_by_name() {
        let tags = BTreeMap::new();
        let e = Template::parse("{{chekc}}", Some(&tags)).unwrap_err();
        assert!(e.contains("`chekc`"), "{e}");
        let e = Template::parse("{{tags.team}}", Some(&tags)).unwrap_err();
        assert!(e.contains("`team`"), "{e}");
        assert!(Template::parse("{{tags.team}}", None).is_ok());
        let e = Template::parse("{{level", None).unwrap_err();
        assert!(e.contains("without its"), "{e}");
        assert!(Template::parse(DEFAULT_CHECK_MESSAGE, Some(&tags)).is_ok());
        assert!(Template::parse(DEFAULT_DEADMAN_MESSAGE, Some(&tags)).is_ok());
    }
}
