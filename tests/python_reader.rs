//! The model file read by another program: `examples/python/mdn_model.py`,
//! the standard library alone, must write the CSV `mdn predict` writes and
//! the NLL (or MSE) `mdn eval` prints, for every head kind: a diagonal
//! mixture with one target column (with point predictions and quantiles)
//! and with two, a full-covariance mixture, and an MLP. It proves the
//! DESIGN.md §2 contract across a language boundary, and keeps the example
//! users copy from true.
//!
//! Needs `python3`; without one the test says so and passes, unless
//! `MDN_REQUIRE_PYTHON=1` (as `.ci/run` sets), which makes it fail.

use std::path::Path;
use std::process::Command;

fn run(program: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("MDN_TUNED_KERNELS", "off")
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn mdn(dir: &Path, args: &str) -> String {
    run(
        env!("CARGO_BIN_EXE_mdn"),
        dir,
        &args.split_whitespace().collect::<Vec<_>>(),
    )
}

fn python(dir: &Path, args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/mdn_model.py");
    let mut all = vec![script];
    all.extend_from_slice(args);
    run("python3", dir, &all)
}

fn python_available() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("MDN_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "python3 not found and MDN_REQUIRE_PYTHON=1"
        );
        eprintln!("SKIPPED: python3 not found (MDN_REQUIRE_PYTHON=1 makes this a failure)");
    }
    found
}

/// Header and numeric rows of a CSV text.
fn parse(text: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("a header")
        .split(',')
        .map(String::from)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().expect(v)).collect())
        .collect();
    (header, rows)
}

/// `mdn predict` and the Python reader write the same columns and, to f32
/// rounding, the same numbers.
fn same_predictions(dir: &Path, model: &str, data: &str, extra: &[&str]) {
    let mut args = vec![
        "predict", "--model", model, "--data", data, "--device", "cpu",
    ];
    args.extend_from_slice(extra);
    let (want_header, want) = parse(&mdn(dir, &args.join(" ")));
    let mut py_args = vec![model, data];
    py_args.extend_from_slice(extra);
    let (header, got) = parse(&python(dir, &py_args));
    assert_eq!(header, want_header, "{model}: columns");
    assert_eq!(got.len(), want.len(), "{model}: rows");
    for (r, (g, w)) in got.iter().zip(&want).enumerate() {
        for ((name, a), b) in header.iter().zip(g).zip(w) {
            assert!(
                (a - b).abs() <= 2e-5 + 1e-4 * b.abs(),
                "{model}, row {r}, {name}: python {a}, mdn {b}"
            );
        }
    }
}

/// The first number on `mdn eval`'s first line and on the reader's.
fn same_loss(dir: &Path, model: &str, data: &str) {
    let first = |text: &str| -> (String, f64) {
        let mut words = text.split_whitespace();
        let name = words.next().expect("a name").to_string();
        (
            name,
            words.next().expect("a value").parse().expect("a number"),
        )
    };
    let want = first(&mdn(
        dir,
        &format!("eval --model {model} --data {data} --device cpu"),
    ));
    let got = first(&python(dir, &[model, data, "--nll"]));
    assert_eq!(got.0, want.0, "{model}");
    assert!(
        (got.1 - want.1).abs() <= 1e-4 * want.1.abs().max(1.0),
        "{model}: python {} {}, mdn eval {}",
        got.0,
        got.1,
        want.1
    );
}

#[test]
fn the_python_reader_agrees_with_mdn_for_every_head_kind() {
    if !python_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    mdn(d, "data --toy inverse --n 512 --seed 3 --out inv.csv");
    mdn(d, "data --toy band --n 512 --seed 4 --out band.csv");
    let train = "--steps 300 --hidden 8,8 --device cpu --val none --seed 5";
    let band = "--data band.csv --input x --target y0,y1";
    mdn(
        d,
        &format!("train --data inv.csv --k 3 {train} --out k3.st"),
    );
    mdn(d, &format!("train {band} --k 2 {train} --out diag.st"));
    mdn(
        d,
        &format!("train {band} --k 2 --covariance full {train} --out full.st"),
    );
    mdn(d, &format!("train {band} --model mlp {train} --out mlp.st"));

    // The first rows are enough for the columns; the loss takes them all.
    let head = |src: &str, dst: &str| {
        let text = std::fs::read_to_string(d.join(src)).unwrap();
        let rows: Vec<&str> = text.lines().take(41).collect();
        std::fs::write(d.join(dst), rows.join("\n") + "\n").unwrap();
    };
    head("inv.csv", "inv40.csv");
    head("band.csv", "band40.csv");
    same_predictions(
        d,
        "k3.st",
        "inv40.csv",
        &[
            "--point",
            "mean,median,mode",
            "--quantiles",
            "0.05,0.5,0.95",
        ],
    );
    for model in ["diag.st", "full.st", "mlp.st"] {
        same_predictions(d, model, "band40.csv", &[]);
    }
    same_loss(d, "k3.st", "inv.csv");
    for model in ["diag.st", "full.st", "mlp.st"] {
        same_loss(d, model, "band.csv");
    }
}
