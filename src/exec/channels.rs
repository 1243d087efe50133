//! What a confined step reports back through besides its exit status: the
//! PID namespace's report pipe and the egress proxy's listener handover,
//! made before the spawn, closed on git-agent's side after it, and read
//! when the step has ended.

use std::io;
use std::process::ExitStatus;
use std::sync::Arc;

use std::os::unix::process::ExitStatusExt;

use crate::exec::egress::{self, Handover, Refused};
use crate::exec::pidns::ReportPipe;
use crate::exec::process::{exit_of, ExitKind};
use crate::exec::sandbox::{ChildFds, Prepared};
use crate::model::sandbox::Endpoint;

/// The channels of one step; the proxy stops when this is dropped.
pub(crate) struct Channels {
    report: Option<ReportPipe>,
    handover: Option<Handover>,
    allow: Option<Arc<Vec<Endpoint>>>,
    proxy: Option<(tokio::task::JoinHandle<()>, Refused)>,
}

impl Channels {
    /// The channels `sandbox` needs (none without one).
    pub(crate) fn new(sandbox: Option<&Prepared>) -> io::Result<Channels> {
        let report = match sandbox {
            Some(s) if s.uses_pid_namespace() => Some(ReportPipe::new()?),
            _ => None,
        };
        let allow = sandbox.and_then(Prepared::egress_allowlist);
        let handover = match allow {
            Some(_) => Some(Handover::new()?),
            None => None,
        };
        Ok(Channels {
            report,
            handover,
            allow,
            proxy: None,
        })
    }

    /// The descriptors the forked child writes to.
    pub(crate) fn child_fds(&self) -> ChildFds {
        ChildFds {
            report: self.report.as_ref().map_or(-1, ReportPipe::write_fd),
            proxy: self.handover.as_ref().map_or(-1, Handover::child_fd),
        }
    }

    /// Whether the step is given the egress proxy.
    pub(crate) fn proxied(&self) -> bool {
        self.allow.is_some()
    }

    /// After the spawn (whether it worked or not): git-agent's copies of
    /// the child's ends are closed, so reads see the end once it is gone.
    pub(crate) fn close_child_ends(&mut self) {
        if let Some(report) = &mut self.report {
            report.close_write();
        }
        if let Some(handover) = &mut self.handover {
            handover.close_child();
        }
    }

    /// Starts the egress proxy on the listener the child handed over.
    pub(crate) fn serve(&mut self) -> io::Result<()> {
        if let (Some(handover), Some(allow)) = (&self.handover, &self.allow) {
            self.proxy = Some(egress::serve(handover.receive()?, allow.clone())?);
        }
        Ok(())
    }

    /// The step's exit and, when its PID namespace's init reported, the
    /// processes the init killed. In a PID namespace the leader is the
    /// waiter; the init's report has the command's own status. A report
    /// means the namespace is gone (its init exited after writing it, and
    /// the kernel ends every process of a namespace whose init ends).
    pub(crate) fn exit(&self, leader: ExitStatus) -> (ExitKind, Option<usize>) {
        match self.report.as_ref().and_then(ReportPipe::read) {
            Some(r) => (
                exit_of(ExitStatus::from_raw(r.status)),
                Some(r.leaked as usize),
            ),
            None => (exit_of(leader), None),
        }
    }

    /// The endpoints the proxy refused.
    pub(crate) fn refused(&self) -> Vec<String> {
        self.proxy
            .as_ref()
            .and_then(|(_, refused)| refused.lock().ok().map(|l| l.clone()))
            .unwrap_or_default()
    }
}

impl Drop for Channels {
    fn drop(&mut self) {
        if let Some((task, _)) = &self.proxy {
            task.abort();
        }
    }
}
