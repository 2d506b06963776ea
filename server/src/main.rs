//! The `earshot` binary.

#![forbid(unsafe_code)]

use clap::Parser;

/// mimalloc serves Rust's allocations and, through its `override` feature, the C code's
/// `malloc` and `free` too: SQLite allocates and frees on every statement it runs, and under
/// load glibc's allocator (its locks, consolidation and chunk lists) took a fifth of the
/// process's time. About a quarter more acknowledged calls a second (docs/BENCHMARKS.md, run 13).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = earshot_server::cli::Cli::parse();
    match earshot_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("earshot: error: {error}");
                let mut source = error.source();
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
            }
            std::process::ExitCode::FAILURE
        }
    }
}
