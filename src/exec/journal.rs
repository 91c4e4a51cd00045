//! The journal: append-only JSON lines, fsync per record, replayed on the next apply.
//!
//! One record per task transition. `started` is durable before a task's `check`/`apply` runs,
//! `done`/`failed` after, so a crash at any moment leaves a journal from which the next apply
//! knows what is finished (skip it) and what may be half done (re-run its `check`).
//!
//! Records hold only what tasks hand over (summaries, structured data, checkpoints). Tasks must
//! never put secrets there: the journal is a plain file (or object) readable by operators.

use super::Checkpoints;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// How a task ended successfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneOutcome {
    /// `apply` ran and made the effect.
    Applied,
    /// `check` found the effect already there.
    Satisfied,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every task is done (applied or satisfied).
    Ok,
    /// Some tasks failed (and their dependents were skipped).
    Failed,
    /// Stopped by Ctrl-C or `--fail-fast` before every task ran; resumable.
    Interrupted,
    /// A different plan was applied over this unfinished run.
    Superseded,
}

impl RunStatus {
    /// The name used in records and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Superseded => "superseded",
        }
    }
}

/// One journal record (one JSON line, tagged by `event`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// An apply attempt began (written again by every resumed attempt).
    RunStarted {
        plan_digest: String,
        lineage: String,
        serial: u64,
        at: String,
        pid: u32,
        /// sha256 of the plan's source TOML, so `cbk apply x.toml` finds the run to resume
        /// (absent in journals written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_sha256: Option<String>,
        /// The plan's captured `now` (RFC 3339), reused when the run is resumed from the TOML.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        now: Option<String>,
    },
    Started {
        address: String,
        at: String,
    },
    Checkpoint {
        address: String,
        data: serde_json::Value,
    },
    Done {
        address: String,
        outcome: DoneOutcome,
        summary: String,
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        data: serde_json::Value,
        at: String,
    },
    Failed {
        address: String,
        error: String,
        at: String,
    },
    Skipped {
        address: String,
        reason: String,
        at: String,
    },
    RunFinished {
        status: RunStatus,
        at: String,
    },
}

/// Journal errors.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("journal `{path}` line {line} is not a valid record: {message}")]
    BadLine {
        path: String,
        line: usize,
        message: String,
    },
}

/// The current time as RFC 3339 UTC (what every record carries in `at`).
pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Parses journal text. A torn last line (a crash in the middle of a write) is ignored and
/// reported through the returned valid length; any other bad line is an error.
pub fn parse(path: &str, text: &[u8]) -> Result<(Vec<Record>, usize), JournalError> {
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut line_no = 0usize;
    while offset < text.len() {
        line_no += 1;
        let rest = &text[offset..];
        let (line, next, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], offset + i + 1, true),
            None => (rest, text.len(), false),
        };
        match serde_json::from_slice::<Record>(line) {
            Ok(r) if terminated => records.push(r),
            // An unterminated last line is torn even if it happens to parse: drop it.
            Ok(_) => break,
            Err(_) if !terminated => break,
            Err(e) => {
                return Err(JournalError::BadLine {
                    path: path.to_string(),
                    line: line_no,
                    message: e.to_string(),
                });
            }
        }
        offset = next;
    }
    Ok((records, offset))
}

/// Reads and parses a journal file.
pub fn replay(path: &Path) -> Result<Vec<Record>, JournalError> {
    let text = std::fs::read(path).map_err(|source| JournalError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(parse(&path.display().to_string(), &text)?.0)
}

/// What an earlier (interrupted) attempt of the same run left behind.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    /// Tasks journaled `done`, with their summary.
    pub done: HashMap<String, (DoneOutcome, String)>,
    /// Last checkpoint per address.
    pub checkpoints: HashMap<String, serde_json::Value>,
    /// Digest of the plan of the first `run_started`.
    pub plan_digest: Option<String>,
    /// Source digest and `now` of the plan of the first `run_started` (when recorded).
    pub source_sha256: Option<String>,
    pub now: Option<String>,
    /// Status of the last `run_finished`, if any.
    pub finished: Option<RunStatus>,
}

