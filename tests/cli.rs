//! End-to-end tests of the `mdn` binary: every test runs the real built
//! executable in a temporary directory and checks its outputs, its files and
//! its error messages against the contracts of DESIGN.md §2.
//!
//! Training runs are tiny (`--steps 300 --hidden 16,16`, 512 rows) and always
//! on the CPU, so the whole file takes a few seconds.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use mdn::data::toy::bishop_f;
use mdn::model::{load_model, save_model};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{Value, json};

// ---------------------------------------------------------------- helpers

/// The outcome of one run of the binary.
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "mdn {}\n  exit: {:?}\n  stdout: {}\n  stderr: {}",
            self.args.join(" "),
            self.code,
            self.stdout.chars().take(2000).collect::<String>(),
            self.stderr
        )
    }

    /// Asserts a clean success and returns the run.
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success:\n{}", self.context());
        assert!(!self.stderr.contains("panicked"), "{}", self.context());
        self
    }

    /// Asserts a clean failure: non-zero exit (not a panic's 101), one
    /// `error:` message on stderr that contains every needle, nothing on
    /// stdout.
    #[track_caller]
    fn fails(self, needles: &[&str]) -> Self {
        let ctx = self.context();
        assert!(
            matches!(self.code, Some(c) if c != 0 && c != 101),
            "expected a clean failure:\n{ctx}"
        );
        assert!(!self.stderr.contains("panicked"), "panic:\n{ctx}");
        assert!(
            self.stderr.starts_with("error:"),
            "stderr must start with `error:`:\n{ctx}"
        );
        for n in needles {
            assert!(self.stderr.contains(n), "stderr lacks `{n}`:\n{ctx}");
        }
        assert!(
            self.stdout.is_empty(),
            "a failed run printed to stdout:\n{ctx}"
        );
        assert!(
            self.stderr.matches("(os error").count() <= 1,
            "the OS error is repeated:\n{ctx}"
        );
        self
    }

    /// The value after `key ` on the stdout line that starts with `key `.
    #[track_caller]
    fn value(&self, key: &str) -> f64 {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no `{key} …` line:\n{}", self.context()));
        let v: f64 = line[key.len() + 1..]
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("`{line}` has no number:\n{}", self.context()));
        assert!(v.is_finite(), "{line}");
        v
    }
}

/// Runs `mdn ARGS` with `dir` as the working directory. ARGS is split on
/// whitespace; `''` stands for an empty argument.
fn mdn(dir: &Path, args: &str) -> Run {
    mdn_args(dir, &split(args))
}

fn split(args: &str) -> Vec<&str> {
    args.split_whitespace()
        .map(|a| if a == "''" { "" } else { a })
        .collect()
}

