//! The kernel lives on a thread of its own: nftnl objects are not `Send`, and
//! the netlink calls block. The loop sends it closures and awaits the answer.
//!
//! A job that panics, a thread that is gone, or a call whose thread makes no
//! progress for its timeout leaves the kernel side in an unknown state (a
//! stuck thread would also hold every later call): the thread is then marked
//! dead for good, and the loop ends the process so that systemd restarts it.
//!
//! The timeout applies to each kernel operation, not to a whole call: the
//! thread marks every operation it finishes ([`crate::apply::progress`]),
//! and a call is stuck only when no operation has finished for the timeout.
//! A pass that adds thousands of proxy entries takes as long as it takes;
//! one netlink request that never returns is caught.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::apply::progress::{self, Heartbeat};
use crate::apply::{ApplyError, LinuxKernel};

/// How long one kernel operation may take (a call fails when its thread
/// finishes none for this long): netlink answers in milliseconds, and the
/// netfilter socket itself gives up after 10 s.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// Why the kernel thread can no longer be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelThreadError {
    #[error("the kernel thread panicked: {0}")]
    Panicked(String),
    #[error("the kernel thread is gone")]
    Gone,
    #[error("a kernel operation did not finish within {0:?}: the kernel thread is stuck")]
    Timeout(Duration),
}

/// A thread owning `S` (the real kernel, or a stand-in in tests).
pub struct KernelThread<S = LinuxKernel> {
    jobs: mpsc::Sender<Job<S>>,
    timeout: Duration,
    /// Marked by the thread at the start of each job and after each kernel
    /// operation.
    heartbeat: Arc<Heartbeat>,
    dead: Mutex<Option<KernelThreadError>>,
}

impl KernelThread<LinuxKernel> {
    pub fn start() -> Result<KernelThread, ApplyError> {
        KernelThread::start_with(LinuxKernel::new, CALL_TIMEOUT)
    }
}