impl Prior {
    /// Folds records into what a resumed run needs.
    pub fn from_records(records: &[Record]) -> Prior {
        let mut p = Prior::default();
        for r in records {
            match r {
                Record::RunStarted {
                    plan_digest,
                    source_sha256,
                    now,
                    ..
                } => {
                    if p.plan_digest.is_none() {
                        p.plan_digest = Some(plan_digest.clone());
                        p.source_sha256 = source_sha256.clone();
                        p.now = now.clone();
                    }
                    p.finished = None;
                }
                Record::Started { address, .. } => {
                    p.done.remove(address);
                }
                Record::Checkpoint { address, data } => {
                    p.checkpoints.insert(address.clone(), data.clone());
                }
                Record::Done {
                    address,
                    outcome,
                    summary,
                    ..
                } => {
                    p.done.insert(address.clone(), (*outcome, summary.clone()));
                }
                Record::Failed { .. } | Record::Skipped { .. } => {}
                Record::RunFinished { status, .. } => p.finished = Some(*status),
            }
        }
        p
    }
}

/// Where appended records go.
enum Sink {
    /// A local file: `write_all` per record, then `sync_data` (shared by concurrent appenders:
    /// group commit), before `append` returns.
    File { file: File, written: u64 },
    /// A store: one object per record (`<prefix><seq>.json`), written before `append` returns.
    Store {
        store: Arc<dyn Store>,
        prefix: String,
        next: u64,
        handle: tokio::runtime::Handle,
    },
}

/// An open journal, appended to durably record by record.
pub struct Journal {
    describe: String,
    sink: Mutex<Sink>,
    /// For files: how many records are known durable, and a handle to fsync with.
    synced: Option<(Mutex<u64>, File)>,
    checkpoints: Mutex<HashMap<String, serde_json::Value>>,
}

impl Journal {
    /// Opens (creating) a journal file for appending. A torn last line is cut off first so the
    /// next record starts on a line of its own. `checkpoints` seeds [`Checkpoints::last`].
    pub fn open(
        path: &Path,
        checkpoints: HashMap<String, serde_json::Value>,
    ) -> Result<Journal, JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(io)?;
        let (_, valid) = parse(&path.display().to_string(), &text)?;
        if valid < text.len() {
            file.set_len(valid as u64).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        if let Some(dir) = path.parent() {
            super::state::fsync_dir(dir).map_err(io)?;
        }
        let sync_handle = file.try_clone().map_err(io)?;
        Ok(Journal {
            describe: path.display().to_string(),
            sink: Mutex::new(Sink::File { file, written: 0 }),
            synced: Some((Mutex::new(0), sync_handle)),
            checkpoints: Mutex::new(checkpoints),
        })
    }

    /// A journal in a store under `prefix`, continuing at record number `next`.
    /// Appends block the calling thread (`block_in_place`): use a multi-thread runtime.
    pub fn open_remote(
        store: Arc<dyn Store>,
        prefix: &str,
        next: u64,
        checkpoints: HashMap<String, serde_json::Value>,
    ) -> Journal {
        Journal {
            describe: format!("{}/{prefix}", store.describe()),
            sink: Mutex::new(Sink::Store {
                store,
                prefix: prefix.to_string(),
                next,
                handle: tokio::runtime::Handle::current(),
            }),
            synced: None,
            checkpoints: Mutex::new(checkpoints),
        }
    }

    /// Where the journal lives (a path or a store location).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Appends one record and makes it durable before returning.
    pub fn append(&self, record: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let poisoned = || std::io::Error::other("journal mutex poisoned");
        let seq = {
            let mut sink = self.sink.lock().map_err(|_| poisoned())?;
            match &mut *sink {
                Sink::File { file, written } => {
                    file.write_all(&line)?;
                    *written += 1;
                    *written
                }
                Sink::Store {
                    store,
                    prefix,
                    next,
                    handle,
                } => {
                    let key = segment_key(prefix, *next);
                    tokio::task::block_in_place(|| {
                        handle.block_on(store.put_bytes(&key, line.into()))
                    })
                    .map_err(std::io::Error::other)?;
                    *next += 1;
                    return Ok(());
                }
            }
        };
        // Group commit: one fsync makes every record written so far durable, so appenders
        // that queued behind a running fsync usually find their record already synced.
        let Some((synced, file)) = &self.synced else {
            return Ok(());
        };
        let mut synced = synced.lock().map_err(|_| poisoned())?;
        if *synced >= seq {
            return Ok(());
        }
        let target = match &*self.sink.lock().map_err(|_| poisoned())? {
            Sink::File { written, .. } => *written,
            Sink::Store { .. } => seq,
        };
        file.sync_data()?;
        *synced = target;
        Ok(())
    }
}

