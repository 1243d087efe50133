//! Run records on disk: `<git-common-dir>/agent/runs/<run-id>/`.
//!
//! `run.json` is written atomically (write, fsync, rename) so a crash never
//! leaves half a record; `events.jsonl` is append-only and a truncated last
//! line is skipped when read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::event::Event;

/// Where a run is in its life. Terminal states are the outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting in the repository's queue for the supervisor (`run --detach`).
    Queued,
    Preparing,
    Running,
    Verifying,
    Checking,
    Committing,
    /// Pushing, opening the pull request (only while the record is shown:
    /// the record keeps its outcome underneath).
    Delivering,
    Succeeded,
    Failed,
    Escalated,
    Interrupted,
}

impl State {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Succeeded | State::Failed | State::Escalated | State::Interrupted
        )
    }

    /// The stable outcome shown to scripts: `running` until terminal.
    pub fn outcome(self) -> &'static str {
        match self {
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Escalated => "escalated",
            State::Interrupted => "interrupted",
            State::Queued => "queued",
            _ => "running",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Preparing => "preparing",
            State::Running => "agent",
            State::Verifying => "verifying",
            State::Checking => "checking",
            State::Committing => "committing",
            State::Delivering => "delivering",
            other => other.outcome(),
        }
    }
}

pub use crate::model::check::CheckSummary;

/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: u32,
    pub run_id: String,
    pub task: String,
    pub title: String,
    pub brief_path: String,
    pub brief_blob: String,
    pub agent: String,
    pub state: State,
    pub base_ref: String,
    pub base_commit: Option<String>,
    /// The branch `base_ref` named when the run started (`HEAD`: the one
    /// checked out): what a pull request targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub attempts: u32,
    pub max_attempts: u32,
    pub worktree: Option<PathBuf>,
    /// Why the run failed, escalated or was interrupted.
    pub reason: Option<String>,
    pub checks: Vec<CheckSummary>,
    /// The process that owns the run while it is not terminal.
    pub pid: u32,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// Delivery to the forge, when the brief asks for more than a branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<crate::model::delivery::DeliveryRecord>,
    /// When the run was queued (`run --detach`) and how it was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<Queued>,
    /// Where `git agent land` brought the result, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landed: Option<crate::model::landing::Landing>,
    /// What the agent CLI reported of the run's tokens and cost, summed
    /// over its attempts (absent: not reported).
    #[serde(
        default,
        skip_serializing_if = "crate::model::usage::Usage::unreported"
    )]
    pub usage: crate::model::usage::Usage,
    /// `after:`: the results the run started from, the branch it stacks on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<crate::model::chain::Chain>,
    /// Results of runs beside it (overlapping write scopes, not chained)
    /// that this one's does not merge with cleanly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<crate::model::chain::Conflict>,
}

/// A detached request waiting for the supervisor: what `-j` and
/// `--allow-overlap` said when it was queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub at: String,
    /// The most runs alive at once when this one starts.
    pub jobs: usize,
    pub allow_overlap: bool,
}

impl RunRecord {
    /// A record with its identity only: every other part empty or absent.
    /// The one place that knows all the fields; the others override what
    /// they know (`RunRecord { state, ..RunRecord::blank(id, task) }`).
    pub fn blank(run_id: &str, task: &str) -> RunRecord {
        RunRecord {
            schema: 1,
            run_id: run_id.to_string(),
            task: task.to_string(),
            title: String::new(),
            brief_path: String::new(),
            brief_blob: String::new(),
            agent: String::new(),
            state: State::Preparing,
            base_ref: String::new(),
            base_commit: None,
            base_branch: None,
            branch: None,
            commit: None,
            attempts: 0,
            max_attempts: 0,
            worktree: None,
            reason: None,
            checks: Vec::new(),
            pid: 0,
            started_at: String::new(),
            finished_at: None,
            duration_ms: None,
            delivery: None,
            queued: None,
            landed: None,
            usage: Default::default(),
            chain: None,
            conflicts: Vec::new(),
        }
    }

    /// Whether a non-terminal record's owner is gone (killed, machine died).
    /// A queued run has no owner yet: it waits for a supervisor.
    pub fn is_orphaned(&self) -> bool {
        !self.state.is_terminal() && self.state != State::Queued && !pid_alive(self.pid)
    }

