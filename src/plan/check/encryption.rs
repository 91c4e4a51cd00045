//! `[encryption]`: age recipients (never an identity), no KMS wrapping yet, and the name of the
//! variable that holds the identity.

use super::secrets::is_age_identity;
use super::{Doc, I, K};
use crate::plan::diag::Sink;
use crate::plan::model::EncryptionConfig;

/// Checks `[encryption]`.
pub fn check(sink: &mut Sink, doc: &Doc<'_>, e: &EncryptionConfig) {
    if e.recipients.is_empty() {
        sink.error(
            doc.value(&[K("encryption"), K("recipients")]),
            "`[encryption]` needs at least one recipient",
            "empty list",
            Some("add an age public key, e.g. `recipients = [\"age1...\"]` (`age-keygen -y KEYFILE` prints it)".into()),
        );
    }
    for (i, r) in e.recipients.iter().enumerate() {
        if is_age_identity(r) {
            sink.error(
                doc.value(&[K("encryption"), K("recipients"), I(i)]),
                "`recipients` holds an age identity (private key), not a recipient",
                "a private key",
                Some("write its public key (`age-keygen -y KEYFILE` prints it); the identity goes in the file CBK_IDENTITY_FILE names, never in a plan".into()),
            );
            continue;
        }
        if let Err(why) = crate::crypt::Recipients::parse_one(r) {
            sink.error(
                doc.value(&[K("encryption"), K("recipients"), I(i)]),
                format!("invalid age recipient `{r}`: {why}"),
                "not an age X25519 public key",
                Some("write the public key `age1...` (bech32, from `age-keygen`); never put the identity `AGE-SECRET-KEY-1...` in a plan".into()),
            );
        }
    }
    if e.kms_key_id.is_some() {
        sink.error(
            doc.value(&[K("encryption"), K("kms_key_id")]),
            "`kms_key_id` is not yet supported",
            "KMS wrapping of data keys",
            Some("remove it and use age `recipients`; keep SSE-KMS in `[storage]` for server-side encryption".into()),
        );
    }
    if let Some(v) = &e.identity_env
        && (v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        sink.error(
            doc.value(&[K("encryption"), K("identity_env")]),
            "`identity_env` is not an environment variable name",
            "bad name",
            Some(
                "name the variable that holds the identity, e.g. `identity_env = \"CBK_IDENTITY\"`"
                    .into(),
            ),
        );
    }
}
