//! Audio to test with (tones, G.711, Ogg/Opus, sox conversions, two-voice calls spoken by
//! espeak-ng), word error rates, and the installed speech models: for this crate's unit tests and,
//! through the `testing` feature, the end-to-end crate `earshot-e2e`. Not compiled into release
//! builds; failures panic, as test setup should.

use std::path::{Path, PathBuf};

/// A 16-bit PCM WAV of a quiet tone, so content differs by `seed`.
pub fn wav(channels: u16, sample_rate_hz: u32, duration_ms: u32, seed: u8) -> Vec<u8> {
    let frames = sample_rate_hz * duration_ms / 1000;
    let data_len = frames * u32::from(channels) * 2;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&sample_rate_hz.to_le_bytes());
    wav.extend_from_slice(&(sample_rate_hz * u32::from(channels) * 2).to_le_bytes());
    wav.extend_from_slice(&(channels * 2).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for frame in 0..frames {
        let sample = ((frame % 64) as i16 - 32) * (i16::from(seed) + 1);
        for _ in 0..channels {
            wav.extend_from_slice(&sample.to_le_bytes());
        }
    }
    wav
}

/// A 16-bit PCM WAV of `channels` (f32 samples in -1..1, equal lengths).
pub fn wav_from_channels(channels: &[Vec<f32>], sample_rate_hz: u32) -> Vec<u8> {
    let frames = channels.first().map_or(0, Vec::len);
    let samples = (0..frames).flat_map(|frame| channels.iter().map(move |channel| channel[frame]));
    let data: Vec<u8> = samples
        .flat_map(|sample| ((sample.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect();
    wav_file(1, 16, u16::try_from(channels.len()).unwrap(), sample_rate_hz, &data)
}

/// G.711 companding, as telephone recordings use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum G711 {
    MuLaw,
    ALaw,
}

/// An 8 kHz G.711 WAV (format tag 7 for mu-law, 6 for A-law) of `channels`.
pub fn g711_wav(channels: &[Vec<f32>], law: G711) -> Vec<u8> {
    let frames = channels.first().map_or(0, Vec::len);
    let data: Vec<u8> = (0..frames)
        .flat_map(|frame| channels.iter().map(move |channel| channel[frame]))
        .map(|sample| {
            let linear = (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            match law {
                G711::MuLaw => linear_to_mu_law(linear),
                G711::ALaw => linear_to_a_law(linear),
            }
        })
        .collect();
    let tag = if law == G711::MuLaw { 7 } else { 6 };
    wav_file(tag, 8, u16::try_from(channels.len()).unwrap(), 8000, &data)
}

fn wav_file(format_tag: u16, bits: u16, channels: u16, rate: u32, data: &[u8]) -> Vec<u8> {
    let pcm = format_tag == 1;
    let fmt_len: u32 = if pcm { 16 } else { 18 };
    let block_align = channels * bits / 8;
    let fact_len: u32 = if pcm { 0 } else { 12 };
    let data_len = u32::try_from(data.len()).unwrap();
    let mut wav = Vec::with_capacity(data.len() + 64);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(4 + 8 + fmt_len + fact_len + 8 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&fmt_len.to_le_bytes());
    wav.extend_from_slice(&format_tag.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    wav.extend_from_slice(&block_align.to_le_bytes());
    wav.extend_from_slice(&bits.to_le_bytes());
    if !pcm {
        wav.extend_from_slice(&0u16.to_le_bytes());
        wav.extend_from_slice(b"fact");
        wav.extend_from_slice(&4u32.to_le_bytes());
        wav.extend_from_slice(&(data_len / u32::from(block_align)).to_le_bytes());
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.extend_from_slice(data);
    wav
}

/// The segment (exponent) of a 16-bit magnitude: its highest set bit from bit 8 up, 0 below.
fn g711_segment(magnitude: i32) -> i32 {
    let mut segment = 7;
    let mut mask = 0x4000;
    while segment > 0 && magnitude & mask == 0 {
        segment -= 1;
        mask >>= 1;
    }
    segment
}

fn linear_to_mu_law(sample: i16) -> u8 {
    let mut magnitude = i32::from(sample);
    let sign = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    magnitude = magnitude.min(32_635) + 0x84;
    let segment = g711_segment(magnitude);
    let mantissa = (magnitude >> (segment + 3)) & 0x0F;
    !(sign | (segment << 4) | mantissa) as u8
}

fn linear_to_a_law(sample: i16) -> u8 {
    let mut magnitude = i32::from(sample);
    let sign = if magnitude >= 0 {
        0x80
    } else {
        magnitude = -magnitude - 1;
        0
    };
    let segment = g711_segment(magnitude);
    let mantissa =
        if segment == 0 { (magnitude >> 4) & 0x0F } else { (magnitude >> (segment + 3)) & 0x0F };
    ((sign | (segment << 4) | mantissa) ^ 0x55) as u8
}

/// Mono `pcm` at `rate` encoded as an Ogg/Opus file, 20 ms packets.
pub fn ogg_opus(pcm: &[f32], rate: u32) -> Vec<u8> {
    let rate = i32::try_from(rate).unwrap();
    let frame = usize::try_from(rate / 50).unwrap();
    let mut encoder = opus_pure::OpusEncoder::new(rate, 1, opus_pure::Application::Voip).unwrap();
    let head = opus_pure::OpusHead::for_encoder(&encoder, u32::try_from(rate).unwrap());
    let mut writer = opus_pure::OggOpusWriter::new(Vec::new(), head).unwrap();
    let mut packet = vec![0u8; opus_pure::MAX_PACKET_BYTES];
    for block in pcm.chunks(frame) {
        let mut block = block.to_vec();
        block.resize(frame, 0.0);
        let length = encoder.encode(&block, frame, &mut packet).unwrap();
        writer.write_packet(&packet[..length]).unwrap();
    }
    writer.finish().unwrap()
}

/// `audio` (any format sox reads) converted by sox into a file of type `extension` (mp3,
/// flac, ogg, wav...). Needs sox with its MP3 format (Debian: sox, libsox-fmt-mp3), which
/// scripts/test installs.
pub fn sox_convert(audio: &[u8], extension: &str) -> Vec<u8> {
    sox(audio, &[], extension)
}

/// Runs `sox input <extra args before output> output.<extension>` and returns the output.
pub fn sox(audio: &[u8], output_options: &[&str], extension: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.wav");
    let output = dir.path().join(format!("output.{extension}"));
    std::fs::write(&input, audio).unwrap();
    let status = std::process::Command::new("sox")
        .arg(&input)
        .args(output_options)
        .arg(&output)
        .status()
        .unwrap_or_else(|error| {
            panic!("running sox (apt-get install sox libsox-fmt-mp3): {error}")
        });
    assert!(status.success(), "sox failed converting to {extension}");
    std::fs::read(output).unwrap()
}

/// One line of a generated call: who says it and what.
#[derive(Clone, Copy, Debug)]
pub struct Line {
    /// 0 or 1: the speaker, and the channel of a stereo recording.
    pub speaker: usize,
    pub text: &'static str,
}

/// A generated two-voice call at 16 kHz: one channel a speaker, lines one after another with
/// `gap_ms` of silence between them, and where each line lies.
#[derive(Clone, Debug)]
pub struct GeneratedCall {
    pub channels: [Vec<f32>; 2],
    /// (speaker, text, start_ms, end_ms) a line.
    pub lines: Vec<(usize, String, i64, i64)>,
}

impl GeneratedCall {
    /// Both voices in one channel.
    pub fn mono(&self) -> Vec<f32> {
        self.channels[0].iter().zip(&self.channels[1]).map(|(a, b)| a + b).collect()
    }
}

/// A short booking call: speaker 0 answers, speaker 1 calls.
pub const SAMPLE_CALL: &[Line] = &[
    Line { speaker: 0, text: "Thank you for calling City Dental. How can I help you today?" },
    Line { speaker: 1, text: "Hi, I would like to book a cleaning for next Tuesday morning." },
    Line { speaker: 0, text: "Sure. We have an opening at nine thirty. Does that work for you?" },
    Line { speaker: 1, text: "Yes, nine thirty is perfect. My name is Sarah Miller." },
    Line { speaker: 0, text: "Great, you are booked for Tuesday at nine thirty. Goodbye." },
];

/// Speaks `lines` with espeak-ng in two voices (Debian: espeak-ng, which scripts/test
/// installs): speaker 0 a low en-us voice, speaker 1 an en-gb female voice.
pub fn generated_call(lines: &[Line], gap_ms: u32) -> GeneratedCall {
    let gap = i64::from(gap_ms);
    let script: Vec<ScriptedLine> = lines
        .iter()
        .enumerate()
        .map(|(index, line)| ScriptedLine {
            speaker: line.speaker,
            text: line.text.to_owned(),
            pause_before_ms: if index == 0 { 500 } else { gap },
        })
        .collect();
    let mut call = spoken_call(&script);
    let rate = crate::audio::decode::SAMPLE_RATE as usize;
    for channel in &mut call.channels {
        channel.resize(channel.len() + gap_ms as usize * rate / 1000, 0.0);
    }
    call
}

/// A line of a generated call, with the pause before it: negative when it starts that long
/// before the previous line ends (an interruption, on the other speaker's channel).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ScriptedLine {
    pub speaker: usize,
    pub text: String,
    pub pause_before_ms: i64,
}

impl ScriptedLine {
    pub fn new(speaker: usize, pause_before_ms: i64, text: &str) -> Self {
        Self { speaker, text: text.to_owned(), pause_before_ms }
    }
}

/// The samples of `text` spoken by `speaker`'s voice, at 16 kHz.
fn speak(speaker: usize, text: &str) -> Vec<f32> {
    let (voice, pitch) = if speaker == 0 { ("en-us", "35") } else { ("en-gb+f3", "60") };
    let output = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-p", pitch, "-s", "165", "--stdout", text])
        .output()
        .unwrap_or_else(|error| panic!("running espeak-ng (apt-get install espeak-ng): {error}"));
    assert!(output.status.success(), "espeak-ng failed on {text:?}");
    let decoded = crate::audio::decode::decode(&output.stdout, "audio/wav", 600).unwrap();
    decoded.channels[0].iter().map(|sample| sample * 0.8).collect()
}

/// Speaks a script into two channels (one a speaker), each line placed by its pause, and
/// notes where each line lies.
pub fn spoken_call(script: &[ScriptedLine]) -> GeneratedCall {
    let rate = crate::audio::decode::SAMPLE_RATE as usize;
    let samples = |ms: i64| usize::try_from(ms.max(0)).unwrap() * rate / 1000;
    let ms = |samples: usize| i64::try_from(samples * 1000 / rate).unwrap();
    let mut channels = [Vec::new(), Vec::new()];
    let mut spoken: Vec<(usize, String, i64, i64)> = Vec::new();
    for line in script {
        let speech = speak(line.speaker, &line.text);
        let start = script_start(&spoken, line);
        let at = samples(start);
        let channel = &mut channels[line.speaker];
        if channel.len() < at + speech.len() {
            channel.resize(at + speech.len(), 0.0);
        }
        for (sample, spoken_sample) in channel[at..].iter_mut().zip(&speech) {
            *sample += spoken_sample;
        }
        spoken.push((line.speaker, line.text.clone(), ms(at), ms(at + speech.len())));
    }
    let length = channels[0].len().max(channels[1].len()) + rate / 2;
    for channel in &mut channels {
        channel.resize(length, 0.0);
    }
    GeneratedCall { channels, lines: spoken }
}

/// Where a scripted line starts, in ms, after the lines already placed: its pause after the
/// previous line (an interruption after that line's first 300 ms at the soonest), and never
/// before its own speaker's previous line ended and paused 200 ms.
pub fn script_start(placed: &[(usize, String, i64, i64)], line: &ScriptedLine) -> i64 {
    let after_previous = match placed.last() {
        Some(&(_, _, previous_start, previous_end)) => {
            (previous_end + line.pause_before_ms).max(previous_start + 300)
        }
        None => line.pause_before_ms.max(0),
    };
    let own = placed.iter().rev().find(|(speaker, ..)| *speaker == line.speaker);
    own.map_or(after_previous, |&(_, _, _, own_end)| after_previous.max(own_end + 200))
}

/// Deterministic numbers for generated scripts (splitmix64): the same seed, the same call.
#[derive(Clone, Debug)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn roll(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `range`.
    pub fn between(&mut self, range: std::ops::RangeInclusive<i64>) -> i64 {
        let width = u64::try_from(range.end() - range.start() + 1).unwrap();
        range.start() + i64::try_from(self.roll() % width).unwrap()
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.roll() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.roll() % items.len() as u64).unwrap()]
    }
}

/// Short sentences of a support call, with names and numbers, 3 to 11 words each.
const SENTENCES: &[&str] = &[
    "Hello, thanks for calling.",
    "How can I help you today?",
    "My name is Daniel Okafor.",
    "I ordered a blue kettle last week.",
    "It still has not arrived.",
    "Can you spell your last name for me?",
    "The order number is four seven one nine.",
    "Let me look that up for you.",
    "I see two orders under that name.",
    "The first one shipped on Monday.",
    "Priya from billing called me yesterday.",
    "She said the refund was twenty five dollars.",
    "That is not what I was promised.",
    "I understand, and I am sorry about that.",
    "Could you hold for one minute please?",
    "Sure, take your time.",
    "Thanks for waiting.",
    "I have moved your parcel to express delivery.",
    "It will reach Seattle by Thursday at noon.",
    "Great, that works for me.",
    "Is there anything else I can do?",
    "Yes, please update my phone number.",
    "The new number ends in three eight two.",
    "Done, you will get a text to confirm.",
    "Okay.",
    "Perfect, thank you so much.",
    "You are welcome, have a good evening.",
    "Wait, one more question about my warranty.",
    "The warranty covers two full years.",
    "Do I need the receipt for that?",
    "No, your account shows the purchase.",
    "Alright, goodbye then.",
];

/// A monologue of over thirty seconds (as espeak-ng speaks it), crossing a recognition window.
const MONOLOGUE: &str = "Let me explain how our returns work, because it is a little different \
    from most stores. First you open the orders page and choose the item you want to send back. \
    Then you print the label we email you, which is free for every order over forty dollars. \
    You drop the parcel at any post office or at one of our partner lockers in the city. Once the \
    parcel reaches our warehouse in Portland, we check it within two working days, and the refund \
    goes back to the card you paid with. If you paid with a gift card, we send a new one by email \
    instead. The whole process usually takes about a week from the day you post it, and you can \
    follow every step on the same orders page.";

/// A varied two-voice script from `seed`: four to ten lines of three to eleven words (some
/// said twice in a row by the same speaker), pauses of 0.2 to 2 s, sometimes an interruption
/// of the other speaker, sometimes a monologue of over 30 s, either speaker first, names and
/// numbers throughout.
pub fn varied_script(seed: u64) -> Vec<ScriptedLine> {
    let mut dice = Dice::new(seed);
    let lines = dice.between(4..=10);
    let mut speaker = usize::from(dice.chance(50));
    let mut monologue_left = dice.chance(30);
    let mut script: Vec<ScriptedLine> = Vec::new();
    for index in 0..lines {
        if index > 0 && dice.chance(85) {
            speaker = 1 - speaker;
        }
        let changed = script.last().is_some_and(|last| last.speaker != speaker);
        let pause_before_ms = if index == 0 {
            dice.between(200..=1_500)
        } else if changed && dice.chance(15) {
            -dice.between(300..=800)
        } else {
            dice.between(200..=2_000)
        };
        let text = if monologue_left && index > 0 && dice.chance(40) {
            monologue_left = false;
            MONOLOGUE.to_owned()
        } else {
            (*dice.pick(SENTENCES)).to_owned()
        };
        script.push(ScriptedLine { speaker, text, pause_before_ms });
    }
    script
}

/// Spellings Whisper writes differently from the scripts, made one (as Whisper's English
/// normalizer does for its evaluations).
fn canonical_words(text: &str) -> Vec<String> {
    normalized_words(text)
        .into_iter()
        .flat_map(|word| match word.as_str() {
            "alright" => vec!["all".to_owned(), "right".to_owned()],
            "okay" => vec!["ok".to_owned()],
            _ => vec![word],
        })
        .collect()
}

/// Which of a call's lines a transcript holds: a line is there when a turn of its speaker's
/// role, at or after the turn of the line before it, holds at least a third of its words
/// (each heard word counted for one line only): a line heard with a few words wrong is
/// there, a line dropped or given to the other speaker is not. Speaker 0 is the assistant.
pub fn covered_lines(
    lines: &[(usize, String, i64, i64)],
    turns: &[crate::model::conversation::Turn],
) -> Vec<bool> {
    use crate::model::conversation::Role;
    let mut heard: Vec<Vec<String>> =
        turns.iter().map(|turn| canonical_words(&turn.content)).collect();
    let mut cursor = 0;
    lines
        .iter()
        .map(|(speaker, text, _, _)| {
            let role = if *speaker == 0 { Role::Assistant } else { Role::User };
            let expected = canonical_words(text);
            let found = (cursor..turns.len()).find_map(|index| {
                if turns[index].role != role {
                    return None;
                }
                let mut remaining = heard[index].clone();
                let matched = take_words(&expected, &mut remaining);
                (matched * 3 >= expected.len() && matched > 0).then_some((index, remaining))
            });
            match found {
                Some((index, remaining)) => {
                    heard[index] = remaining;
                    cursor = index;
                    true
                }
                None => false,
            }
        })
        .collect()
}

/// Lowercase words without punctuation, for word error rates.
pub fn normalized_words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|word| {
            word.chars()
                .filter(|character| character.is_alphanumeric() || *character == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|word| !word.is_empty())
        .collect()
}

/// The share of `reference`'s words found in `heard`, each counted as often as it occurs in
/// both (a bag of words: order is checked separately).
pub fn word_recall(reference: &str, heard: &str) -> f64 {
    let mut remaining = normalized_words(heard);
    let expected = normalized_words(reference);
    let found = take_words(&expected, &mut remaining);
    found as f64 / expected.len().max(1) as f64
}

/// How many of `expected` are in `remaining`, each taken out of it once found.
fn take_words(expected: &[String], remaining: &mut Vec<String>) -> usize {
    expected
        .iter()
        .filter(|word| {
            remaining
                .iter()
                .position(|candidate| candidate == *word)
                .map(|at| remaining.swap_remove(at))
                .is_some()
        })
        .count()
}

/// Word error rate of `hypothesis` against `reference` (Levenshtein over words).
pub fn word_error_rate(reference: &[String], hypothesis: &[String]) -> f64 {
    let mut previous: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, expected) in reference.iter().enumerate() {
        let mut current = vec![i + 1; hypothesis.len() + 1];
        for (j, heard) in hypothesis.iter().enumerate() {
            let substitution = previous[j] + usize::from(expected != heard);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[hypothesis.len()] as f64 / reference.len().max(1) as f64
}

/// The folder of the installed speech models for tests: EARSHOT_ASR__MODEL_DIR, else the
/// workspace's `earshot-data/models` that `scripts/test` fills with `earshot models install`.
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("EARSHOT_ASR__MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../earshot-data/models"));
    let model = dir.join(crate::speech_models::WHISPER_TINY_EN.file_name);
    assert!(
        model.is_file(),
        "{} is missing: run `cargo run -p earshot-server -- models install` (scripts/test does)",
        model.display()
    );
    dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conversation::{Role, Turn};

    #[test]
    fn a_line_counts_when_its_speakers_turn_holds_it_in_order() {
        let lines: Vec<(usize, String, i64, i64)> = [
            (0, "Hello, how can I help?"),
            (1, "Alright, my parcel is late."),
            (0, "Okay."),
            (1, "Thanks."),
        ]
        .into_iter()
        .map(|(speaker, text)| (speaker, text.to_owned(), 0, 0))
        .collect();
        let turn = |role, content: &str| Turn::said(role, content, 0, None);
        // Heard with a word wrong, spelled as Whisper spells, each in its role.
        let heard = [
            turn(Role::Assistant, "Hello, how can I hope?"),
            turn(Role::User, "All right, my parcel is late."),
            turn(Role::Assistant, "OK."),
            turn(Role::User, "Thanks."),
        ];
        assert_eq!(covered_lines(&lines, &heard), [true, true, true, true]);
        // A line dropped, and one given to the other speaker.
        let lossy = [
            turn(Role::Assistant, "Hello, how can I help? OK. Thanks."),
            turn(Role::User, "All right, my parcel is late."),
        ];
        assert_eq!(covered_lines(&lines, &lossy), [true, true, false, false]);
    }
}
