//! `git agent deliver`: push a finished run and open or update its pull
//! request, alone (after a delivery failure, or for a run that made a branch).

use super::{exit, print_json, CliError, CliResult, Ctx};
use crate::model::delivery::{Deliver, DeliveryRecord};
use crate::model::store::{RunDir, RunRecord};
use crate::spec::config::Config;

/// Push a finished run's branch and notes; open or update its pull request
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run id (or unique prefix) or a task id (its latest run)
    pub run: String,
    /// How to deliver when the run's brief asked only for a branch
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Print the delivery record as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    Push,
    Pr,
    DraftPr,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let config = super::helper::load_config(&root, ctx)?;
    crate::exec::sandbox::harden_self();
    let store = super::helper::store(ctx)?;
    let mut record = store
        .resolve(&args.run)
        .map_err(|m| CliError::usage(m).hint("list runs with `git agent status`"))?;
    write_missing_note(&root, &store, &record)?;
    let asked = brief_delivery(&root, &config, &record);
    record.delivery = Some(planned_delivery(&record, args.mode, asked)?);
    let dir = store.open(&record.run_id);
    let events = dir
        .read_events()
        .map_err(|e| CliError::from_error(exit::USAGE, "could not read the run's events", &e))?;
    let common = store.dir().join("../..");
    let target = super::helper::forge_target(&common, &config).map_err(CliError::usage)?;
    let runtime = super::helper::small_runtime()?;
    let delivery = runtime.block_on(crate::deliver::deliver(&target, &record, &events));
    record.delivery = Some(delivery.clone());
    save_delivery(&dir, &record, &delivery)?;
    for notice in &delivery.notices {
        eprintln!("note: {notice}");
    }
    if args.json {
        print_json(&delivery)?;
    }
    if delivery.failed() {
        return Err(CliError::failed(format!(
            "delivery failed: {}",
            delivery.reason.as_deref().unwrap_or("unknown")
        ))
        .hint(if delivery.pushed.is_some() {
            format!(
                "the branch is on the remote; retry the rest with `git agent deliver {}`",
                record.run_id
            )
        } else {
            format!(
                "nothing was pushed; the branch stays local; retry with `git agent deliver {}`",
                record.run_id
            )
        }));
    }
    match delivery.issue_url.as_ref().or(delivery.pr_url.as_ref()) {
        Some(url) => eprintln!("delivered: {url}"),
        None => eprintln!("pushed {}", record.branch.as_deref().unwrap_or("")),
    }
    Ok(exit::OK)
}

/// The delivery to attempt (the brief's, or `--mode`), once the run is
/// known to have finished with something to deliver.
fn planned_delivery(
    record: &RunRecord,
    mode: Option<Mode>,
    brief: Option<Deliver>,
) -> CliResult<DeliveryRecord> {
    if !record.effective_state().is_terminal() {
        return Err(CliError::usage(format!(
            "run {} has not finished; deliver it when it has",
            record.run_id
        )));
    }
    let mut delivery = DeliveryRecord::of(record);
    match (mode, record.delivery.is_some(), brief) {
        (Some(mode), _, _) => {
            delivery.mode = match mode {
                Mode::Push => Deliver::Push,
                Mode::Pr => Deliver::Pr,
                Mode::DraftPr => Deliver::DraftPr,
            };
        }
        // The run asked for a delivery: retry that one.
        (None, true, _) => {}
        (None, false, Some(Deliver::Branch)) => {
            return Err(CliError::usage(format!(
                "the brief of run {} delivers a local branch only (`output.deliver: branch`)",
                record.run_id
            ))
            .hint("pass --mode push, pr or draft-pr to deliver it anyway"));
        }
        (None, false, Some(mode)) => delivery.mode = mode,
        (None, false, None) => {}
    }
    if record.commit.is_none() && !delivery.as_issue(record) {
        return Err(CliError::usage(format!(
            "run {} made no commit: there is nothing to deliver",
            record.run_id
        )));
    }
    Ok(delivery)
}

/// A run whose decision log could not be written when it finished gets it
/// now, from its records: the log is what a delivery is about.
fn write_missing_note(
    root: &std::path::Path,
    store: &crate::model::store::Store,
    record: &RunRecord,
) -> CliResult<()> {
    let Some(oid) = record
        .commit
        .as_deref()
        .and_then(|c| git2::Oid::from_str(c).ok())
    else {
        return Ok(());
    };
    let repo = crate::git::Repo::discover(root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let has_note = repo
        .open()
        .is_ok_and(|r| r.find_note(Some(crate::git::NOTES_REF), oid).is_ok());
    if has_note {
        return Ok(());
    }
    let events = store.open(&record.run_id).read_events().unwrap_or_default();
    let note = crate::report::fold::note(record, &events);
    repo.add_note(oid, &note).map_err(|e| {
        CliError::from_error(
            exit::RUN_FAILED,
            "could not write the run's decision log note",
            &e,
        )
    })?;
    eprintln!("wrote the decision log note of {}", record.run_id);
    Ok(())
}

/// How the run's brief, as it is in the checkout now, asks to deliver
/// (`None` when it cannot be read).
fn brief_delivery(root: &std::path::Path, config: &Config, record: &RunRecord) -> Option<Deliver> {
    let path = root.join(&record.brief_path);
    let ctx = crate::spec::brief::Context {
        known_agents: config.present.then(|| config.agent_names()),
    };
    let (brief, _) = crate::spec::brief::load(&path, record.brief_path.clone(), &ctx).ok()?;
    brief.map(|b| b.output.deliver)
}

/// Record the delivery in the run's events and its run.json.
fn save_delivery(dir: &RunDir, record: &RunRecord, delivery: &DeliveryRecord) -> CliResult<()> {
    dir.append_event(&crate::model::event::Event::now(delivery.event()))
        .map_err(|e| {
            CliError::from_error(exit::RUN_FAILED, "could not write the run's events", &e)
        })?;
    dir.write_record(record)
        .map_err(|e| CliError::from_error(exit::RUN_FAILED, "could not write run.json", &e))
}
