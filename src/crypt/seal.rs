//! Small documents sealed to the recipients with age: node manifests, data-key objects, and the
//! text fields (schema.cql, snapshot manifest, tokens) of per-table results.

use super::{CryptError, Identities, Recipients};
use std::io::{Read, Write};

/// The first bytes of every age file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Prefix of a sealed text field (hex of an age file).
pub const FIELD_PREFIX: &str = "cbk-sealed:";

/// Whether `bytes` is an age file.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

/// Encrypts `plain` to the recipients.
pub fn seal(plain: &[u8], to: &Recipients) -> Result<Vec<u8>, CryptError> {
    let enc = age::Encryptor::with_recipients(to.as_dyn())
        .map_err(|e| CryptError::Encrypt(e.to_string()))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|e| CryptError::Encrypt(e.to_string()))?;
    w.write_all(plain)
        .and_then(|_| w.finish().map(|_| ()))
        .map_err(|e| CryptError::Encrypt(e.to_string()))?;
    Ok(out)
}

/// Decrypts an age file; `what` names it in errors. A plain document is refused.
pub fn open(sealed: &[u8], ids: &Identities, what: &str) -> Result<Vec<u8>, CryptError> {
    if !is_sealed(sealed) {
        return Err(CryptError::NotEncrypted { what: what.into() });
    }
    let dec = age::Decryptor::new_buffered(sealed).map_err(|e| CryptError::Damaged {
        what: what.into(),
        reason: e.to_string(),
    })?;
    let mut r = dec.decrypt(ids.as_dyn()).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => CryptError::WrongIdentity {
            what: what.into(),
            reason: "no identity matches its recipients".into(),
        },
        other => CryptError::Damaged {
            what: what.into(),
            reason: other.to_string(),
        },
    })?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| CryptError::Damaged {
        what: what.into(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Seals a text field (e.g. schema.cql) as `cbk-sealed:<hex>`.
pub fn seal_field(text: &str, to: &Recipients) -> Result<String, CryptError> {
    Ok(format!(
        "{FIELD_PREFIX}{}",
        hex::encode(seal(text.as_bytes(), to)?)
    ))
}

/// Opens a field written by [`seal_field`]; a plain field is refused.
pub fn open_field(field: &str, ids: &Identities, what: &str) -> Result<String, CryptError> {
    let Some(h) = field.strip_prefix(FIELD_PREFIX) else {
        return Err(CryptError::NotEncrypted { what: what.into() });
    };
    let bytes = hex::decode(h).map_err(|e| CryptError::Damaged {
        what: what.into(),
        reason: e.to_string(),
    })?;
    String::from_utf8(open(&bytes, ids, what)?).map_err(|e| CryptError::Damaged {
        what: what.into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
pub(crate) fn test_keys() -> (Identities, Recipients) {
    let id = age::x25519::Identity::generate();
    let r = Recipients(vec![id.to_public()]);
    (Identities(vec![id]), r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_refuses_the_wrong_identity_and_tampering() {
        let (id, to) = test_keys();
        let (other, _) = test_keys();
        let s = seal(b"CREATE TABLE ks.t", &to).unwrap();
        assert!(is_sealed(&s));
        assert!(!s.windows(5).any(|w| w == b"TABLE"));
        assert_eq!(open(&s, &id, "x").unwrap(), b"CREATE TABLE ks.t");
        assert!(matches!(
            open(&s, &other, "x"),
            Err(CryptError::WrongIdentity { .. })
        ));
        let mut t = s.clone();
        let n = t.len() - 3;
        t[n] ^= 1;
        assert!(matches!(
            open(&t, &id, "x"),
            Err(CryptError::Damaged { .. })
        ));
        assert!(matches!(
            open(b"{}", &id, "x"),
            Err(CryptError::NotEncrypted { .. })
        ));
        let f = seal_field("hello", &to).unwrap();
        assert_eq!(open_field(&f, &id, "f").unwrap(), "hello");
    }
}
