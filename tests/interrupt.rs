//! Runs a user must never lose: the real binary, interrupted by signals
//! sent to its own process group, and checkpoints resumed. All on the CPU,
//! where a seeded run is bit-deterministic.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mdn(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", "off")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the mdn binary runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = mdn(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mdn {args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `mdn ARGS` as the leader of a process group of its own, as a
/// shell starts a job.
fn spawn(dir: &Path, args: &[&str]) -> Child {
    use std::os::unix::process::CommandExt;
    Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", "off")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("the mdn binary starts")
}

/// Sends `signals` to the child's process group, as Ctrl-C in a terminal
/// does, microseconds apart.
fn signal_group(child: &Child, signals: &[i32]) {
    for &sig in signals {
        // SAFETY: kill(2) with a process group id and a signal number.
        let r = unsafe { libc::kill(-(child.id() as i32), sig) };
        assert_eq!(r, 0, "kill failed");
    }
}

/// Waits until `path` exists: the run has passed its first checkpoint, so
/// it is training, well before its end.
fn wait_for(path: &Path, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("mdn ended before {}: {status}", path.display());
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const TRAIN: &[&str] = &[
    "train", "--data", "d.csv", "--k", "3", "--hidden", "16,16", "--batch", "64", "--device",
    "cpu", "--quiet", "--seed", "5",
];

/// `d/out`: `n` rows of the inverse toy problem drawn with `seed`.
fn toy_csv(d: &Path, n: &str, seed: &str, out: &str) {
    ok(
        d,
        &[
            "data", "--toy", "inverse", "--n", n, "--seed", seed, "--out", out,
        ],
    );
}

/// The training rows of the `train` tests: `d/d.csv`.
fn setup(d: &Path) {
    toy_csv(d, "2048", "1", "d.csv");
}

/// SIGINT mid-run: exit 130, the model written loads and evaluates to a
/// finite NLL, stderr says what was written and at which step, and the
/// checkpoint it wrote resumes to the same bytes as a run never
/// interrupted (cosine schedule, validation on: the settings a user has).
#[test]
fn sigint_writes_the_best_model_and_the_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let steps = ["--steps", "150000"];
    let mut child = spawn(
        d,
        &[
            TRAIN,
            &steps,
            &[
                "--checkpoint",
                "ck.st",
                "--checkpoint-every",
                "2000",
                "--out",
                "m.st",
            ],
        ]
        .concat(),
    );
    wait_for(&d.join("ck.st"), &mut child);
    std::thread::sleep(Duration::from_millis(300));
    signal_group(&child, &[libc::SIGINT]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("SIGINT: stopped at step") && stderr.contains("m.st"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let e = ok(
        d,
        &[
            "eval", "--model", "m.st", "--data", "d.csv", "--device", "cpu",
        ],
    );
    let nll: f64 = e.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(nll.is_finite(), "{e}");

    // Resumed to the end, it equals the run that never stopped.
    ok(
        d,
        &[
            "train",
            "--resume",
            "ck.st",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            "resumed.st",
        ],
    );
    ok(d, &[TRAIN, &steps, &["--out", "whole.st"]].concat());
    let (a, b) = (
        std::fs::read(d.join("resumed.st")).unwrap(),
        std::fs::read(d.join("whole.st")).unwrap(),
    );
    assert!(
        a == b,
        "resumed and uninterrupted runs wrote different models"
    );
}

/// Two signals in a row: the second aborts at once and writes nothing, so
/// the previous model file stays byte-identical. (The second is a SIGTERM:
/// two SIGINTs sent microseconds apart can reach the process as one, as
/// the kernel does not queue a signal already pending; a person's second
/// Ctrl-C comes far later.) A lone SIGTERM exits 143.
#[test]
fn a_second_signal_aborts_without_writing_and_sigterm_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    ok(d, &[TRAIN, &["--steps", "300", "--out", "m.st"]].concat());
    let before = std::fs::read(d.join("m.st")).unwrap();
    let long = [
        TRAIN,
        &[
            "--steps",
            "150000",
            "--checkpoint",
            "ck.st",
            "--checkpoint-every",
            "2000",
            "--out",
            "m.st",
        ],
    ]
    .concat();
    let mut child = spawn(d, &long);
    wait_for(&d.join("ck.st"), &mut child);
    let ck_before = std::fs::read(d.join("ck.st")).unwrap();
    signal_group(&child, &[libc::SIGINT, libc::SIGTERM]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 128 + whichever of the two was handled second (handlers may run on
    // any of the process's threads).
    assert!(
        matches!(out.status.code(), Some(130 | 143)),
        "{:?}: {stderr}",
        out.status
    );
    assert!(
        !stderr.contains("stopped at step"),
        "it wrote and said so: {stderr}"
    );
    assert!(
        std::fs::read(d.join("m.st")).unwrap() == before,
        "the model file changed"
    );
    // The checkpoint is whole: the one from before, or a newer complete one.
    let ck = std::fs::read(d.join("ck.st")).unwrap();
    if ck != ck_before {
        ok(
            d,
            &[
                "eval", "--model", "ck.st", "--data", "d.csv", "--device", "cpu",
            ],
        );
    }

    std::fs::remove_file(d.join("ck.st")).unwrap();
    let mut child = spawn(d, &long);
    wait_for(&d.join("ck.st"), &mut child);
    signal_group(&child, &[libc::SIGTERM]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("SIGTERM: stopped at step"), "{stderr}");
    assert!(
        std::fs::read(d.join("m.st")).unwrap() != before,
        "no model written"
    );
}

/// N steps, a checkpoint, and N more with `--resume --steps 2N` give the
/// same bytes as 2N steps in one run (constant learning rate, so the
/// schedule does not depend on the total), from a CSV and from toy data.
#[test]
fn n_plus_n_resumed_steps_equal_2n_steps_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let constant = ["--schedule", "constant"];
    for source in [
        &["--data", "d.csv"][..],
        &["--toy", "band", "--n", "1500"][..],
    ] {
        let base: Vec<&str> = [
            &[
                "train", "--k", "3", "--hidden", "16,16", "--batch", "64", "--device", "cpu",
            ][..],
            &["--quiet", "--seed", "5", "--eval-every", "250"],
            &constant,
            source,
        ]
        .concat();
        ok(
            d,
            &[
                &base[..],
                &[
                    "--steps",
                    "1000",
                    "--checkpoint",
                    "half.st",
                    "--out",
                    "a.st",
                ],
            ]
            .concat(),
        );
        ok(
            d,
            &[
                "train", "--resume", "half.st", "--steps", "2000", "--device", "cpu", "--quiet",
                "--out", "b.st",
            ],
        );
        ok(
            d,
            &[&base[..], &["--steps", "2000", "--out", "c.st"]].concat(),
        );
        let (b, c) = (
            std::fs::read(d.join("b.st")).unwrap(),
            std::fs::read(d.join("c.st")).unwrap(),
        );
        assert!(
            b == c,
            "{source:?}: 1000 + 1000 resumed steps differ from 2000 steps"
        );
    }
    // Resuming past the end, or without a checkpoint, is refused.
    let out = mdn(
        d,
        &[
            "train", "--resume", "c.st", "--device", "cpu", "--out", "x.st",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("not a checkpoint"),
        "{stderr}"
    );
    let out = mdn(
        d,
        &[
            "train", "--resume", "half.st", "--steps", "500", "--device", "cpu", "--out", "x.st",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("larger --steps"),
        "{stderr}"
    );
    let out = mdn(
        d,
        &["train", "--resume", "half.st", "--k", "5", "--out", "x.st"],
    );
    assert!(!out.status.success());
    assert!(!d.join("x.st").exists());
}

/// A run long enough to overfit a small data set: the model written is the
/// best on the validation file, from before the end, and `eval` on that
/// file gives exactly the validation NLL `train` printed.
#[test]
fn the_model_written_is_the_best_on_validation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "data",
            "--toy",
            "inverse",
            "--n",
            "150",
            "--seed",
            "1",
            "--out",
            "small.csv",
        ],
    );
    ok(
        d,
        &[
            "data", "--toy", "inverse", "--n", "1000", "--seed", "2", "--out", "v.csv",
        ],
    );
    let out = mdn(
        d,
        &[
            "train",
            "--data",
            "small.csv",
            "--val",
            "v.csv",
            "--k",
            "8",
            "--hidden",
            "64,64",
            "--steps",
            "6000",
            "--batch",
            "32",
            "--lr",
            "1e-2",
            "--schedule",
            "constant",
            "--eval-every",
            "100",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            "m.st",
        ],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    let printed: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("val nll "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no val line in {stdout}"));
    let best_step: usize = stderr
        .split("validation set (step ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no best step in {stderr}"));
    assert!(
        best_step < 6000,
        "no overfitting to select against: {stderr}"
    );
    let e = ok(
        d,
        &[
            "eval", "--model", "m.st", "--data", "v.csv", "--device", "cpu",
        ],
    );
    let nll: f64 = e.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        (nll - printed).abs() < 1e-5,
        "eval {nll} vs printed {printed}"
    );
}

/// SIGINT during a sweep: the models in training stop and are kept with
/// the steps they reached, no new one starts, and the ranked results and
/// the best model are written before the exit code (130) says so.
#[test]
fn an_interrupted_sweep_keeps_the_models_it_trained() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut child = spawn(
        d,
        &[
            "sweep",
            "--toy",
            "inverse",
            "--k",
            "1,2,3",
            "--seeds",
            "4",
            "--lr",
            "5e-3",
            "--hidden",
            "16",
            "--steps",
            "10000000",
            "--eval-every",
            "100",
            "--device",
            "cpu",
            "--out-dir",
            "sw",
            "--quiet",
        ],
    );
    // Training has begun well before this (loading the toy data is quick).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the sweep ended early");
    signal_group(&child, &[libc::SIGINT]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("SIGINT: stopped with"), "{stderr}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(d.join("sw/sweep.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Some models trained, not all 12 (the rest never started).
    assert!(
        !lines.is_empty() && lines.len() < 12,
        "{} results",
        lines.len()
    );
    for r in &lines {
        let steps = r["steps"].as_u64().unwrap();
        assert!(steps > 0 && steps < 10_000_000, "{r}");
        assert!(r["val_nll"].as_f64().unwrap().is_finite(), "{r}");
    }
    // The best model is whole and evaluates.
    ok(
        d,
        &[
            "data", "--toy", "inverse", "--n", "300", "--seed", "3", "--out", "t.csv",
        ],
    );
    ok(
        d,
        &["eval", "--model", "sw/best.safetensors", "--data", "t.csv"],
    );
}

/// The validation rows the sweep tests rank on: `d/v.csv`.
fn validation_csv(d: &Path) {
    toy_csv(d, "1000", "9", "v.csv");
}

/// A sweep killed outright (SIGKILL: no handler runs, nothing is written
/// at the end) keeps, besides the ranked results of the models it
/// finished, the best of them as `best.safetensors`: written as soon as
/// it is the best, before the results that rank it.
#[test]
fn a_killed_sweep_keeps_its_best_model_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    validation_csv(d);
    // The 128,128 models take a hundred times the 8's: the kill lands
    // after some models finished and before the rest, on any number of
    // cores.
    let mut child = spawn(
        d,
        &[
            "sweep",
            "--toy",
            "inverse",
            "--n",
            "4096",
            "--k",
            "1,2",
            "--seeds",
            "2",
            "--hidden",
            "8;128,128",
            "--steps",
            "20000",
            "--val",
            "v.csv",
            "--device",
            "cpu",
            "--out-dir",
            "sw",
            "--quiet",
        ],
    );
    wait_for(&d.join("sw/sweep.jsonl"), &mut child);
    signal_group(&child, &[libc::SIGKILL]);
    let out = child.wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "it ran to its end"
    );
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(d.join("sw/sweep.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let reported = first["val_nll"].as_f64().unwrap();
    let eval = ok(
        d,
        &[
            "eval",
            "--model",
            "sw/best.safetensors",
            "--data",
            "v.csv",
            "--device",
            "cpu",
        ],
    );
    let nll: f64 = eval.split_whitespace().nth(1).unwrap().parse().unwrap();
    // The same model, or one that finished just before the kill and was
    // not ranked yet: never a worse one.
    assert!(
        nll <= reported + 1e-5,
        "best {nll} vs ranked first {reported}"
    );
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `sweep --resume` after SIGINT: the models the signal cut short and the
/// ones never started train, the finished ones are kept, and the results
/// and the best model are those of the same sweep never stopped, byte for
/// byte. Resumed with other settings it refuses, naming them; with a
/// grid that grew, only the new combinations train.
#[test]
fn a_resumed_sweep_ends_where_one_never_stopped_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    validation_csv(d);
    // The 64,64 models take a few hundred times the 4's: the signal comes
    // after some models finished and before the rest, on any number of
    // cores.
    let grid = |k: &str, steps: &str, out: &str| -> Vec<String> {
        [
            "sweep",
            "--toy",
            "inverse",
            "--n",
            "4096",
            "--k",
            k,
            "--seeds",
            "2",
            "--hidden",
            "4;64,64",
            "--steps",
            steps,
            "--val",
            "v.csv",
            "--device",
            "cpu",
            "--out-dir",
            out,
        ]
        .map(String::from)
        .to_vec()
    };
    ok(d, &args(&grid("1,2", "2000", "full")));

    let mut child = spawn(d, &args(&grid("1,2", "2000", "part")));
    wait_for(&d.join("part/sweep.jsonl"), &mut child);
    signal_group(&child, &[libc::SIGINT]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let cut = std::fs::read_to_string(d.join("part/sweep.jsonl")).unwrap();
    assert!(cut.lines().count() < 8, "{cut}");
    let resumed = mdn(
        d,
        &args(&[grid("1,2", "2000", "part"), vec!["--resume".into()]].concat()),
    );
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("resuming part:"), "{stderr}");
    let without_seconds = |path: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(d.join(path))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                v
            })
            .collect()
    };
    assert_eq!(
        without_seconds("part/sweep.jsonl"),
        without_seconds("full/sweep.jsonl")
    );
    assert!(
        std::fs::read(d.join("part/best.safetensors")).unwrap()
            == std::fs::read(d.join("full/best.safetensors")).unwrap(),
        "best.safetensors differs from the sweep never stopped"
    );

    // Other settings: refused, and named.
    let other = mdn(
        d,
        &args(&[grid("1,2", "3000", "part"), vec!["--resume".into()]].concat()),
    );
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(stderr.contains("--steps 3000 (was 2000)"), "{stderr}");

    // A grid that grew: only K 3 trains.
    let grown = mdn(
        d,
        &args(&[grid("1,2,3", "2000", "part"), vec!["--resume".into()]].concat()),
    );
    let stderr = String::from_utf8_lossy(&grown.stderr);
    assert!(grown.status.success(), "{stderr}");
    assert!(
        stderr.contains("8 finished models kept, 4 to train"),
        "{stderr}"
    );
    assert_eq!(without_seconds("part/sweep.jsonl").len(), 12);
}
