//! Pushing `refs/notes/agent` when many runners push it at once (a
//! fan-out's matrix jobs, each with the decision logs of its own runs).
//!
//! A push never overwrites notes it has not seen: the remote's notes are
//! read, fetched when this repository lacks them, merged into ours in
//! memory ([`crate::git::Repo::merge_notes`]: every note of both), and the
//! merge is pushed under a lease on the tip that was read. When another
//! runner pushed in between, the lease fails and it all happens again,
//! after a backoff with jitter, a bounded number of times.

use std::time::Duration;

use super::forge::push::{fetch_objects, push, remote_ref, PushSpec};
use super::forge::ForgeError;
use super::Target;
use crate::git::NOTES_REF;

/// Tries in all before a notes push gives up.
const TRIES: u32 = 12;

fn fail(message: String) -> ForgeError {
    ForgeError {
        status: None,
        operation: "pushing the notes".into(),
        message,
        fields: Vec::new(),
    }
}

/// Pushes the notes ref, merged with the remote's.
pub(super) fn push_notes(
    target: &Target,
    token: Option<&str>,
    scrub: &[String],
) -> Result<(), ForgeError> {
    let repo = crate::git::Repo::discover(&target.git_dir)
        .map_err(|e| fail(format!("could not open the repository: {e}")))?;
    let mut last = None;
    for attempt in 0..TRIES {
        if attempt > 0 {
            std::thread::sleep(backoff(attempt));
        }
        match push_once(&repo, target, token, scrub) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| fail("no attempt was made".into())))
}

/// One read–merge–push under a lease.
fn push_once(
    repo: &crate::git::Repo,
    target: &Target,
    token: Option<&str>,
    scrub: &[String],
) -> Result<(), ForgeError> {
    let theirs = remote_ref(&target.git_dir, &target.remote, NOTES_REF, scrub, token)?;
    let local = |e: crate::git::WorkspaceError| fail(crate::model::error_chain(&e));
    let ours = match &theirs {
        Some(sha) => {
            let oid = git2::Oid::from_str(sha)
                .map_err(|_| fail(format!("bad id `{sha}` from the remote")))?;
            let have = repo.open().is_ok_and(|r| r.find_commit(oid).is_ok());
            if !have {
                let url = target.fetch_url.as_deref().unwrap_or(&target.remote_url);
                fetch_objects(&target.git_dir, url, NOTES_REF, scrub, token)?;
            }
            repo.merge_notes(oid).map_err(local)?
        }
        None => match repo.notes_tip().map_err(local)? {
            Some(tip) => tip,
            None => return Ok(()),
        },
    };
    if theirs.as_deref() == Some(ours.to_string().as_str()) {
        return Ok(());
    }
    push(
        &PushSpec {
            git_dir: &target.git_dir,
            remote: &target.remote,
            refspecs: vec![format!("{ours}:{NOTES_REF}")],
            leases: vec![(NOTES_REF.into(), theirs.unwrap_or_default())],
            scrub_env: scrub.to_vec(),
        },
        token,
    )
}

/// 50 ms, 100 ms, … capped at 2 s, plus up to as much again of jitter, so
/// runners that collided spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(6)).min(2000);
    Duration::from_millis(base + rand::random_range(0..=base))
}
