//! The worker's Python threads: `--threads` OS threads that take request jobs from one
//! bounded queue and run the application.
//!
//! Each thread attaches to the interpreter once and releases the GIL while it waits for a job,
//! so idle threads cost nothing and the runtime thread never waits on Python.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use pyo3::prelude::*;
use tokio::sync::mpsc;

use crate::wsgi::call::{handle, AppContext};
use crate::wsgi::message::Job;

/// Start `n` Python threads serving jobs from `jobs` until its senders are gone.
pub(crate) fn start(
    n: usize,
    ctx: Arc<AppContext>,
    jobs: mpsc::Receiver<Job>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let jobs = Arc::new(Mutex::new(jobs));
    (0..n)
        .map(|i| {
            let (ctx, jobs) = (ctx.clone(), jobs.clone());
            std::thread::Builder::new()
                .name(format!("bourbon-py-{i}"))
                .spawn(move || serve(&ctx, &jobs))
        })
        .collect()
}

fn serve(ctx: &AppContext, jobs: &Mutex<mpsc::Receiver<Job>>) {
    Python::attach(|py| loop {
        // Wait without the GIL; one thread at a time waits on the queue itself.
        let job = py.detach(|| match jobs.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => None,
        });
        match job {
            Some(job) => handle(py, ctx, job),
            None => break,
        }
    });
}
