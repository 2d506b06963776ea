//! Offline transcription and diarization of audio-only calls.
//!
//! `Asr` owns dedicated worker threads (never the async runtime): each runs a whole call at a
//! time on the loaded Whisper models (decode, voice activity, recognition, turns), each window
//! it hears on a decoding state made for it. Callers await the answer.

mod child;
#[cfg(test)]
mod coverage_tests;
pub mod segmentation;
pub mod speaker;
pub mod turns;
pub mod vad;
mod voices;
mod warp;
mod weights;
pub mod whisper;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::audio::decode;
pub use turns::{RoleHints, Transcript};

/// The widest beam whisper.cpp decodes (a decoder per beam, at most 8).
pub const MAX_BEAM_SIZE: u32 = 8;

#[derive(Clone, Debug)]
pub struct AsrSettings {
    pub model_path: PathBuf,
    /// The Whisper model for audio recorded at 8 kHz or less (telephone band); None: the one
    /// at `model_path` serves it too.
    pub telephone_model_path: Option<PathBuf>,
    /// The speaker encoder that separates the voices of mono calls.
    pub speaker_model_path: PathBuf,
    /// The segmentation model that finds where the voices of a mono call overlap.
    pub segmentation_model_path: PathBuf,
    pub threads: usize,
    pub concurrent_jobs: usize,
    pub max_audio_seconds: u32,
    /// Beam width for audio recorded at 8 kHz or less (telephone band); 0 or 1: greedy, as
    /// for wideband audio.
    pub telephone_beam_size: u32,
    /// Audio recorded at 8 kHz or less is heard again slowed by this factor (every frequency
    /// lowered by it), and the surer hearing kept (`warp`); 1: heard as recorded only.
    pub telephone_warp: f32,
    /// Recognition runs in child processes of this executable (`earshot asr-worker`), so that
    /// a native crash fails one job instead of the server; None: on threads of this process.
    pub worker_binary: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    /// The audio cannot be decoded; retrying cannot help.
    #[error("{0}")]
    BadAudio(String),
    /// Transcription cannot run here now (no model, disabled, workers gone).
    #[error("{0}")]
    Unavailable(String),
    /// The recognizer failed on this call.
    #[error("{0}")]
    Failed(String),
}

pub use child::serve as serve_worker;

struct Job {
    audio: Bytes,
    content_type: String,
    hints: RoleHints,
    reply: oneshot::Sender<Result<Transcript, AsrError>>,
}

/// A handle to the transcription workers; cheap to clone.
#[derive(Clone, Debug)]
pub struct Asr {
    state: Arc<State>,
}

#[derive(Debug)]
enum State {
    Ready(mpsc::Sender<Job>),
    Unavailable(String),
}

