//! The devnet's child processes: started, watched, stopped.
//!
//! Each child runs in a process group of its own, so a Ctrl-C in the
//! terminal reaches the devnet only, which then stops every child itself
//! (SIGTERM, and SIGKILL after [`STOP_PATIENCE`]): a Ctrl-C is never taken
//! for a child's death, and none is left behind. A child that exits when
//! nobody stopped it is reported ([`Report::Died`]) and left stopped, never
//! restarted behind the operator's back. Each line a child prints is
//! handed on with its name ([`Report::Line`]).
//!
//! It knows nothing of nodes: what runs, with which arguments, is the
//! caller's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

/// How long a child has to stop after SIGTERM before it is killed. A node
/// stops in well under a second; its grace for open event streams is 5 s.
pub const STOP_PATIENCE: Duration = Duration::from_secs(15);

/// A child to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Its name in reports and for [`Supervisor::stop`].
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The folder it runs in.
    pub dir: PathBuf,
}

/// What a child is doing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RunState {
    Running {
        pid: u32,
    },
    /// Told to stop, not gone yet.
    Stopping {
        pid: u32,
    },
    /// Stopped by [`Supervisor::stop`].
    Stopped,
    /// Ended by itself (or by someone else's signal): how.
    Exited {
        status: String,
    },
}

impl RunState {
    fn pid(&self) -> Option<u32> {
        match self {
            RunState::Running { pid } | RunState::Stopping { pid } => Some(*pid),
            RunState::Stopped | RunState::Exited { .. } => None,
        }
    }
}

/// What the supervisor tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A line a child printed (stdout or stderr).
    Line { name: String, line: String },
    /// A child exited that nobody stopped.
    Died { name: String, status: String },
}

/// Why a child could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("{0} is running already")]
    Running(String),
    #[error("no child is called {0}")]
    Unknown(String),
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
}

struct Slot {
    state: watch::Sender<RunState>,
}

/// The children, by name.
pub struct Supervisor {
    children: Mutex<BTreeMap<String, Slot>>,
    report: Box<dyn Fn(Report) + Send + Sync>,
    patience: Duration,
}

impl Supervisor {
    pub fn new(report: impl Fn(Report) + Send + Sync + 'static) -> Arc<Supervisor> {
        Self::with_patience(report, STOP_PATIENCE)
    }

    /// With another patience before SIGKILL than [`STOP_PATIENCE`].
    pub fn with_patience(
        report: impl Fn(Report) + Send + Sync + 'static,
        patience: Duration,
    ) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            children: Mutex::new(BTreeMap::new()),
            report: Box::new(report),
            patience,
        })
    }

    /// Starts `spec` (a name seen before, stopped or exited, is started
    /// again); its pid.
    pub fn start(self: &Arc<Self>, spec: Spec) -> Result<u32, SuperviseError> {
        let mut children = self.children.lock().expect("not poisoned");
        if let Some(slot) = children.get(&spec.name)
            && slot.state.borrow().pid().is_some()
        {
            return Err(SuperviseError::Running(spec.name));
        }
        let mut command = tokio::process::Command::new(&spec.program);
        command
            .args(&spec.args)
            .current_dir(&spec.dir)
            // A pipe nobody writes to: it closes when the supervisor's
            // process ends, however it ends, which a child may watch for
            // (a node's `--stop-with-stdin`).
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(|source| SuperviseError::Spawn {
            name: spec.name.clone(),
            source,
        })?;
        let pid = child.id().expect("a child just spawned has a pid");
        let name = spec.name.clone();
        let (state, _) = watch::channel(RunState::Running { pid });
        children.insert(name.clone(), Slot { state });
        drop(children);

        let readers = [
            child.stdout.take().map(|out| self.pass_lines(&name, out)),
            child.stderr.take().map(|err| self.pass_lines(&name, err)),
        ];
        let supervisor = Arc::clone(self);
        tokio::spawn(async move {
            let _held_open_while_it_runs = child.stdin.take();
            let status = child.wait().await;
            // Its last lines before the verdict.
            for reader in readers.into_iter().flatten() {
                let _ = reader.await;
            }
            let status = match status {
                Ok(status) => status.to_string(),
                Err(error) => format!("not known ({error})"),
            };
            supervisor.settle(&name, pid, status);
        });
        Ok(pid)
    }

    /// What each child is doing, by name.
    pub fn states(&self) -> BTreeMap<String, RunState> {
        let children = self.children.lock().expect("not poisoned");
        children
            .iter()
            .map(|(name, slot)| (name.clone(), slot.state.borrow().clone()))
            .collect()
    }

    /// Stops a child: SIGTERM, then SIGKILL after [`STOP_PATIENCE`].
    /// Returns once it is gone (at once if it was not running).
    pub async fn stop(&self, name: &str) -> Result<(), SuperviseError> {
        let mut state = {
            let children = self.children.lock().expect("not poisoned");
            let slot = children
                .get(name)
                .ok_or_else(|| SuperviseError::Unknown(name.to_string()))?;
            let mut pid = None;
            slot.state.send_if_modified(|state| {
                pid = state.pid();
                match pid {
                    Some(pid) => {
                        *state = RunState::Stopping { pid };
                        true
                    }
                    None => false,
                }
            });
            let Some(pid) = pid else { return Ok(()) };
            signal(pid, Signal::SIGTERM);
            slot.state.subscribe()
        };
        let gone = |state: &RunState| state.pid().is_none();
        if tokio::time::timeout(self.patience, state.wait_for(gone))
            .await
            .is_err()
        {
            if let Some(pid) = state.borrow().pid() {
                signal(pid, Signal::SIGKILL);
            }
            let _ = state.wait_for(gone).await;
        }
        Ok(())
    }

    /// Stops every child, all at once.
    pub async fn stop_all(&self) {
        let names: Vec<String> = self.states().into_keys().collect();
        let stops = names.iter().map(|name| self.stop(name));
        futures_util::future::join_all(stops).await;
    }

    /// A child is gone: stopped if someone stopped it, else exited (and
    /// reported).
    fn settle(&self, name: &str, pid: u32, status: String) {
        let children = self.children.lock().expect("not poisoned");
        let Some(slot) = children.get(name) else {
            return;
        };
        // The slot may hold a newer run by now.
        if slot.state.borrow().pid() != Some(pid) {
            return;
        }
        if matches!(*slot.state.borrow(), RunState::Stopping { .. }) {
            slot.state.send_replace(RunState::Stopped);
        } else {
            slot.state.send_replace(RunState::Exited {
                status: status.clone(),
            });
            drop(children);
            (self.report)(Report::Died {
                name: name.to_string(),
                status,
            });
        }
    }

    /// Hands on each line `stream` gives, until it ends.
    fn pass_lines(
        self: &Arc<Self>,
        name: &str,
        stream: impl AsyncRead + Unpin + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let supervisor = Arc::clone(self);
        let name = name.to_string();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                (supervisor.report)(Report::Line {
                    name: name.clone(),
                    line,
                });
            }
        })
    }
}