impl<S: 'static> KernelThread<S> {
    /// Starts the thread, which builds its state with `make`. A call fails
    /// as stuck when the thread marks no progress for `timeout`.
    pub fn start_with(
        make: impl FnOnce() -> Result<S, ApplyError> + Send + 'static,
        timeout: Duration,
    ) -> Result<KernelThread<S>, ApplyError> {
        let (jobs, rx) = mpsc::channel::<Job<S>>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let heartbeat = Heartbeat::new();
        let thread_heartbeat = Arc::clone(&heartbeat);
        std::thread::Builder::new()
            .name("dock6-kernel".into())
            .spawn(move || {
                progress::install(thread_heartbeat);
                let mut state = match make() {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&mut state);
                }
            })
            .map_err(ApplyError::Runtime)?;
        ready_rx
            .recv()
            .map_err(|_| ApplyError::Runtime(std::io::Error::other("kernel thread died")))??;
        Ok(KernelThread {
            jobs,
            timeout,
            heartbeat,
            dead: Mutex::new(None),
        })
    }

    /// Why the thread is dead, once it is: the caller must stop.
    pub fn dead(&self) -> Option<KernelThreadError> {
        self.dead.lock().ok().and_then(|d| d.clone())
    }

    /// Runs `f` on the kernel thread. A panic, a gone thread or a timeout
    /// is an error here and marks the thread dead (see [`Self::dead`]).
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> Result<T, ApplyError> + Send + 'static,
    ) -> Result<T, ApplyError> {
        if let Some(e) = self.dead() {
            return Err(ApplyError::KernelThread(e.to_string()));
        }
        match self.send(f).await {
            Ok(result) => result,
            Err(e) => {
                if let Ok(mut dead) = self.dead.lock() {
                    dead.get_or_insert(e.clone());
                }
                Err(ApplyError::KernelThread(e.to_string()))
            }
        }
    }

    async fn send<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> Result<T, ApplyError> + Send + 'static,
    ) -> Result<Result<T, ApplyError>, KernelThreadError> {
        let (tx, mut rx) = oneshot::channel();
        let job: Job<S> = Box::new(move |state: &mut S| {
            progress::beat();
            let outcome = catch_unwind(AssertUnwindSafe(|| f(state))).map_err(panic_message);
            let _ = tx.send(outcome);
        });
        let sent = Instant::now();
        self.jobs.send(job).map_err(|_| KernelThreadError::Gone)?;
        loop {
            // Progress marked before this call was sent is not this call's.
            let since = self.heartbeat.last().max(sent);
            let deadline = tokio::time::Instant::from_std(since + self.timeout);
            match tokio::time::timeout_at(deadline, &mut rx).await {
                Err(_) if self.heartbeat.last() > since => continue,
                Err(_) => return Err(KernelThreadError::Timeout(self.timeout)),
                Ok(Err(_)) => return Err(KernelThreadError::Gone),
                Ok(Ok(outcome)) => return outcome.map_err(KernelThreadError::Panicked),
            }
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(timeout: Duration) -> KernelThread<u32> {
        KernelThread::start_with(|| Ok(0u32), timeout).expect("start")
    }

    #[tokio::test]
    async fn a_panicking_job_marks_the_thread_dead() {
        let thread = counter(Duration::from_secs(5));
        let n = thread
            .call(|n| {
                *n += 1;
                Ok(*n)
            })
            .await
            .expect("a job that works");
        assert_eq!(n, 1);
        assert_eq!(thread.dead(), None);
        let e = thread
            .call(|_| -> Result<(), ApplyError> { panic!("boom") })
            .await
            .expect_err("a panic is an error");
        assert!(e.to_string().contains("panicked: boom"), "{e}");
        assert_eq!(
            thread.dead(),
            Some(KernelThreadError::Panicked("boom".into()))
        );
        // Every later call fails at once, naming the first cause.
        let e = thread.call(|n| Ok(*n)).await.expect_err("dead");
        assert!(e.to_string().contains("boom"), "{e}");
    }

    #[tokio::test]
    async fn a_stuck_job_times_out_and_marks_the_thread_dead() {
        let thread = counter(Duration::from_millis(50));
        let e = thread
            .call(|_| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
            .await
            .expect_err("timeout");
        assert!(e.to_string().contains("stuck"), "{e}");
        assert!(matches!(thread.dead(), Some(KernelThreadError::Timeout(_))));
    }

    /// Sleeps `steps` times `step`, marking progress after each.
    fn steady(steps: u32, step: Duration) -> Result<u32, ApplyError> {
        for _ in 0..steps {
            std::thread::sleep(step);
            crate::apply::progress::beat();
        }
        Ok(steps)
    }

    #[tokio::test]
    async fn a_job_making_progress_is_not_stuck_however_long_it_takes() {
        // Three times the timeout in all, a tenth of it between two steps.
        let thread = counter(Duration::from_millis(1000));
        let done = thread
            .call(|_| steady(30, Duration::from_millis(100)))
            .await;
        assert_eq!(done.ok(), Some(30), "a job making progress is not stuck");
        assert_eq!(thread.dead(), None);
    }

    #[tokio::test]
    async fn a_job_that_stops_making_progress_is_stuck() {
        let thread = counter(Duration::from_millis(300));
        let e = thread
            .call(|_| {
                steady(5, Duration::from_millis(30))?;
                // One operation that does not return (in time).
                std::thread::sleep(Duration::from_secs(3));
                Ok(())
            })
            .await
            .expect_err("no progress for longer than the timeout");
        assert!(e.to_string().contains("stuck"), "{e}");
        assert!(matches!(thread.dead(), Some(KernelThreadError::Timeout(_))));
    }

    #[tokio::test]
    async fn a_job_error_is_not_fatal() {
        let thread = counter(Duration::from_secs(5));
        let e = thread
            .call(|_| -> Result<(), ApplyError> {
                Err(ApplyError::Runtime(std::io::Error::other("refused")))
            })
            .await
            .expect_err("the job's error");
        assert!(e.to_string().contains("refused"), "{e}");
        assert_eq!(thread.dead(), None);
    }
}
