//! Storage URLs: the one place that knows which schemes cbk stores support and what a valid URL
//! of each looks like (the loader, `store::open`, `--storage`/`--state` all ask here).

use std::path::PathBuf;

/// What a storage URL should look like, for messages.
pub const EXPECTED: &str = "`s3://bucket/prefix` or `file:///absolute/path`";

/// A parsed storage URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `s3://bucket/prefix`: the prefix is empty or ends in `/`.
    S3 { bucket: String, prefix: String },
    /// `file:///absolute/path`.
    File { root: PathBuf },
}

/// Why a storage URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("unsupported storage URL `{0}`: expected {EXPECTED}")]
    UnknownScheme(String),
    #[error("`{0}` is not an absolute file URL: write `file:///absolute/path` (three slashes)")]
    FileNotAbsolute(String),
    #[error("invalid S3 bucket name `{bucket}`: {reason}")]
    Bucket {
        bucket: String,
        reason: &'static str,
    },
    #[error("bad prefix in `{url}`: {reason}")]
    Prefix { url: String, reason: String },
}

/// Whether `s` names a store (a known scheme) rather than a local folder or file.
pub fn is_store_url(s: &str) -> bool {
    s.starts_with("s3://") || s.starts_with("file://")
}

impl StoreUrl {
    /// Parses and checks a storage URL.
    pub fn parse(url: &str) -> Result<StoreUrl, UrlError> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(UrlError::FileNotAbsolute(url.to_string()));
            }
            return Ok(StoreUrl::File {
                root: PathBuf::from(path),
            });
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(UrlError::UnknownScheme(url.to_string()));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bad = |reason| UrlError::Bucket {
            bucket: bucket.to_string(),
            reason,
        };
        if bucket.is_empty() {
            return Err(bad("the bucket name is empty"));
        }
        if !(3..=63).contains(&bucket.len())
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(bad(
                "bucket names have 3-63 lowercase letters, digits, `-` or `.`",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            super::validate_key(prefix).map_err(|e| UrlError::Prefix {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        }
        Ok(StoreUrl::S3 {
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }
}

impl From<UrlError> for super::StoreError {
    fn from(e: UrlError) -> Self {
        let url = match &e {
            UrlError::UnknownScheme(u) | UrlError::FileNotAbsolute(u) => u.clone(),
            UrlError::Bucket { bucket, .. } => format!("s3://{bucket}"),
            UrlError::Prefix { url, .. } => url.clone(),
        };
        super::StoreError::InvalidUrl {
            url,
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_two_schemes_and_refuses_the_rest() {
        assert_eq!(
            StoreUrl::parse("s3://b-1/x/y/").unwrap(),
            StoreUrl::S3 {
                bucket: "b-1".into(),
                prefix: "x/y/".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("s3://bkt").unwrap(),
            StoreUrl::S3 {
                bucket: "bkt".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            StoreUrl::parse("file:///srv/b").unwrap(),
            StoreUrl::File {
                root: "/srv/b".into()
            }
        );
        assert!(matches!(
            StoreUrl::parse("file://srv/b"),
            Err(UrlError::FileNotAbsolute(_))
        ));
        assert!(matches!(
            StoreUrl::parse("gs://b/x"),
            Err(UrlError::UnknownScheme(_))
        ));
        for bad in ["s3:///x", "s3://Bucket/x", "s3://ab", "s3://user:pw@b/x"] {
            assert!(
                matches!(StoreUrl::parse(bad), Err(UrlError::Bucket { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            StoreUrl::parse("s3://bkt/x/../y"),
            Err(UrlError::Prefix { .. })
        ));
        assert!(is_store_url("s3://b") && is_store_url("file:///x") && !is_store_url("/x"));
    }
}
