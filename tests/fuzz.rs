//! Property-based fuzzing of the two parsers that read untrusted files: the
//! CSV reader and the model loader. Neither may panic on any input, and
//! whatever they accept must be usable (finite numbers, shapes that agree).
//! `PROPTEST_CASES` raises the case count (`.ci/run` runs a longer pass);
//! failures proptest finds are saved under `proptest-regressions/` and
//! replayed first on every later run.

use std::io::Write;

use mdn::data::csv::{ColumnChoice, load_dataset};
use mdn::data::normalize::Normalizer;
use mdn::data::table::Table;
use mdn::model::init::init_params;
use mdn::model::io::{model_from_bytes, model_to_bytes};
use mdn::model::{Model, ModelSpec};
use proptest::prelude::*;

fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f
}

/// Cells that exercise every branch of the reader: numbers in many
/// spellings, non-numbers, NaN and infinities, quoting and empty cells.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f32>().prop_map(|v| v.to_string()),
        (-1e6f64..1e6).prop_map(|v| format!("{v:e}")),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("".to_string()),
        Just("\"1.5\"".to_string()),
        Just("\"a,b\"".to_string()),
        "[ -~]{0,6}",
    ]
}

fn check_dataset_is_usable(bytes: &[u8], columns: &ColumnChoice) {
    let f = temp_file(bytes);
    if let Ok(d) = load_dataset(f.path(), columns) {
        assert!(!d.is_empty());
        assert_eq!(d.inputs.len(), d.len() * d.in_dim);
        assert_eq!(d.targets.len(), d.len() * d.out_dim);
        assert!(d.inputs.iter().chain(&d.targets).all(|v| v.is_finite()));
        let n = Normalizer::fit(&d.inputs, d.in_dim).unwrap();
        assert!(n.std.iter().all(|s| s.is_finite() && *s > 0.0));
    }
}

fn reference_model() -> Model {
    let spec = ModelSpec::mixture(2, 1, vec![3], 2).unwrap();
    Model {
        params: init_params(&spec, 5),
        spec,
        input_norm: Normalizer {
            mean: vec![0.5, -1.0],
            std: vec![2.0, 0.25],
        },
        target_norm: Normalizer {
            mean: vec![3.0],
            std: vec![1.5],
        },
        input_names: vec!["a".into(), "b".into()],
        target_names: vec!["t".into()],
    }
}

fn check_model_is_usable(bytes: &[u8]) {
    if let Ok(m) = model_from_bytes(bytes) {
        m.spec.validate().unwrap();
        assert_eq!(m.params.len(), m.spec.layout().len);
        assert!(m.params.iter().all(|v| v.is_finite()));
        assert_eq!(m.input_norm.dim(), m.spec.in_dim);
        assert_eq!(m.target_norm.dim(), m.spec.out_dim);
        // A model that loads must run: inference on one row returns an
        // answer or a clean error, never a panic.
        let _ = m.head_outputs(&vec![0.5; m.spec.in_dim]);
    }
}

proptest! {
    #[test]
    fn csv_reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_dataset_is_usable(&bytes, &ColumnChoice::default());
        let f = temp_file(&bytes);
        if let Ok(mut t) = Table::open(f.path()) {
            let all: Vec<usize> = (0..t.header.len()).collect();
            let _ = t.read_all(&[all]);
        }
    }

    #[test]
    fn csv_reader_handles_structured_tables(
        header in proptest::collection::vec("[a-c]{1,2}", 1..4),
        rows in proptest::collection::vec(proptest::collection::vec(cell(), 0..5), 0..6),
        pick in proptest::option::of(("[a-c]{1,2}", "[a-c]{1,2}")),
    ) {
        let mut text = header.join(",");
        text.push('\n');
        for r in &rows {
            text.push_str(&r.join(","));
            text.push('\n');
        }
        let columns = match pick {
            Some((i, t)) => ColumnChoice::from_flags(Some(&i), Some(&t)),
            None => ColumnChoice::default(),
        };
        check_dataset_is_usable(text.as_bytes(), &columns);
    }

    #[test]
    fn model_loader_never_panics_on_mutated_files(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = model_to_bytes(&reference_model()).unwrap();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        check_model_is_usable(&bytes);
    }

    #[test]
    fn model_loader_checks_headers_it_did_not_write(
        shape in proptest::collection::vec(0usize..6, 0..3),
        hidden in proptest::collection::vec(0usize..5, 0..3),
        k in 0usize..4,
        data_len in 0usize..64,
    ) {
        // A well-formed safetensors file whose metadata and tensors disagree
        // in arbitrary ways.
        let spec = format!(
            r#"{{"in_dim":1,"out_dim":1,"hidden":{hidden:?},"activation":"tanh","head":{{"kind":"mixture","k":{k}}}}}"#
        );
        let mut header = serde_json::json!({
            "__metadata__": {
                "format": "mdn/1", "spec": spec,
                "input_mean": "[0]", "input_std": "[1]", "target_mean": "[0]", "target_std": "[1]",
                "input_names": "[\"x\"]", "target_names": "[\"y\"]"
            }
        });
        header["layers.0.weight"] = serde_json::json!({
            "dtype": "F32", "shape": shape, "data_offsets": [0, data_len]
        });
        let h = serde_json::to_vec(&header).unwrap();
        let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&h);
        bytes.extend(std::iter::repeat_n(0u8, data_len));
        check_model_is_usable(&bytes);
    }
}

#[test]
fn the_reference_model_round_trips() {
    let m = reference_model();
    assert_eq!(model_from_bytes(&model_to_bytes(&m).unwrap()).unwrap(), m);
}
