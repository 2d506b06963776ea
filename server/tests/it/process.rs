//! The `earshot` binary as a user runs it: first start, restart, bootstrap, migrate, master-key
//! rotation, configuration errors, SIGTERM.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use earshot_proto::v1 as pb;
use earshot_proto::v1::integration_service_client::IntegrationServiceClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::authed;

const EARSHOT: &str = env!("CARGO_BIN_EXE_earshot");
/// An upper bound for a start on a loaded 2-core machine, not a synchronization sleep.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct ServerProcess {
    child: Child,
    url: String,
    printed_key: Option<String>,
    printed_project_id: Option<String>,
}

impl ServerProcess {
    /// Runs `earshot serve` on a free port and waits for its "listening on" line.
    async fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let mut command = Command::new(EARSHOT);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("EARSHOT_MASTER_KEY")
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
        Self { child, url, printed_key, printed_project_id }
    }

    /// Sends SIGTERM and waits for a clean exit.
    async fn terminate(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(START_TIMEOUT, self.child.wait()).await.unwrap().unwrap();
        assert!(exit.success(), "earshot exited with {exit} after SIGTERM");
    }
}

async fn client(url: &str) -> IntegrationServiceClient<tonic::transport::Channel> {
    IntegrationServiceClient::connect(url.to_owned()).await.unwrap()
}

async fn create_twilio(url: &str, key: &str, project_id: &str, token: &str) -> pb::Integration {
    client(url)
        .await
        .create_integration(authed(
            pb::CreateIntegrationRequest {
                project_id: project_id.to_owned(),
                provider: pb::Provider::Twilio as i32,
                secrets: [("auth_token".to_owned(), token.to_owned())].into(),
                ..Default::default()
            },
            key,
        ))
        .await
        .unwrap()
        .into_inner()
        .integration
        .unwrap()
}

async fn get(url: &str, key: &str, id: &str) -> Result<pb::Integration, tonic::Status> {
    Ok(client(url)
        .await
        .get_integration(authed(pb::GetIntegrationRequest { id: id.to_owned() }, key))
        .await?
        .into_inner()
        .integration
        .unwrap())
}

async fn run_command(args: &[&str], data_dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(EARSHOT)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("EARSHOT_MASTER_KEY")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn first_start_prints_an_admin_key_and_data_survives_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let first = ServerProcess::start(&data_dir, &[]).await;
    let key = first.printed_key.clone().expect("first start prints the admin key");
    let project_id = first.printed_project_id.clone().expect("first start prints the project id");
    assert!(key.starts_with("es_"));
    let created =
        create_twilio(&first.url, &key, &project_id, "0123456789abcdef0123456789abcdef").await;
    first.terminate().await;

    let second = ServerProcess::start(&data_dir, &[]).await;
    assert_eq!(second.printed_key, None, "the key is printed only on first start");
    let after = get(&second.url, &key, &created.id).await.unwrap();
    assert_eq!(after.public_id, created.public_id);
    assert_eq!(after.secret_summary, created.secret_summary);
    let log = std::fs::read_to_string(data_dir.with_extension("log")).unwrap();
    assert!(!log.contains(&key), "the admin key must not reach the log");
    second.terminate().await;
}

#[tokio::test]
async fn bootstrap_prints_json_once_and_migrate_reports_migrations() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let output = run_command(&["bootstrap"], &data_dir, &[]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("es_"));
    uuid::Uuid::parse_str(created["project_id"].as_str().unwrap()).unwrap();

    let again = run_command(&["bootstrap"], &data_dir, &[]).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already bootstrapped"));
    let another = run_command(&["bootstrap", "--new-organization"], &data_dir, &[]).await;
    assert!(another.status.success());

    let migrate = run_command(&["migrate"], &data_dir, &[]).await;
    assert!(migrate.status.success());
    let applied: serde_json::Value = serde_json::from_slice(&migrate.stdout).unwrap();
    assert_eq!(applied["applied_migrations"][0], "m0001_initial");

    // The server started afterwards uses the bootstrapped key and prints none.
    let server = ServerProcess::start(&data_dir, &[]).await;
    assert_eq!(server.printed_key, None);
    let project_id = created["project_id"].as_str().unwrap();
    create_twilio(&server.url, &key, project_id, "0123456789abcdef0123456789abcdef").await;
    server.terminate().await;
}

