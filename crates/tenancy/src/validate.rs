//! Input checks shared by the tenancy operations.

use crosslogic_core::ServiceError;

/// A trimmed, non-empty name of at most `max` characters.
pub(crate) fn name(field: &'static str, value: &str, max: usize) -> Result<String, ServiceError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(ServiceError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

/// A plausible email address (one `@`, a dot in the domain, no spaces).
pub(crate) fn email(value: &str) -> Result<String, ServiceError> {
    let v = value.trim().to_lowercase();
    let ok = match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !v.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    };
    if !ok || v.len() > 254 {
        return Err(ServiceError::invalid(
            "email",
            "must be an email address such as ops@example.com",
        ));
    }
    Ok(v)
}

/// An optional positive limit.
pub(crate) fn positive(field: &'static str, value: Option<i64>) -> Result<Option<i32>, ServiceError> {
    match value {
        None => Ok(None),
        Some(v) if (1..=i64::from(i32::MAX)).contains(&v) => Ok(Some(v as i32)),
        Some(_) => Err(ServiceError::invalid(
            field,
            format!("must be an integer from 1 to {}", i32::MAX),
        )),
    }
}

/// An optional non-negative limit.
pub(crate) fn non_negative(field: &'static str, value: Option<i64>) -> Result<Option<i32>, ServiceError> {
    match value {
        None => Ok(None),
        Some(v) if (0..=i64::from(i32::MAX)).contains(&v) => Ok(Some(v as i32)),
        Some(_) => Err(ServiceError::invalid(
            field,
            format!("must be an integer from 0 to {}", i32::MAX),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email(" Ops@Acme.COM ").unwrap(), "ops@acme.com");
        for bad in ["", "no-at", "a@b", "@x.com", "a@.com", "a b@x.com", "a@x.com."] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn limits_must_be_in_range() {
        assert_eq!(positive("x", Some(5)).unwrap(), Some(5));
        assert!(positive("x", Some(0)).is_err());
        assert!(positive("x", Some(i64::MAX)).is_err());
        assert_eq!(non_negative("x", Some(0)).unwrap(), Some(0));
        assert!(name("name", "   ", 10).is_err());
        assert!(name("name", "abcdefghijk", 10).is_err());
    }
}
