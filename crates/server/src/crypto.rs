//! Encryption at rest for biometric templates, queued photos and webhook secrets:
//! AES-256-GCM with a random 96-bit nonce per message.
//!
//! Every value is sealed for one place: its table, row and purpose (a [`Binding`], the
//! AES-GCM associated data), so a ciphertext copied into another row does not open there.
//! The sealed format names the key that sealed it, so the data key can be rotated:
//!
//! ```text
//! 0x01 || key id (4 bytes: SHA-256 of the key, truncated) || nonce (12 bytes) || ciphertext and tag
//! ```
//!
//! Values written before this format (`nonce || ciphertext`, not bound to a row) still
//! open; `rollcall rotate-data-key` re-seals them in the current format.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// First byte of the current sealed format.
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the data key must be 32 bytes, base64-encoded (several keys: one per line, the current one first)")]
    BadKey,
    #[error("the sealed {0} was sealed with data key {1}, which is not in the key ring")]
    UnknownKey(Binding, KeyId),
    #[error(
        "the sealed {0} does not open: it was sealed for another row, altered, or sealed with a key that is not in the key ring"
    )]
    Decrypt(Binding),
}

/// Where a sealed value belongs: `table|row|purpose`, e.g. `face_templates|7|template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding(String);

impl Binding {
    pub fn new(table: &str, row: impl fmt::Display, purpose: &str) -> Self {
        Self(format!("{table}|{row}|{purpose}"))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = self.0.splitn(3, '|');
        let (table, row, purpose) = (parts.next(), parts.next(), parts.next());
        match (table, row, purpose) {
            (Some(table), Some(row), Some(purpose)) => write!(f, "{purpose} of {table} row {row}"),
            _ => f.write_str(&self.0),
        }
    }
}

/// The 4-byte id of a data key, written into every value it seals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    fn of(key: &[u8]) -> Self {
        let digest = Sha256::new().chain_update(b"rollcall data key id\0").chain_update(key).finalize();
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

struct DataKey {
    id: KeyId,
    cipher: Aes256Gcm,
}

impl DataKey {
    fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(key))
            .map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Ok(Self { id: KeyId::of(&bytes), cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)) })
    }
}

/// Seals with the current data key and opens with any key of the ring (the current one
/// and those a rotation has not yet retired).
#[derive(Clone)]
pub struct Sealer {
    /// The current key first.
    keys: Arc<[DataKey]>,
}

impl Sealer {
    /// One key: 32 bytes in standard or URL-safe base64.
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        Self::from_key_ring(key)
    }

    /// A key ring: base64 keys separated by whitespace (one per line in the key file), the
    /// current key first.
    pub fn from_key_ring(ring: &str) -> Result<Self, CryptoError> {
        let keys = ring.split_whitespace().map(DataKey::from_base64).collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(CryptoError::BadKey);
        }
        Ok(Self { keys: keys.into() })
    }

    pub fn generate_key() -> String {
        base64::engine::general_purpose::STANDARD.encode(Aes256Gcm::generate_key(OsRng))
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> KeyId {
        self.keys[0].id
    }

    /// How many keys can open (the current one and those still being retired).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn seal(&self, plaintext: &[u8], binding: &Binding) -> Vec<u8> {
        let key = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload { msg: plaintext, aad: binding.as_bytes() };
        let ciphertext = key.cipher.encrypt(&nonce, payload).expect("AES-GCM encryption does not fail");
        let mut sealed = Vec::with_capacity(HEADER_LEN + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&key.id.0);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens a value sealed for `binding`, in the current format or the older unbound one.
    pub fn open(&self, sealed: &[u8], binding: &Binding) -> Result<Vec<u8>, CryptoError> {
        let key_id = current_format_key_id(sealed);
        if let Some(key) = key_id.and_then(|id| self.keys.iter().find(|key| key.id == id)) {
            let (nonce, ciphertext) = sealed[HEADER_LEN..].split_at(NONCE_LEN);
            let payload = Payload { msg: ciphertext, aad: binding.as_bytes() };
            if let Ok(plaintext) = key.cipher.decrypt(Nonce::from_slice(nonce), payload) {
                return Ok(plaintext);
            }
        }
        // A legacy value's first bytes are a random nonce, which can look like a header.
        if let Some(plaintext) = self.open_legacy(sealed) {
            return Ok(plaintext);
        }
        match key_id {
            Some(id) if !self.keys.iter().any(|key| key.id == id) => Err(CryptoError::UnknownKey(binding.clone(), id)),
            _ => Err(CryptoError::Decrypt(binding.clone())),
        }
    }

    /// Whether a value is sealed in the current format with the current key, i.e. a
    /// rotation has nothing left to do for it.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        current_format_key_id(sealed) == Some(self.current_key_id())
    }

    /// `nonce || ciphertext` without associated data, as written before key ids existed.
    fn open_legacy(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.keys.iter().find_map(|key| key.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok())
    }
}