    /// The state as it really is: an orphaned run counts as interrupted.
    pub fn effective_state(&self) -> State {
        if self.is_orphaned() {
            State::Interrupted
        } else {
            self.state
        }
    }
}

pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    // Signal 0 checks existence; EPERM means it exists but is not ours.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
        Ok(()) => !is_zombie(pid),
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// All run records of a repository.
/// A run's place in its store's order of creation.
const SEQ_FILE: &str = "seq";

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(common_dir: &Path) -> Store {
        Store {
            dir: common_dir.join("agent").join("runs"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory of a new run with a unique, sortable id:
    /// `<utc yyyymmdd-hhmmss>-<task>-<4 hex>`.
    pub fn create(&self, task: &str) -> io::Result<RunDir> {
        fs::create_dir_all(&self.dir)?;
        let stamp = crate::model::time::now_compact();
        for _ in 0..64 {
            let suffix: u16 = rand::random();
            let id = format!("{stamp}-{task}-{suffix:04x}");
            let path = self.dir.join(&id);
            match fs::create_dir(&path) {
                Ok(()) => {
                    let dir = RunDir { id, path };
                    // Order of creation, whatever the clock says (NTP steps).
                    fs::write(dir.path.join(SEQ_FILE), self.next_seq()?.to_string())?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("could not find a free run id"))
    }

    pub fn open(&self, run_id: &str) -> RunDir {
        RunDir {
            id: run_id.to_string(),
            path: self.dir.join(run_id),
        }
    }

    /// The next number of the store's counter (`runs/.seq`, under an
    /// exclusive lock across processes).
    fn next_seq(&self) -> io::Result<u64> {
        use std::io::{Read, Seek};
        use std::os::fd::AsRawFd;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join(".seq"))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let next = text.trim().parse::<u64>().unwrap_or(0) + 1;
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(next.to_string().as_bytes())?;
        Ok(next)
    }

    /// Every readable record, oldest first. Unreadable ones are skipped
    /// (a run directory whose record was never written).
    pub fn list(&self) -> io::Result<Vec<RunRecord>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let dir = RunDir {
                id: entry.file_name().to_string_lossy().into_owned(),
                path: entry.path(),
            };
            match dir.read_record() {
                Ok(record) => out.push(record),
                // Damaged: as much as its events tell (see `salvage`).
                Err(e) if e.kind() == io::ErrorKind::InvalidData || dir.events_path().exists() => {
                    out.extend(dir.salvage(&e.to_string()));
                }
                Err(_) => {}
            }
        }
        // Creation order first (a clock stepped back would otherwise make
        // an older run the "latest"); older stores have no counter (0).
        let seq = |r: &RunRecord| {
            fs::read_to_string(self.dir.join(&r.run_id).join(SEQ_FILE))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut keyed: Vec<(u64, RunRecord)> = out.into_iter().map(|r| (seq(&r), r)).collect();
        keyed.sort_by(|(sa, a), (sb, b)| {
            sa.cmp(sb)
                .then(a.started_at.cmp(&b.started_at))
                .then(a.run_id.cmp(&b.run_id))
        });
        Ok(keyed.into_iter().map(|(_, r)| r).collect())
    }

    /// Finds a run by exact id, unique id prefix, or task id (its latest run).
    pub fn resolve(&self, query: &str) -> Result<RunRecord, ResolveError> {
        let all = self.list().map_err(ResolveError::Read)?;
        if let Some(r) = all.iter().find(|r| r.run_id == query) {
            return Ok(r.clone());
        }
        if let Some(r) = all.iter().rev().find(|r| r.task == query) {
            return Ok(r.clone());
        }
        let matches: Vec<&RunRecord> = all.iter().filter(|r| r.run_id.starts_with(query)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ResolveError::NotFound(query.to_string())),
            many => Err(ResolveError::Ambiguous {
                query: query.to_string(),
                runs: many
                    .iter()
                    .map(|r| {
                        format!(
                            "{} ({} {})",
                            r.run_id,
                            r.task,
                            r.effective_state().outcome()
                        )
                    })
                    .collect(),
            }),
        }
    }
}

/// Why [`Store::resolve`] found no single run.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("could not read runs: {0}")]
    Read(#[source] io::Error),
    #[error("no run or task named `{0}`")]
    NotFound(String),
    #[error("`{query}` matches {} runs: {}; give more of a run id", runs.len(), candidates(runs))]
    Ambiguous {
        query: String,
        /// Each candidate: its id, task and state.
        runs: Vec<String>,
    },
}

/// The candidates of an ambiguous query, the first ten of them.
fn candidates(runs: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = runs[..runs.len().min(SHOWN)].join(", ");
    if runs.len() > SHOWN {
        text.push_str(&format!(" and {} more", runs.len() - SHOWN));
    }
    text
}

/// One run's directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub id: String,
    pub path: PathBuf,
}

