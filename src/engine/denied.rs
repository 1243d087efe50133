//! A step that failed on a write the sandbox refused says so: the end of a
//! failing check's or agent's output is searched for the system's words for
//! a refused write ("Permission denied", "Read-only file system",
//! "Operation not permitted") next to a path outside the run's writable
//! places, and the failure then names that path and the key that allows it.

use std::path::{Path, PathBuf};

use crate::model::sandbox::{Effective, Enforcement};

/// How the system words a refused write (compared in lower case).
const DENIALS: [&str; 3] = [
    "permission denied",
    "read-only file system",
    "operation not permitted",
];

/// Where nothing is to be allowed: kernel interfaces, not places to write.
const SYSTEM: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The hint for the first refused write outside the writable places that
/// `output` reports, when the run was confined (`policy`).
pub(crate) fn hint(output: &str, policy: Option<&Effective>) -> Option<String> {
    let policy = policy.filter(|p| p.enforcement == Enforcement::Landlock || p.read_only_root)?;
    let writable: Vec<&Path> = policy.writable.iter().map(Path::new).collect();
    let path = output
        .lines()
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            DENIALS.iter().any(|d| lower.contains(d))
        })
        .flat_map(paths_in)
        .find(|p| {
            !writable.iter().any(|w| p.starts_with(w)) && !SYSTEM.iter().any(|s| p.starts_with(s))
        })?;
    let allow = nearest_existing(&path);
    let quoted = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap_or_default();
    Some(if allow == path {
        format!(
            "`{}` is outside the run's writable places; allow it with `sandbox.write_paths: [{}]` in .agents/config.yaml",
            path.display(),
            quoted(&path)
        )
    } else {
        format!(
            "`{}` is outside the run's writable places; allow the directory it is made in with `sandbox.write_paths: [{}]` in .agents/config.yaml (or make `{}` and allow that)",
            path.display(),
            quoted(&allow),
            path.display()
        )
    })
}

/// The absolute paths a line names: words starting with `/`, stripped of
/// the quotes and punctuation tools put around them.
fn paths_in(line: &str) -> Vec<PathBuf> {
    line.split(|c: char| c.is_whitespace() || "'\"`‘’“”,;()[]{}<>".contains(c))
        .map(|w| w.trim_end_matches([':', '.']))
        .filter(|w| w.starts_with('/') && w.len() > 1)
        .map(PathBuf::from)
        .collect()
}

/// `path` when it exists, else its nearest ancestor that does: what
/// `write_paths` can name (the sandbox opens each place it allows).
fn nearest_existing(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(path)
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confined(writable: &[&str]) -> Effective {
        Effective {
            enforcement: Enforcement::Landlock,
            landlock_abi: 4,
            network: crate::model::sandbox::NetworkPolicy::Open,
            writable: writable.iter().map(|s| s.to_string()).collect(),
            read_deny: Vec::new(),
            user_namespace: false,
            pid_namespace: false,
            read_only_root: false,
            allow: Vec::new(),
            masked_sockets: Vec::new(),
            note: None,
        }
    }

    #[test]
    fn names_the_refused_path_and_the_key() {
        let policy = confined(&["/wt"]);
        for line in [
            "touch: cannot touch '/nonexistent-dir/x': Permission denied",
            "mkdir: cannot create directory ‘/nonexistent-dir/x’: Read-only file system",
            "Error: EACCES: permission denied, open '/nonexistent-dir/x'",
            "PermissionError: [Errno 13] Permission denied: '/nonexistent-dir/x'",
        ] {
            let hint = hint(line, Some(&policy)).expect(line);
            assert!(
                hint.starts_with("`/nonexistent-dir/x` is outside"),
                "{hint}"
            );
            assert!(
                hint.contains(
                    "allow the directory it is made in with `sandbox.write_paths: [\"/\"]`"
                ),
                "{hint}"
            );
        }
    }

    #[test]
    fn says_nothing_inside_the_writable_places_unconfined_or_without_a_denial() {
        let line = "sh: 1: cannot create /wt/x: Permission denied";
        assert_eq!(hint(line, Some(&confined(&["/wt"]))), None);
        let off = Effective {
            enforcement: Enforcement::Off,
            ..confined(&[])
        };
        assert_eq!(
            hint("cannot create /x: Permission denied", Some(&off)),
            None
        );
        assert_eq!(hint("cannot create /x: Permission denied", None), None);
        assert_eq!(hint("no such file: /x", Some(&confined(&[]))), None);
        assert_eq!(
            hint("/proc/1/mem: Permission denied", Some(&confined(&[]))),
            None
        );
    }
}
