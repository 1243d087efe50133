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
    let tree = repo.find_tree(layout(repo, &notes, 0)?)?;
    let sig = signature()?;
    repo.commit(None, &sig, &sig, message, &tree, &[&ours, &theirs])
}

/// Notes one tree holds side by side before they move into `ab/`
/// subtrees by the first two hex digits of the commit, as git fans a
/// notes tree out once a level fills: a note then rewrites a root of 256
/// entries and one subtree, not a tree of every note ever written.
pub(super) const FANOUT_AT: usize = 256;

const TREE_MODE: i32 = 0o040_000;
const NOTE_MODE: i32 = 0o100_644;

/// `tree` (the notes tree, or none yet) with the note on `commit` set to
/// `blob`, where git looks for it: inside the `ab/` subtree at a level that
/// has them (made if missing), beside the others at a flat level, which
/// fans out once it holds more than [`FANOUT_AT`] notes.
pub(super) fn with_note(
    repo: &Repository,
    tree: Option<&git2::Tree<'_>>,
    commit: Oid,
    blob: Oid,
) -> std::result::Result<Oid, git2::Error> {
    insert(repo, tree, &commit.to_string(), blob)
}

/// [`with_note`] at one level, `name` the part of the hex id not yet
/// consumed by the levels above.
fn insert(
    repo: &Repository,
    tree: Option<&git2::Tree<'_>>,
    name: &str,
    blob: Oid,
) -> std::result::Result<Oid, git2::Error> {
    let fanned = tree.is_some_and(|t| t.iter().any(|e| is_fanout(&e)));
    let mut builder = repo.treebuilder(tree)?;
    if fanned && name.len() > 2 {
        let (prefix, rest) = name.split_at(2);
        let sub = match tree.and_then(|t| t.get_name(prefix)) {
            Some(e) if is_fanout(&e) => Some(repo.find_tree(e.id())?),
            _ => None,
        };
        let sub = insert(repo, sub.as_ref(), rest, blob)?;
        // A note left side by side for the same commit would shadow it.
        if builder.get(name)?.is_some() {
            builder.remove(name)?;
        }
        builder.insert(prefix, sub, TREE_MODE)?;
        return builder.write();
    }
    builder.insert(name, blob, NOTE_MODE)?;
    let flat = builder.len();
    if flat <= FANOUT_AT || name.len() <= 2 {
        return builder.write();
    }
    // This level is full: its notes move into subtrees.
    let level = repo.find_tree(builder.write()?)?;
    let mut notes = BTreeMap::new();
    flatten(repo, &level, "", &mut notes)?;
    layout(repo, &notes, 0)
}

/// A tree holding `notes` (named by their hex id from `depth` on), fanned
/// out where a level holds more than [`FANOUT_AT`].
fn layout(
    repo: &Repository,
    notes: &BTreeMap<String, (Oid, i32)>,
    depth: usize,
) -> std::result::Result<Oid, git2::Error> {
    let mut builder = repo.treebuilder(None)?;
    let deeper = notes.len() > FANOUT_AT && notes.keys().all(|n| n.len() > depth + 2);
    if !deeper {
        for (name, (blob, mode)) in notes {
            builder.insert(&name[depth..], *blob, *mode)?;
        }
        return builder.write();
    }
    let mut groups: BTreeMap<&str, BTreeMap<String, (Oid, i32)>> = BTreeMap::new();
    for (name, note) in notes {
        groups
            .entry(&name[depth..depth + 2])
            .or_default()
            .insert(name.clone(), *note);
    }
    for (prefix, group) in &groups {
        builder.insert(prefix, layout(repo, group, depth + 2)?, TREE_MODE)?;
    }
    builder.write()
}

/// A subtree of a fanned-out notes tree: two hex digits.
fn is_fanout(entry: &git2::TreeEntry<'_>) -> bool {
    entry.kind() == Some(git2::ObjectType::Tree)
        && entry.name_bytes().iter().all(u8::is_ascii_hexdigit)
        && entry.name_bytes().len() == 2
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
    use super::FANOUT_AT;
    use crate::git::test_support::*;

    /// `n` commits of the base's tree, none on a branch.
    fn commits(fx: &Fixture, n: usize) -> Vec<git2::Oid> {
        let repo = fx.repo.open().unwrap();
        let base = repo.find_commit(fx.base).unwrap();
        let tree = base.tree().unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        (0..n)
            .map(|i| {
                repo.commit(None, &sig, &sig, &format!("c{i}"), &tree, &[&base])
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn a_full_notes_tree_fans_out_as_git_reads_it() {
        let fx = fixture();
        let many = commits(&fx, FANOUT_AT + 44);
        for (i, c) in many.iter().enumerate() {
            fx.repo.add_note(*c, &format!("note {i}"), "m").unwrap();
        }
        // A note written again replaces the one there.
        fx.repo.add_note(many[3], "note 3, again", "m").unwrap();
        let repo = fx.repo.open().unwrap();
        let tip = repo
            .find_commit(fx.repo.notes_tip().unwrap().unwrap())
            .unwrap();
        let root = tip.tree().unwrap();
        assert!(root.len() <= 256, "{} entries at the root", root.len());
        assert!(
            root.iter()
                .all(|e| e.kind() == Some(git2::ObjectType::Tree) && e.name().unwrap().len() == 2),
            "only ab/ subtrees at the root"
        );
        // git itself finds every note, and one only for each commit.
        for (i, c) in many.iter().enumerate() {
            let text = git_in(&fx.root, &["notes", "--ref=agent", "show", &c.to_string()]);
            let want = if i == 3 {
                "note 3, again".to_string()
            } else {
                format!("note {i}")
            };
            assert_eq!(text.trim(), want);
        }
        let listed = git_in(&fx.root, &["notes", "--ref=agent", "list"]);
        assert_eq!(listed.lines().count(), many.len());
        git_in(&fx.root, &["fsck", "--no-progress"]);
        // Control: below the threshold the tree stays flat.
        let few = fixture();
        for c in commits(&few, 5) {
            few.repo.add_note(c, "n", "m").unwrap();
        }
        let repo = few.repo.open().unwrap();
        let flat = repo
            .find_commit(few.repo.notes_tip().unwrap().unwrap())
            .unwrap();
        assert!(flat
            .tree()
            .unwrap()
            .iter()
            .all(|e| e.name().unwrap().len() == 40));
    }

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
