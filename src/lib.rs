//! git-agent: run coding agents in the background the way CI runs jobs.
