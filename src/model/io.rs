//! The model file: safetensors with PyTorch `nn.Linear` names and shapes
//! (`layers.{i}.weight` `[out, in]`, `layers.{i}.bias` `[out]`) and the spec
//! and normalisation as string metadata (DESIGN.md §2). Loading trusts nothing
//! in the file beyond what safetensors itself validates.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{Model, ModelSpec};
use crate::data::normalize::Normalizer;
use crate::error::{MdnError, Result};
use crate::fsutil::write_atomic;

pub const FORMAT: &str = "mdn/1";

/// Refuse absurdly large files before reading them into memory.
const MAX_MODEL_BYTES: u64 = 2 << 30;

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn model_to_bytes(model: &Model) -> Result<Vec<u8>> {
    model_to_bytes_with(model, &[], &[])
}

/// Tensors loaders skip: a checkpoint's optimizer state (DESIGN.md,
/// "Checkpoints").
pub const EXTRA_PREFIX: &str = "optimizer.";

/// The model file plus `extra` tensors (named `optimizer.…`, flat f32) and
/// metadata, as a checkpoint is written.
pub fn model_to_bytes_with(
    model: &Model,
    extra: &[(&str, &[f32])],
    extra_meta: &[(&str, String)],
) -> Result<Vec<u8>> {
    let layout = model.spec.layout();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, values) in extra {
        debug_assert!(name.starts_with(EXTRA_PREFIX));
        owned.push((name.to_string(), vec![values.len()], le_bytes(values)));
    }
    for (i, l) in layout.layers.iter().enumerate() {
        owned.push((
            format!("layers.{i}.weight"),
            vec![l.out_dim, l.in_dim],
            le_bytes(&model.params[l.weight..l.bias]),
        ));
        owned.push((
            format!("layers.{i}.bias"),
            vec![l.out_dim],
            le_bytes(&model.params[l.bias..l.bias + l.out_dim]),
        ));
    }
    let views = owned
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data).map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| MdnError::Spec(format!("cannot build tensor: {e}")))?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("spec".to_string(), json(&model.spec));
    meta.insert("input_mean".to_string(), json(&model.input_norm.mean));
    meta.insert("input_std".to_string(), json(&model.input_norm.std));
    meta.insert("target_mean".to_string(), json(&model.target_norm.mean));
    meta.insert("target_std".to_string(), json(&model.target_norm.std));
    meta.insert("input_names".to_string(), json(&model.input_names));
    meta.insert("target_names".to_string(), json(&model.target_names));
    for (k, v) in extra_meta {
        meta.insert(k.to_string(), v.clone());
    }
    let bytes = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| MdnError::Spec(format!("cannot serialise model: {e}")))?;
    canonical_header(bytes)
}

/// safetensors writes its metadata `HashMap` in the process's random hash
/// order, so the same model would give different bytes on every run. Rewrites
/// the JSON header with sorted keys (the tensor data is untouched), so a
/// seeded training run always writes a byte-identical file.
fn canonical_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        meta: BTreeMap<String, String>,
        #[serde(flatten)]
        tensors: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    }
    let bad = |m: String| MdnError::Spec(format!("cannot serialise model: {m}"));
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| bad("no header".into()))?;
    let data = bytes
        .get(8 + n..)
        .ok_or_else(|| bad("short header".into()))?;
    let header: Header =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| bad(e.to_string()))?;
    let mut text = serde_json::to_vec(&header).map_err(|e| bad(e.to_string()))?;
    // safetensors pads the header with spaces to keep the data 8-byte aligned.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + data.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    Ok(out)
}

/// Writes the model atomically (temporary file, then rename).
pub fn save_model(model: &Model, path: &Path) -> Result<()> {
    write_atomic(path, &model_to_bytes(model)?)
}

