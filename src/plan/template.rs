//! Plan templates: minijinja in strict mode with a captured clock and a jiff `strftime` filter,
//! plus the checks that make backup names safe (unique over the years, sortable by time, valid
//! nodetool snapshot tags).

use jiff::Timestamp;
use jiff::tz::TimeZone;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

/// Variables a template may use.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub now: Option<String>,
    pub cluster: Option<String>,
    pub host: Option<String>,
    pub dc: Option<String>,
    pub rack: Option<String>,
    pub backup: Option<String>,
}

impl Vars {
    fn to_value(&self) -> Value {
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("now", &self.now),
            ("cluster", &self.cluster),
            ("host", &self.host),
            ("dc", &self.dc),
            ("rack", &self.rack),
            ("backup", &self.backup),
        ] {
            if let Some(v) = v {
                m.insert(k, Value::from(v.as_str()));
            }
        }
        Value::from(m)
    }
}

/// A template error: message and, when known, the byte range inside the template text.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub message: String,
    pub range: Option<Range<usize>>,
}

/// The template engine. Records the `strftime` formats used by the last render.
pub struct Engine {
    env: Environment<'static>,
    formats: Arc<Mutex<Vec<String>>>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// A strict environment with the `strftime` filter.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_debug(true);
        env.set_fuel(Some(50_000));
        env.set_recursion_limit(50);
        let formats: Arc<Mutex<Vec<String>>> = Arc::default();
        let rec = Arc::clone(&formats);
        env.add_filter(
            "strftime",
            move |value: String, fmt: String| -> Result<String, minijinja::Error> {
                rec.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(fmt.clone());
                strftime(&value, &fmt)
                    .map_err(|m| minijinja::Error::new(ErrorKind::InvalidOperation, m))
            },
        );
        Engine { env, formats }
    }

    /// Renders `src` with `vars`.
    pub fn render(&self, src: &str, vars: &Vars) -> Result<String, TemplateError> {
        self.formats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.env
            .render_str(src, vars.to_value())
            .map_err(|e| TemplateError {
                message: match e.detail() {
                    Some(d) => format!("{}: {d}", kind_text(e.kind())),
                    None => kind_text(e.kind()).to_owned(),
                },
                range: e.range(),
            })
    }

    /// The `strftime` formats used by the last [`Engine::render`].
    pub fn last_formats(&self) -> Vec<String> {
        self.formats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn kind_text(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::UndefinedError => "undefined variable",
        ErrorKind::SyntaxError => "template syntax error",
        ErrorKind::UnknownFilter => "unknown filter",
        ErrorKind::UnknownFunction => "unknown function",
        ErrorKind::InvalidOperation => "invalid operation",
        ErrorKind::MissingArgument | ErrorKind::TooManyArguments => "wrong arguments",
        _ => "template error",
    }
}

/// Formats an RFC 3339 timestamp in UTC with a strftime format (errors instead of panics).
pub fn strftime(value: &str, fmt: &str) -> Result<String, String> {
    let ts: Timestamp = value
        .parse()
        .map_err(|e| format!("`{value}` is not an RFC 3339 timestamp: {e}"))?;
    let zoned = ts.to_zoned_datetime(TimeZone::UTC);
    jiff::fmt::strtime::format(fmt, &zoned).map_err(|e| format!("bad strftime format `{fmt}`: {e}"))
}

/// Significance of a time field (higher = more significant).
fn ranks(spec: char) -> Result<&'static [u8], char> {
    Ok(match spec {
        'Y' | 'G' | 'y' | 'g' | 'C' => &[6],
        's' => &[7],
        'm' | 'U' | 'W' | 'V' | 'j' => &[5],
        'd' | 'e' => &[4],
        'H' | 'k' | 'I' | 'l' => &[3],
        'M' => &[2],
        'S' => &[1],
        'F' => &[6, 5, 4],
        'D' => &[5, 4, 6],
        'T' => &[3, 2, 1],
        'R' => &[3, 2],
        'b' | 'B' | 'h' => return Err(spec),
        _ => &[],
    })
}

