//! Records that are damaged are read as well as they can be: a run whose
//! `run.json` does not parse (a crash mid-write on a file system without
//! atomic rename, a full disk, a hand edit) is rebuilt from its events, so
//! `status`, `log` and `clean` still see it, and the damaged bytes are kept
//! beside it (`run.json.damaged`) before anything writes a new record.

use std::fs;
use std::io;

use crate::model::event::EventKind;
use crate::model::store::{pid_alive, RunDir, RunRecord, State};

/// Where the damaged bytes of a record go before a new record is written.
pub const DAMAGED_SUFFIX: &str = ".damaged";

impl RunDir {
    /// The run as its events tell it, when `run.json` cannot be read for
    /// `why`: a finished, failed run (nothing owns it any more), whose
    /// reason says so. `None` when there is nothing of a run here at all.
    pub fn salvage(&self, why: &str) -> Option<RunRecord> {
        let events = self.read_events().unwrap_or_default();
        if events.is_empty() && !self.record_path().exists() {
            return None;
        }
        let mut record = RunRecord {
            state: State::Failed,
            reason: Some(format!(
                "the run's record ({}) is damaged ({why}); shown as its events tell it",
                self.record_path().display()
            )),
            started_at: events.first().map(|e| e.ts.clone()).unwrap_or_default(),
            finished_at: events.last().map(|e| e.ts.clone()),
            ..RunRecord::blank(&self.id, &task_of_run_id(&self.id))
        };
        for event in &events {
            take_in(&mut record, &event.kind);
        }
        Some(record)
    }

    /// Keeps the bytes of a `run.json` that does not parse as
    /// `run.json.damaged` (once), so that writing a new record loses nothing.
    pub fn keep_damaged_record(&self) -> io::Result<()> {
        let path = self.record_path();
        let Ok(bytes) = fs::read(&path) else {
            return Ok(());
        };
        if serde_json::from_slice::<RunRecord>(&bytes).is_ok() {
            return Ok(());
        }
        let mut kept = path.clone().into_os_string();
        kept.push(DAMAGED_SUFFIX);
        if fs::symlink_metadata(&kept).is_ok() {
            return Ok(());
        }
        fs::rename(&path, kept)
    }

    /// Removes what failed atomic writes left (`.<name>.tmp<pid>`) whose
    /// writer is gone. Returns how many.
    pub fn remove_stale_tmp(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.path)?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Some(pid) = name
                .strip_prefix('.')
                .and_then(|n| n.rsplit_once(".tmp"))
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !pid_alive(pid) && entry.file_type().is_ok_and(|t| t.is_file()) {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// What one event tells of the run, into its salvaged record.
fn take_in(record: &mut RunRecord, kind: &EventKind) {
    match kind {
        EventKind::RunStarted {
            task,
            title,
            brief,
            brief_blob,
            agent,
            base_ref,
            base_commit,
            ..
        } => {
            record.task.clone_from(task);
            record.title.clone_from(title);
            record.brief_path.clone_from(brief);
            record.brief_blob.clone_from(brief_blob);
            record.agent.clone_from(agent);
            record.base_ref.clone_from(base_ref);
            record.base_commit = Some(base_commit.clone());
        }
        EventKind::WorktreeReady { path, .. } => record.worktree = Some(path.into()),
        EventKind::AttemptStarted { attempt, .. } => record.attempts = *attempt,
        EventKind::Committed { branch, commit, .. } => {
            record.branch = Some(branch.clone());
            record.commit = Some(commit.clone());
        }
        EventKind::Landed { landing } => record.landed = Some(landing.clone()),
        EventKind::AgentActivity { activity, .. } => record.usage.add(activity),
        _ => {}
    }
}

/// The task of a run id `YYYYMMDD-HHMMSS-<task>-<hex>`, or the id itself.
fn task_of_run_id(id: &str) -> String {
    let parts: Vec<&str> = id.splitn(3, '-').collect();
    match parts.as_slice() {
        [_, _, rest] => rest
            .rsplit_once('-')
            .map_or(rest.to_string(), |(task, _)| task.to_string()),
        _ => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_comes_from_the_run_id() {
        assert_eq!(task_of_run_id("20261201-104707-fix-typo-0199"), "fix-typo");
        assert_eq!(task_of_run_id("odd"), "odd");
    }
}