pub fn load_model(path: &Path) -> Result<Model> {
    let meta = std::fs::metadata(path).map_err(|e| MdnError::io(path, e))?;
    if meta.len() > MAX_MODEL_BYTES {
        return Err(MdnError::ModelFile {
            path: path.to_path_buf(),
            msg: format!("{} bytes is larger than any mdn model", meta.len()),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| MdnError::io(path, e))?;
    model_from_bytes(&bytes).map_err(|msg| MdnError::ModelFile {
        path: path.to_path_buf(),
        msg,
    })
}

/// Parses and checks a model file's bytes; the error is a plain message so
/// the caller can add the path.
pub fn model_from_bytes(bytes: &[u8]) -> std::result::Result<Model, String> {
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| format!("not a safetensors file ({e})"))?;
    let tensors =
        SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file ({e})"))?;
    let meta = header
        .metadata()
        .as_ref()
        .ok_or("the file has no metadata (was it written by mdn?)")?;
    let get = |key: &str| {
        meta.get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("metadata `{key}` is missing"))
    };
    let format = get("format")?;
    if format != FORMAT {
        return Err(format!("format is `{format}`, expected `{FORMAT}`"));
    }
    let spec: ModelSpec = serde_json::from_str(get("spec")?)
        .map_err(|e| format!("metadata `spec` is invalid: {e}"))?;
    spec.validate()
        .map_err(|e| format!("metadata `spec`: {e}"))?;
    let floats = |key: &str, len: usize| -> std::result::Result<Vec<f32>, String> {
        let v: Vec<f32> = serde_json::from_str(get(key)?)
            .map_err(|e| format!("metadata `{key}` is not a list of numbers: {e}"))?;
        if v.len() != len {
            return Err(format!(
                "metadata `{key}` has {} values, expected {len}",
                v.len()
            ));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("metadata `{key}` holds a non-finite value"));
        }
        Ok(v)
    };
    let names = |key: &str, len: usize| -> std::result::Result<Vec<String>, String> {
        let v: Vec<String> = serde_json::from_str(get(key)?)
            .map_err(|e| format!("metadata `{key}` is not a list of names: {e}"))?;
        if v.len() != len {
            return Err(format!(
                "metadata `{key}` has {} names, expected {len}",
                v.len()
            ));
        }
        Ok(v)
    };
    let input_norm = Normalizer {
        mean: floats("input_mean", spec.in_dim)?,
        std: floats("input_std", spec.in_dim)?,
    };
    let target_norm = Normalizer {
        mean: floats("target_mean", spec.out_dim)?,
        std: floats("target_std", spec.out_dim)?,
    };
    if input_norm
        .std
        .iter()
        .chain(&target_norm.std)
        .any(|&s| s <= 0.0)
    {
        return Err("a normalisation std is not positive".into());
    }
    let layout = spec.layout();
    let expected = 2 * layout.layers.len();
    let model_tensors = tensors
        .names()
        .iter()
        .filter(|n| !n.starts_with(EXTRA_PREFIX))
        .count();
    if model_tensors != expected {
        return Err(format!(
            "the file has {model_tensors} tensors, the spec needs {expected}"
        ));
    }
    let mut params = vec![0.0f32; layout.len];
    for (i, l) in layout.layers.iter().enumerate() {
        for (suffix, shape, offset) in [
            ("weight", vec![l.out_dim, l.in_dim], l.weight),
            ("bias", vec![l.out_dim], l.bias),
        ] {
            let name = format!("layers.{i}.{suffix}");
            let t = tensors
                .tensor(&name)
                .map_err(|_| format!("tensor `{name}` is missing"))?;
            if t.dtype() != Dtype::F32 {
                return Err(format!("tensor `{name}` is {:?}, expected F32", t.dtype()));
            }
            if t.shape() != shape.as_slice() {
                return Err(format!(
                    "tensor `{name}` has shape {:?}, the spec needs {shape:?}",
                    t.shape()
                ));
            }
            let dst = &mut params[offset..offset + shape.iter().product::<usize>()];
            for (d, c) in dst.iter_mut().zip(t.data().chunks_exact(4)) {
                *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            if dst.iter().any(|v| !v.is_finite()) {
                return Err(format!("tensor `{name}` holds NaN or infinite values"));
            }
        }
    }
    Ok(Model {
        input_names: names("input_names", spec.in_dim)?,
        target_names: names("target_names", spec.out_dim)?,
        spec,
        params,
        input_norm,
        target_norm,
    })
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("metadata values are plain numbers and strings")
}