impl Asr {
    /// Loads the model and starts the workers; blocks for the load (call it off the runtime).
    /// Without a usable model the handle answers every call with `Unavailable` and the reason.
    pub fn start(settings: &AsrSettings) -> Self {
        if !settings.model_path.is_file() {
            return Self::unavailable(format!(
                "the speech model is not installed ({} is missing): run `earshot models install`",
                settings.model_path.display()
            ));
        }
        let settings = &settings.with_installed_telephone_model();
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        if let Some(binary) = &settings.worker_binary {
            for index in 0..settings.concurrent_jobs {
                let receiver = Arc::clone(&receiver);
                let (binary, settings) = (binary.clone(), settings.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("earshot-asr-{index}"))
                    .spawn(move || child::thread(&binary, &settings, &receiver));
                if let Err(error) = spawned {
                    return Self::unavailable(format!("starting a transcription thread: {error}"));
                }
            }
            return Self { state: Arc::new(State::Ready(sender)) };
        }
        let models = match load_models(settings) {
            Ok(loaded) => loaded,
            Err(reason) => return Self::unavailable(reason),
        };
        for index in 0..settings.concurrent_jobs {
            let receiver = Arc::clone(&receiver);
            let models = models.clone();
            let settings = settings.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("earshot-asr-{index}"))
                .spawn(move || worker(&models, &settings, &receiver));
            if let Err(error) = spawned {
                return Self::unavailable(format!("starting a transcription thread: {error}"));
            }
        }
        Self { state: Arc::new(State::Ready(sender)) }
    }

    pub fn unavailable(reason: String) -> Self {
        Self { state: Arc::new(State::Unavailable(reason)) }
    }

    /// Why transcription cannot run, if it cannot.
    pub fn unavailable_reason(&self) -> Option<&str> {
        match &*self.state {
            State::Ready(_) => None,
            State::Unavailable(reason) => Some(reason),
        }
    }

    /// Decodes and transcribes one call's audio on a worker thread.
    pub async fn transcribe(
        &self,
        audio: Bytes,
        content_type: &str,
        hints: RoleHints,
    ) -> Result<Transcript, AsrError> {
        let sender = match &*self.state {
            State::Unavailable(reason) => return Err(AsrError::Unavailable(reason.clone())),
            State::Ready(sender) => sender,
        };
        let (reply, answer) = oneshot::channel();
        let job = Job { audio, content_type: content_type.to_owned(), hints, reply };
        sender.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl AsrSettings {
    /// These settings without a telephone model that is not installed: the main model serves
    /// telephone audio until `earshot models install` adds it (said in the log), heard once
    /// (the warp was measured to help base and not tiny.en: docs/BENCHMARKS.md).
    fn with_installed_telephone_model(&self) -> Self {
        let mut settings = self.clone();
        if let Some(path) = &self.telephone_model_path
            && !path.is_file()
        {
            tracing::warn!(
                missing = %path.display(),
                "8 kHz telephone audio is transcribed with the main speech model until `earshot models install` adds the telephone model"
            );
            settings.telephone_model_path = None;
            settings.telephone_warp = 1.0;
        }
        settings
    }
}

/// The models the transcription threads share: Whisper, the telephone band's Whisper when it
/// is another, and the speaker encoder when it is installed (mono calls fall back to
/// alternating guesses without it), with the segmentation model when that is installed too.
#[derive(Clone, Debug)]
struct Models {
    whisper: whisper::Model,
    telephone: Option<whisper::Model>,
    speakers: Option<speaker::VoiceModels>,
}

fn load_models(settings: &AsrSettings) -> Result<Models, String> {
    let load = |path: &std::path::Path| {
        whisper::Model::load(path)
            .map_err(|reason| format!("{reason}; reinstall it with `earshot models install`"))
    };
    let whisper = load(&settings.model_path)?;
    let telephone = match &settings.telephone_model_path {
        Some(path) if *path != settings.model_path => Some(load(path)?),
        _ => None,
    };
    let speakers = speaker::SpeakerEncoder::load(&settings.speaker_model_path)
        .map_err(|reason| {
            tracing::warn!(
                reason = %reason,
                "mono calls get alternating speaker guesses until `earshot models install` adds the speaker model"
            );
        })
        .ok()
        .map(|encoder| {
            let segmentation = segmentation::Segmentation::load(&settings.segmentation_model_path)
                .map_err(|reason| {
                    tracing::warn!(
                        reason = %reason,
                        "mono calls' overlapped speech is not looked for until `earshot models install` adds the segmentation model"
                    );
                })
                .ok();
            speaker::VoiceModels { encoder, segmentation }
        });
    Ok(Models { whisper, telephone, speakers })
}

/// The next job for a transcription thread; None once the server dropped its handle.
fn next_job(jobs: &Mutex<mpsc::Receiver<Job>>) -> Option<Job> {
    jobs.lock().ok()?.recv().ok()
}

fn stopped() -> AsrError {
    AsrError::Unavailable("the transcription workers stopped".into())
}

fn worker(models: &Models, settings: &AsrSettings, jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let Some(job) = next_job(jobs) else { return };
        let started = std::time::Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(models, settings, &job.audio, &job.content_type, job.hints)
        }))
        .unwrap_or_else(|_| Err(AsrError::Failed("the recognizer panicked on this audio".into())));
        if let Ok(transcript) = &result {
            tracing::info!(
                audio_ms = transcript.duration_ms,
                channels = transcript.channels,
                turns = transcript.turns.len(),
                model = %transcript.model,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "transcribed a call"
            );
        }
        let _receiver_gone = job.reply.send(result);
    }
}