impl RunDir {
    pub fn record_path(&self) -> PathBuf {
        self.path.join("run.json")
    }
    pub fn events_path(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }
    pub fn prompt_path(&self) -> PathBuf {
        self.path.join("prompt.md")
    }
    pub fn feedback_path(&self) -> PathBuf {
        self.path.join("feedback.md")
    }
    pub fn decisions_path(&self) -> PathBuf {
        self.path.join("decisions.jsonl")
    }
    /// The agent CLI's side files (aider's chat history, Copilot's usage
    /// figures): the one directory of the run the agent may write.
    pub fn side_dir(&self) -> PathBuf {
        self.path.join("agent-files")
    }
    /// `git agent stop` writes this file; the process running the run
    /// watches for it (`graceful` or `kill` inside).
    pub fn stop_path(&self) -> PathBuf {
        self.path.join("stop")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.path.join("tmp")
    }
    /// Where the agent's git writes new objects (`GIT_OBJECT_DIRECTORY`):
    /// the repository's store stays read-only to it; git-agent imports
    /// what it finds here after verifying each object.
    pub fn objects_dir(&self) -> PathBuf {
        self.path.join("objects")
    }
    /// The repository's own object store (`<common>/objects`; runs live in
    /// `<common>/agent/runs/<id>`), the agent's read-only alternate.
    pub fn shared_objects(&self) -> PathBuf {
        self.path
            .ancestors()
            .nth(3)
            .map(|common| common.join("objects"))
            .unwrap_or_else(|| self.path.join("../../../objects"))
    }
    pub fn agent_output(&self, attempt: u32, stream: &str) -> PathBuf {
        self.path.join(format!("agent-{attempt}.{stream}"))
    }
    pub fn check_output(&self, attempt: u32, index: usize) -> PathBuf {
        self.path.join(format!("check-{attempt}-{index}.out"))
    }

    /// Replaces `run.json` whole (a rename: never half a record, whatever
    /// kills the process). Only the final record is also synced to disk:
    /// the states in between are many, an fsync costs milliseconds on real
    /// disks, and after a power cut the events and `salvage` tell them.
    pub fn write_record(&self, record: &RunRecord) -> io::Result<()> {
        self.keep_damaged_record()?;
        let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        if record.state.is_terminal() {
            write_atomic(&self.record_path(), &json)
        } else {
            replace(&self.record_path(), &json)
        }
    }

    /// The record. One that does not parse is read again (four times at
    /// most) before it counts as damaged: the writer may have reused, for
    /// its next record, the file this read had opened (see [`replace`]).
    pub fn read_record(&self) -> io::Result<RunRecord> {
        let mut tries = 0;
        loop {
            let bytes = fs::read(self.record_path())?;
            match serde_json::from_slice(&bytes) {
                Ok(record) => return Ok(record),
                Err(_) if tries < 4 => tries += 1,
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }

    /// Appends one event as one `write` of one line.
    pub fn append_event(&self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.events_path())?;
        file.write_all(&line)
    }

    /// The events, skipping lines that do not parse (a crash mid-write
    /// leaves at most a truncated last line).
    pub fn read_events(&self) -> io::Result<Vec<Event>> {
        self.read_events_mentioning("")
    }

    /// The events whose line contains `needle` (an event type's name, say),
    /// the others not parsed: `stats` reads one kind of event of every run.
    pub fn read_events_mentioning(&self, needle: &str) -> io::Result<Vec<Event>> {
        // Bytes, not text: a write cut inside a multi-byte character (a
        // crash, a full disk) damages its own line, not the whole log.
        let bytes = match fs::read(self.events_path()) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let needle = needle.as_bytes();
        Ok(bytes
            .split(|b| *b == b'\n')
            .filter(|l| needle.is_empty() || l.windows(needle.len()).any(|w| w == needle))
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }
}

/// write + rename: whole or not at all for every reader, not synced. The
/// file written is this process's spare beside `path`, and the rename an
/// exchange (`renameat2(RENAME_EXCHANGE)`): the record it replaces becomes
/// the spare the next write fills, so a run's many records cost two files,
/// not a file made and one unlinked each time (on ext4 a file made soon
/// after others were unlinked costs several times more). A reader that
/// opened the old record before the exchange reads it whole unless it is
/// still reading when the next write begins: [`RunDir::read_record`] reads
/// again then. Where the file system cannot exchange, a plain rename.
fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        // Overwritten, then cut to length: truncating first would free
        // the block that the new record then takes again.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.set_len(bytes.len() as u64)?;
    }
    if exchange(&tmp, path).is_ok() {
        return Ok(());
    }
    fs::rename(&tmp, path)
}

