//! Utterance coverage on generated calls (issue 21): varied two-voice scripts spoken by
//! espeak-ng, transcribed through the whole pipeline; every line must come back, in its
//! speaker's role and in order. A word error rate averages a lost line away; this does not.

use super::tests::engine;
use super::{Asr, RoleHints, Transcript};
use crate::model::conversation::Role;
use crate::testing::{self, GeneratedCall};

/// Generated calls a run transcribes.
const CALLS: u64 = 12;

async fn transcribe(
    asr: &Asr,
    call: &GeneratedCall,
    wav: Vec<u8>,
    content_type: &str,
) -> Transcript {
    // Channel 1 is speaker 0, the assistant, whoever speaks first.
    let first_turn = if call.lines[0].0 == 0 { Role::Assistant } else { Role::User };
    let hints = RoleHints { first_turn, assistant_channel: Some(1) };
    asr.transcribe(wav.into(), content_type, hints).await.unwrap()
}

/// The lines a transcript lost, each described with what was heard, for the failure message.
fn lost(seed: u64, call: &GeneratedCall, transcript: &Transcript) -> Vec<String> {
    let covered = testing::covered_lines(&call.lines, &transcript.turns);
    let heard: Vec<String> = transcript
        .turns
        .iter()
        .map(|turn| {
            format!("{:?} {}-{:?} {:?}", turn.role, turn.start_ms, turn.end_ms, turn.content)
        })
        .collect();
    call.lines
        .iter()
        .zip(covered)
        .filter(|(_, covered)| !covered)
        .map(|((speaker, text, start, end), _)| {
            format!("seed {seed}: speaker {speaker} {start}-{end} ms {text:?}; heard {heard:#?}")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_varied_stereo_calls_is_heard_in_its_role_and_order() {
    let asr = engine();
    let mut missing = Vec::new();
    let mut lines = 0;
    for seed in 0..CALLS {
        let call = testing::spoken_call(&testing::varied_script(seed));
        lines += call.lines.len();
        let wav = testing::wav_from_channels(&call.channels, 16_000);
        let transcript = transcribe(&asr, &call, wav, "audio/wav").await;
        missing.extend(lost(seed, &call, &transcript));
    }
    assert!(missing.is_empty(), "{} of {lines} lines lost:\n{}", missing.len(), missing.join("\n"));
}
