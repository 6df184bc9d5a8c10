//! Secrets at rest: sealed with AES-256-GCM under a key in `<data-dir>/secret.key` (mode 0600),
//! so that a copy of the database alone does not reveal them.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::Engine as _;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key file {path} cannot be used: {detail}")]
    KeyFile { path: String, detail: String },
    #[error("a stored secret cannot be opened (was secret.key replaced?)")]
    Open,
}

/// The key that seals secrets stored in the database.
pub struct SecretBox {
    key: [u8; 32],
}

const NONCE: usize = 12;
const TAG: usize = 16;

impl SecretBox {
    /// Loads `<data_dir>/secret.key`, creating it (random, mode 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        let path = data_dir.join("secret.key");
        let err = |detail: String| SecretError::KeyFile {
            path: path.display().to_string(),
            detail,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| {
                        err("it must hold exactly 32 bytes; restore it from the backup made with the database, or delete it and enter the Kafka password again".into())
                    })?;
                Ok(Self { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                openssl::rand::rand_bytes(&mut key).map_err(|e| err(e.to_string()))?;
                // Written whole under another name, then linked into place: a crash leaves
                // either no key file or a complete one, never an empty one; and of two
                // processes starting at once, the second finds the first's key and uses it.
                let mut unique = [0u8; 8];
                openssl::rand::rand_bytes(&mut unique).map_err(|e| err(e.to_string()))?;
                let tmp = data_dir.join(format!("secret.key.{}.tmp", hex_of(&unique)));
                let written = (|| {
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&tmp)?;
                    f.write_all(&key)?;
                    f.sync_all()?;
                    std::fs::hard_link(&tmp, &path)
                })();
                let _ = std::fs::remove_file(&tmp);
                match written {
                    Ok(()) => {
                        std::fs::File::open(data_dir)
                            .and_then(|d| d.sync_all())
                            .map_err(|e| err(e.to_string()))?;
                        Ok(Self { key })
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(data_dir)
                    }
                    Err(e) => Err(err(e.to_string())),
                }
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// `base64(nonce | ciphertext | tag)`.
    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE];
        openssl::rand::rand_bytes(&mut nonce).expect("the random source works");
        let mut tag = [0u8; TAG];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            b"insights-secret",
            plaintext.as_bytes(),
            &mut tag,
        )
        .expect("AES-256-GCM with a 32-byte key and 12-byte nonce");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| SecretError::Open)?;
        if bytes.len() < NONCE + TAG {
            return Err(SecretError::Open);
        }
        let (nonce, rest) = bytes.split_at(NONCE);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG);
        let plain = decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(nonce),
            b"insights-secret",
            ciphertext,
            tag,
        )
        .map_err(|_| SecretError::Open)?;
        String::from_utf8(plain).map_err(|_| SecretError::Open)
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load_or_create(dir.path()).unwrap();
        let sealed = a.seal("hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, a.seal("hunter2"), "a fresh nonce every time");
        let again = SecretBox::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "hunter2");
        let other = tempfile::tempdir().unwrap();
        let b = SecretBox::load_or_create(other.path()).unwrap();
        assert!(b.open(&sealed).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn processes_starting_together_share_one_key_and_a_bad_key_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| SecretBox::load_or_create(dir.path()).unwrap().key))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "one key for all");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["secret.key"], "no temporary files left");

        std::fs::write(dir.path().join("secret.key"), b"").unwrap();
        let err = SecretBox::load_or_create(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("secret.key") && err.contains("restore"),
            "{err}"
        );
    }
}
