//! One tokio runtime per process, rebuilt in a forked child (whose copy of the parent's runtime
//! has no threads), and the glue that lets asyncio await futures running on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use pyo3_async_runtimes::TaskLocals;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as GenericRuntime};
use tokio::runtime::Runtime;

struct ProcessRuntime {
    pid: u32,
    runtime: Arc<Runtime>,
}

static RUNTIME: Mutex<Option<ProcessRuntime>> = Mutex::new(None);

/// This process's runtime, built on first use.
pub fn runtime() -> Arc<Runtime> {
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    match slot.as_ref() {
        Some(current) if current.pid == pid => Arc::clone(&current.runtime),
        _ => {
            let runtime = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("earshot-io")
                    .enable_all()
                    .build()
                    .unwrap_or_else(|error| {
                        panic!("cannot start the earshot I/O runtime: {error}")
                    }),
            );
            // A runtime inherited from the parent process has no worker threads here; dropping
            // it would wait for them forever, so it is leaked.
            std::mem::forget(slot.replace(ProcessRuntime { pid, runtime: Arc::clone(&runtime) }));
            runtime
        }
    }
}

/// The process runtime as pyo3-async-runtimes sees it, for `future_into_py`.
pub struct ForkSafeTokio;

tokio::task_local! {
    static TASK_LOCALS: std::cell::OnceCell<TaskLocals>;
}

impl GenericRuntime for ForkSafeTokio {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(future: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        runtime().spawn(future)
    }

    fn spawn_blocking<F>(function: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        runtime().spawn_blocking(function)
    }
}

impl ContextExt for ForkSafeTokio {
    fn scope<F, R>(locals: TaskLocals, future: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = std::cell::OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, future))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS.try_with(|cell| cell.get().cloned()).unwrap_or_default()
    }
}
