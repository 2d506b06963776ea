//! Telephone audio heard twice: as recorded, and played slower by a factor, every frequency
//! lowered by it as a longer vocal tract would speak. Each channel (a speaker) keeps the
//! hearing whose words the model is surer of: vocal tract length normalization, which speech
//! recognizers have long done by choosing, per speaker, the warp their model likes best.
//! Measured on 8 kHz calls in docs/BENCHMARKS.md.

use super::turns::{Recognize, Utterance};
use super::whisper::Word;
use crate::audio::decode;

/// Recognizes `samples` slowed by `factor` on `threads` threads, the words' times mapped back
/// to `samples`' own.
pub fn slowed_hearing(
    samples: &[f32],
    factor: f32,
    threads: usize,
    recognize: &Recognize<'_>,
) -> Result<Vec<Word>, String> {
    let (slowed, factor) = decode::slowed(samples, factor)?;
    let mut words = recognize(&slowed, threads)?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let back = |ms: i64| (ms as f64 * f64::from(factor)).round() as i64;
    for word in &mut words {
        word.start_ms = back(word.start_ms);
        word.end_ms = back(word.end_ms);
        word.aligned_ms = word.aligned_ms.map(back);
    }
    Ok(words)
}

/// For each of `channels`, its utterances from the hearing whose words have the higher mean
/// log probability (`plain` on a tie), in time order.
pub fn surer_by_channel(
    plain: Vec<Utterance>,
    slowed: Vec<Utterance>,
    channels: usize,
) -> Vec<Utterance> {
    let slowed_channels: Vec<usize> = (0..channels)
        .filter(|&channel| sureness(&slowed, channel) > sureness(&plain, channel))
        .collect();
    let mut chosen: Vec<Utterance> = plain
        .into_iter()
        .filter(|utterance| !slowed_channels.contains(&utterance.channel))
        .chain(slowed.into_iter().filter(|utterance| slowed_channels.contains(&utterance.channel)))
        .collect();
    chosen.sort_by_key(|utterance| (utterance.span.start, utterance.channel));
    chosen
}

/// The mean log probability of the words heard on `channel` (as Whisper judges a decoding by
/// its tokens' mean log probability: a word the model barely believes weighs more than in a
/// mean of probabilities); None when none was heard.
#[allow(clippy::cast_precision_loss)]
fn sureness(heard: &[Utterance], channel: usize) -> Option<f32> {
    let words = || heard.iter().filter(|u| u.channel == channel).flat_map(|u| &u.words);
    let count = words().count();
    let log_sum: f32 = words().map(|word| word.probability.max(1e-6).ln()).sum();
    (count > 0).then(|| log_sum / count as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::decode::SAMPLE_RATE;

    fn word(text: &str, start_ms: i64, probability: f32) -> Word {
        Word {
            text: format!(" {text}"),
            start_ms,
            end_ms: start_ms + 400,
            probability,
            aligned_ms: Some(start_ms + 10),
        }
    }

    fn utterance(channel: usize, start_s: usize, words: &[(&str, f32)]) -> Utterance {
        let start = start_s * SAMPLE_RATE as usize;
        let start_ms = i64::try_from(start_s * 1000).unwrap();
        Utterance {
            channel,
            span: start..start + SAMPLE_RATE as usize * 2,
            words: words.iter().map(|(text, p)| word(text, start_ms, *p)).collect(),
        }
    }

    #[test]
    fn a_slowed_hearings_times_are_mapped_back_to_the_samples_given() {
        let samples = vec![0.01f32; 3 * SAMPLE_RATE as usize];
        let asked = std::sync::Mutex::new(Vec::new());
        let recognize = |slowed: &[f32], threads| {
            asked.lock().unwrap().push((slowed.len(), threads));
            Ok(vec![word("dental", 1176, 0.9)])
        };
        let words = slowed_hearing(&samples, 0.85, 1, &recognize).unwrap();
        let asked = asked.into_inner().unwrap();
        assert!((asked[0].0 as f32 - samples.len() as f32 / 0.85).abs() < 100.0, "{asked:?}");
        assert_eq!(asked[0].1, 1);
        let times = (words[0].start_ms, words[0].end_ms, words[0].aligned_ms);
        assert_eq!(times, (1000, 1340, Some(1008)));
    }

    #[test]
    fn each_channel_keeps_the_hearing_it_is_surer_of() {
        let plain = vec![
            utterance(0, 0, &[("city", 0.6), ("mental", 0.5)]),
            utterance(1, 3, &[("my", 0.9), ("order", 0.9)]),
            utterance(0, 6, &[("thank", 0.7)]),
        ];
        let slowed = vec![
            utterance(0, 0, &[("city", 0.8), ("dental", 0.8)]),
            utterance(1, 3, &[("my", 0.7), ("owner", 0.6)]),
            utterance(0, 6, &[("thanks", 0.7)]),
        ];
        let chosen = surer_by_channel(plain.clone(), slowed, 2);
        let texts: Vec<String> = chosen
            .iter()
            .map(|u| u.words.iter().map(|w| w.text.trim()).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(texts, ["city dental", "my order", "thanks"]);
        // one word the model barely believes outweighs a higher mean probability
        let doubtful = vec![utterance(0, 0, &[("city", 0.95), ("to", 0.95), ("mental", 0.05)])];
        let even = vec![utterance(0, 0, &[("city", 0.6), ("dental", 0.6), ("office", 0.6)])];
        let chosen = surer_by_channel(doubtful, even.clone(), 1);
        assert_eq!(chosen, even);
        // a tie, or nothing heard slowed, keeps the hearing as recorded
        assert_eq!(surer_by_channel(plain.clone(), plain.clone(), 2), plain);
        let unheard: Vec<Utterance> =
            plain.iter().map(|u| Utterance { words: Vec::new(), ..u.clone() }).collect();
        assert_eq!(surer_by_channel(plain.clone(), unheard, 2), plain);
    }
}
