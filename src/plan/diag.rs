//! Diagnostics for plan files: every problem carries a byte span into the file, a message and a
//! hint, and all independent problems of one file are reported together.

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};
use std::ops::Range;
use std::sync::Arc;

/// One problem in a plan file.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(code(cbk::plan))]
pub struct PlanDiagnostic {
    /// One-sentence message (no trailing period).
    pub message: String,
    /// What to do about it.
    #[help]
    pub help: Option<String>,
    /// Short text under the caret.
    pub label_text: String,
    #[label("{label_text}")]
    pub span: Option<SourceSpan>,
    #[source_code]
    pub src: NamedSource<Arc<String>>,
}

impl PlanDiagnostic {
    /// Byte range the diagnostic points at.
    pub fn range(&self) -> Option<Range<usize>> {
        self.span.map(|s| s.offset()..s.offset() + s.len())
    }

    /// 1-based `(line, column)` of the span start (columns count characters).
    pub fn line_col(&self) -> Option<(usize, usize)> {
        let start = self.span?.offset();
        let text: &str = self.src.inner().as_str();
        let before = text.get(..start)?;
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((line, col))
    }
}

/// All problems found in one plan file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.summary())]
pub struct Diagnostics {
    /// File name as given on the command line.
    pub name: String,
    /// The problems, in file order.
    pub items: Vec<PlanDiagnostic>,
}

impl Diagnostics {
    /// `plan.toml: 3 errors`.
    pub fn summary(&self) -> String {
        let n = self.items.len();
        format!(
            "{}: {} error{}",
            self.name,
            n,
            if n == 1 { "" } else { "s" }
        )
    }

    /// Renders every diagnostic with miette's graphical handler (`color` picks the theme).
    pub fn render(&self, width: usize, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(width)
            .with_links(false);
        let mut out = String::new();
        for d in &self.items {
            if handler.render_report(&mut out, d).is_err() {
                out.push_str(&d.message);
            }
            out.push('\n');
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }
}

/// Collects diagnostics for one source file.
#[derive(Debug, Clone)]
pub struct Sink {
    name: String,
    source: Arc<String>,
    items: Vec<PlanDiagnostic>,
}

impl Sink {
    /// A sink for the file `name` with the text `source`.
    pub fn new(name: &str, source: &str) -> Self {
        Sink {
            name: name.to_owned(),
            source: Arc::new(source.to_owned()),
            items: Vec::new(),
        }
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Records a problem.
    pub fn error(
        &mut self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) {
        let span = span.map(|r| {
            let start = r.start.min(self.source.len());
            let end = r.end.clamp(start, self.source.len());
            SourceSpan::from(start..end)
        });
        self.items.push(PlanDiagnostic {
            message: message.into(),
            help,
            label_text: label.into(),
            span,
            src: NamedSource::new(self.name.clone(), Arc::clone(&self.source)),
        });
    }

    /// Whether anything was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of problems so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// `Ok(())` if nothing was recorded, else all problems sorted by position.
    pub fn finish(self) -> Result<(), Diagnostics> {
        if self.items.is_empty() {
            return Ok(());
        }
        Err(self.into_diagnostics())
    }

    /// All problems recorded, sorted by position.
    pub fn into_diagnostics(self) -> Diagnostics {
        let mut items = self.items;
        items.sort_by_key(|d| d.span.map_or(usize::MAX, |s| s.offset()));
        Diagnostics {
            name: self.name,
            items,
        }
    }
}

/// The closest candidate to `word` (Jaro-Winkler similarity above 0.8), for "did you mean".
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