/// Key of record number `n` of a remote journal.
fn segment_key(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:010}.json")
}

/// Reads a remote journal: its records and the number of the next record.
/// `None` when it has no records.
pub async fn replay_remote(
    store: &dyn Store,
    prefix: &str,
) -> Result<Option<(Vec<Record>, u64)>, JournalError> {
    let err = |e: StoreError| JournalError::Io {
        path: format!("{}/{prefix}", store.describe()),
        source: std::io::Error::other(e.to_string()),
    };
    let objects = store.list(prefix).await.map_err(err)?;
    if objects.is_empty() {
        return Ok(None);
    }
    let mut records = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        if o.key != segment_key(prefix, i as u64) {
            return Err(JournalError::BadLine {
                path: format!("{}/{prefix}", store.describe()),
                line: i + 1,
                message: format!(
                    "expected record object {}, found {}",
                    segment_key(prefix, i as u64),
                    o.key
                ),
            });
        }
        let bytes = store.get_bytes(&o.key).await.map_err(err)?;
        let (mut r, _) = parse(&o.key, &bytes)?;
        if r.len() != 1 {
            return Err(JournalError::BadLine {
                path: o.key.clone(),
                line: 1,
                message: "a record object must hold exactly one record".into(),
            });
        }
        records.append(&mut r);
    }
    Ok(Some((records, objects.len() as u64)))
}

impl Checkpoints for Journal {
    fn last(&self, address: &str) -> Option<serde_json::Value> {
        self.checkpoints.lock().ok()?.get(address).cloned()
    }

    fn save(&self, address: &str, data: &serde_json::Value) -> std::io::Result<()> {
        self.append(&Record::Checkpoint {
            address: address.to_string(),
            data: data.clone(),
        })?;
        if let Ok(mut map) = self.checkpoints.lock() {
            map.insert(address.to_string(), data.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(a: &str) -> Record {
        Record::Started {
            address: a.into(),
            at: "t".into(),
        }
    }

    fn line(r: &Record) -> String {
        serde_json::to_string(r).expect("serialise") + "\n"
    }

    #[test]
    fn torn_last_line_is_ignored_and_cut_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.jsonl");
        let full = line(&started("a")) + &line(&started("b"));
        let torn = format!("{full}{{\"event\":\"done\",\"addr");
        std::fs::write(&path, &torn).expect("write");
        let records = replay(&path).expect("replay");
        assert_eq!(records, vec![started("a"), started("b")]);
        let j = Journal::open(&path, HashMap::new()).expect("open");
        j.append(&started("c")).expect("append");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, full + &line(&started("c")));
    }

    #[test]
    fn bad_line_in_the_middle_is_an_error_with_its_number() {
        let text = line(&started("a")) + "garbage\n" + &line(&started("b"));
        let err = parse("j", text.as_bytes()).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn unterminated_but_parsable_last_line_is_torn() {
        let text = line(&started("a")) + &serde_json::to_string(&started("b")).expect("json");
        let (records, valid) = parse("j", text.as_bytes()).expect("parse");
        assert_eq!(records, vec![started("a")]);
        assert_eq!(valid, line(&started("a")).len());
    }

    #[test]
    fn prior_keeps_done_and_last_checkpoint() {
        let recs = vec![
            Record::RunStarted {
                plan_digest: "d".into(),
                lineage: "l".into(),
                serial: 0,
                at: "t".into(),
                pid: 1,
                source_sha256: None,
                now: None,
            },
            started("a"),
            Record::Checkpoint {
                address: "a".into(),
                data: serde_json::json!({"n": 1}),
            },
            Record::Checkpoint {
                address: "a".into(),
                data: serde_json::json!({"n": 2}),
            },
            started("b"),
            Record::Done {
                address: "b".into(),
                outcome: DoneOutcome::Applied,
                summary: "ok".into(),
                data: serde_json::Value::Null,
                at: "t".into(),
            },
        ];
        let p = Prior::from_records(&recs);
        assert_eq!(p.plan_digest.as_deref(), Some("d"));
        assert_eq!(p.checkpoints["a"], serde_json::json!({"n": 2}));
        assert!(p.done.contains_key("b") && !p.done.contains_key("a"));
        assert_eq!(p.finished, None);
    }
}