/// The key id of a value that has the current format's shape.
fn current_format_key_id(sealed: &[u8]) -> Option<KeyId> {
    if sealed.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
        return None;
    }
    let mut id = [0; KEY_ID_LEN];
    id.copy_from_slice(&sealed[1..HEADER_LEN]);
    Some(KeyId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_base64(&Sealer::generate_key()).unwrap()
    }

    fn template_of(user_id: i64) -> Binding {
        Binding::new("face_templates", user_id, "template")
    }

    /// What versions before key ids wrote: `nonce || ciphertext`, no associated data.
    fn legacy_seal(key: &str, plaintext: &[u8]) -> Vec<u8> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(key).unwrap();
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        [nonce.to_vec(), cipher.encrypt(&nonce, plaintext).unwrap()].concat()
    }

    #[test]
    fn sealed_data_opens_only_with_its_key_and_hides_the_plaintext() {
        let sealer = sealer();
        let sealed = sealer.seal(b"embedding bytes", &template_of(1));
        assert!(!sealed.windows(15).any(|w| w == b"embedding bytes"));
        assert_eq!(sealer.open(&sealed, &template_of(1)).unwrap(), b"embedding bytes");
        assert_ne!(sealer.seal(b"embedding bytes", &template_of(1)), sealed, "a fresh nonce every time");
        let other = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        assert!(matches!(other.open(&sealed, &template_of(1)), Err(CryptoError::UnknownKey(..))));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(sealer.open(&tampered, &template_of(1)), Err(CryptoError::Decrypt(_))));
        assert!(Sealer::from_base64("too short").is_err());
        assert!(Sealer::from_key_ring(" \n").is_err());
    }

    #[test]
    fn a_value_copied_to_another_row_or_purpose_does_not_open() {
        let sealer = sealer();
        let sealed = sealer.seal(b"template", &template_of(1));
        let error = sealer.open(&sealed, &template_of(2)).unwrap_err();
        assert!(matches!(error, CryptoError::Decrypt(_)));
        assert!(error.to_string().contains("template of face_templates row 2"), "{error}");
        assert!(sealer.open(&sealed, &Binding::new("enrollment_images", 1, "image")).is_err());
    }

    #[test]
    fn the_format_names_the_key_and_a_ring_opens_what_its_old_keys_sealed() {
        let (old_key, new_key) = (Sealer::generate_key(), Sealer::generate_key());
        let old = Sealer::from_base64(&old_key).unwrap();
        let sealed_by_old = old.seal(b"secret", &template_of(3));
        assert_eq!(sealed_by_old[0], VERSION);
        assert_eq!(&sealed_by_old[1..HEADER_LEN], &old.current_key_id().0);

        let ring = Sealer::from_key_ring(&format!("{new_key}\n{old_key}\n")).unwrap();
        assert_eq!(ring.key_count(), 2);
        assert_eq!(ring.open(&sealed_by_old, &template_of(3)).unwrap(), b"secret");
        assert!(!ring.is_current(&sealed_by_old));
        let resealed = ring.seal(b"secret", &template_of(3));
        assert!(ring.is_current(&resealed));
        assert_eq!(Sealer::from_base64(&new_key).unwrap().open(&resealed, &template_of(3)).unwrap(), b"secret");
        assert!(old.open(&resealed, &template_of(3)).is_err(), "the retired key cannot read new data");
    }

    #[test]
    fn values_in_the_old_unbound_format_still_open_and_are_not_current() {
        let key = Sealer::generate_key();
        let sealer = Sealer::from_base64(&key).unwrap();
        // Enough values that some legacy nonces start with the version byte.
        for i in 0..600 {
            let legacy = legacy_seal(&key, format!("template {i}").as_bytes());
            assert_eq!(sealer.open(&legacy, &template_of(i)).unwrap(), format!("template {i}").as_bytes());
            assert!(!sealer.is_current(&legacy));
        }
        assert!(matches!(sealer.open(&[1, 2, 3], &template_of(1)), Err(CryptoError::Decrypt(_))));
    }
}
