//! The weights of the models earshot runs itself (GE2E, segmentation-3.0), read from the
//! safetensors files `earshot models install` writes, and the activation they share.

use std::path::Path;

use ndarray::{Array1, Array2};

/// The float32 tensors of one model's file.
pub(super) struct Tensors<'a> {
    file: safetensors::SafeTensors<'a>,
    /// What the model is, for messages ("speaker model").
    model: &'a str,
}

/// Reads the safetensors file at `path` and builds `model` from its tensors.
pub(super) fn load<T>(
    path: &Path,
    model: &str,
    build: impl FnOnce(&Tensors<'_>) -> Result<T, String>,
) -> Result<T, String> {
    let bytes = std::fs::read(path)
        .map_err(|error| format!("reading the {model} {}: {error}", path.display()))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|error| format!("the {model} {} is unreadable: {error}", path.display()))?;
    build(&Tensors { file, model })
}

impl Tensors<'_> {
    /// The tensor `name`: its shape and its values, row-major.
    pub(super) fn values(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        let view =
            self.file.tensor(name).map_err(|error| format!("{} {name}: {error}", self.model))?;
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((view.shape().to_vec(), values))
    }

    pub(super) fn vector(&self, name: &str) -> Result<Array1<f32>, String> {
        self.values(name).map(|(_, values)| Array1::from(values))
    }

    /// The tensor `name` as a matrix of its first dimension by the rest.
    pub(super) fn matrix(&self, name: &str) -> Result<Array2<f32>, String> {
        let (shape, values) = self.values(name)?;
        let rows = shape.first().copied().unwrap_or(0);
        let columns = shape.iter().skip(1).product();
        Array2::from_shape_vec((rows, columns), values)
            .map_err(|error| format!("{} {name}: {error}", self.model))
    }
}

pub(super) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
