//! Importing the objects an agent's own git wrote (in its private object
//! store) into the repository, each verified against its name.

use std::path::Path;

use git2::Oid;

use super::error::Result;
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
        if !dir.is_dir() {
            return Ok(report);
        }
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