/// Why a backup-name template is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum NameProblem {
    /// No year (or epoch seconds): names repeat every year.
    NoYear,
    /// A less significant field comes before a more significant one.
    Unsorted { first: String, later: String },
    /// Month names do not sort.
    MonthName(char),
}

/// Checks the strftime formats a backup-name template used, in order.
pub fn check_name_formats(formats: &[String]) -> Result<(), NameProblem> {
    let mut seq: Vec<(u8, String)> = Vec::new();
    for f in formats {
        let mut chars = f.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                continue;
            }
            let mut spec = String::from("%");
            while let Some(&n) = chars.peek() {
                if "-_0^#:".contains(n) || n.is_ascii_digit() {
                    spec.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            let Some(s) = chars.next() else { break };
            spec.push(s);
            if s == '%' {
                continue;
            }
            for r in ranks(s).map_err(NameProblem::MonthName)? {
                seq.push((*r, spec.clone()));
            }
        }
    }
    if !seq.iter().any(|(r, _)| *r >= 6 && *r != 0) {
        return Err(NameProblem::NoYear);
    }
    for w in seq.windows(2) {
        if w[1].0 > w[0].0 {
            return Err(NameProblem::Unsorted {
                first: w[0].1.clone(),
                later: w[1].1.clone(),
            });
        }
    }
    Ok(())
}

/// Whether `name` is a valid backup name / nodetool snapshot tag.
pub fn valid_backup_name(name: &str) -> bool {
    (1..=48).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn strftime_formats_utc() {
        assert_eq!(
            strftime("2026-03-01T02:03:04Z", "%Y%m%dT%H%M%SZ").unwrap(),
            "20260301T020304Z"
        );
        assert!(strftime("2026-03-01T02:03:04Z", "%!").is_err());
        assert!(strftime("2026-03-01T02:03:04Z", "%Y%").is_err());
        assert!(strftime("yesterday", "%Y").is_err());
    }

    #[test]
    fn name_checks() {
        assert_eq!(check_name_formats(&f(&["%U"])), Err(NameProblem::NoYear));
        assert_eq!(check_name_formats(&f(&[])), Err(NameProblem::NoYear));
        assert!(matches!(
            check_name_formats(&f(&["%d%m%Y"])),
            Err(NameProblem::Unsorted { .. })
        ));
        assert_eq!(
            check_name_formats(&f(&["%d-%b-%Y"])),
            Err(NameProblem::MonthName('b'))
        );
        assert_eq!(check_name_formats(&f(&["%Y%m%dT%H%M"])), Ok(()));
        assert_eq!(check_name_formats(&f(&["%G-W%V"])), Ok(()));
        assert_eq!(check_name_formats(&f(&["%F", "%H"])), Ok(()));
        assert_eq!(check_name_formats(&f(&["%-y%02m"])), Ok(()));
    }

    #[test]
    fn strict_undefined_and_recorded_formats() {
        let e = Engine::new();
        let vars = Vars {
            now: Some("2026-01-02T03:04:05Z".into()),
            cluster: Some("prod".into()),
            ..Vars::default()
        };
        assert_eq!(
            e.render("{{ cluster }}-{{ now | strftime('%Y%m%d') }}", &vars)
                .unwrap(),
            "prod-20260102"
        );
        assert_eq!(e.last_formats(), vec!["%Y%m%d".to_string()]);
        let err = e.render("x {{ hostt }}", &vars).unwrap_err();
        assert!(err.message.contains("undefined"), "{}", err.message);
        assert_eq!(err.range, Some(5..10));
    }

    #[test]
    fn backup_names() {
        assert!(valid_backup_name("prod-20260102T0300Z"));
        assert!(!valid_backup_name("a.b"));
        assert!(!valid_backup_name("a/b"));
        assert!(!valid_backup_name(""));
        assert!(!valid_backup_name(&"a".repeat(49)));
    }
}
