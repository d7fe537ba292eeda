//! Signed media URLs: with sign-in on, a job's files are served only to a URL carrying an expiry
//! and an HMAC-SHA256 over the path and that expiry, which pixdrop hands to the job's owner in its
//! status and events. A URL cannot be stretched (the expiry is signed), moved to another file (the
//! path is signed) or made up (the key never leaves the server); checks run in constant time.
//!
//! The key is `media.signing_key` when set (every instance serving the same files needs the same
//! one), or else one generated on first start and kept, readable by its owner only, in
//! `storage.dir/media-signing.key`, which every instance sharing that directory reads.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const KEY_FILE: &str = "media-signing.key";
const KEY_BYTES: usize = 32;

pub struct UrlSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(..)")
    }
}

impl UrlSigner {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// The configured key (hex), or the one kept in `dir`, made now if there is none yet.
    pub fn load_or_create(configured: Option<&str>, dir: &Path) -> anyhow::Result<Self> {
        if let Some(hex_key) = configured {
            let key = hex::decode(hex_key).context("media.signing_key must be hex")?;
            return Ok(Self::new(&key));
        }
        let path = dir.join(KEY_FILE);
        let fresh: [u8; KEY_BYTES] = rand::random();
        // create_new: of two instances starting at once, one writes the key and both read it.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(hex::encode(fresh).as_bytes())?;
                file.sync_all()?;
                tracing::info!(path = %path.display(), "generated the media signing key");
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
        // A key file being written by another instance this instant is read once it is whole.
        for _ in 0..50 {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if let Ok(key) = hex::decode(text.trim())
                && key.len() >= KEY_BYTES
            {
                return Ok(Self::new(&key));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        anyhow::bail!(
            "{} does not hold a hex key of at least {KEY_BYTES} bytes; remove it to have a new one made",
            path.display()
        )
    }

    fn mac(&self, path: &str, expires: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The signature of `path` until `expires` (Unix seconds), base64url.
    pub fn sign(&self, path: &str, expires: u64) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.mac(path, expires).finalize().into_bytes())
    }

    /// Whether `signature` is this key's for `path` and `expires` (compared in constant time).
    pub fn verify(&self, path: &str, expires: u64, signature: &str) -> bool {
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.mac(path, expires).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_path_and_expiry_only() {
        let signer = UrlSigner::new(b"0123456789abcdef0123456789abcdef");
        let sig = signer.sign("/media/a.webp", 100);
        assert!(signer.verify("/media/a.webp", 100, &sig));
        assert!(!signer.verify("/media/b.webp", 100, &sig));
        assert!(!signer.verify("/media/a.webp", 101, &sig));
        assert!(!signer.verify("/media/a.webp", 100, "not base64!"));
        let other = UrlSigner::new(b"another key, another signature..");
        assert!(!other.verify("/media/a.webp", 100, &sig));
    }

    #[test]
    fn the_generated_key_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = UrlSigner::load_or_create(None, dir.path()).unwrap();
        let second = UrlSigner::load_or_create(None, dir.path()).unwrap();
        assert_eq!(first.key, second.key);
        assert_eq!(first.key.len(), KEY_BYTES);
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
