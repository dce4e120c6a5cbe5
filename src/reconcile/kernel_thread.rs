//! The kernel lives on a thread of its own: nftnl objects are not `Send`, and
//! the netlink calls block. The loop sends it closures and awaits the answer.

use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::apply::{ApplyError, Kernel, LinuxKernel};

type Job = Box<dyn FnOnce(&mut LinuxKernel) + Send>;

pub struct KernelThread {
    jobs: mpsc::Sender<Job>,
}

impl KernelThread {
    pub fn start() -> Result<KernelThread, ApplyError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("dock6-kernel".into())
            .spawn(move || {
                let mut kernel = match LinuxKernel::new() {
                    Ok(k) => {
                        let _ = ready_tx.send(Ok(()));
                        k
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&mut kernel);
                }
            })
            .map_err(ApplyError::Runtime)?;
        ready_rx
            .recv()
            .map_err(|_| ApplyError::Runtime(std::io::Error::other("kernel thread died")))??;
        Ok(KernelThread { jobs })
    }

    /// Runs `f` on the kernel thread.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Kernel) -> Result<T, ApplyError> + Send + 'static,
    ) -> Result<T, ApplyError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |k: &mut LinuxKernel| {
            let _ = tx.send(f(k));
        });
        self.jobs
            .send(job)
            .map_err(|_| ApplyError::Runtime(std::io::Error::other("kernel thread stopped")))?;
        rx.await.map_err(|_| {
            ApplyError::Runtime(std::io::Error::other("kernel thread dropped a job"))
        })?
    }
}
