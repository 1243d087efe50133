//! The decision-log notes ref merged with another copy of it: many
//! machines push `refs/notes/agent` to one remote, each with notes the
//! others lack. Two notes trees are merged in memory — every note of both,
//! ours where both annotate the same commit — into a commit whose parents
//! are both tips, and the ref is moved from the tip it was read at.

use std::collections::BTreeMap;

use git2::{Oid, Repository};

use super::commit::{signature, NOTES, NOTES_REF};
use super::error::Result;
use super::lock::LockFile;
use super::repo::Repo;

impl Repo {
    /// The tip of the notes ref here, if there is one.
    pub fn notes_tip(&self) -> Result<Option<Oid>> {
        let repo = self.open()?;
        Ok(repo.refname_to_id(NOTES_REF).ok())
    }

    /// Makes the notes ref hold `theirs` too (a notes commit whose objects
    /// are here): nothing when it already does, a fast-forward when ours
    /// has nothing of its own, else a merge commit. Returns the new tip.
    pub fn merge_notes(&self, theirs: Oid) -> Result<Oid> {
        let _thread = NOTES.lock().unwrap_or_else(|e| e.into_inner());
        let _process = LockFile::acquire(&self.common_dir.join("agent/notes.lock"))?;
        let repo = self.open()?;
        let err = |what: &'static str| self.git2_err(what, NOTES_REF);
        let ours = repo.refname_to_id(NOTES_REF).ok();
        let message = "git-agent: decision logs merged from the remote";
        let new = match ours {
            None => theirs,
            Some(ours)
                if ours == theirs
                    || repo
                        .graph_descendant_of(ours, theirs)
                        .map_err(err("reading"))? =>
            {
                return Ok(ours)
            }
            Some(ours)
                if repo
                    .graph_descendant_of(theirs, ours)
                    .map_err(err("reading"))? =>
            {
                theirs
            }
            Some(ours) => merged(&repo, ours, theirs, message).map_err(err("merging"))?,
        };
        match ours {
            Some(ours) => repo.reference_matching(NOTES_REF, new, true, ours, message),
            None => repo.reference(NOTES_REF, new, false, message),
        }
        .map_err(err("moving"))?;
        Ok(new)
    }
}

/// The commit holding every note of `ours` and `theirs` (ours where both
/// annotate one commit), its parents both.
fn merged(
    repo: &Repository,
    ours: Oid,
    theirs: Oid,
    message: &str,
) -> std::result::Result<Oid, git2::Error> {
    let (ours, theirs) = (repo.find_commit(ours)?, repo.find_commit(theirs)?);
    let mut notes = BTreeMap::new();
    flatten(repo, &theirs.tree()?, "", &mut notes)?;
    flatten(repo, &ours.tree()?, "", &mut notes)?;
    let mut builder = repo.treebuilder(None)?;
    for (name, (blob, mode)) in &notes {
        builder.insert(name, *blob, *mode)?;
    }
    let tree = repo.find_tree(builder.write()?)?;
    let sig = signature()?;
    repo.commit(None, &sig, &sig, message, &tree, &[&ours, &theirs])
}

/// The notes of `tree` by the commit they annotate (a fanned-out
/// `ab/cdef…` path read as `abcdef…`).
fn flatten(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    prefix: &str,
    out: &mut BTreeMap<String, (Oid, i32)>,
) -> std::result::Result<(), git2::Error> {
    for entry in tree.iter() {
        let name = format!("{prefix}{}", entry.name().unwrap_or_default());
        match entry.kind() {
            Some(git2::ObjectType::Tree) if prefix.len() < 40 => {
                flatten(repo, &repo.find_tree(entry.id())?, &name, out)?;
            }
            Some(git2::ObjectType::Blob) => {
                out.insert(name, (entry.id(), entry.filemode()));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::git::test_support::*;

    #[test]
    fn two_copies_of_the_notes_merge_into_one_with_both() {
        let fx = fixture();
        let repo = fx.repo.open().unwrap();
        let head = fx.base;
        let other = git_in(
            &fx.root,
            &["commit-tree", "-m", "x", &format!("{head}^{{tree}}")],
        );
        let other = git2::Oid::from_str(other.trim()).unwrap();
        fx.repo.add_note(head, "first", "m").unwrap();
        let common = fx.repo.notes_tip().unwrap().unwrap();
        // Theirs: what we had, and a note on another commit.
        repo.reference("refs/notes/theirs", common, false, "t")
            .unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        repo.note(
            &sig,
            &sig,
            Some("refs/notes/theirs"),
            other,
            "theirs",
            false,
        )
        .unwrap();
        let theirs = repo.refname_to_id("refs/notes/theirs").unwrap();
        // Ours: the note on `head` rewritten since.
        fx.repo.add_note(head, "ours now", "m").unwrap();
        let tip = fx.repo.merge_notes(theirs).unwrap();
        let merged = repo.find_commit(tip).unwrap();
        assert_eq!(merged.parent_count(), 2);
        let read = |c| {
            let n = repo.find_note(Some(crate::git::NOTES_REF), c).unwrap();
            n.message().unwrap().to_string()
        };
        assert_eq!(read(head), "ours now");
        assert_eq!(read(other), "theirs");
        // Merging it again, or an ancestor, changes nothing.
        assert_eq!(fx.repo.merge_notes(theirs).unwrap(), tip);
        assert_eq!(fx.repo.merge_notes(common).unwrap(), tip);
    }
}
