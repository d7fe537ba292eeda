//! Who a job belongs to: the subject that uploaded it, as the caller's credential named it, or
//! anonymous when pixdrop runs without sign-in. Only the job's own subject may read, cancel,
//! retry or watch it; to everyone else it does not exist. The queue stores and compares subjects
//! and knows nothing of how they were proven.

use std::fmt;

/// A job's owner. Parsed at the edge: a named subject is 1 to [`Subject::MAX_LEN`] printable ASCII
/// characters without spaces, so it can sit in a Redis key, a log line or a header unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Subject(Option<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a subject must be 1 to {max} printable ASCII characters without spaces", max = Subject::MAX_LEN)]
pub struct InvalidSubject;

impl Subject {
    pub const MAX_LEN: usize = 255;

    /// The owner of every job uploaded while sign-in is off.
    pub fn anonymous() -> Self {
        Self(None)
    }

    pub fn parse(name: &str) -> Result<Self, InvalidSubject> {
        let valid = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(Self(Some(name.to_owned())))
        } else {
            Err(InvalidSubject)
        }
    }

    /// The name, or `None` for anonymous.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// As the job's `subject` field and the scripts hold it: empty for anonymous, which no named
    /// subject can be.
    pub(super) fn field(&self) -> &str {
        self.0.as_deref().unwrap_or_default()
    }

    /// Reads the stored field back (written by `field`, so trusted as it is).
    pub(super) fn from_field(field: Option<String>) -> Self {
        Self(field.filter(|name| !name.is_empty()))
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name().unwrap_or("(anonymous)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_printable_ascii_without_spaces_and_never_empty() {
        assert!(Subject::parse("user_2abcXYZ").is_ok());
        assert!(Subject::parse("auth0|1234").is_ok());
        for bad in [
            "",
            "has space",
            "tab\there",
            "line\nbreak",
            "ünïcode",
            &"x".repeat(256),
        ] {
            assert_eq!(Subject::parse(bad), Err(InvalidSubject), "{bad:?}");
        }
    }

    #[test]
    fn anonymous_is_stored_as_an_empty_field_that_no_named_subject_matches() {
        let anonymous = Subject::anonymous();
        assert_eq!(anonymous.field(), "");
        assert_eq!(Subject::from_field(Some(String::new())), anonymous);
        assert_eq!(Subject::from_field(None), anonymous);
        let alice = Subject::parse("alice").unwrap();
        assert_eq!(Subject::from_field(Some(alice.field().to_owned())), alice);
    }
}
