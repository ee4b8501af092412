//! Message authentication: HMAC-SHA256 (RFC 2104 over FIPS 180-4's SHA-256) with the shared key
//! of `sync.key_file`, through the RustCrypto `hmac` and `sha2` crates.
//!
//! Invariants: a [`Key`] holds at least [`MIN_KEY_LEN`] bytes of secret; its HMAC state is keyed
//! once when it is built and cloned per message (no key schedule per message); a tag is
//! compared in constant time (the crate's `verify_slice`), so a forger learns nothing from how
//! long a rejection takes. The key bytes are never printed (`Debug` shows no secret).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Length of a tag: the whole HMAC-SHA256 output, not truncated.
pub const TAG_LEN: usize = 32;
/// The shortest key accepted: 128 bits, the strength the tag should not fall below.
pub const MIN_KEY_LEN: usize = 16;

/// A tag.
pub type Tag = [u8; TAG_LEN];

/// The shared secret, ready to sign and verify.
#[derive(Clone)]
pub struct Key {
    mac: Hmac<Sha256>,
}

/// A key shorter than [`MIN_KEY_LEN`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the key is {0} bytes; at least {MIN_KEY_LEN} are required")]
pub struct KeyTooShort(pub usize);

impl Key {
    /// A key of `secret` (at least [`MIN_KEY_LEN`] bytes; HMAC takes any longer length).
    pub fn new(secret: &[u8]) -> Result<Key, KeyTooShort> {
        if secret.len() < MIN_KEY_LEN {
            return Err(KeyTooShort(secret.len()));
        }
        // HMAC accepts keys of every length (longer ones are hashed first): no error here.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .map_err(|_| KeyTooShort(secret.len()))?;
        Ok(Key { mac })
    }

    /// The tag of `data`.
    pub fn sign(&self, data: &[u8]) -> Tag {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `data`, compared in constant time.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(HMAC-SHA256, secret not shown)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 4231 test case 2 uses a 4-byte key ("Jefe"), below xvs's minimum; test cases 1 and 6
    /// fit: a 20-byte key and a 131-byte key (hashed first).
    #[test]
    fn rfc4231_vectors() {
        let k1 = Key::new(&[0x0b; 20]).unwrap();
        assert_eq!(
            k1.sign(b"Hi There").to_vec(),
            hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
        let k6 = Key::new(&[0xaa; 131]).unwrap();
        let msg = b"Test Using Larger Than Block-Size Key - Hash Key First";
        assert_eq!(
            k6.sign(msg).to_vec(),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
        assert!(k6.verify(msg, &k6.sign(msg)));
    }

    #[test]
    fn verify_refuses_any_changed_bit_a_short_tag_and_another_key() {
        let k = Key::new(b"0123456789abcdef").unwrap();
        let data = b"a sync message";
        let tag = k.sign(data);
        assert!(k.verify(data, &tag));
        for i in 0..TAG_LEN * 8 {
            let mut t = tag;
            t[i / 8] ^= 1 << (i % 8);
            assert!(!k.verify(data, &t), "bit {i}");
        }
        assert!(!k.verify(data, &tag[..TAG_LEN - 1]));
        assert!(!k.verify(b"a sync messagf", &tag));
        let other = Key::new(b"0123456789abcdeF").unwrap();
        assert!(!other.verify(data, &tag));
    }

    #[test]
    fn short_keys_are_refused_and_debug_shows_no_secret() {
        assert_eq!(Key::new(b"").unwrap_err(), KeyTooShort(0));
        assert_eq!(Key::new(&[1; 15]).unwrap_err(), KeyTooShort(15));
        let k = Key::new(b"secret-secret-secret").unwrap();
        assert!(!format!("{k:?}").contains("secret-"));
    }
}
