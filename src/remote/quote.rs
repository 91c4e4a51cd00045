//! Quoting for POSIX shells: every argument that reaches a remote shell passes through here.
//!
//! Both transports hand a single command line to a POSIX shell (`sh -c LINE` locally, the login
//! shell over SSH), so a [`Cmd`] behaves the same on both. Arguments are single-quoted: inside
//! single quotes a POSIX shell interprets nothing, and a quote itself is written as `'\''`.

use super::Cmd;

/// Characters that never need quoting (a conservative subset of what POSIX allows).
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ',' | ':' | '@' | '%' | '+')
}

/// Quotes one argument for a POSIX shell. The result is a single word whose value is exactly `s`.
pub fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(is_plain) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes every word and joins them with spaces.
pub fn join<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a transport elevates commands whose [`Cmd::sudo`] is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sudo {
    /// Elevation is configured (the plan's `sudo = true`, or a `sudo_user`).
    pub enabled: bool,
    /// `sudo -u USER` (root when `None`).
    pub user: Option<String>,
}

impl Sudo {
    /// From the plan's `connection.sudo` / `connection.sudo_user` (a `sudo_user` implies sudo).
    pub fn from_plan(sudo: bool, user: Option<&str>) -> super::RemoteResult<Self> {
        if let Some(u) = user {
            super::validate::user(u)?;
        }
        Ok(Sudo {
            enabled: sudo || user.is_some(),
            user: user.map(str::to_string),
        })
    }

    /// `words` prefixed with `sudo -n [-u USER] --` (unchanged when sudo is not configured).
    pub fn wrap(&self, words: Vec<String>) -> Vec<String> {
        if !self.enabled {
            return words;
        }
        let mut out = vec!["sudo".to_string(), "-n".to_string()];
        if let Some(u) = &self.user {
            out.push("-u".to_string());
            out.push(u.clone());
        }
        out.push("--".to_string());
        out.extend(words);
        out
    }
}

/// The full command line a shell runs for `cmd`: a trusted snippet as written, or the quoted
/// program and arguments; elevated with `sudo -n [-u USER] --` when `cmd.sudo` and sudo is
/// configured (a snippet then runs under `sudo ... sh -c SNIPPET`).
pub fn command_line(cmd: &Cmd, sudo: &Sudo) -> String {
    let elevate = cmd.sudo && sudo.enabled;
    match &cmd.shell {
        Some(snippet) if !elevate => snippet.clone(),
        Some(snippet) => join(sudo.wrap(vec!["sh".into(), "-c".into(), snippet.clone()])),
        None => {
            let words: Vec<String> = std::iter::once(&cmd.program)
                .chain(&cmd.args)
                .cloned()
                .collect();
            if elevate {
                join(sudo.wrap(words))
            } else {
                join(words)
            }
        }
    }
}

/// A short description of a command for error messages (program name or the snippet's start).
pub fn describe(cmd: &Cmd) -> String {
    match &cmd.shell {
        Some(s) => {
            let first = s.lines().next().unwrap_or("");
            if first.chars().count() > 60 || s.contains('\n') {
                format!("{}...", first.chars().take(60).collect::<String>())
            } else {
                first.to_string()
            }
        }
        None => cmd.program.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `sh -c 'printf "%s\n" WORD'` and returns what the shell saw as the argument.
    fn through_sh(arg: &str) -> String {
        let line = format!("printf '%s' {}", quote(arg));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "sh failed for {line:?}");
        String::from_utf8(out.stdout).expect("utf8")
    }

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(quote("nodetool"), "nodetool");
        assert_eq!(quote("/var/lib/cassandra/data"), "/var/lib/cassandra/data");
        assert_eq!(quote("ks_1.tbl-2"), "ks_1.tbl-2");
    }

    #[test]
    fn hostile_words_are_one_literal_argument() {
        for hostile in [
            "a b; rm -rf /",
            "$(id)",
            "`id`",
            "x\ny",
            "it's",
            "'",
            "''",
            "\"q\"",
            "a\\b",
            "*",
            "~root",
            "$HOME",
            "",
            "-n",
            "a|b&c>d<e",
            "\t",
            "ünïcödé",
        ] {
            assert_eq!(through_sh(hostile), hostile, "quoted as {}", quote(hostile));
        }
    }

    #[test]
    fn hostile_word_does_not_execute() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("pwned");
        let hostile = format!("a; touch {}", marker.display());
        let hostile2 = format!("$(touch {})", marker.display());
        for h in [hostile, hostile2] {
            let cmd = Cmd::new("echo").arg(h.clone());
            let line = command_line(&cmd, &Sudo::default());
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{h}\n"));
            assert!(!marker.exists(), "{line} executed its argument");
        }
    }

    #[test]
    fn command_lines() {
        let cmd = Cmd::new("nodetool").args(["snapshot", "-t", "my tag"]);
        assert_eq!(
            command_line(&cmd, &Sudo::default()),
            "nodetool snapshot -t 'my tag'"
        );
        let mut elevated = cmd.clone();
        elevated.sudo = true;
        // Sudo not configured: the flag alone does nothing.
        assert_eq!(
            command_line(&elevated, &Sudo::default()),
            "nodetool snapshot -t 'my tag'"
        );
        let sudo = Sudo::from_plan(false, Some("cassandra")).expect("valid user");
        assert_eq!(
            command_line(&elevated, &sudo),
            "sudo -n -u cassandra -- nodetool snapshot -t 'my tag'"
        );
        let root = Sudo::from_plan(true, None).expect("valid");
        assert_eq!(
            command_line(&elevated, &root),
            "sudo -n -- nodetool snapshot -t 'my tag'"
        );
        let mut snippet = Cmd::shell("cd /tmp && ls | wc -l");
        assert_eq!(command_line(&snippet, &sudo), "cd /tmp && ls | wc -l");
        snippet.sudo = true;
        assert_eq!(
            command_line(&snippet, &sudo),
            "sudo -n -u cassandra -- sh -c 'cd /tmp && ls | wc -l'"
        );
    }

    #[test]
    fn hostile_sudo_user_is_rejected() {
        assert!(Sudo::from_plan(true, Some("root; id")).is_err());
        assert!(Sudo::from_plan(true, Some("-u")).is_err());
    }

    #[test]
    fn describe_shortens_snippets() {
        assert_eq!(describe(&Cmd::new("nodetool").arg("x")), "nodetool");
        assert_eq!(describe(&Cmd::shell("a\nb")), "a...");
    }
}
