//! Client-side encryption (plan `[encryption]`): age recipients and identities, sealing small
//! documents to the recipients (`seal`), and the segmented AEAD frames of data objects
//! (`parts`: AES-256-GCM frames of `gcm` written now; XChaCha20-Poly1305 STREAM of `stream`
//! still read). Nothing here is hand-written cryptography: age (X25519 + ChaCha20-Poly1305)
//! wraps keys and small documents, aws-lc-rs (AES-256-GCM, HKDF-SHA256) and RustCrypto's
//! `chacha20poly1305` encrypt data.

// age 0.13 marks classic X25519 recipients (`age1...`) deprecated in favour of its hybrid
// post-quantum ones; the plan format names X25519 recipients, which age keeps supporting.
#![allow(deprecated)]

pub mod gcm;
pub mod parts;
pub mod seal;
pub mod stream;

use serde::{Deserialize, Serialize};

/// Environment variable naming an age identity file (restore, `verify --deep`, `cbk key`).
pub const IDENTITY_FILE_ENV: &str = "CBK_IDENTITY_FILE";

/// Errors of encryption and decryption. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error(
        "this repository is encrypted and reading it needs the identity (private key): set {IDENTITY_FILE_ENV} to an age identity file{hint}"
    )]
    NoIdentity { hint: String },
    #[error("cannot read the identity: {0}")]
    BadIdentity(String),
    #[error(
        "`{what}` cannot be decrypted with the given identity: {reason} (is {IDENTITY_FILE_ENV} the identity of one of the repository's recipients?)"
    )]
    WrongIdentity { what: String, reason: String },
    #[error("`{what}` is damaged, truncated or was tampered with: {reason}")]
    Damaged { what: String, reason: String },
    #[error(
        "`{what}` is not encrypted, but the repository is: it mixes encrypted and plain objects"
    )]
    NotEncrypted { what: String },
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

/// The age X25519 recipients of a plan (public keys: not secret).
#[derive(Clone)]
pub struct Recipients(Vec<age::x25519::Recipient>);

impl Recipients {
    /// Parses one `age1...` recipient; the error says why it is not one.
    pub fn parse_one(s: &str) -> Result<age::x25519::Recipient, String> {
        if s.starts_with("AGE-SECRET-KEY-") {
            return Err("this is an identity (private key), not a recipient".into());
        }
        <age::x25519::Recipient as std::str::FromStr>::from_str(s.trim()).map_err(|e| e.to_string())
    }

    /// Parses the plan's list.
    pub fn parse(list: &[String]) -> Result<Recipients, String> {
        if list.is_empty() {
            return Err("no recipients".into());
        }
        list.iter()
            .map(|s| Self::parse_one(s))
            .collect::<Result<Vec<_>, _>>()
            .map(Recipients)
    }

    /// The recipients as `age1...` strings, sorted.
    pub fn to_strings(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.iter().map(|r| r.to_string()).collect();
        v.sort();
        v
    }

    /// Short fingerprints (sha256 prefix of each recipient string), as the marker records them.
    pub fn fingerprints(&self) -> Vec<String> {
        self.to_strings().iter().map(|r| fingerprint(r)).collect()
    }

    fn as_dyn(&self) -> impl Iterator<Item = &dyn age::Recipient> {
        self.0.iter().map(|r| r as &dyn age::Recipient)
    }
}

/// The fingerprint of one recipient string: `sha256:` and 16 hex digits.
pub fn fingerprint(recipient: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(recipient.trim().as_bytes());
    format!("sha256:{}", hex::encode(&d[..8]))
}

/// Identities (private keys). `Debug` never shows them.
#[derive(Clone)]
pub struct Identities(Vec<age::x25519::Identity>);

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities(<{} redacted>)", self.0.len())
    }
}

impl Identities {
    /// Parses the text of an age identity file: `AGE-SECRET-KEY-1...` lines, `#` comments.
    pub fn parse(text: &str) -> Result<Identities, CryptError> {
        let mut ids = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id =
                <age::x25519::Identity as std::str::FromStr>::from_str(line).map_err(|_| {
                    CryptError::BadIdentity(format!(
                        "line {} is not an age X25519 identity (`AGE-SECRET-KEY-1...`)",
                        n + 1
                    ))
                })?;
            ids.push(id);
        }
        if ids.is_empty() {
            return Err(CryptError::BadIdentity(
                "no `AGE-SECRET-KEY-1...` line in it".into(),
            ));
        }
        Ok(Identities(ids))
    }

    /// Reads the identity: the variable the plan names (its text), else the file
    /// `CBK_IDENTITY_FILE` names.
    pub fn from_env(identity_env: Option<&str>) -> Result<Identities, CryptError> {
        if let Some(var) = identity_env
            && let Ok(text) = std::env::var(var)
        {
            return Self::parse(&text)
                .map_err(|e| CryptError::BadIdentity(format!("variable {var}: {e}")));
        }
        let Some(path) = std::env::var_os(IDENTITY_FILE_ENV) else {
            return Err(CryptError::NoIdentity {
                hint: identity_env
                    .map(|v| format!(" (or {v}, named by the plan, to its text)"))
                    .unwrap_or_default(),
            });
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            CryptError::BadIdentity(format!(
                "{IDENTITY_FILE_ENV}={}: {e}",
                std::path::Path::new(&path).display()
            ))
        })?;
        Self::parse(&text).map_err(|e| {
            CryptError::BadIdentity(format!(
                "{IDENTITY_FILE_ENV}={}: {e}",
                std::path::Path::new(&path).display()
            ))
        })
    }

    /// The identity file text (sent to agents on stdin only, like credentials).
    pub fn to_text(&self) -> SecretText {
        use age::secrecy::ExposeSecret;
        SecretText(
            self.0
                .iter()
                .map(|i| format!("{}\n", i.to_string().expose_secret()))
                .collect(),
        )
    }

    /// The public recipients of these identities.
    pub fn recipients(&self) -> Vec<String> {
        self.0.iter().map(|i| i.to_public().to_string()).collect()
    }

    fn as_dyn(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.0.iter().map(|i| i as &dyn age::Identity)
    }
}

/// Secret text in an agent request. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// What the repository marker records about encryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerEncryption {
    /// `age-x25519+chacha20poly1305-stream`.
    pub scheme: String,
    /// Fingerprints of the recipients (see [`fingerprint`]).
    pub recipients: Vec<String>,
}

/// The scheme name recorded in the marker. It is kept as it was when data frames moved to
/// AES-256-GCM (`cbk-enc3`): existing repositories keep their marker, and every data frame
/// names its own cipher by its magic, so readers never decide by the marker.
pub const SCHEME: &str = "age-x25519+chacha20poly1305-stream";

impl MarkerEncryption {
    pub fn of(r: &Recipients) -> MarkerEncryption {
        MarkerEncryption {
            scheme: SCHEME.into(),
            recipients: r.fingerprints(),
        }
    }
}
