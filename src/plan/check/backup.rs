//! `[backup]`: table patterns, the codec, and the name template (it must hold a year, sort by
//! time and render to a valid snapshot tag).

use super::{Ctx, K, check_globs};
use crate::plan::diag::Sink;
use crate::plan::model::BackupConfig;
use crate::plan::template::{NameProblem, Vars, check_name_formats, valid_backup_name};

/// Checks `[backup]`; returns the rendered backup name and, with it, the start every name of
/// the template shares (the snapshot tag prefix).
pub fn check(
    sink: &mut Sink,
    ctx: &Ctx<'_, '_>,
    b: &BackupConfig,
    vars: &Vars,
) -> (Option<String>, Option<String>) {
    let name = name(sink, ctx, b, vars);
    let prefix = name.as_ref().and_then(|_| tag_prefix(ctx, b, vars));
    (name, prefix)
}

fn name(sink: &mut Sink, ctx: &Ctx<'_, '_>, b: &BackupConfig, vars: &Vars) -> Option<String> {
    let doc = ctx.doc;
    check_globs(sink, doc, "backup", "include", &b.include);
    check_globs(sink, doc, "backup", "exclude", &b.exclude);
    if let Some(c) = &b.codec {
        let ok = match c.split_once(':') {
            Some(("zstd", lvl)) => lvl.parse::<i32>().is_ok_and(|l| (1..=22).contains(&l)),
            None => ["zstd", "lz4", "none"].contains(&c.as_str()),
            _ => false,
        };
        if !ok {
            sink.error(
                doc.value(&[K("backup"), K("codec")]),
                format!("unknown codec `{c}`"),
                "unknown codec",
                Some("expected `zstd`, `zstd:LEVEL` (1-22), `lz4` or `none`".into()),
            );
        }
    }
    let path = [K("backup"), K("name")];
    let name = ctx.render(sink, &path, &b.name, vars)?;
    let span = doc.value(&path);
    let formats = ctx.engine.last_formats();
    match check_name_formats(&formats) {
        Ok(()) => {}
        Err(NameProblem::NoYear) => {
            sink.error(
                span,
                "the backup name template has no year, so names would repeat",
                "no year in this name",
                Some(
                    "backup names must be unique over time: the tool cbk replaces used `%U` (week of year) \
                     alone, so week 12 of one year overwrote week 12 of the year before; include `%Y`, \
                     e.g. `{{ now | strftime('%Y%m%dT%H%MZ') }}`"
                        .into(),
                ),
            );
            return None;
        }
        Err(NameProblem::Unsorted { first, later }) => {
            sink.error(
                span,
                format!("the backup name template does not sort by time: `{first}` comes before `{later}`"),
                "not sortable",
                Some(
                    "names are compared as strings to find the latest backup, so the most significant field \
                     must come first: year, month, day, hour, minute (e.g. `%Y%m%dT%H%M`)"
                        .into(),
                ),
            );
            return None;
        }
        Err(NameProblem::MonthName(c)) => {
            sink.error(
                span,
                format!("month names (`%{c}`) do not sort by time"),
                "not sortable",
                Some("use the month number `%m` instead".into()),
            );
            return None;
        }
    }
    if !valid_backup_name(&name) {
        sink.error(
            span,
            format!("the backup name renders as `{name}`, which is not a valid snapshot tag"),
            "invalid rendered name",
            Some("backup names become nodetool snapshot tags: 1-48 characters from `A-Z a-z 0-9 _ -` (no `.`, `/` or `:`)".into()),
        );
        return None;
    }
    Some(name)
}

/// The part of the backup name template that does not depend on the time (`nightly-` of
/// `nightly-{{ now | strftime('%Y%m%dT%H%MZ') }}`): the common start of the name rendered at
/// two instants that differ in every field's first character. Empty when the name starts with
/// the time.
fn tag_prefix(ctx: &Ctx<'_, '_>, b: &BackupConfig, vars: &Vars) -> Option<String> {
    let at = |now: &str| {
        ctx.engine
            .render(
                &b.name,
                &Vars {
                    now: Some(now.to_owned()),
                    ..vars.clone()
                },
            )
            .ok()
    };
    let (a, z) = (at("1999-12-31T23:59:59Z")?, at("2088-01-01T00:00:00Z")?);
    let common: String = a
        .chars()
        .zip(z.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    (!common.is_empty()).then_some(common)
}