#[tokio::test]
async fn rotate_master_key_reseals_and_every_integration_stays_usable() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let server = ServerProcess::start(&data_dir, &[]).await;
    let key = server.printed_key.clone().unwrap();
    let project_id = server.printed_project_id.clone().unwrap();
    let tokens = ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"];
    let mut ids = Vec::new();
    for token in tokens {
        ids.push(create_twilio(&server.url, &key, &project_id, token).await.id);
    }
    server.terminate().await;
    let key_before = std::fs::read_to_string(data_dir.join("master.key")).unwrap();

    let output = run_command(&["rotate-master-key"], &data_dir, &[]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["resealed_secrets"], 2);
    assert_ne!(report["new_key_id"], report["previous_key_id"]);
    let key_after = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    assert_ne!(key_before, key_after);
    assert!(!data_dir.join("master.key.next").exists());

    // The secrets open under the new key alone.
    let overrides = earshot_server::config::Overrides {
        data_dir: Some(data_dir.clone()),
        listen: Some("127.0.0.1:0".to_owned()),
        log_format: None,
    };
    let config =
        earshot_server::config::Config::load_with_env(None, &overrides, Vec::new()).unwrap();
    let app =
        earshot_server::app::App::build(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    for (id, token) in ids.iter().zip(tokens) {
        let sets = app.domain.verification_secrets(id.parse().unwrap()).await.unwrap();
        assert_eq!(sets[0].get("auth_token").unwrap().expose(), token);
    }
    app.domain.storage.close().await.unwrap();

    let restarted = ServerProcess::start(&data_dir, &[]).await;
    for id in &ids {
        get(&restarted.url, &key, id).await.unwrap();
    }
    restarted.terminate().await;
}

#[tokio::test]
async fn a_configured_master_key_is_used_and_rotated_through_the_environment() {
    let encode = |bytes: [u8; 32]| data_encoding::BASE64.encode(&bytes);
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let old_key = encode([7u8; 32]);
    let new_key = encode([9u8; 32]);
    let server = ServerProcess::start(&data_dir, &[("EARSHOT_MASTER_KEY", &old_key)]).await;
    let key = server.printed_key.clone().unwrap();
    let project_id = server.printed_project_id.clone().unwrap();
    let id =
        create_twilio(&server.url, &key, &project_id, "0123456789abcdef0123456789abcdef").await.id;
    server.terminate().await;
    assert!(!data_dir.join("master.key").exists(), "no key file when the key is configured");

    let refused =
        run_command(&["rotate-master-key"], &data_dir, &[("EARSHOT_MASTER_KEY", &old_key)]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("EARSHOT_NEW_MASTER_KEY"));
    let rotated = run_command(
        &["rotate-master-key"],
        &data_dir,
        &[("EARSHOT_MASTER_KEY", &old_key), ("EARSHOT_NEW_MASTER_KEY", &new_key)],
    )
    .await;
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));

    let restarted = ServerProcess::start(&data_dir, &[("EARSHOT_MASTER_KEY", &new_key)]).await;
    get(&restarted.url, &key, &id).await.unwrap();
    restarted.terminate().await;
}

#[tokio::test]
async fn invalid_configuration_fails_fast_naming_the_key() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let cases = [
        ("EARSHOT_LISTEN", "not-an-address", "`listen`"),
        ("EARSHOT_MASTER_KEY", "dG9vIHNob3J0", "`master_key`"),
        (
            "EARSHOT_INTEGRATIONS__RATE_LIMIT_PER_MINUTE_DEFAULT",
            "0",
            "`integrations.rate_limit_per_minute_default`",
        ),
    ];
    for (name, value, expected) in cases {
        let output = Command::new(EARSHOT)
            .args(["serve", "--data-dir"])
            .arg(&data_dir)
            .env(name, value)
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
    assert!(!data_dir.exists(), "a rejected configuration creates nothing");
}