/// Swaps the names of `a` and `b` (both must exist).
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: renameat2(2) on two NUL-terminated paths that outlive the call.
    let done = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `.<name>.tmp<pid>` beside `path`: this process's (what `salvage`
/// removes once its writer is gone).
fn tmp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ))
}

/// write + fsync + rename + fsync(dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_then_rename(path, bytes, true)
}

/// Writes `bytes` beside `path` and renames it into place; with `sync`,
/// the file and its directory reach the disk first.
fn write_then_rename(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tmp_path(path);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if sync {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_between_reuse_two_files_and_every_read_is_whole() {
        use std::os::unix::fs::MetadataExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::new(tmp.path());
        let run = store.create("t").expect("run dir");
        let mut record = RunRecord::blank(&run.id, "t");
        record.state = State::Running;
        run.write_record(&record).expect("first");
        let done = AtomicBool::new(false);
        let (reads, inodes) = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0u32;
                while !done.load(Ordering::Relaxed) {
                    let got = run.read_record().expect("a whole record, every time");
                    assert_eq!(got.run_id, run.id);
                    reads += 1;
                }
                reads
            });
            let mut inodes = std::collections::BTreeSet::new();
            for i in 0..2000 {
                // Records of varying length, as a run's are.
                record.title = "x".repeat(i % 300);
                run.write_record(&record).expect("write");
                inodes.insert(fs::metadata(run.record_path()).expect("meta").ino());
            }
            done.store(true, Ordering::Relaxed);
            (reader.join().expect("reader"), inodes)
        });
        assert!(reads > 10, "the reader ran alongside ({reads} reads)");
        assert_eq!(inodes.len(), 2, "two files take turns: {inodes:?}");
        // The last record is written as before: the spare is consumed.
        record.state = State::Succeeded;
        run.write_record(&record).expect("terminal");
        let names: Vec<String> = fs::read_dir(&run.path)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("run.json"))
            .collect();
        assert_eq!(names, vec!["run.json".to_string()]);
        assert_eq!(run.read_record().expect("read").state, State::Succeeded);
    }

    #[test]
    fn an_event_line_cut_inside_a_character_damages_only_itself() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::new(tmp.path());
        let run = store.create("t").expect("run dir");
        run.append_event(&Event::now(
            crate::model::event::EventKind::AttemptStarted { attempt: 1 },
        ))
        .expect("event");
        let mut f = OpenOptions::new()
            .append(true)
            .open(run.events_path())
            .expect("events");
        // `é` is two bytes: the write stops after the first.
        f.write_all(b"{\"v\":1,\"ts\":\"x\",\"type\":\"escalated\",\"reason\":\"caf\xc3")
            .expect("cut line");
        let events = run.read_events().expect("the log is still read");
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn truncated_last_event_line_is_tolerated() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::new(tmp.path());
        let run = store.create("t").expect("run dir");
        run.append_event(&Event::now(
            crate::model::event::EventKind::AttemptStarted { attempt: 1 },
        ))
        .expect("append");
        let mut f = OpenOptions::new()
            .append(true)
            .open(run.events_path())
            .expect("open");
        f.write_all(b"{\"v\":1,\"ts\":\"x\",\"type\":\"attem")
            .expect("partial");
        assert_eq!(run.read_events().expect("read").len(), 1);
    }

    #[test]
    fn dead_owner_means_interrupted() {
        let record = RunRecord {
            state: State::Running,
            base_ref: "HEAD".into(),
            attempts: 1,
            max_attempts: 1,
            pid: i32::MAX as u32,
            ..RunRecord::blank("r", "t")
        };
        assert_eq!(record.effective_state(), State::Interrupted);
        let mine = RunRecord {
            pid: std::process::id(),
            ..record
        };
        assert_eq!(mine.effective_state(), State::Running);
    }
}