/// Runs `mdn` with exactly these arguments.
fn mdn_args(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", "off")
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the mdn binary runs");
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// `mdn train EXTRA` (split on whitespace) with small, CPU-only settings.
fn train(dir: &Path, extra: &str) -> Run {
    train_args(dir, &split(extra))
}

/// `mdn train` with small, CPU-only settings (each unless `extra` gives that
/// flag itself) and exactly the given extra arguments. Without a validation
/// set unless `extra` asks for one, so the model trains on every row of the
/// file the tests evaluate it on (tests/interrupt.rs covers validation).
fn train_args(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["train"];
    for (flag, value) in [
        ("--steps", "300"),
        ("--hidden", "16,16"),
        ("--device", "cpu"),
        ("--val", "none"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    mdn_args(dir, &args)
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A parsed CSV: header and numeric rows (every cell must be a finite number).
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl Csv {
    #[track_caller]
    fn parse(text: &str) -> Self {
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .expect("a header line")
            .split(',')
            .map(str::to_string)
            .collect();
        let rows: Vec<Vec<f64>> = lines
            .map(|l| {
                let row: Vec<f64> = l
                    .split(',')
                    .map(|c| {
                        c.parse()
                            .unwrap_or_else(|_| panic!("`{c}` in `{l}` is not a number"))
                    })
                    .collect();
                assert_eq!(row.len(), header.len(), "ragged output row `{l}`");
                assert!(
                    row.iter().all(|v| v.is_finite()),
                    "non-finite value in `{l}`"
                );
                row
            })
            .collect();
        Csv { header, rows }
    }

    #[track_caller]
    fn read(path: &Path) -> Self {
        Self::parse(&std::fs::read_to_string(path).unwrap())
    }

    fn col(&self, name: &str) -> Vec<f64> {
        let i = self
            .header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| {
                panic!("no column `{name}` in {:?}", self.header);
            });
        self.rows.iter().map(|r| r[i]).collect()
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}_{i}")).collect()
}

/// Toy inverse data (512 rows, seed 1) as `d.csv` and a held-out set (256
/// rows, seed 2) as `d2.csv`, plus an MDN with K = 3 trained on it as
/// `m.safetensors`. Returns the train command's run.
fn inverse_setup(dir: &Path) -> Run {
    mdn(dir, "data --toy inverse --n 512 --seed 1 --out d.csv").ok();
    mdn(dir, "data --toy inverse --n 256 --seed 2 --out d2.csv").ok();
    train(dir, "--data d.csv --k 3 --out m.safetensors --test d2.csv").ok()
}

/// Every tensor of a safetensors file as (shape, f32 values), and its metadata.
type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn read_safetensors(bytes: &[u8]) -> (Tensors, HashMap<String, String>) {
    let (_, header) = SafeTensors::read_metadata(bytes).expect("a safetensors file");
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        tensors.insert(name, (view.shape().to_vec(), values));
    }
    (tensors, header.metadata().clone().unwrap_or_default())
}

fn write_safetensors(tensors: &Tensors, meta: Option<HashMap<String, String>>) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, (shape, v))| {
            (
                n.clone(),
                shape.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, shape, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::tensor::serialize(views, meta).unwrap()
}

/// A copy of the model file `src` with its tensors and metadata edited.
fn edited_model(
    src: &Path,
    edit: impl FnOnce(&mut Tensors, &mut HashMap<String, String>),
) -> Vec<u8> {
    let (mut tensors, mut meta) = read_safetensors(&std::fs::read(src).unwrap());
    edit(&mut tensors, &mut meta);
    write_safetensors(&tensors, Some(meta))
}

fn tanh_layer(
    w: &(Vec<usize>, Vec<f32>),
    b: &(Vec<usize>, Vec<f32>),
    x: &[f64],
    tanh: bool,
) -> Vec<f64> {
    let (out, inp) = (w.0[0], w.0[1]);
    assert_eq!(inp, x.len());
    (0..out)
        .map(|o| {
            let s = b.1[o] as f64
                + (0..inp)
                    .map(|i| w.1[o * inp + i] as f64 * x[i])
                    .sum::<f64>();
            if tanh { s.tanh() } else { s }
        })
        .collect()
}

/// The names in `dir`, sorted (to spot files a failed command left behind).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------- 1. happy path

#[test]
fn inverse_pipeline_data_train_eval_predict_sample() {
    let dir = tmp();
    let d = dir.path();

    // data
    mdn(d, "data --toy inverse --n 512 --seed 1 --out d.csv").ok();
    let data = Csv::read(&d.join("d.csv"));
    assert_eq!(data.header, ["y", "x"]);
    assert_eq!(data.rows.len(), 512);
    for r in &data.rows {
        let (y, x) = (r[0], r[1]);
        assert!((0.0..1.0).contains(&x), "x = {x}");
        assert!(
            (y - bishop_f(x as f32) as f64).abs() <= 0.1 + 1e-5,
            "y = {y}, x = {x}"
        );
    }
    // Same seed, same file; another seed, another file.
    mdn(d, "data --toy inverse --n 512 --seed 1 --out again.csv").ok();
    assert_eq!(
        std::fs::read(d.join("d.csv")).unwrap(),
        std::fs::read(d.join("again.csv")).unwrap()
    );
    mdn(d, "data --toy inverse --n 256 --seed 2 --out d2.csv").ok();
    let test = Csv::read(&d.join("d2.csv"));
    assert_eq!(test.rows.len(), 256);
    assert_ne!(test.rows[0], data.rows[0]);

    // train
    let t = train(d, "--data d.csv --k 3 --out m.safetensors --test d2.csv").ok();
    assert!(d.join("m.safetensors").is_file());
    let train_nll = t.value("train nll");
    let test_nll = t.value("test nll");
    // A single Gaussian on x ~ U(0,1) scores about 0.18 nats; the inverse
    // problem is multi-modal, so even a short MDN run does clearly better.
    assert!(train_nll < 0.0 && test_nll < 0.0, "{}", t.context());

    // eval agrees with the test line
    let e = mdn(d, "eval --model m.safetensors --data d2.csv").ok();
    assert_eq!(e.stdout.lines().count(), 1, "{}", e.context());
    assert!(
        (e.value("nll") - test_nll).abs() < 1e-3,
        "{}\n{}",
        e.context(),
        t.context()
    );
    let j = mdn(d, "eval --model m.safetensors --data d2.csv --json").ok();
    assert_eq!(j.stdout.lines().count(), 1, "{}", j.context());
    let v: Value = serde_json::from_str(j.stdout.trim()).expect("one JSON object");
    assert!(v.is_object(), "{v}");
    assert_eq!(v["rows"], json!(256));
    assert!(
        (v["nll"].as_f64().expect("nll is a number") - test_nll).abs() < 1e-3,
        "{v}"
    );

    // predict
    let p = mdn(d, "predict --model m.safetensors --data d2.csv").ok();
    let pred = Csv::parse(&p.stdout);
    let want: Vec<String> = ["y".to_string()]
        .into_iter()
        .chain(names("pi", 3))
        .chain(names("mu", 3))
        .chain(names("sigma", 3))
        .collect();
    assert_eq!(pred.header, want);
    assert_eq!(pred.rows.len(), 256);
    assert_eq!(
        pred.col("y"),
        test.col("y"),
        "predict echoes the input column"
    );
    for r in &pred.rows {
        let pi = &r[1..4];
        assert!(pi.iter().all(|&p| (0.0..=1.0).contains(&p)), "{r:?}");
        assert!(
            (pi.iter().sum::<f64>() - 1.0).abs() < 1e-5,
            "π sums to {r:?}"
        );
        assert!(r[7..10].iter().all(|&s| s > 0.0), "σ ≤ 0 in {r:?}");
        // Every μ lies near the data (x in [0, 1)).
        assert!(r[4..7].iter().all(|&m| (-1.0..2.0).contains(&m)), "{r:?}");
    }
    let po = mdn(d, "predict --model m.safetensors --data d2.csv --out p.csv").ok();
    assert!(po.stdout.is_empty(), "--out writes the file, not stdout");
    assert_eq!(std::fs::read_to_string(d.join("p.csv")).unwrap(), p.stdout);

    // sample on a grid
    let grid = "sample --model m.safetensors --grid 0:1:11 --per-input 5";
    let s3 = mdn(d, &format!("{grid} --seed 3")).ok();
    let s = Csv::parse(&s3.stdout);
    assert_eq!(s.header, ["y", "x"]);
    assert_eq!(s.rows.len(), 55);
    for (i, r) in s.rows.iter().enumerate() {
        let want = (i / 5) as f64 / 10.0;
        assert!(
            (r[0] - want).abs() < 1e-6,
            "row {i}: input {} should be {want}",
            r[0]
        );
        assert!(
            (-1.0..2.0).contains(&r[1]),
            "sample {r:?} is far from the data"
        );
    }
    let again = mdn(d, &format!("{grid} --seed 3")).ok();
    assert_eq!(again.stdout, s3.stdout, "same seed, same samples");
    let other = mdn(d, &format!("{grid} --seed 4")).ok();
    assert_ne!(other.stdout, s3.stdout, "another seed, other samples");
    assert_eq!(Csv::parse(&other.stdout).col("y"), s.col("y"));

    // sample from a file, and into a file
    let sd = mdn(
        d,
        "sample --model m.safetensors --data d2.csv --per-input 2",
    )
    .ok();
    let sd = Csv::parse(&sd.stdout);
    assert_eq!(sd.header, ["y", "x"]);
    assert_eq!(sd.rows.len(), 512);
    let ys = test.col("y");
    for (i, r) in sd.rows.iter().enumerate() {
        assert_eq!(r[0], ys[i / 2]);
    }
    let so = mdn(d, &format!("{grid} --seed 3 --out s.csv")).ok();
    assert!(so.stdout.is_empty(), "--out writes the file, not stdout");
    assert_eq!(std::fs::read_to_string(d.join("s.csv")).unwrap(), s3.stdout);
    // No temporary files are left behind.
    assert!(
        !entries(d).iter().any(|e| e.starts_with(".mdn-tmp")),
        "{:?}",
        entries(d)
    );
}

#[test]
fn train_on_generated_toy_data_reports_a_held_out_loss() {
    let dir = tmp();
    let t = train(dir.path(), "--toy inverse --n 512 --k 3 --out m.st").ok();
    t.value("train nll");
    t.value("test nll");
    assert!(dir.path().join("m.st").is_file());
}

// ---------------------------------------------------------------- 2. MLP

#[test]
fn mlp_pipeline() {
    let dir = tmp();
    let d = dir.path();
    mdn(d, "data --toy forward --n 512 --seed 1 --out f.csv").ok();
    let data = Csv::read(&d.join("f.csv"));
    assert_eq!(data.header, ["x", "y"]);
    let t = train(d, "--data f.csv --model mlp --out mlp.st --test f.csv").ok();
    let train_mse = t.value("train mse");
    assert!(
        (t.value("test mse") - train_mse).abs() < 1e-4,
        "{}",
        t.context()
    );
    // The forward problem is a function: even a short run beats predicting
    // the mean (var(y) ≈ 0.13).
    assert!(train_mse < 0.05, "{}", t.context());

    let e = mdn(d, "eval --model mlp.st --data f.csv").ok();
    assert!((e.value("mse") - train_mse).abs() < 1e-4, "{}", e.context());
    let j = mdn(d, "eval --model mlp.st --data f.csv --json").ok();
    let v: Value = serde_json::from_str(j.stdout.trim()).unwrap();
    assert!(
        v["mse"].as_f64().is_some() && v["rows"] == json!(512),
        "{v}"
    );

    let p = Csv::parse(&mdn(d, "predict --model mlp.st --data f.csv").ok().stdout);
    assert_eq!(p.header, ["x", "pred"]);
    assert_eq!(p.rows.len(), 512);
    assert_eq!(p.col("x"), data.col("x"));
    let mse: f64 = p
        .rows
        .iter()
        .zip(data.col("y"))
        .map(|(r, y)| (r[1] - y).powi(2))
        .sum::<f64>()
        / 512.0;
    assert!(
        (mse - train_mse).abs() < 1e-4,
        "predict and eval disagree: {mse} vs {train_mse}"
    );

    for args in [
        "sample --model mlp.st --grid 0:1:5",
        "sample --model mlp.st --data f.csv",
    ] {
        mdn(d, args).fails(&["mixture"]);
    }
}

// ---------------------------------------------------------------- 3. 2-D target

#[test]
fn two_dimensional_target() {
    let dir = tmp();
    let d = dir.path();
    let mut text = String::from("a,t1,t2\n");
    for i in 0..512 {
        let a = i as f64 / 511.0;
        let n = ((i * 7919) % 101) as f64 / 1000.0 - 0.05;
        text += &format!("{a},{},{}\n", (3.0 * a).sin() + n, 2.0 * a - n);
    }
    write(d, "t.csv", &text);
    let t = train(d, "--data t.csv --target t1,t2 --k 2 --out m.st").ok();
    t.value("train nll");

    let model = load_model(&d.join("m.st")).unwrap();
    assert_eq!(model.input_names, ["a"]);
    assert_eq!(model.target_names, ["t1", "t2"]);

    // predict reads the input by name, whatever the column order.
    write(d, "in.csv", "t2,junk,a\n0,9,0.25\n0,9,0.75\n");
    let p = Csv::parse(&mdn(d, "predict --model m.st --data in.csv").ok().stdout);
    let mut want = vec!["a".to_string(), "pi_0".into(), "pi_1".into()];
    for what in ["mu", "sigma"] {
        for k in 0..2 {
            for j in 0..2 {
                want.push(format!("{what}_{k}_{j}"));
            }
        }
    }
    assert_eq!(p.header, want);
    assert_eq!(p.col("a"), [0.25, 0.75]);
    for r in &p.rows {
        assert!((r[1] + r[2] - 1.0).abs() < 1e-5, "{r:?}");
        assert!(r[7..11].iter().all(|&s| s > 0.0), "{r:?}");
    }
    // The library's mixture agrees with the CSV.
    let m = model.mixture(&[0.25, 0.75]).unwrap();
    let csv_mu: Vec<f32> = p.rows[1][3..7].iter().map(|&v| v as f32).collect();
    assert_eq!(csv_mu, m.mu[4..8]);

    let s = Csv::parse(
        &mdn(d, "sample --model m.st --data in.csv --per-input 3")
            .ok()
            .stdout,
    );
    assert_eq!(s.header, ["a", "t1", "t2"]);
    assert_eq!(s.rows.len(), 6);
    let g = Csv::parse(&mdn(d, "sample --model m.st --grid 0:1:4").ok().stdout);
    assert_eq!(g.header, ["a", "t1", "t2"]);
    assert_eq!(g.rows.len(), 4);

    // eval needs the targets by name too.
    mdn(d, "eval --model m.st --data t.csv").ok().value("nll");
    mdn(d, "eval --model m.st --data in.csv").fails(&["in.csv", "`t1`"]);
}

// ---------------------------------------------------------------- 4. model file contract

#[test]
fn model_file_layout_and_metadata() {
    let dir = tmp();
    let d = dir.path();
    inverse_setup(d);
    let bytes = std::fs::read(d.join("m.safetensors")).unwrap();
    let (tensors, meta) = read_safetensors(&bytes);

    // Tensors: PyTorch nn.Linear names and shapes; head width K + 2·K·D = 9.
    let shapes: BTreeMap<&str, Vec<usize>> = tensors
        .iter()
        .map(|(n, (s, _))| (n.as_str(), s.clone()))
        .collect();
    let want: BTreeMap<&str, Vec<usize>> = [
        ("layers.0.weight", vec![16, 1]),
        ("layers.0.bias", vec![16]),
        ("layers.1.weight", vec![16, 16]),
        ("layers.1.bias", vec![16]),
        ("layers.2.weight", vec![9, 16]),
        ("layers.2.bias", vec![9]),
    ]
    .into_iter()
    .collect();
    assert_eq!(shapes, want);
    assert!(
        tensors
            .values()
            .all(|(_, v)| v.iter().all(|x| x.is_finite()))
    );

    // Metadata.
    assert_eq!(meta["format"], "mdn/1");
    let spec: Value = serde_json::from_str(&meta["spec"]).unwrap();
    assert_eq!(
        spec,
        json!({"in_dim": 1, "out_dim": 1, "hidden": [16, 16], "activation": "tanh",
               "head": {"kind": "mixture", "k": 3}})
    );
    let arr = |key: &str| -> Vec<f64> {
        serde_json::from_str(&meta[key]).unwrap_or_else(|e| panic!("{key}: {e}: {}", meta[key]))
    };
    let data = Csv::read(&d.join("d.csv"));
    let stats = |v: Vec<f64>| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        (m, s)
    };
    let (ym, ys) = stats(data.col("y"));
    let (xm, xs) = stats(data.col("x"));
    for (key, want) in [
        ("input_mean", ym),
        ("input_std", ys),
        ("target_mean", xm),
        ("target_std", xs),
    ] {
        let v = arr(key);
        assert_eq!(v.len(), 1, "{key}");
        assert!(
            (v[0] - want).abs() < 1e-4 * want.abs().max(1.0),
            "{key} = {v:?}, data says {want}"
        );
    }
    let names = |key: &str| -> Vec<String> { serde_json::from_str(&meta[key]).unwrap() };
    assert_eq!(names("input_names"), ["y"]);
    assert_eq!(names("target_names"), ["x"]);

    // An independent forward pass from the raw tensors reproduces `predict`:
    // this pins the [out, in] weight layout and the head order
    // [logits | mu | log_sigma].
    let p = Csv::parse(
        &mdn(d, "predict --model m.safetensors --data d2.csv")
            .ok()
            .stdout,
    );
    let t = |n: &str| &tensors[n];
    for r in p.rows.iter().take(20) {
        let z = [(r[0] - arr("input_mean")[0]) / arr("input_std")[0]];
        let h0 = tanh_layer(t("layers.0.weight"), t("layers.0.bias"), &z, true);
        let h1 = tanh_layer(t("layers.1.weight"), t("layers.1.bias"), &h0, true);
        let o = tanh_layer(t("layers.2.weight"), t("layers.2.bias"), &h1, false);
        let m = o[..3].iter().cloned().fold(f64::MIN, f64::max);
        let zsum: f64 = o[..3].iter().map(|l| (l - m).exp()).sum();
        let (tm, ts) = (arr("target_mean")[0], arr("target_std")[0]);
        for k in 0..3 {
            let pi = (o[k] - m).exp() / zsum;
            let mu = o[3 + k] * ts + tm;
            let sigma = o[6 + k].exp() * ts;
            assert!((pi - r[1 + k]).abs() < 1e-4, "π_{k}: {pi} vs {r:?}");
            assert!((mu - r[4 + k]).abs() < 1e-4, "μ_{k}: {mu} vs {r:?}");
            assert!(
                (sigma - r[7 + k]).abs() < 1e-4 * sigma.max(1.0),
                "σ_{k}: {sigma} vs {r:?}"
            );
        }
    }

    // The MLP head is `{"kind":"mse"}` with D outputs.
    mdn(d, "data --toy forward --n 512 --out f.csv").ok();
    train(d, "--data f.csv --model mlp --hidden 8 --out mlp.st").ok();
    let (tensors, meta) = read_safetensors(&std::fs::read(d.join("mlp.st")).unwrap());
    let spec: Value = serde_json::from_str(&meta["spec"]).unwrap();
    assert_eq!(spec["head"], json!({"kind": "mse"}));
    assert_eq!(spec["hidden"], json!([8]));
    assert_eq!(tensors["layers.1.weight"].0, [1, 8]);
    assert_eq!(tensors.len(), 4);
}

#[test]
fn save_load_round_trip_gives_identical_numbers() {
    let dir = tmp();
    let d = dir.path();
    inverse_setup(d);
    let model = load_model(&d.join("m.safetensors")).unwrap();
    save_model(&model, &d.join("copy.safetensors")).unwrap();
    let copy = load_model(&d.join("copy.safetensors")).unwrap();
    assert_eq!(copy, model);
    assert_eq!(
        std::fs::read(d.join("copy.safetensors")).unwrap(),
        std::fs::read(d.join("m.safetensors")).unwrap(),
        "saving a loaded model rewrites the same bytes"
    );
    let inputs = [-0.2f32, 0.0, 0.31, 0.5, 1.2];
    assert_eq!(
        model.mixture(&inputs).unwrap(),
        copy.mixture(&inputs).unwrap()
    );

    let a = mdn(d, "predict --model m.safetensors --data d2.csv").ok();
    let b = mdn(d, "predict --model copy.safetensors --data d2.csv").ok();
    assert_eq!(a.stdout, b.stdout);
    // CSV numbers are the library's f32 values, written to round-trip exactly.
    let m = model
        .mixture(&[Csv::parse(&a.stdout).rows[0][0] as f32])
        .unwrap();
    let row0 = &Csv::parse(&a.stdout).rows[0];
    for k in 0..3 {
        assert_eq!(row0[1 + k] as f32, m.pi[k]);
        assert_eq!(row0[4 + k] as f32, m.mu[k]);
        assert_eq!(row0[7 + k] as f32, m.sigma[k]);
    }
}

// ---------------------------------------------------------------- 5. clear errors

#[test]
fn train_refuses_bad_data_and_settings() {
    let dir = tmp();
    let d = dir.path();
    write(d, "ok.csv", "x,y\n1,2\n2,3\n3,4.5\n4,4\n");
    write(d, "empty.csv", "");
    write(d, "header.csv", "x,y\n");
    write(d, "word.csv", "x,y\n1,2\n3,abc\n");
    write(d, "nan.csv", "x,y\n1,2\n3,4\nNaN,5\n");
    write(d, "inf.csv", "x,y\n1,2\n3,-inf\n");
    write(d, "ragged.csv", "x,y\n1,2\n3\n4,5\n");
    write(d, "long.csv", "x,y\n1,2\n3,4,5\n");
    write(d, "onecol.csv", "y\n1\n2\n");
    write(d, "dupe.csv", "x,x\n1,2\n");
    write(
        d,
        "binary.csv",
        [b'x', b',', b'y', b'\n', 0xff, 0xfe, b',', b'1', b'\n'],
    );

    let cases: &[(&str, &[&str])] = &[
        ("--data missing.csv", &["missing.csv", "No such file"]),
        ("--data empty.csv", &["empty.csv", "empty"]),
        (
            "--data header.csv",
            &["header.csv", "line 2", "no data rows"],
        ),
        (
            "--data word.csv",
            &["word.csv", "line 3", "column `y`", "`abc` is not a number"],
        ),
        (
            "--data nan.csv",
            &["nan.csv", "line 4", "column `x`", "NaN", "finite"],
        ),
        (
            "--data inf.csv",
            &["inf.csv", "line 3", "column `y`", "finite"],
        ),
        (
            "--data ragged.csv",
            &["ragged.csv", "line 3", "1 fields", "header has 2"],
        ),
        ("--data long.csv", &["long.csv", "line 3", "3 fields"]),
        ("--data onecol.csv", &["onecol.csv", "no input columns"]),
        ("--data dupe.csv", &["dupe.csv", "`x`", "twice"]),
        ("--data binary.csv", &["binary.csv", "UTF-8"]),
        ("--data ok.csv --input z", &["ok.csv", "column `z`", "x, y"]),
        (
            "--data ok.csv --target z",
            &["ok.csv", "column `z`", "x, y"],
        ),
        (
            "--data ok.csv --input x --target x",
            &["`x`", "both an input and a target"],
        ),
        ("--data ok.csv --input x,x", &["`x`", "twice"]),
        ("--data ok.csv --test missing.csv", &["missing.csv"]),
        ("--data ok.csv --test onecol.csv", &["onecol.csv", "`x`"]),
        ("--data ok.csv --test word.csv", &["word.csv", "line 3"]),
        ("--data ok.csv --k 0", &["K", "got 0"]),
        ("--data ok.csv --k 100000", &["K", "100000"]),
        (
            "--data ok.csv --hidden ''",
            &["--hidden", "at least one layer"],
        ),
        ("--data ok.csv --hidden 64,0", &["--hidden", "size of 0"]),
        ("--data ok.csv --hidden 64,x", &["--hidden", "`x`"]),
        ("--data ok.csv --hidden 100000", &["hidden", "100000"]),
        ("--data ok.csv --lr 0", &["--lr", "positive"]),
        ("--data ok.csv --lr -1", &["--lr", "positive", "-1"]),
        ("--data ok.csv --lr nan", &["--lr", "positive"]),
        ("--data ok.csv --lr inf", &["--lr", "positive"]),
        ("--data ok.csv --lr abc", &["--lr", "abc"]),
        ("--data ok.csv --batch 0", &["--batch", "at least 1"]),
        ("--data ok.csv --steps 0", &["--steps", "at least 1"]),
        ("--data ok.csv --device tpu", &["--device", "tpu"]),
        ("--data ok.csv --backend glide", &["--backend", "glide"]),
        ("--data ok.csv --model svm", &["--model", "svm"]),
        ("--toy inverse --n 0", &["--n"]),
        ("--data ok.csv --toy inverse", &["--toy"]),
    ];
    for (args, needles) in cases {
        let out = format!("out-{}.st", needles[0].replace(['/', '`', ' '], "_"));
        let r = train(d, &format!("{args} --out {out}")).fails(needles);
        assert!(
            !d.join(&out).exists(),
            "a failed run created {out}:\n{}",
            r.context()
        );
    }
    // `--out` missing altogether, and the one flag that needs `--toy`.
    train(d, "--data ok.csv").fails(&["--out"]);
    train(d, "--data ok.csv --n 5 --out x.st").fails(&["--n", "--data"]);
    assert!(
        !entries(d)
            .iter()
            .any(|e| e.ends_with(".st") || e.starts_with(".mdn-tmp")),
        "{:?}",
        entries(d)
    );
}

#[test]
fn other_commands_refuse_bad_arguments() {
    let dir = tmp();
    let d = dir.path();
    inverse_setup(d);
    write(d, "ab.csv", "a,b\n1,2\n");
    write(d, "yonly.csv", "y\n0.5\n");
    write(d, "nan.csv", "y,x\n0.5,0.5\nnan,0.5\n");
    let cases: &[(&str, &[&str])] = &[
        ("data --toy inverse --n 0 --out o.csv", &["--n"]),
        ("data --toy sideways --out o.csv", &["sideways"]),
        (
            "data --toy inverse --out no/such/dir/o.csv",
            &["no/such/dir/o.csv"],
        ),
        (
            "eval --model m.safetensors --data ab.csv",
            &["ab.csv", "column `y`", "a, b"],
        ),
        (
            "eval --model m.safetensors --data yonly.csv",
            &["yonly.csv", "column `x`"],
        ),
        (
            "eval --model m.safetensors --data nan.csv",
            &["nan.csv", "line 3", "column `y`"],
        ),
        (
            "eval --model m.safetensors --data missing.csv",
            &["missing.csv"],
        ),
        (
            "predict --model m.safetensors --data ab.csv",
            &["ab.csv", "column `y`"],
        ),
        (
            "predict --model m.safetensors --data nan.csv",
            &["nan.csv", "line 3"],
        ),
        (
            "sample --model m.safetensors --data ab.csv",
            &["ab.csv", "column `y`"],
        ),
        (
            "sample --model m.safetensors --grid 0:1",
            &["--grid", "LO:HI:N"],
        ),
        ("sample --model m.safetensors --grid 0:1:0", &["--grid"]),
        ("sample --model m.safetensors --grid a:1:3", &["--grid"]),
        ("sample --model m.safetensors --grid 0:inf:3", &["--grid"]),
        (
            "sample --model m.safetensors --grid 0:1:3 --per-input 0",
            &["--per-input"],
        ),
        (
            "sample --model m.safetensors --grid 0:1:3 --per-input 18446744073709551615",
            &["--per-input"],
        ),
        (
            "sample --model m.safetensors --grid 0:1:3 --temperature 0",
            &["--temperature"],
        ),
        (
            "sample --model m.safetensors --grid 0:1:3 --temperature -1",
            &["--temperature", "-1"],
        ),
        (
            "sample --model m.safetensors --grid 0:1:3 --temperature nan",
            &["--temperature"],
        ),
        ("sample --model m.safetensors", &["--data"]),
        (
            "sample --model m.safetensors --grid 0:1:3 --data d2.csv",
            &["--grid", "--data"],
        ),
    ];
    for (args, needles) in cases {
        let with_out = !args.starts_with("eval") && !args.contains("--out");
        let args = if with_out {
            format!("{args} --out o.csv")
        } else {
            args.to_string()
        };
        let r = mdn(d, &args).fails(needles);
        assert!(
            !d.join("o.csv").exists(),
            "a failed run created o.csv:\n{}",
            r.context()
        );
    }
    // Without --out the failures print nothing on stdout either (checked by
    // `fails`): no half-written CSV.
    mdn(d, "predict --model m.safetensors --data nan.csv").fails(&["nan.csv"]);
}

#[test]
fn bad_model_files_are_refused_by_every_command() {
    let dir = tmp();
    let d = dir.path();
    inverse_setup(d);
    let good = d.join("m.safetensors");
    let bytes = std::fs::read(&good).unwrap();

    let mut random = Vec::with_capacity(4096);
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..4096 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        random.push(s as u8);
    }
    write(d, "random.st", &random);
    write(d, "empty.st", b"");
    write(d, "half.st", &bytes[..bytes.len() / 2]);
    write(d, "text.st", "layers.0.weight = [1, 2, 3]\n");
    // Valid safetensors, but not ours.
    let mut foreign = Tensors::new();
    foreign.insert("weight".into(), (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
    write(d, "foreign.st", write_safetensors(&foreign, None));
    let mut hf_meta = HashMap::new();
    hf_meta.insert("format".to_string(), "pt".to_string());
    write(d, "pt.st", write_safetensors(&foreign, Some(hf_meta)));
    write(
        d,
        "noformat.st",
        edited_model(&good, |_, m| {
            m.remove("format");
        }),
    );
    write(
        d,
        "nospec.st",
        edited_model(&good, |_, m| {
            m.remove("spec");
        }),
    );
    write(
        d,
        "badspec.st",
        edited_model(&good, |_, m| {
            m.insert("spec".into(), "{\"in_dim\":1".into());
        }),
    );
    write(
        d,
        "k0.st",
        edited_model(&good, |_, m| {
            let spec = m["spec"].replace("\"k\":3", "\"k\":0");
            m.insert("spec".into(), spec);
        }),
    );
    write(
        d,
        "shape.st",
        edited_model(&good, |_, m| {
            let spec = m["spec"].replace("[16,16]", "[32,16]");
            assert_ne!(spec, m["spec"]);
            m.insert("spec".into(), spec);
        }),
    );
    write(
        d,
        "missing_tensor.st",
        edited_model(&good, |t, _| {
            t.remove("layers.2.bias");
        }),
    );
    write(
        d,
        "renamed_tensor.st",
        edited_model(&good, |t, _| {
            let v = t.remove("layers.1.weight").unwrap();
            t.insert("layers.1.kernel".into(), v);
        }),
    );
    write(
        d,
        "transposed.st",
        edited_model(&good, |t, _| {
            let w = t.get_mut("layers.2.weight").unwrap();
            w.0 = vec![16, 9];
        }),
    );
    write(
        d,
        "nan.st",
        edited_model(&good, |t, _| {
            t.get_mut("layers.1.weight").unwrap().1[5] = f32::NAN
        }),
    );
    write(
        d,
        "inf.st",
        edited_model(&good, |t, _| {
            t.get_mut("layers.0.bias").unwrap().1[0] = f32::INFINITY
        }),
    );
    write(
        d,
        "std0.st",
        edited_model(&good, |_, m| {
            m.insert("target_std".into(), "[0.0]".into());
        }),
    );
    write(
        d,
        "mean_nan.st",
        edited_model(&good, |_, m| {
            m.insert("input_mean".into(), "[\"NaN\"]".into());
        }),
    );
    write(
        d,
        "names.st",
        edited_model(&good, |_, m| {
            m.insert("input_names".into(), "[\"y\",\"z\"]".into());
        }),
    );
    write(
        d,
        "format2.st",
        edited_model(&good, |_, m| {
            m.insert("format".into(), "mdn/2".into());
        }),
    );

    let cases: &[(&str, &[&str])] = &[
        ("missing.st", &["missing.st", "No such file"]),
        ("random.st", &["random.st", "safetensors"]),
        ("empty.st", &["empty.st", "safetensors"]),
        ("half.st", &["half.st", "safetensors"]),
        ("text.st", &["text.st", "safetensors"]),
        ("foreign.st", &["foreign.st", "metadata"]),
        ("pt.st", &["pt.st", "format", "pt"]),
        ("noformat.st", &["noformat.st", "`format`", "missing"]),
        ("format2.st", &["format2.st", "mdn/2"]),
        ("nospec.st", &["nospec.st", "`spec`", "missing"]),
        ("badspec.st", &["badspec.st", "`spec`"]),
        ("k0.st", &["k0.st", "`spec`", "K"]),
        ("shape.st", &["shape.st", "layers.0.weight", "shape"]),
        ("missing_tensor.st", &["missing_tensor.st", "tensors"]),
        (
            "renamed_tensor.st",
            &["renamed_tensor.st", "layers.1.weight", "missing"],
        ),
        (
            "transposed.st",
            &["transposed.st", "layers.2.weight", "shape"],
        ),
        ("nan.st", &["nan.st", "layers.1.weight", "NaN"]),
        ("inf.st", &["inf.st", "layers.0.bias", "infinite"]),
        ("std0.st", &["std0.st", "std"]),
        ("mean_nan.st", &["mean_nan.st", "input_mean"]),
        ("names.st", &["names.st", "input_names"]),
    ];
    for (file, needles) in cases {
        let mut needles = needles.to_vec();
        if *file != "missing.st" {
            needles.push("not a usable mdn model file");
        }
        mdn(d, &format!("eval --model {file} --data d2.csv")).fails(&needles);
        mdn(d, &format!("eval --model {file} --data d2.csv --json")).fails(&needles);
        for cmd in [
            format!("predict --model {file} --data d2.csv"),
            format!("sample --model {file} --grid 0:1:5"),
            format!("sample --model {file} --data d2.csv"),
        ] {
            mdn(d, &cmd).fails(&needles);
            let r = mdn(d, &format!("{cmd} --out o.csv")).fails(&needles);
            assert!(!d.join("o.csv").exists(), "{}", r.context());
        }
    }
    // Sanity: the untouched file still works, so the edits are what fail.
    mdn(d, "eval --model m.safetensors --data d2.csv").ok();
    write(d, "same.st", edited_model(&good, |_, _| {}));
    mdn(d, "eval --model same.st --data d2.csv").ok();
}

#[test]
fn a_model_whose_outputs_overflow_is_refused_not_printed_as_inf() {
    let dir = tmp();
    let d = dir.path();
    inverse_setup(d);
    // Finite weights that drive log σ to ~1e30: σ = exp(…) overflows.
    write(
        d,
        "huge.st",
        edited_model(&d.join("m.safetensors"), |t, _| {
            for b in &mut t.get_mut("layers.2.bias").unwrap().1[3..] {
                *b = 1e30;
            }
        }),
    );
    for cmd in [
        "predict --model huge.st --data d2.csv",
        "sample --model huge.st --grid 0:1:5",
        "sample --model huge.st --data d2.csv",
    ] {
        mdn(d, cmd).fails(&["model's", "not finite", "row 1"]);
    }
    // The NLL itself stays finite here (it is ~Σ log σ ≈ 1e30): eval may
    // print it, but never `inf` or `NaN`.
    let e = mdn(d, "eval --model huge.st --data d2.csv");
    if e.code == Some(0) {
        assert!(e.value("nll") > 1e20, "{}", e.context());
    } else {
        e.fails(&["not finite"]);
    }
}

// ---------------------------------------------------------------- 6. atomic outputs

#[test]
fn failed_runs_leave_existing_outputs_untouched() {
    let dir = tmp();
    let d = dir.path();
    inverse_setup(d);
    write(d, "bad.csv", "y,x\n1,2\noops,3\n");
    let precious = b"precious bytes, not a model\n";
    write(d, "out.st", precious);
    write(d, "out.csv", precious);
    let before = entries(d);

    train(d, "--data bad.csv --out out.st").fails(&["bad.csv", "line 3"]);
    train(d, "--data d.csv --k 0 --out out.st").fails(&["K"]);
    train(d, "--data d.csv --test bad.csv --out out.st").fails(&["bad.csv"]);
    assert_eq!(std::fs::read(d.join("out.st")).unwrap(), precious);

    mdn(d, "predict --model out.st --data d2.csv --out out.csv").fails(&["out.st"]);
    mdn(
        d,
        "predict --model m.safetensors --data bad.csv --out out.csv",
    )
    .fails(&["bad.csv"]);
    mdn(d, "sample --model m.safetensors --grid x --out out.csv").fails(&["--grid"]);
    assert_eq!(std::fs::read(d.join("out.csv")).unwrap(), precious);
    assert_eq!(entries(d), before, "no temporary or partial files are left");

    // A successful run replaces the file whole.
    train(d, "--data d.csv --k 3 --out out.st").ok();
    load_model(&d.join("out.st")).unwrap();
}

// ---------------------------------------------------------------- 7. determinism

#[test]
fn same_seed_same_model_file() {
    let dir = tmp();
    let d = dir.path();
    mdn(d, "data --toy inverse --n 512 --seed 1 --out d.csv").ok();
    let run = |seed: &str, out: &str| {
        let t = train(d, &format!("--data d.csv --k 3 --seed {seed} --out {out}")).ok();
        (std::fs::read(d.join(out)).unwrap(), t.stdout)
    };
    let (a, out_a) = run("5", "a.st");
    let (b, out_b) = run("5", "b.st");
    let (c, _) = run("6", "c.st");
    assert!(a == b, "the same seed gave different model files");
    assert_eq!(out_a, out_b);
    assert!(a != c, "another seed gave the same model file");
    assert_eq!(a.len(), c.len());
}

/// `MDN_CPU_KERNELS` takes auto, portable or avx2; anything else is an error
/// before any work, and each valid value trains to the same loss.
#[test]
fn cpu_kernel_choice_is_checked_and_each_choice_trains() {
    let dir = tempfile::tempdir().unwrap();
    let run = |value: &str| {
        Command::new(env!("CARGO_BIN_EXE_mdn"))
            .env("MDN_TUNED_KERNELS", "off")
            .args([
                "train", "--toy", "inverse", "--steps", "200", "--device", "cpu",
            ])
            .args(["--out", "m.safetensors"])
            .current_dir(dir.path())
            .env("MDN_CPU_KERNELS", value)
            .output()
            .expect("the mdn binary runs")
    };
    let bad = run("portible");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("MDN_CPU_KERNELS=`portible`"), "{stderr}");
    let train_nll = |out: &std::process::Output| -> f32 {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("train nll"))
            .expect(&text);
        line["train nll".len()..].trim().parse().unwrap()
    };
    let portable = train_nll(&run("portable"));
    let auto = train_nll(&run("auto"));
    assert!(
        (portable - auto).abs() < 1e-3,
        "portable {portable} vs auto {auto}"
    );
}

