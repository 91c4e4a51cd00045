//! Where state lives (.cbk/<plan stem>/ beside the plan, --state DIR) and its lineage/serial.
//!
//! Layout of a state folder:
//! - `state.json`: `{lineage, serial, last_run}`, replaced atomically (tmp + fsync + rename +
//!   directory fsync). `lineage` is random and created once; `serial` grows by one each time a
//!   run finishes (ok, or superseded by another plan).
//! - `runs/NNNNNNNN.jsonl`: the journal of the run that will move the state to serial N. While
//!   it has no final `run_finished{ok}` the run is open: the same saved plan resumes it.
//! - `lock`: the file lock (see [`super::lock`]).

use crate::graph::run::StateRef;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the default state folder.
pub const DEFAULT_DIR: &str = ".cbk";

/// State errors.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state file `{path}` is corrupt: {message}")]
    Corrupt { path: String, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The contents of `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    pub lineage: String,
    pub serial: u64,
    /// File name (under `runs/`) of the last finished run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
}

impl StateFile {
    /// The reference a plan records in `prior_state`.
    pub fn as_ref(&self) -> StateRef {
        StateRef {
            lineage: self.lineage.clone(),
            serial: self.serial,
        }
    }
}

/// fsyncs a directory so a rename or a new file in it is durable.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Replaces a file atomically: write a temporary file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    fsync_dir(dir)
}

/// A random lineage id (128 bits, hex).
pub(crate) fn new_lineage() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// The default state folder for a plan: `.cbk/<plan stem>/` beside the plan's source TOML
/// (`source.path`, as recorded at planning, relative to the working directory). One folder per
/// plan: plans kept side by side never share a lineage, a lock or an unfinished run.
pub fn default_dir(source_path: &Path) -> PathBuf {
    let base = match source_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(DEFAULT_DIR),
        _ => PathBuf::from(DEFAULT_DIR),
    };
    match source_path.file_stem() {
        Some(stem) => base.join(stem),
        None => base,
    }
}

/// Reads the state reference without creating anything (for the planner's `prior_state`).
/// `None` when the folder has no state yet.
pub fn current_ref(dir: &Path) -> Result<Option<StateRef>, StateError> {
    let path = dir.join("state.json");
    match std::fs::read(&path) {
        Ok(bytes) => parse_state(&path, &bytes).map(|s| Some(s.as_ref())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

fn parse_state(path: &Path, bytes: &[u8]) -> Result<StateFile, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// A local state folder.
#[derive(Debug, Clone)]
pub struct LocalState {
    dir: PathBuf,
}

impl LocalState {
    /// Opens (creating) a state folder.
    pub fn open(dir: &Path) -> Result<LocalState, StateError> {
        let runs = dir.join("runs");
        std::fs::create_dir_all(&runs).map_err(io_err(&runs))?;
        Ok(LocalState {
            dir: dir.to_path_buf(),
        })
    }

    /// Opens an existing state folder without creating it (for `cbk state`).
    pub fn existing(dir: &Path) -> LocalState {
        LocalState {
            dir: dir.to_path_buf(),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// Reads `state.json`, or `None` if there is none yet.
    pub fn read(&self) -> Result<Option<StateFile>, StateError> {
        let path = self.dir.join("state.json");
        match std::fs::read(&path) {
            Ok(bytes) => parse_state(&path, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Reads `state.json`, creating it (new lineage, serial 0) if there is none yet.
    pub fn load_or_init(&self) -> Result<StateFile, StateError> {
        if let Some(s) = self.read()? {
            return Ok(s);
        }
        let s = StateFile {
            lineage: new_lineage(),
            serial: 0,
            last_run: None,
        };
        self.save(&s)?;
        Ok(s)
    }

    /// Replaces `state.json` atomically.
    pub fn save(&self, s: &StateFile) -> Result<(), StateError> {
        let path = self.dir.join("state.json");
        let mut bytes = serde_json::to_vec_pretty(s).map_err(|e| StateError::Corrupt {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes).map_err(io_err(&path))
    }

    /// File name of the journal of the run that moves the state from `serial` to `serial + 1`.
    pub fn run_name(serial: u64) -> String {
        format!("{:08}.jsonl", serial + 1)
    }

    /// Path of a run's journal.
    pub fn run_path(&self, name: &str) -> PathBuf {
        self.dir.join("runs").join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_is_created_once_and_serial_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = LocalState::open(dir.path()).expect("open");
        assert_eq!(current_ref(dir.path()).expect("ref"), None);
        let mut s = st.load_or_init().expect("init");
        assert_eq!(s.serial, 0);
        assert_eq!(s.lineage.len(), 32);
        s.serial = 7;
        st.save(&s).expect("save");
        let again = LocalState::open(dir.path())
            .expect("open")
            .load_or_init()
            .expect("load");
        assert_eq!(again, s);
        assert_eq!(
            current_ref(dir.path()).expect("ref"),
            Some(StateRef {
                lineage: s.lineage.clone(),
                serial: 7
            })
        );
    }

    #[test]
    fn default_dir_is_beside_the_source() {
        assert_eq!(
            default_dir(Path::new("plans/backup.toml")),
            PathBuf::from("plans/.cbk/backup")
        );
        assert_eq!(
            default_dir(Path::new("backup.toml")),
            PathBuf::from(".cbk/backup")
        );
    }
}
