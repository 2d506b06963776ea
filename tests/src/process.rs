//! The `earshot` binary as a user runs it: built from this workspace exactly as
//! `cargo build -p earshot-server --bin earshot` builds it (without the `testing` feature), started
//! on a free port, read for the admin key it prints, stopped with SIGTERM or killed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// An upper bound for a start or a clean exit on a loaded 2-core machine, not a pause.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `earshot` binary of this workspace, built once per test process in the test's profile
/// (a no-op when it is up to date).
///
/// `EARSHOT_E2E_BINARY=<path>` runs that binary instead, unbuilt: for benchmarks that compare two
/// builds of the server in the same session (docs/BENCHMARKS.md).
pub fn earshot_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = std::env::var_os("EARSHOT_E2E_BINARY") {
        return BINARY.get_or_init(|| PathBuf::from(path));
    }
    BINARY.get_or_init(|| {
        let mut build = escargot::CargoBuild::new()
            .package("earshot-server")
            .bin("earshot")
            .current_release()
            .manifest_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"));
        // What cargo set for this test crate is not the build's: some build scripts (ring's)
        // rerun when CARGO_MANIFEST_DIR changes, which would rebuild half the tree each time.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let per_crate = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*name);
            if per_crate {
                build = build.env_remove(&*name);
            }
        }
        let build =
            build.run().unwrap_or_else(|error| panic!("building the earshot binary: {error}"));
        build.path().to_owned()
    })
}

/// A running `earshot serve`.
pub struct ServerProcess {
    pub child: Child,
    url: String,
    pub address: std::net::SocketAddr,
    /// The admin key and project the first start printed (empty after a restart; see
    /// `printed_key`).
    pub admin_key: String,
    pub project_id: String,
    /// Whether this start printed a key and a project: only a first start does.
    pub printed_key: Option<String>,
    pub printed_project_id: Option<String>,
    data_dir: PathBuf,
    _directory: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// A first start in a fresh temporary data directory; transcription is off unless `env`
    /// names EARSHOT_ASR__ENABLED.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_fresh(crate::transcription_off_unless_named(env)).await
    }

    /// A first start with transcription on, reading the installed models; recognition runs in
    /// `earshot asr-worker` children, as it does by default.
    pub async fn start_with_asr(env: &[(&str, &str)]) -> Self {
        Self::start_fresh(crate::with_transcription(env)).await
    }

    async fn start_fresh(env: Vec<(String, String)>) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let env: Vec<(&str, &str)> =
            env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let mut server = Self::start_in(&directory.path().join("data"), &env).await;
        assert!(server.printed_key.is_some(), "a first start prints the admin key");
        server._directory = Some(directory);
        server
    }

    /// Runs `earshot serve --listen 127.0.0.1:0 --data-dir <data_dir>` with `env` (and nothing
    /// else of this process's EARSHOT_MASTER_KEY) and waits for its "listening on" line. Its log
    /// goes to `<data_dir>.log`.
    pub async fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_in_with_args(data_dir, &[], env).await
    }

    /// `start_in` with `args` after `serve` (`--role worker`).
    pub async fn start_in_with_args(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let mut command = Command::new(earshot_binary());
        command
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("EARSHOT_MASTER_KEY")
            .envs(crate::storage_env(data_dir).await)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut printed_key, mut printed_project_id) = (None, None);
        let url = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(key) = line.trim().strip_prefix("api_key:") {
                    printed_key = Some(key.trim().to_owned());
                } else if let Some(id) = line.trim().strip_prefix("project_id:") {
                    printed_project_id = Some(id.trim().to_owned());
                } else if let Some(url) = line.strip_prefix("earshot: listening on ") {
                    return url.to_owned();
                }
            }
            panic!(
                "earshot exited before listening; see {}",
                data_dir.with_extension("log").display()
            );
        })
        .await
        .expect("earshot did not start in time");
        let address = url.trim_start_matches("http://").parse().unwrap();
        Self {
            child,
            url,
            address,
            admin_key: printed_key.clone().unwrap_or_default(),
            project_id: printed_project_id.clone().unwrap_or_default(),
            printed_key,
            printed_project_id,
            data_dir: data_dir.to_owned(),
            _directory: None,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap()
    }

    /// A native gRPC (HTTP/2) channel.
    pub async fn channel(&self) -> tonic::transport::Channel {
        crate::Server::channel(self).await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// The CPU time the process has used so far, all its threads, user and system.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.pid())
    }

    /// Pauses the whole process (SIGSTOP): its threads, timers and writer stop where they are.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) {
        self.signal("-TERM");
        let exit = tokio::time::timeout(START_TIMEOUT, self.child.wait()).await.unwrap().unwrap();
        assert!(exit.success(), "earshot exited with {exit} after SIGTERM");
    }

    /// Sends SIGKILL and waits for the process to end.
    pub async fn kill(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait().await;
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }
}

impl crate::Server for ServerProcess {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn admin_key(&self) -> &str {
        &self.admin_key
    }

    fn project_id(&self) -> &str {
        &self.project_id
    }
}

/// Runs `earshot <args> --data-dir <data_dir>` to completion with `env`, on the database a
/// server in `data_dir` uses.
pub async fn run_command(
    args: &[&str],
    data_dir: &Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    Command::new(earshot_binary())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("EARSHOT_MASTER_KEY")
        .envs(crate::storage_env(data_dir).await)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

/// The CPU time process `pid` has used so far, all its threads, user and system (Linux's
/// `/proc/<pid>/stat`, in ticks of `USER_HZ`, 100 a second on Linux).
pub fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks = |field: usize| fields[field].parse::<f64>().unwrap();
    // utime and stime, the 14th and 15th fields of the line.
    (ticks(11) + ticks(12)) / 100.0
}
