//! Delete tokens: the proof that lets whoever uploaded a file delete it when there is no sign-in to
//! say who they are. Each upload gets its own, handed out once in the `202` answer; only its
//! SHA-256 is stored (in the job's record), so Redis holds nothing that deletes anything.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A fresh token: 256 random bits, URL-safe.
pub struct DeleteToken(String);

impl DeleteToken {
    pub fn new() -> Self {
        Self(URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
    }

    /// What the uploader is given.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// What is stored.
    pub fn digest(&self) -> String {
        digest(&self.0)
    }
}

impl Default for DeleteToken {
    fn default() -> Self {
        Self::new()
    }
}

/// The stored form of a presented token: its SHA-256 in hex.
pub fn digest(presented: &str) -> String {
    hex::encode(Sha256::digest(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_and_only_their_digest_matches() {
        let (a, b) = (DeleteToken::new(), DeleteToken::new());
        assert_ne!(a.secret(), b.secret());
        assert_eq!(a.secret().len(), 43);
        assert_eq!(digest(a.secret()), a.digest());
        assert_ne!(digest(b.secret()), a.digest());
        assert_ne!(a.digest(), a.secret());
    }
}
