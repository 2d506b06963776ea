//! Recognition in a child process (`earshot asr-worker`): whisper.cpp and ggml end the process
//! with `abort()` when one of their assertions fails, which in the server would take every
//! request down with it. In a child, it costs one job (retried) and a respawn.
//!
//! Protocol over the child's stdin and stdout: frames of a u64 little-endian length and that
//! many bytes. The child first answers a `Reply::Ready` (or `Unavailable`); then each request is
//! a JSON `Request` frame and an audio frame, each answer one JSON `Reply` frame.

use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{AsrError, AsrSettings, RoleHints, Transcript};
use crate::model::conversation::Role;

/// Largest frame accepted (audio included): 1 GiB.
const MAX_FRAME: u64 = 1 << 30;

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    content_type: String,
    first_turn: Role,
    assistant_channel: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Reply {
    Ready,
    Unavailable { reason: String },
    Transcript { transcript: Transcript },
    BadAudio { reason: String },
    Failed { reason: String },
}

fn write_frame(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(bytes.len() as u64).to_le_bytes())?;
    out.write_all(bytes)?;
    out.flush()
}

/// The next frame, or None at a clean end of input.
fn read_frame(input: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 8];
    match input.read_exact(&mut length) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = u64::from_le_bytes(length);
    if length > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"));
    }
    let mut bytes = vec![0u8; usize::try_from(length).unwrap_or(0)];
    input.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

fn write_reply(out: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    let json = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    write_frame(out, &json)
}

/// `earshot asr-worker`: loads the models, says so, then answers requests on stdin until it
/// closes.
pub fn serve(settings: &AsrSettings) -> Result<(), String> {
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let io = |error: std::io::Error| format!("asr-worker: {error}");
    let models = match super::load_models(settings) {
        Ok(loaded) => loaded,
        Err(reason) => {
            write_reply(&mut output, &Reply::Unavailable { reason: reason.clone() }).map_err(io)?;
            return Err(reason);
        }
    };
    write_reply(&mut output, &Reply::Ready).map_err(io)?;
    while let Some(header) = read_frame(&mut input).map_err(io)? {
        let audio = read_frame(&mut input).map_err(io)?.ok_or("asr-worker: audio frame missing")?;
        let request: Request =
            serde_json::from_slice(&header).map_err(|error| format!("asr-worker: {error}"))?;
        let hints = RoleHints {
            first_turn: request.first_turn,
            assistant_channel: request.assistant_channel,
        };
        let reply = match super::run(&models, settings, &audio, &request.content_type, hints) {
            Ok(transcript) => Reply::Transcript { transcript },
            Err(AsrError::BadAudio(reason)) => Reply::BadAudio { reason },
            Err(AsrError::Failed(reason) | AsrError::Unavailable(reason)) => {
                Reply::Failed { reason }
            }
        };
        write_reply(&mut output, &reply).map_err(io)?;
    }
    Ok(())
}

/// A running `asr-worker`, owned by one transcription thread of the server.
pub(super) struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    pub(super) fn spawn(binary: &Path, settings: &AsrSettings) -> Result<Self, AsrError> {
        let failed = |error: std::io::Error| {
            AsrError::Unavailable(format!("starting {} asr-worker: {error}", binary.display()))
        };
        let mut child = Command::new(binary)
            .arg("asr-worker")
            .arg("--model")
            .arg(&settings.model_path)
            .arg("--speaker-model")
            .arg(&settings.speaker_model_path)
            .arg("--segmentation-model")
            .arg(&settings.segmentation_model_path)
            .args(
                settings
                    .telephone_model_path
                    .iter()
                    .flat_map(|path| [std::ffi::OsStr::new("--telephone-model"), path.as_os_str()]),
            )
            .args(["--threads", &settings.threads.to_string()])
            .args(["--max-audio-seconds", &settings.max_audio_seconds.to_string()])
            .args(["--telephone-beam-size", &settings.telephone_beam_size.to_string()])
            .args(["--telephone-warp", &settings.telephone_warp.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(failed)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(AsrError::Unavailable("the recognizer process has no pipes".into()));
        };
        let mut worker = Self { child, stdin, stdout: BufReader::new(stdout) };
        match worker.reply() {
            Ok(Reply::Ready) => Ok(worker),
            Ok(Reply::Unavailable { reason }) => {
                worker.stop();
                Err(AsrError::Unavailable(reason))
            }
            Ok(other) => {
                worker.stop();
                Err(AsrError::Unavailable(format!("the recognizer process answered {other:?}")))
            }
            Err(reason) => Err(AsrError::Unavailable(format!(
                "the recognizer process did not start: {reason}; {}",
                worker.stop()
            ))),
        }
    }

    fn reply(&mut self) -> Result<Reply, String> {
        let frame = read_frame(&mut self.stdout).map_err(|error| error.to_string())?;
        let frame = frame.ok_or("it closed its output")?;
        serde_json::from_slice(&frame).map_err(|error| error.to_string())
    }

    /// Sends one call; an error means the process is gone and must be replaced.
    pub(super) fn transcribe(
        &mut self,
        audio: &[u8],
        content_type: &str,
        hints: RoleHints,
    ) -> Result<Result<Transcript, AsrError>, String> {
        let request = Request {
            content_type: content_type.to_owned(),
            first_turn: hints.first_turn,
            assistant_channel: hints.assistant_channel,
        };
        let header = serde_json::to_vec(&request).map_err(|error| error.to_string())?;
        write_frame(&mut self.stdin, &header).map_err(|error| error.to_string())?;
        write_frame(&mut self.stdin, audio).map_err(|error| error.to_string())?;
        Ok(match self.reply()? {
            Reply::Transcript { transcript } => Ok(transcript),
            Reply::BadAudio { reason } => Err(AsrError::BadAudio(reason)),
            Reply::Failed { reason } => Err(AsrError::Failed(reason)),
            other => Err(AsrError::Failed(format!("the recognizer process answered {other:?}"))),
        })
    }

    /// Ends the process and says how it ended.
    pub(super) fn stop(&mut self) -> String {
        let _already_gone = self.child.kill();
        match self.child.wait() {
            Ok(status) => format!("it ended with {status}"),
            Err(error) => format!("waiting for it failed: {error}"),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs jobs through child processes of `binary`, replacing a process that dies.
pub(super) fn thread(
    binary: &Path,
    settings: &AsrSettings,
    jobs: &std::sync::Mutex<std::sync::mpsc::Receiver<super::Job>>,
) {
    let mut worker: Option<Worker> = None;
    loop {
        let Some(job) = super::next_job(jobs) else { return };
        let result = match worker.take() {
            Some(running) => Ok(running),
            None => Worker::spawn(binary, settings),
        }
        .and_then(|mut running| match running.transcribe(&job.audio, &job.content_type, job.hints) {
            Ok(result) => {
                worker = Some(running);
                result
            }
            Err(reason) => {
                let ended = running.stop();
                tracing::error!(reason = %reason, ended = %ended, "the recognizer process stopped on a call");
                Err(AsrError::Failed(format!("the recognizer process stopped on this audio ({ended})")))
            }
        });
        let _receiver_gone = job.reply.send(result);
    }
}
