//! The top of a plan: `version`, `kind`, `[cluster]` present, and the sections each kind needs
//! or refuses.

use super::shape::Parts;
use super::{Doc, K};
use crate::plan::diag::Sink;
use crate::plan::model::PlanKind;

/// Checks the top-level keys and which sections the plan's kind needs or refuses.
pub fn check(sink: &mut Sink, doc: &Doc<'_>, p: &Parts) {
    // Missing top-level keys point at the first key of the file (after leading comments).
    let first = doc
        .root
        .get_ref()
        .keys()
        .map(|k| k.span().start)
        .min()
        .unwrap_or(0);
    let top = Some(first..first);
    match p.version {
        Some(1) => {}
        Some(v) => sink.error(
            doc.value(&[K("version")]),
            format!("unsupported plan format version `{v}`"),
            "only version 1 exists",
            Some("set `version = 1`".into()),
        ),
        None if !p.present.contains("version") => sink.error(
            top.clone(),
            "missing key `version`",
            "the plan starts here",
            Some("add `version = 1` at the top of the file".into()),
        ),
        None => {}
    }
    if p.kind.is_none() && !p.present.contains("kind") {
        sink.error(
            top.clone(),
            "missing key `kind`",
            "the plan starts here",
            Some("add `kind = \"backup\"`, `\"restore\"` or `\"runbook\"`".into()),
        );
    }
    if p.cluster.is_none() && !p.present.contains("cluster") {
        sink.error(
            top.clone(),
            "missing section `[cluster]`",
            "the plan starts here",
            Some("add `[cluster]` with `name` and `hosts`".into()),
        );
    }
    // Sections required or refused by the kind.
    if let Some(kind) = p.kind {
        let kspan = doc.value(&[K("kind")]);
        let (need, refuse): (&[&str], &[&str]) = match kind {
            PlanKind::Backup => (&["storage", "backup"], &["restore"]),
            PlanKind::Restore => (&["storage", "restore"], &["backup"]),
            PlanKind::Runbook => (&[], &[]),
        };
        let kname = serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        for s in need {
            if !p.present.contains(*s) {
                sink.error(
                    kspan.clone(),
                    format!("a {kname} plan needs a `[{s}]` section"),
                    format!("`[{s}]` is missing"),
                    Some(format!("add a `[{s}]` table (see docs/plan-format.md)")),
                );
            }
        }
        for s in refuse {
            if p.present.contains(*s) {
                sink.error(
                    doc.key(&[K(s)]),
                    format!("a {kname} plan cannot have a `[{s}]` section"),
                    "not used by this kind",
                    Some("remove it, or change `kind`".into()),
                );
            }
        }
        if kind == PlanKind::Runbook && p.steps.is_empty() && !p.present.contains("step") {
            sink.error(
                kspan,
                "a runbook plan needs at least one `[[step]]`",
                "no steps",
                Some("add `[[step]]` tables with `name` and `run`".into()),
            );
        }
    }
}
