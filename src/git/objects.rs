//! Importing the objects an agent's own git wrote (in its private object
//! store) into the repository, each verified against its name.

use std::fs;
use std::path::Path;

use git2::Oid;

use super::error::{io_err, Result};
use super::repo::Repo;

/// What [`Repo::import_objects`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedObjects {
    pub imported: usize,
    /// Objects that did not match their names (or could not be read).
    pub corrupt: Vec<String>,
}

impl Repo {
    /// Copies the objects an agent's git wrote into `dir` (its own object
    /// store) into the repository's, each re-hashed first: an object whose
    /// content does not match its name, or that cannot be read, stays out
    /// and is returned by name. Loose objects and packs alike.
    pub fn import_objects(&self, dir: &Path) -> Result<ImportedObjects> {
        let mut report = ImportedObjects::default();
        if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Ok(report);
        }
        scrub_store(dir)?;
        let odb_err =
            |what: &'static str| self.git2_err(what, format!("objects in {}", dir.display()));
        let source = git2::Odb::new().map_err(odb_err("open"))?;
        source
            .add_disk_alternate(&dir.to_string_lossy())
            .map_err(odb_err("open"))?;
        let mut ids = Vec::new();
        source
            .foreach(|oid| {
                ids.push(*oid);
                true
            })
            .map_err(odb_err("list"))?;
        let repo = self.open()?;
        let target = repo.odb().map_err(odb_err("open the repository's"))?;
        for oid in ids {
            let verified = source.read(oid).ok().and_then(|obj| {
                let same = Oid::hash_object(obj.kind(), obj.data()).ok() == Some(oid);
                same.then(|| (obj.kind(), obj.data().to_vec()))
            });
            match verified {
                Some((kind, data)) => {
                    target.write(kind, &data).map_err(odb_err("import"))?;
                    report.imported += 1;
                }
                None => report.corrupt.push(oid.to_string()),
            }
        }
        Ok(report)
    }
}

/// Makes the agent's object store one git-agent can read without harm:
/// `info/alternates` (which would lead the import into repositories the
/// agent chose) goes, and so does every entry that is neither a directory
/// nor a regular file — a FIFO would block the reader forever, a symlink
/// would lead elsewhere — removed without being opened.
fn scrub_store(dir: &Path) -> Result<()> {
    for name in ["info/alternates", "info/http-alternates"] {
        let path = dir.join(name);
        if fs::symlink_metadata(&path).is_ok() {
            fs::remove_file(&path)
                .or_else(|_| fs::remove_dir_all(&path))
                .map_err(io_err("removing", &path))?;
        }
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = fs::read_dir(&current).map_err(io_err("reading", &current))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if !kind.is_file() {
                fs::remove_file(&path).map_err(io_err("removing", &path))?;
            }
        }
    }
    Ok(())
}
