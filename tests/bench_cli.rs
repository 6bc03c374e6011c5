//! `mdn bench` through the built binary: the `--json` rows carry the
//! DESIGN.md §2 fields with positive, finite numbers, and a missing GPU is
//! an error only when asked for. No speed is asserted: timings depend on
//! the machine.

use std::process::{Command, Output};

use serde_json::Value;

fn mdn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", "off")
        .args(args)
        .output()
        .expect("the mdn binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs to success and returns stdout's JSON lines.
#[track_caller]
fn json_rows(args: &[&str]) -> Vec<Value> {
    let out = mdn(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "mdn {}: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        args.join(" "),
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

const NUMBERS: [&str; 7] = [
    "steps_per_s",
    "steps_per_s_min",
    "steps_per_s_max",
    "samples_per_s",
    "ms_per_step",
    "gflops",
    "flops_per_step",
];

#[track_caller]
fn check_row(row: &Value, device: &str, mode: &str) {
    let ctx = || row.to_string();
    assert_eq!(row["config"], "small", "{}", ctx());
    assert_eq!(row["model"], "mdn", "{}", ctx());
    assert_eq!(row["device"], device, "{}", ctx());
    assert_eq!(row["mode"], mode, "{}", ctx());
    assert_eq!(row["batch"], 1024, "{}", ctx());
    assert_eq!(row["hidden"], serde_json::json!([32, 32]), "{}", ctx());
    assert_eq!(row["k"], 5, "{}", ctx());
    assert_eq!(row["models"], 1, "{}", ctx());
    for key in NUMBERS {
        let v = row[key]
            .as_f64()
            .unwrap_or_else(|| panic!("`{key}` is not a number: {}", ctx()));
        assert!(v.is_finite() && v > 0.0, "`{key}` = {v}: {}", ctx());
    }
    let (median, lo, hi) = (
        row["steps_per_s"].as_f64().unwrap(),
        row["steps_per_s_min"].as_f64().unwrap(),
        row["steps_per_s_max"].as_f64().unwrap(),
    );
    assert!(lo <= median && median <= hi, "{}", ctx());
    for key in ["adapter", "backend", "driver", "cpu", "kernels"] {
        let s = row[key]
            .as_str()
            .unwrap_or_else(|| panic!("`{key}`: {}", ctx()));
        assert!(!s.is_empty(), "`{key}` is empty: {}", ctx());
    }
    assert!(row["threads"].as_u64().is_some_and(|t| t >= 1), "{}", ctx());
    assert!(row["steps"].as_u64().is_some_and(|s| s >= 1), "{}", ctx());
    assert!(row["repeats"].as_u64().is_some_and(|r| r >= 1), "{}", ctx());
    assert!(
        row["final_loss"].as_f64().is_some_and(f64::is_finite),
        "{}",
        ctx()
    );
}

#[test]
fn cpu_rows_have_every_field() {
    let rows = json_rows(&[
        "bench",
        "--config",
        "small",
        "--device",
        "cpu",
        "--steps",
        "20",
        "--repeats",
        "2",
        "--json",
    ]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    check_row(row, "cpu", "chunked");
    assert_eq!(row["steps"], 20);
    assert_eq!(row["repeats"], 2);
    assert_eq!(row["backend"], "cpu");
    assert!(row["gpu_cpu_ratio"].is_null());
    assert_eq!(row["repeat_steps_per_s"].as_array().map(Vec::len), Some(2));
}

#[test]
fn gpu_rows_have_every_field() {
    if mdn::gpu::context::test_context().is_none() {
        return;
    }
    let rows = json_rows(&[
        "bench",
        "--config",
        "small",
        "--device",
        "cpu,gpu",
        "--steps",
        "3",
        "--repeats",
        "2",
        "--json",
    ]);
    let devices: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["device"].as_str().unwrap(), r["mode"].as_str().unwrap()))
        .collect();
    assert_eq!(
        devices,
        [
            ("cpu", "chunked"),
            ("gpu", "chunked"),
            ("gpu", "sync-every-step")
        ]
    );
    check_row(&rows[0], "cpu", "chunked");
    for (row, mode) in rows[1..].iter().zip(["chunked", "sync-every-step"]) {
        check_row(row, "gpu", mode);
        assert_ne!(row["backend"], "cpu", "{row}");
        let ratio = row["gpu_cpu_ratio"]
            .as_f64()
            .expect("a ratio next to a CPU row");
        assert!(ratio.is_finite() && ratio > 0.0, "{row}");
        assert!(
            row["dispatches_per_step"].as_u64().is_some_and(|d| d > 0),
            "{row}"
        );
        // Whether the fused step ran, and with it the dispatch count.
        match row["fused"].as_bool() {
            Some(true) => assert_eq!(row["dispatches_per_step"], 2, "{row}"),
            Some(false) => {}
            None => panic!("a GPU row says whether the fused step ran: {row}"),
        }
        // The configuration in override syntax, as the header prints it.
        let kernels = row["kernels"].as_str().unwrap_or_default();
        assert!(kernels.starts_with("matmul="), "{row}");
    }
}

#[test]
fn text_table_has_a_header_and_a_row() {
    let out = mdn(&[
        "bench",
        "--config",
        "small",
        "--device",
        "cpu",
        "--steps",
        "5",
        "--repeats",
        "1",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("cpu: "), "{stdout}");
    assert!(stdout.contains("steps/s"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("small") && l.contains("cpu")),
        "{stdout}"
    );
}

#[test]
fn a_missing_gpu_is_an_error_only_when_asked_for() {
    let adapter = "no-such-adapter-zz9";
    let out = mdn(&[
        "--adapter",
        adapter,
        "bench",
        "--config",
        "small",
        "--device",
        "gpu",
        "--steps",
        "1",
        "--repeats",
        "1",
        "--json",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error:"), "{stderr}");
    assert!(stderr.contains("--device gpu"), "{stderr}");
    assert!(stderr.contains(adapter), "{stderr}");
    assert!(out.stdout.is_empty());

    // The default device list falls back to the CPU with a note.
    let out = mdn(&[
        "--adapter",
        adapter,
        "bench",
        "--config",
        "small",
        "--steps",
        "2",
        "--repeats",
        "1",
        "--json",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("note:") && stderr.contains("CPU only"),
        "{stderr}"
    );
    let rows: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["device"], "cpu");
}

/// `--models M`: M models at once (the CPU side by side, the GPU in one
/// trainer's dispatches, the fused step); a step steps them all, and the
/// rows say how many and the model-steps per second.
/// `--profile`: the chunked GPU row carries a `profile` with a time per
/// dispatch (as many as `dispatches_per_step`), the other rows none; the
/// table prints it under the row.
#[test]
fn a_profile_comes_with_the_chunked_gpu_row_when_asked() {
    if mdn::gpu::context::test_context().is_none() {
        return;
    }
    let args = [
        "bench",
        "--config",
        "small",
        "--device",
        "cpu,gpu",
        "--steps",
        "3",
        "--repeats",
        "1",
    ];
    let rows = json_rows(&[&args[..], &["--json", "--profile"]].concat());
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        let chunked_gpu = row["device"] == "gpu" && row["mode"] == "chunked";
        if !chunked_gpu {
            assert!(row.get("profile").is_none(), "{row}");
            continue;
        }
        let p = &row["profile"];
        let dispatches = p["dispatches"].as_array().expect("a profile: {row}");
        assert_eq!(
            Some(dispatches.len() as u64),
            row["dispatches_per_step"].as_u64(),
            "{row}"
        );
        assert_eq!(dispatches.last().unwrap()["kernel"], "adam", "{row}");
        for d in dispatches {
            assert!(d["micros"].as_f64().is_some_and(|t| t >= 0.0), "{row}");
        }
        assert_eq!(p["steps"], 3, "{row}");
        assert!(p["step_micros"].as_f64().is_some_and(|t| t > 0.0), "{row}");
    }
    // Without the flag, no row has one.
    let plain = json_rows(&[&args[..], &["--json"]].concat());
    assert!(
        plain.iter().all(|r| r.get("profile").is_none()),
        "{plain:?}"
    );
    let out = mdn(&[&args[..], &["--profile"]].concat());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("profile: small chunked"), "{stdout}");
    assert!(stdout.contains("step, one pass for all"), "{stdout}");
}

#[test]
fn several_models_at_once_are_counted() {
    let gpu = mdn::gpu::context::test_context().is_some();
    let devices = if gpu { "cpu,gpu" } else { "cpu" };
    let rows = json_rows(&[
        "bench",
        "--config",
        "small",
        "--device",
        devices,
        "--models",
        "3",
        "--steps",
        "3",
        "--repeats",
        "1",
        "--json",
    ]);
    assert_eq!(rows.len(), if gpu { 3 } else { 1 }, "{rows:?}");
    for row in &rows {
        assert_eq!(row["models"], 3, "{row}");
        let (steps, model_steps) = (
            row["steps_per_s"].as_f64().unwrap(),
            row["model_steps_per_s"].as_f64().unwrap(),
        );
        assert!(
            (model_steps - 3.0 * steps).abs() <= 1e-9 * model_steps,
            "{row}"
        );
        assert!(
            row["final_loss"].as_f64().is_some_and(f64::is_finite),
            "{row}"
        );
        if row["device"] == "gpu" {
            assert_eq!(row["fused"], true, "{row}");
            assert_eq!(row["dispatches_per_step"], 2, "{row}");
            // The configuration that ran, even where the adapter's own
            // (software: fused=off) says otherwise.
            let kernels = row["kernels"].as_str().unwrap();
            assert!(kernels.contains(",fused=on,"), "{row}");
        }
    }
}

#[test]
fn bad_arguments_fail_cleanly() {
    for args in [
        &["bench", "--repeats", "0", "--device", "cpu"][..],
        &["bench", "--steps", "0", "--device", "cpu"][..],
        &["bench", "--models", "0", "--device", "cpu"][..],
    ] {
        let out = mdn(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error:"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}
