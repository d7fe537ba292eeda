//! API tokens: long random strings a script sends as `Authorization: Bearer <token>`. Settings
//! hold only each token's SHA-256, so a leaked config file reveals no token; a presented token is
//! hashed and compared with every listed digest in constant time.

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::settings::TokenEntry;
use crate::queue::Subject;

/// What every generated token starts with, so one is recognisable in a secret scanner or a diff.
const TOKEN_PREFIX: &str = "pxd_";

/// The tokens in force: digests and their subjects.
#[derive(Debug, Default)]
pub struct TokenTable {
    entries: Vec<([u8; 32], Subject)>,
}

impl TokenTable {
    /// From checked settings (entries that fail the checks are skipped: they cannot be in force).
    pub fn new(entries: &[TokenEntry]) -> Self {
        let entries = entries
            .iter()
            .filter_map(|entry| {
                let digest: [u8; 32] = hex::decode(&entry.sha256).ok()?.try_into().ok()?;
                Some((digest, Subject::parse(&entry.subject).ok()?))
            })
            .collect();
        Self { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The subject of `token`, if it is listed. Every digest is compared, each in constant time,
    /// so the time taken says nothing about how close a guess came.
    pub fn subject_of(&self, token: &str) -> Option<Subject> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (digest, subject) in &self.entries {
            if bool::from(digest.ct_eq(&presented)) {
                found = Some(subject.clone());
            }
        }
        found
    }
}

/// A fresh token: 32 random bytes, base64url, behind [`TOKEN_PREFIX`].
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The hex SHA-256 of `token`, as `[[auth.tokens]]` lists it.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(subject: &str, token: &str) -> TokenEntry {
        TokenEntry {
            subject: subject.into(),
            sha256: token_digest(token),
        }
    }

    #[test]
    fn a_listed_token_names_its_subject_and_anything_else_names_none() {
        let table = TokenTable::new(&[entry("alice", "token-a"), entry("bob", "token-b")]);
        assert_eq!(table.subject_of("token-a"), Subject::parse("alice").ok());
        assert_eq!(table.subject_of("token-b"), Subject::parse("bob").ok());
        for other in [
            "",
            "token-",
            "token-ab",
            "TOKEN-A",
            &token_digest("token-a"),
        ] {
            assert_eq!(table.subject_of(other), None, "{other:?}");
        }
    }

    #[test]
    fn fresh_tokens_are_long_random_and_prefixed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(token_digest(&a).len(), 64);
    }
}
