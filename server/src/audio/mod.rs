//! Audio as data: probing containers, decoding them to 16 kHz samples per channel, and the mel
//! filterbank of the speech features. A leaf: both the pipeline and transcription use it, and it
//! imports nothing of earshot's.

pub mod decode;
pub mod mel;
pub mod probe;

pub use probe::AudioProperties;
