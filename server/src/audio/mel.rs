//! The mel filterbank Whisper's features use, shared by the model converter (which writes it
//! into the ggml file) and the speaker encoder (which computes its own mel frames).

/// Samples per analysis window of Whisper's (and the speaker encoder's) STFT at 16 kHz.
pub const N_FFT: usize = 400;
const SAMPLE_RATE: f64 = super::decode::SAMPLE_RATE as f64;

/// The Slaney-scale, area-normalised mel filterbank Whisper was trained with (librosa's
/// default, which OpenAI ships precomputed): `n_mels` rows of `N_FFT / 2 + 1` weights.
pub fn mel_filters(n_mels: i32) -> Vec<f32> {
    let n_mels = usize::try_from(n_mels).unwrap_or(0);
    let bins = N_FFT / 2 + 1;
    let hz_to_mel = |hz: f64| {
        let linear = hz / (200.0 / 3.0);
        if hz >= 1000.0 { 15.0 + (hz / 1000.0).ln() / (6.4f64.ln() / 27.0) } else { linear }
    };
    let mel_to_hz = |mel: f64| {
        if mel >= 15.0 {
            1000.0 * ((6.4f64.ln() / 27.0) * (mel - 15.0)).exp()
        } else {
            mel * 200.0 / 3.0
        }
    };
    let max_mel = hz_to_mel(SAMPLE_RATE / 2.0);
    let points: Vec<f64> =
        (0..n_mels + 2).map(|i| mel_to_hz(max_mel * i as f64 / (n_mels + 1) as f64)).collect();
    let frequencies: Vec<f64> =
        (0..bins).map(|bin| (SAMPLE_RATE / 2.0) * bin as f64 / (bins - 1) as f64).collect();
    let mut weights = Vec::with_capacity(n_mels * bins);
    for mel in 0..n_mels {
        let norm = 2.0 / (points[mel + 2] - points[mel]);
        for frequency in &frequencies {
            let lower = (frequency - points[mel]) / (points[mel + 1] - points[mel]);
            let upper = (points[mel + 2] - frequency) / (points[mel + 2] - points[mel + 1]);
            let weight = lower.min(upper).max(0.0) as f32;
            weights.push((f64::from(weight) * norm) as f32);
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_match_librosa() {
        // Values from OpenAI whisper's assets/mel_filters.npz (mel_80).
        let filters = mel_filters(80);
        assert_eq!(filters.len(), 80 * 201);
        let row = |mel: usize| &filters[mel * 201..(mel + 1) * 201];
        assert!((row(0)[1] - 0.024_862_4).abs() < 1e-6, "{}", row(0)[1]);
        assert_eq!(row(0)[0], 0.0);
        // OpenAI's mel_filters.npz, row 40: its three non-zero weights.
        let positive: Vec<f32> = row(40).iter().copied().filter(|weight| *weight > 0.0).collect();
        let expected = [0.005_411_1, 0.014_735_57, 0.006_518_19];
        assert_eq!(positive.len(), 3);
        for (value, expected) in positive.iter().zip(expected) {
            assert!((value - expected).abs() < 1e-7, "{value} vs {expected}");
        }
    }
}
