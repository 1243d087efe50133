//! The published JSON schemas (`git agent schema brief|config`) against the
//! fixtures, with an independent validator (`jsonschema`). This is what keeps
//! the schema editors use and the checks the code makes from drifting apart,
//! in both directions:
//!
//! - every valid fixture validates;
//! - every fixture the code rejects for a structural reason (unknown key,
//!   wrong type, bad enum value, missing key, below a minimum) fails the
//!   schema too;
//! - every fixture the code rejects only for a value the schema cannot
//!   express (a bad glob, a duration, ...) passes the schema, so the schema
//!   is not stricter than the code.

use std::path::{Path, PathBuf};

use git_agent::diagnostic::FileReport;
use git_agent::{brief, config, templates};
use serde_json::Value as Json;

fn fixtures(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    files.sort();
    files
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

fn validator(schema: &Json) -> jsonschema::Validator {
    jsonschema::validator_for(schema).expect("the generated schema compiles")
}

/// The frontmatter of a brief as JSON, or `None` when the file has none that
/// parses as YAML (those problems are not the schema's business).
fn brief_json(path: &Path) -> Option<Json> {
    let text = std::fs::read_to_string(path).ok()?;
    let parts = brief::split(&text).ok()?;
    serde_yaml::from_str::<Json>(parts.frontmatter).ok()
}

fn config_json(path: &Path) -> Option<Json> {
    let text = std::fs::read_to_string(path).ok()?;
    let value = serde_yaml::from_str::<Json>(&text).ok()?;
    // An empty file is an empty config.
    Some(if value.is_null() {
        Json::Object(Default::default())
    } else {
        value
    })
}

fn schema_errors(validator: &jsonschema::Validator, instance: &Json) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

/// Invalid briefs whose problem is structural: the schema must refuse them.
const BRIEF_STRUCTURAL: &[&str] = &[
    "attempts-zero.md",
    "bad-duration-unquoted-number.md",
    "bad-enum-deliver.md",
    "bad-enum-on-scope-violation.md",
    "check-missing-run.md",
    "crlf-unknown-key.md",
    "frontmatter-not-a-mapping.md",
    "missing-checks.md",
    "missing-scope.md",
    "several-structural-errors.md",
    "structural-errors-hide-value-errors.md",
    "unknown-nested-key.md",
    "unknown-top-level-key.md",
    "wrong-type-list-for-string.md",
    "wrong-type-quoted-attempts.md",
    "wrong-type-string-for-list.md",
];

/// Invalid briefs whose frontmatter is structurally fine: the schema must
/// accept them (their problem is a value, the file name, ...).
const BRIEF_VALUE_ONLY: &[&str] = &[
    "after-bad.md",
    "Bad Name.md",
    "attempts-too-many.md",
    "bad-branch-name.md",
    "bad-duration-no-unit.md",
    "bad-duration-word.md",
    "check-name-bad-chars.md",
    "duplicate-check-names.md",
    // Converted to JSON the last key wins: a schema cannot see duplicates.
    "duplicate-key.md",
    "empty-checks.md",
    "empty-scope-write.md",
    "empty-title.md",
    "glob-absolute.md",
    "glob-parent-dir.md",
    "glob-unclosed-class.md",
    "negative-cost.md",
    "several-value-errors.md",
    "unicode-before-error.md",
];

/// Invalid briefs with no frontmatter that parses as YAML into JSON.
const BRIEF_NOT_YAML: &[&str] = &[
    "missing-frontmatter.md",
    "non-utf8.md",
    "unterminated-frontmatter.md",
    "yaml-syntax-error.md",
];

const CONFIG_STRUCTURAL: &[&str] = &[
    "bad-adapter.yaml",
    "max-parallel-zero.yaml",
    "unknown-key.yaml",
];

const CONFIG_VALUE_ONLY: &[&str] = &[
    "bad-agent-name.yaml",
    // `Name <email>` is a value rule.
    "bad-commit-author.yaml",
    "bad-kill-grace.yaml",
    "default-agent-missing.yaml",
    // Converted to JSON the last key wins: a schema cannot see duplicates.
    "duplicate-key.yaml",
    "env-name-with-equals.yaml",
    "github-token-in-pass-env.yaml",
    "custom-token-in-pass-env.yaml",
    // `command` is required only for `adapter: command`: a value rule.
    "missing-command.yaml",
    "worktree-dir-inside-repo.yaml",
];

const CONFIG_NOT_YAML: &[&str] = &["yaml-syntax-error.yaml"];

/// Codes that only the structural check (the schema walk) reports.
fn is_structural_code(code: &str) -> bool {
    code.ends_with("::unknown-key")
        || code.ends_with("::missing-key")
        || code.ends_with("::wrong-type")
}

fn brief_report(path: &Path) -> FileReport {
    brief::load(path, name_of(path), &brief::Context::default())
        .expect("read fixture")
        .1
}

fn config_report(path: &Path) -> FileReport {
    let text = std::fs::read_to_string(path).expect("read fixture");
    config::parse(path, name_of(path), &text, Path::new("/repo")).1
}

#[test]
fn schemas_are_valid_json_schemas() {
    for schema in [brief::schema(), config::schema()] {
        if let Err(e) = jsonschema::meta::validate(schema) {
            panic!("not a valid JSON schema: {e}\n{schema:#}");
        }
        assert_eq!(
            schema["additionalProperties"],
            Json::Bool(false),
            "unknown top-level keys must be refused"
        );
    }
}

#[test]
fn every_invalid_fixture_is_classified() {
    for (dir, ext, lists) in [
        (
            "fixtures/briefs/invalid",
            "md",
            [BRIEF_STRUCTURAL, BRIEF_VALUE_ONLY, BRIEF_NOT_YAML],
        ),
        (
            "fixtures/config/invalid",
            "yaml",
            [CONFIG_STRUCTURAL, CONFIG_VALUE_ONLY, CONFIG_NOT_YAML],
        ),
    ] {
        let files: Vec<String> = fixtures(dir, ext).iter().map(|p| name_of(p)).collect();
        for name in &files {
            let count = lists.iter().filter(|l| l.contains(&name.as_str())).count();
            assert_eq!(count, 1, "{dir}/{name} must be in exactly one list");
        }
        for name in lists.iter().flat_map(|l| l.iter()) {
            assert!(files.iter().any(|f| f == name), "no fixture {dir}/{name}");
        }
    }
}

#[test]
fn valid_briefs_match_the_schema() {
    let validator = validator(brief::schema());
    let files = fixtures("fixtures/briefs/valid", "md");
    assert!(files.len() >= 5);
    for path in files {
        let json =
            brief_json(&path).unwrap_or_else(|| panic!("{}: no frontmatter", path.display()));
        let errors = schema_errors(&validator, &json);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn valid_configs_match_the_schema() {
    let validator = validator(config::schema());
    for path in fixtures("fixtures/config/valid", "yaml") {
        let json = config_json(&path).expect("yaml");
        let errors = schema_errors(&validator, &json);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn structural_problems_fail_the_schema_too() {
    let brief_validator = validator(brief::schema());
    let config_validator = validator(config::schema());
    let cases = BRIEF_STRUCTURAL
        .iter()
        .map(|n| ("fixtures/briefs/invalid", *n, &brief_validator, true))
        .chain(
            CONFIG_STRUCTURAL
                .iter()
                .map(|n| ("fixtures/config/invalid", *n, &config_validator, false)),
        );
    for (dir, name, validator, is_brief) in cases {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(name);
        let json = if is_brief {
            brief_json(&path)
        } else {
            config_json(&path)
        }
        .unwrap_or_else(|| panic!("{name}: frontmatter is not YAML"));
        assert!(
            !validator.is_valid(&json),
            "{name}: the code refuses it but the schema accepts {json:#}"
        );
        let report = if is_brief {
            brief_report(&path)
        } else {
            config_report(&path)
        };
        assert!(report.has_errors(), "{name}: the code accepts it");
    }
}

#[test]
fn value_only_problems_pass_the_schema() {
    let brief_validator = validator(brief::schema());
    let config_validator = validator(config::schema());
    for name in BRIEF_VALUE_ONLY {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/briefs/invalid")
            .join(name);
        let json = brief_json(&path).unwrap_or_else(|| panic!("{name}: no frontmatter"));
        let errors = schema_errors(&brief_validator, &json);
        assert!(
            errors.is_empty(),
            "{name}: the schema is stricter than the code: {errors:#?}"
        );
        let report = brief_report(&path);
        assert!(report.has_errors(), "{name}: the code accepts it");
        let structural: Vec<&str> = report
            .problems
            .iter()
            .map(|p| p.code)
            .filter(|c| is_structural_code(c))
            .collect();
        assert!(
            structural.is_empty(),
            "{name}: structural codes {structural:?}"
        );
    }
    for name in CONFIG_VALUE_ONLY {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/config/invalid")
            .join(name);
        let json = config_json(&path).expect("yaml");
        let errors = schema_errors(&config_validator, &json);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        assert!(
            config_report(&path).has_errors(),
            "{name}: the code accepts it"
        );
    }
}

#[test]
fn not_yaml_fixtures_really_have_no_yaml_frontmatter() {
    for name in BRIEF_NOT_YAML {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/briefs/invalid")
            .join(name);
        assert!(brief_json(&path).is_none(), "{name} parses; classify it");
    }
    for name in CONFIG_NOT_YAML {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/config/invalid")
            .join(name);
        assert!(config_json(&path).is_none(), "{name} parses; classify it");
    }
}

/// What `init` and `new` write conforms to the schemas editors will use.
#[test]
fn templates_match_the_schemas() {
    let text = templates::brief(
        "fix-http",
        "Fix: the \"HTTP\" client",
        &["src/**".to_string(), "tests/http_*.rs".to_string()],
        "cargo test --all",
    );
    let parts = brief::split(&text)
        .map_err(|p| p.message)
        .expect("frontmatter");
    let json: Json = serde_yaml::from_str(parts.frontmatter).expect("yaml");
    let errors = schema_errors(&validator(brief::schema()), &json);
    assert!(errors.is_empty(), "{errors:#?}\n{text}");

    let json: Json = serde_yaml::from_str(templates::CONFIG).expect("yaml");
    let errors = schema_errors(&validator(config::schema()), &json);
    assert!(errors.is_empty(), "{errors:#?}");
}
