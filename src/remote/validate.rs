//! Validation of names (keyspaces, tables, snapshot tags, hosts) before they reach a shell.
//!
//! Quoting already makes any string safe as one shell word; validation is the second wall: a
//! name that cannot be a Cassandra identifier, a snapshot tag, a host or a clean absolute path is
//! refused before any command is built, so nothing odd is ever sent to a node.

use super::{RemoteError, RemoteResult};

fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> RemoteError {
    RemoteError::Invalid {
        what,
        value: value.escape_debug().to_string(),
        reason: reason.into(),
    }
}

fn check_chars(
    what: &'static str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
    allowed_text: &str,
) -> RemoteResult<()> {
    if value.is_empty() {
        return Err(invalid(what, value, "must not be empty"));
    }
    if value.len() > max {
        return Err(invalid(
            what,
            value,
            format!("longer than {max} characters"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(invalid(
            what,
            value,
            format!(
                "character {:?} is not allowed (only {allowed_text})",
                bad.escape_debug().to_string()
            ),
        ));
    }
    Ok(())
}

/// A Cassandra identifier (keyspace or table name): `[A-Za-z0-9_]{1,48}`.
pub fn identifier(what: &'static str, value: &str) -> RemoteResult<()> {
    check_chars(
        what,
        value,
        48,
        |c| c.is_ascii_alphanumeric() || c == '_',
        "A-Z, a-z, 0-9 and _",
    )
}

/// A keyspace name.
pub fn keyspace(value: &str) -> RemoteResult<()> {
    identifier("keyspace name", value)
}

/// A table name.
pub fn table(value: &str) -> RemoteResult<()> {
    identifier("table name", value)
}

/// A snapshot tag: `[A-Za-z0-9_-]{1,48}`, not starting with `-` (it would read as an option).
pub fn snapshot_tag(value: &str) -> RemoteResult<()> {
    check_chars(
        "snapshot tag",
        value,
        48,
        |c| c.is_ascii_alphanumeric() || c == '_' || c == '-',
        "A-Z, a-z, 0-9, _ and -",
    )?;
    if value.starts_with('-') {
        return Err(invalid("snapshot tag", value, "must not start with `-`"));
    }
    Ok(())
}

/// A host name, ssh_config alias, IPv4 or IPv6 address (letters, digits, `.`, `-`, `_`, `:`),
/// at most 253 characters, not starting with `-`.
pub fn host(value: &str) -> RemoteResult<()> {
    check_chars(
        "host name",
        value,
        253,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'),
        "letters, digits, ., -, _ and :",
    )?;
    if value.starts_with('-') {
        return Err(invalid("host name", value, "must not start with `-`"));
    }
    Ok(())
}

/// A Unix user name: `[A-Za-z_][A-Za-z0-9_.-]{0,31}`.
pub fn user(value: &str) -> RemoteResult<()> {
    check_chars(
        "user name",
        value,
        32,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
        "letters, digits, _, . and -",
    )?;
    if !value.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err(invalid(
            "user name",
            value,
            "must start with a letter or `_`",
        ));
    }
    Ok(())
}

/// An absolute path without `..` components, NUL bytes or line breaks.
pub fn abs_path(value: &str) -> RemoteResult<()> {
    if !value.starts_with('/') {
        return Err(invalid("path", value, "must be absolute"));
    }
    if value.len() > 4096 {
        return Err(invalid("path", value, "longer than 4096 bytes"));
    }
    if value.contains(['\0', '\n', '\r']) {
        return Err(invalid(
            "path",
            value,
            "must not contain NUL bytes or line breaks",
        ));
    }
    if value.split('/').any(|part| part == "..") {
        return Err(invalid("path", value, "must not contain `..`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &[&str] = &[
        "a b; rm -rf /",
        "$(id)",
        "`id`",
        "x\ny",
        "it's",
        "\"q\"",
        "a;b",
        "a|b",
        "a&b",
        "a>b",
        "a\\b",
        "*",
        "../etc",
        "",
        "\0",
        "tab\there",
    ];

    #[test]
    fn identifiers() {
        for ok in ["ks", "Keyspace_1", "_x", "a".repeat(48).as_str(), "123"] {
            keyspace(ok).expect(ok);
            table(ok).expect(ok);
        }
        for bad in HOSTILE.iter().copied().chain(["a-b", "a.b", "ä"]) {
            assert!(keyspace(bad).is_err(), "{bad:?} accepted");
        }
        assert!(table(&"a".repeat(49)).is_err());
    }

    #[test]
    fn identifier_error_names_the_problem() {
        let e = keyspace("a b; rm -rf /").expect_err("rejected");
        assert_eq!(
            e.to_string(),
            "invalid keyspace name `a b; rm -rf /`: character \" \" is not allowed (only A-Z, a-z, 0-9 and _)"
        );
        let e = table("x\ny").expect_err("rejected");
        assert!(
            e.to_string().starts_with("invalid table name `x\\ny`"),
            "{e}"
        );
    }

    #[test]
    fn snapshot_tags() {
        for ok in ["cbk-20240101T000000Z", "a_b-c", "X"] {
            snapshot_tag(ok).expect(ok);
        }
        for bad in HOSTILE
            .iter()
            .copied()
            .chain(["-t", "--help", "a.b", "a/b"])
        {
            assert!(snapshot_tag(bad).is_err(), "{bad:?} accepted");
        }
        assert!(snapshot_tag(&"t".repeat(49)).is_err());
    }

    #[test]
    fn hosts() {
        for ok in [
            "node1",
            "cass-1.dc1.example.com",
            "127.0.0.2",
            "::1",
            "fe80::1",
            "my_alias",
        ] {
            host(ok).expect(ok);
        }
        for bad in HOSTILE
            .iter()
            .copied()
            .chain(["-oProxyCommand=id", "a@b", "h/x"])
        {
            assert!(host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn users() {
        for ok in ["root", "cassandra", "_svc", "a.b-c"] {
            user(ok).expect(ok);
        }
        for bad in HOSTILE.iter().copied().chain(["-u", "1abc", "a b"]) {
            assert!(user(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn paths() {
        for ok in ["/", "/var/lib/cassandra", "/a b/c'd", "/x/..y/z.."] {
            abs_path(ok).expect(ok);
        }
        for bad in [
            "relative/path",
            "",
            "/a/../b",
            "/..",
            "/a/b/..",
            "/a\nb",
            "/a\rb",
            "/a\0b",
            "~/x",
        ] {
            assert!(abs_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