/// Audio recorded at this rate or below is telephone band.
const TELEPHONE_RATE_HZ: u32 = 8_000;

fn run(
    models: &Models,
    settings: &AsrSettings,
    audio: &[u8],
    content_type: &str,
    hints: RoleHints,
) -> Result<Transcript, AsrError> {
    let decoded = decode::decode(audio, content_type, settings.max_audio_seconds)
        .map_err(AsrError::BadAudio)?;
    // Telephone audio gains most from a beam, from the telephone model when there is one, and
    // from a second hearing slower and lower (`warp`; docs/BENCHMARKS.md); wideband stays
    // greedy and is heard once.
    let telephone = decoded.source_sample_rate <= TELEPHONE_RATE_HZ;
    let beam = if telephone { settings.telephone_beam_size } else { 0 };
    let model = match &models.telephone {
        Some(model) if telephone => model,
        _ => &models.whisper,
    };
    let warp = Some(settings.telephone_warp).filter(|&factor| telephone && factor < 1.0);
    let recognize = |samples: &[f32], threads| model.words(samples, beam, threads);
    let speakers = models.speakers.as_ref();
    let mut transcript =
        turns::transcribe(&decoded, hints, speakers, warp, settings.threads, &recognize)
            .map_err(AsrError::Failed)?;
    transcript.model = model.name().to_owned();
    Ok(transcript)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::conversation::Role;
    use crate::testing::{self, Line};

    const SCRIPT: &[Line] = testing::SAMPLE_CALL;

    /// Tiny.en on one thread. Tests run two at a time, and Whisper's threads wait for each
    /// other by spinning: with two threads a job, two jobs on two cores took this module's
    /// tests from 64 s to 519 s.
    pub(crate) fn engine() -> Asr {
        let settings = AsrSettings {
            model_path: testing::model_dir().join(crate::speech_models::WHISPER_TINY_EN.file_name),
            telephone_model_path: None,
            speaker_model_path: testing::model_dir()
                .join(crate::speech_models::SPEAKER_ENCODER.file_name),
            segmentation_model_path: testing::model_dir()
                .join(crate::speech_models::SEGMENTATION.file_name),
            threads: 1,
            concurrent_jobs: 1,
            max_audio_seconds: 600,
            telephone_beam_size: 5,
            telephone_warp: 0.9,
            worker_binary: None,
        };
        let asr = Asr::start(&settings);
        assert_eq!(asr.unavailable_reason(), None);
        asr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stereo_call_becomes_ordered_turns_with_the_words_spoken() {
        let call = testing::generated_call(SCRIPT, 700);
        let wav = testing::wav_from_channels(&call.channels, 16_000);
        let hints = RoleHints { first_turn: Role::Assistant, assistant_channel: None };
        let transcript = engine().transcribe(wav.into(), "audio/wav", hints).await.unwrap();
        assert!(!transcript.speaker_labels_estimated);
        let roles: Vec<Role> = transcript.turns.iter().map(|turn| turn.role).collect();
        assert_eq!(
            roles,
            [Role::Assistant, Role::User, Role::Assistant, Role::User, Role::Assistant],
            "{:#?}",
            transcript.turns
        );
        for (turn, (_, text, start_ms, end_ms)) in transcript.turns.iter().zip(&call.lines) {
            let error = testing::word_error_rate(
                &testing::normalized_words(text),
                &testing::normalized_words(&turn.content),
            );
            assert!(error <= 0.35, "{text:?} heard as {:?} (WER {error})", turn.content);
            assert!((turn.start_ms - start_ms).abs() < 600, "{turn:?} vs {start_ms}");
            assert!((turn.end_ms.unwrap() - end_ms).abs() < 900, "{turn:?} vs {end_ms}");
            assert_eq!(turn.channel, Some(if turn.role == Role::Assistant { 1 } else { 2 }));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_assistant_channel_of_the_integration_wins_over_first_turn() {
        let call = testing::generated_call(&SCRIPT[..2], 500);
        let wav = testing::wav_from_channels(&call.channels, 16_000);
        let hints = RoleHints { first_turn: Role::Assistant, assistant_channel: Some(2) };
        let transcript = engine().transcribe(wav.into(), "audio/wav", hints).await.unwrap();
        let roles: Vec<Role> = transcript.turns.iter().map(|turn| turn.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant]);
    }

    /// `samples` as a 16 kHz mono WAV, transcribed with the assistant speaking first.
    async fn mono_transcript(samples: Vec<f32>) -> Transcript {
        mono_transcript_from(samples, Role::Assistant).await
    }

    /// `samples` as a 16 kHz mono WAV, transcribed with `first_turn` speaking first.
    async fn mono_transcript_from(samples: Vec<f32>, first_turn: Role) -> Transcript {
        let wav = testing::wav_from_channels(&[samples], 16_000);
        let hints = RoleHints { first_turn, assistant_channel: None };
        engine().transcribe(wav.into(), "audio/wav", hints).await.unwrap()
    }

    fn assert_roles(transcript: &Transcript, expected: &[Role]) {
        let roles: Vec<Role> = transcript.turns.iter().map(|turn| turn.role).collect();
        assert_eq!(roles, expected, "{:#?}", transcript.turns);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mono_call_is_split_by_voice_with_estimated_labels() {
        // Not strictly alternating: the caller speaks twice in a row.
        let lines = [SCRIPT[0], SCRIPT[1], SCRIPT[3], SCRIPT[4]];
        let call = testing::generated_call(&lines, 700);
        let transcript = mono_transcript(call.mono()).await;
        assert!(transcript.speaker_labels_estimated);
        // The caller's two lines are one turn.
        assert_roles(&transcript, &[Role::Assistant, Role::User, Role::Assistant]);
        assert!(transcript.turns.iter().all(|turn| turn.channel.is_none()));
        assert!(transcript.turns.iter().all(|turn| turn.confidence.is_some_and(|c| c < 1.0)));
        assert!(transcript.turns[1].content.contains("Sarah"), "{:#?}", transcript.turns);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mono_speaker_change_without_a_pause_or_over_the_other_splits_the_turn() {
        let line = testing::ScriptedLine::new;
        // The caller answers 200 ms after the assistant (one voice-activity utterance in
        // mono), and the assistant cuts in 500 ms before the caller ends.
        let script = [
            line(0, 500, "Thank you for calling City Dental. How can I help you today?"),
            line(1, 200, "Hi, I would like to book a cleaning for next Tuesday morning."),
            line(0, -500, "Sure. We have an opening at nine thirty on Tuesday."),
        ];
        let call = testing::spoken_call(&script);
        let transcript = mono_transcript(call.mono()).await;
        assert_roles(&transcript, &[Role::Assistant, Role::User, Role::Assistant]);
        assert_eq!(testing::covered_lines(&call.lines, &transcript.turns), [true; 3]);
        // Each change lands near where the next line starts.
        for (turn, (_, _, start_ms, _)) in transcript.turns.iter().zip(&call.lines).skip(1) {
            assert!((turn.start_ms - start_ms).abs() < 800, "{turn:?} vs {start_ms}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_line_spoken_over_by_the_other_voice_keeps_its_speaker() {
        let line = testing::ScriptedLine::new;
        // The assistant's short line is alone for 0.7 s, then the caller speaks over its end
        // and goes on: one utterance, too short a stretch of the assistant for its voice to be
        // told by embeddings. The overlap where the caller joins is the change of speaker.
        let script = [
            line(1, 500, "Is there anything else I can do?"),
            line(0, 1_400, "Thanks for waiting."),
            line(1, -790, "You are welcome, have a good evening."),
            line(0, 470, "Do I need the receipt for that?"),
        ];
        let call = testing::spoken_call(&script);
        let transcript = mono_transcript_from(call.mono(), Role::User).await;
        assert_eq!(
            testing::covered_lines(&call.lines, &transcript.turns),
            [true; 4],
            "{:#?}",
            transcript.turns
        );
    }

    /// Audio recorded at 8 kHz goes to the telephone model, wideband audio to the main one; a
    /// telephone model that is not installed leaves telephone audio to the main model.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn telephone_audio_is_heard_by_the_telephone_model() {
        let models = testing::model_dir();
        let telephone = models.join(crate::speech_models::WHISPER_BASE.file_name);
        assert!(
            telephone.is_file(),
            "{} is missing: run `earshot models install`",
            telephone.display()
        );
        let settings = AsrSettings {
            model_path: models.join(crate::speech_models::WHISPER_TINY_EN.file_name),
            telephone_model_path: Some(telephone),
            speaker_model_path: models.join(crate::speech_models::SPEAKER_ENCODER.file_name),
            segmentation_model_path: models.join(crate::speech_models::SEGMENTATION.file_name),
            // Two: the 8 kHz call's two hearings run side by side, on a thread each
            // (`turns::transcribe`).
            threads: 2,
            concurrent_jobs: 1,
            max_audio_seconds: 600,
            telephone_beam_size: 5,
            telephone_warp: 0.9,
            worker_binary: None,
        };
        let call = testing::generated_call(SCRIPT, 700);
        let hints = RoleHints { first_turn: Role::Assistant, assistant_channel: None };
        let wide_wav = testing::wav_from_channels(&call.channels, 16_000);
        // As Twilio records: 8 kHz mu-law.
        let narrow_wav = testing::sox(&wide_wav, &["-r", "8000", "-e", "mu-law"], "wav");
        let heard = |asr: Asr, wav: &[u8]| {
            let wav = Bytes::copy_from_slice(wav);
            async move { asr.transcribe(wav, "audio/wav", hints).await.unwrap() }
        };
        let asr = Asr::start(&settings);
        let narrow = heard(asr.clone(), &narrow_wav).await;
        assert_eq!(narrow.model, crate::speech_models::WHISPER_BASE.file_name);
        assert_eq!(
            testing::covered_lines(&call.lines, &narrow.turns),
            vec![true; call.lines.len()]
        );
        // Each turn starts and ends inside a line of its speaker, whichever hearing (as
        // recorded, or slowed by the warp) its channel kept.
        for turn in &narrow.turns {
            let speaker = usize::from(turn.role == Role::User);
            let inside = |ms: i64| {
                call.lines.iter().any(|(who, _, start, end)| {
                    *who == speaker && (start - 300..=end + 300).contains(&ms)
                })
            };
            assert!(inside(turn.start_ms) && inside(turn.end_ms.unwrap()), "{turn:?}");
        }
        let wide = heard(asr.clone(), &wide_wav).await;
        assert_eq!(wide.model, crate::speech_models::WHISPER_TINY_EN.file_name);
        // Heard again after other calls, word for word the same: each window is heard on a
        // decoding state made for it (`whisper::Model::words`).
        assert_eq!(heard(asr, &wide_wav).await, wide);
        let without = AsrSettings {
            telephone_model_path: Some("/nonexistent/ggml-base.bin".into()),
            ..settings
        };
        // ... heard once: the warp was measured for base
        assert!(without.with_installed_telephone_model().telephone_warp >= 1.0);
        let narrow = heard(Asr::start(&without), &narrow_wav).await;
        assert_eq!(narrow.model, crate::speech_models::WHISPER_TINY_EN.file_name);
    }

    #[tokio::test]
    async fn corrupt_audio_is_bad_audio_and_a_missing_model_names_the_install_command() {
        let missing = Asr::start(&AsrSettings {
            model_path: "/nonexistent/ggml-tiny.en.bin".into(),
            telephone_model_path: None,
            speaker_model_path: "/nonexistent/ge2e.safetensors".into(),
            segmentation_model_path: "/nonexistent/segmentation.safetensors".into(),
            threads: 1,
            concurrent_jobs: 1,
            max_audio_seconds: 60,
            telephone_beam_size: 0,
            telephone_warp: 1.0,
            worker_binary: None,
        });
        let hints = RoleHints { first_turn: Role::Assistant, assistant_channel: None };
        match missing.transcribe(Bytes::from_static(b"RIFF"), "audio/wav", hints).await {
            Err(AsrError::Unavailable(reason)) => {
                assert!(reason.contains("earshot models install"), "{reason}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let corrupt = Bytes::from_static(b"RIFF\x10\0\0\0WAVEfmt garbage garbage");
        match engine().transcribe(corrupt, "audio/wav", hints).await {
            Err(AsrError::BadAudio(reason)) => assert!(!reason.is_empty()),
            other => panic!("expected BadAudio, got {other:?}"),
        }
    }
}
