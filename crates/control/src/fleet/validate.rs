//! Input checks shared by the fleet operations.

use serde_json::Value;

use crosslogic_core::ServiceError;

/// A trimmed, non-empty text of at most `max` characters.
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Result<String, ServiceError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(ServiceError::invalid(field, format!("must be 1 to {max} characters")));
    }
    Ok(v.to_owned())
}

/// A slug: 1 to 63 of `a-z`, `0-9` and `-`, starting and ending with a
/// letter or digit (usable in cluster and host names).
pub(crate) fn slug(field: &'static str, value: &str) -> Result<String, ServiceError> {
    let ok = (1..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if !ok {
        return Err(ServiceError::invalid(
            field,
            "must be 1 to 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
        ));
    }
    Ok(value.to_owned())
}

/// A catalog identifier (model or GPU name): 1 to `max` of ASCII letters,
/// digits and `.` `_` `-` `:`.
pub(crate) fn ident(field: &'static str, value: &str, max: usize) -> Result<String, ServiceError> {
    let ok = (1..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if !ok {
        return Err(ServiceError::invalid(
            field,
            format!("must be 1 to {max} characters of letters, digits, '.', '_', '-' and ':'"),
        ));
    }
    Ok(value.to_owned())
}

/// An integer within `min..=max`.
pub(crate) fn int(field: &'static str, value: i64, min: i32, max: i32) -> Result<i32, ServiceError> {
    if (i64::from(min)..=i64::from(max)).contains(&value) {
        Ok(value as i32)
    } else {
        Err(ServiceError::invalid(
            field,
            format!("must be an integer from {min} to {max}, got {value}"),
        ))
    }
}

/// A JSON object (default `{}`).
pub(crate) fn object(field: &'static str, value: Option<Value>) -> Result<Value, ServiceError> {
    match value {
        None => Ok(Value::Object(Default::default())),
        Some(Value::Object(m)) => Ok(Value::Object(m)),
        Some(_) => Err(ServiceError::invalid(field, "must be a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slugs_are_dns_label_like() {
        assert_eq!(slug("name", "llama-3-8b-prod").unwrap(), "llama-3-8b-prod");
        for bad in ["", "-a", "a-", "Upper", "a_b", "a b", &"x".repeat(64)] {
            assert!(slug("name", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn identifiers_and_integers() {
        assert!(ident("name", "qwen-2.5-7b", 128).is_ok());
        assert!(ident("name", "A100-80GB", 64).is_ok());
        assert!(ident("name", "a/b", 128).is_err());
        assert!(ident("name", "", 128).is_err());
        assert_eq!(int("x", 5, 1, 8).unwrap(), 5);
        assert!(int("x", 9, 1, 8).is_err());
        assert!(int("x", i64::MAX, 1, i32::MAX).is_err());
        assert!(object("metadata", Some(serde_json::json!([]))).is_err());
    }
}