/// `--covariance full` end to end on the CPU: data, train, the model file's
/// head, predict's `cov_k_i_j` columns (positive definite covariances in
/// original units), sample, eval; and the settings it refuses. The GPU's
/// answers are compared with these in tests/gpu_inference.rs.
#[test]
fn full_covariance_pipeline() {
    let dir = tmp();
    let d = dir.path();
    mdn(d, "data --toy band --n 1024 --seed 1 --out b.csv").ok();
    assert_eq!(Csv::read(&d.join("b.csv")).header, ["x", "y0", "y1"]);
    let t = train(
        d,
        "--data b.csv --target y0,y1 --covariance full --k 2 --out m.st",
    )
    .ok();
    t.value("train nll");

    let bytes = std::fs::read(d.join("m.st")).unwrap();
    let (tensors, meta) = read_safetensors(&bytes);
    let spec: Value = serde_json::from_str(&meta["spec"]).unwrap();
    assert_eq!(
        spec["head"],
        json!({"kind": "mixture", "k": 2, "covariance": "full"})
    );
    // K + K·D + K·D(D+1)/2 = 2 + 4 + 6 outputs.
    assert_eq!(tensors["layers.2.weight"].0, [12, 16]);

    write(d, "in.csv", "x\n-0.5\n0.25\n");
    let p = Csv::parse(&mdn(d, "predict --model m.st --data in.csv").ok().stdout);
    let mut want: Vec<String> = ["x", "pi_0", "pi_1", "mu_0_0", "mu_0_1", "mu_1_0", "mu_1_1"]
        .map(String::from)
        .to_vec();
    for k in 0..2 {
        for (i, j) in [(0, 0), (0, 1), (1, 1)] {
            want.push(format!("cov_{k}_{i}_{j}"));
        }
    }
    assert_eq!(p.header, want);
    for r in &p.rows {
        assert!((r[1] + r[2] - 1.0).abs() < 1e-5, "{r:?}");
        for c in [&r[7..10], &r[10..13]] {
            assert!(
                c[0] > 0.0 && c[2] > 0.0 && c[0] * c[2] > c[1] * c[1],
                "{r:?}"
            );
        }
    }
    let s = Csv::parse(
        &mdn(d, "sample --model m.st --data in.csv --per-input 4")
            .ok()
            .stdout,
    );
    assert_eq!(s.header, ["x", "y0", "y1"]);
    assert_eq!(s.rows.len(), 8);
    // A grid may start below zero.
    let g = Csv::parse(&mdn(d, "sample --model m.st --grid -1:1:3").ok().stdout);
    assert_eq!(g.col("x"), [-1.0, 0.0, 1.0]);
    let e = mdn(d, "eval --model m.st --data b.csv").ok();
    assert!((e.value("nll") - t.value("train nll")).abs() < 1e-4);

    // One target column, an MLP, and more columns than the head takes.
    mdn(d, "data --toy inverse --n 64 --out one.csv").ok();
    train(d, "--data one.csv --covariance full --out x.st").fails(&[
        "full-covariance",
        "2..=16 target columns",
        "--target",
        "--covariance diag",
    ]);
    train(
        d,
        "--data b.csv --target y0,y1 --covariance full --model mlp --out x.st",
    )
    .fails(&["--covariance", "--model mdn"]);
    let mut wide = String::from("x");
    for j in 0..17 {
        wide += &format!(",t{j}");
    }
    wide += "\n";
    for i in 0..20 {
        wide += &format!("{i}");
        for j in 0..17 {
            wide += &format!(",{}", (i * j) % 7);
        }
        wide += "\n";
    }
    write(d, "wide.csv", &wide);
    let targets: Vec<String> = (0..17).map(|j| format!("t{j}")).collect();
    train_args(
        d,
        &[
            "--data",
            "wide.csv",
            "--target",
            &targets.join(","),
            "--covariance",
            "full",
            "--out",
            "x.st",
        ],
    )
    .fails(&["2..=16 target columns, got 17"]);
    assert!(!d.join("x.st").exists());
}
