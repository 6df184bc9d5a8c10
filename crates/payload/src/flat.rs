//! One value of a flat payload object, read without copying: what the bridge and the series
//! store need of each key (a number, a boolean, a string borrowed from the input when it has no
//! escapes, or something else to skip), so that neither builds a `serde_json::Value` per key.
//! Both read payloads at a million values a second; one reader keeps them agreeing on what a
//! value is.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A payload value as the readers of payloads see it.
#[derive(Debug, Clone, PartialEq)]
pub enum FlatValue<'a> {
    /// Any JSON number, as an `f64` (what InfluxDB fields and series points hold).
    Num(f64),
    Bool(bool),
    Str(Cow<'a, str>),
    /// null, arrays, objects: never a metric.
    Other,
}

impl<'de> Deserialize<'de> for FlatValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FlatVisitor)
    }
}

/// The visitor behind [`FlatValue`]'s `Deserialize`, for readers that drive it with a seed.
pub struct FlatVisitor;

impl<'de> Visitor<'de> for FlatVisitor {
    type Value = FlatValue<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_f64<E>(self, v: f64) -> Result<FlatValue<'de>, E> {
        Ok(FlatValue::Num(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<FlatValue<'de>, E> {
        Ok(FlatValue::Num(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<FlatValue<'de>, E> {
        Ok(FlatValue::Num(v as f64))
    }
    fn visit_bool<E>(self, v: bool) -> Result<FlatValue<'de>, E> {
        Ok(FlatValue::Bool(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<FlatValue<'de>, E> {
        Ok(FlatValue::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<FlatValue<'de>, E> {
        Ok(FlatValue::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<FlatValue<'de>, E> {
        Ok(FlatValue::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<FlatValue<'de>, E> {
        Ok(FlatValue::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FlatValue<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(FlatValue::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FlatValue<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(FlatValue::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_borrowed_when_they_can_be() {
        let v: Vec<FlatValue<'_>> = serde_json::from_str(
            r#"[1, -2, 0.5, true, "plain", "esc\"aped", null, [1], {"a": 1}]"#,
        )
        .unwrap();
        assert_eq!(v[0], FlatValue::Num(1.0));
        assert_eq!(v[1], FlatValue::Num(-2.0));
        assert_eq!(v[2], FlatValue::Num(0.5));
        assert_eq!(v[3], FlatValue::Bool(true));
        assert!(matches!(&v[4], FlatValue::Str(Cow::Borrowed("plain"))));
        assert!(matches!(&v[5], FlatValue::Str(Cow::Owned(s)) if s == "esc\"aped"));
        assert_eq!(
            &v[6..],
            [FlatValue::Other, FlatValue::Other, FlatValue::Other]
        );
    }
}