/// Sends `signal` to the process group of the child `pid` (it leads one
/// of its own), so what it started goes too. Gone already: nothing to do.
fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(name: &str, script: &str) -> Spec {
        Spec {
            name: name.to_string(),
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            dir: std::env::temp_dir(),
        }
    }

    fn recording() -> (Arc<Supervisor>, Arc<Mutex<Vec<Report>>>) {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&reports);
        let supervisor = Supervisor::with_patience(
            move |report| kept.lock().unwrap().push(report),
            Duration::from_millis(300),
        );
        (supervisor, reports)
    }

    async fn until_gone(supervisor: &Supervisor, name: &str) -> RunState {
        for _ in 0..500 {
            let state = supervisor.states()[name].clone();
            if state.pid().is_none() {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} did not end within 5 s");
    }

    #[tokio::test]
    async fn a_child_that_dies_is_reported_with_its_last_words_and_not_restarted() {
        let (supervisor, reports) = recording();
        supervisor
            .start(sh("node", "echo up; echo failing >&2; exit 3"))
            .unwrap();
        let state = until_gone(&supervisor, "node").await;
        assert_eq!(
            state,
            RunState::Exited {
                status: "exit status: 3".into()
            }
        );
        let reports = reports.lock().unwrap().clone();
        let line = |line: &str| Report::Line {
            name: "node".into(),
            line: line.into(),
        };
        assert!(reports.contains(&line("up")) && reports.contains(&line("failing")));
        assert_eq!(
            reports.last(),
            Some(&Report::Died {
                name: "node".into(),
                status: "exit status: 3".into()
            }),
            "the death is reported after its last lines: {reports:?}"
        );
        // Left exited; started again only when asked.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(
            supervisor.states()["node"],
            RunState::Exited { .. }
        ));
        supervisor.start(sh("node", "exit 0")).unwrap();
        until_gone(&supervisor, "node").await;
    }

    #[tokio::test]
    async fn stopping_all_leaves_no_process_behind_and_reports_no_death() {
        let (supervisor, reports) = recording();
        // One stops at SIGTERM; one ignores it and must be killed.
        let polite = supervisor.start(sh("polite", "sleep 60")).unwrap();
        let stubborn = supervisor
            .start(sh(
                "stubborn",
                "trap '' TERM; echo ready; while :; do sleep 0.05; done",
            ))
            .unwrap();
        assert!(supervisor.start(sh("polite", "true")).is_err(), "not twice");
        // The trap is set once it says so.
        for _ in 0..500 {
            if reports
                .lock()
                .unwrap()
                .iter()
                .any(|r| matches!(r, Report::Line { line, .. } if line == "ready"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::timeout(Duration::from_secs(10), supervisor.stop_all())
            .await
            .expect("stop_all returns");
        for (name, pid) in [("polite", polite), ("stubborn", stubborn)] {
            assert_eq!(supervisor.states()[name], RunState::Stopped);
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "{name} (pid {pid}) is still running"
            );
        }
        assert!(
            !reports
                .lock()
                .unwrap()
                .iter()
                .any(|r| matches!(r, Report::Died { .. })),
            "a stop is no death"
        );
    }
}
