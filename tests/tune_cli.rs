//! `mdn tune` through the built binary, and the table it writes as the
//! other commands read it: a job's entry steers that job's kernels (and
//! only that job's), `MDN_GPU_KERNELS` still wins, and a table that cannot
//! be used says so. No speed is asserted: which configuration wins depends
//! on the machine; that the winner is what the trainers then run does not.

use std::path::Path;
use std::process::{Command, Output};

use mdn::gpu::KernelConfig;
use mdn::gpu::context::test_context;
use mdn::gpu::kernels::kernels_build;
use mdn::gpu::tuned::{AdapterKey, JobShape, TUNED_KERNELS_ENV, TunedEntry, TunedTable};
use serde_json::Value;

/// `mdn` with the table at `table` (never the user's own).
fn mdn(table: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdn"));
    cmd.env(TUNED_KERNELS_ENV, table)
        .env_remove("MDN_GPU_KERNELS");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("the mdn binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn success(out: &Output, what: &str) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stdout, stderr)
}

const JOB: [&str; 10] = [
    "--toy", "inverse", "--n", "3000", "--hidden", "6", "--k", "2", "--batch", "48",
];

#[test]
fn tune_writes_the_winner_and_train_runs_it_for_that_job_only() {
    let Some(ctx) = test_context() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("tuned.json");
    let mut args = vec!["tune"];
    args.extend(JOB);
    args.extend(["--seconds", "0.05", "--only", "fused,fused_rows", "--json"]);
    let (stdout, _) = success(&mdn(&table, &[], &args), "mdn tune");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let (result, trials) = lines.split_last().unwrap();
    let result = &result["result"];
    // Both paths' starts, the fused rows tried, the alternating confirmation.
    assert!(trials.len() >= 2 + 3 + 2, "{stdout}");
    for t in trials {
        let measured = t["steps_per_s"].as_f64().is_some_and(|r| r > 0.0);
        assert!(measured != t["skipped"].is_string(), "{t}");
        KernelConfig::hardware()
            .with_overrides(t["kernels"].as_str().unwrap())
            .unwrap();
    }
    let changed: Vec<&str> = trials
        .iter()
        .filter_map(|t| t["changes"].as_str())
        .collect();
    assert!(
        changed.iter().any(|c| c.contains("fused_rows=8")),
        "{changed:?}"
    );
    assert!(
        changed.iter().any(|c| c.contains("fused=")),
        "both paths: {changed:?}"
    );
    assert_eq!(result["saved"], table.display().to_string());
    assert_eq!(result["adapter"]["name"], ctx.info.name);
    assert_eq!(result["job"]["batch"], 48);
    assert_eq!(result["job"]["models"], 1);
    assert!(result["gain"].as_f64().unwrap() >= 1.0, "{result}");

    let saved = TunedTable::load(&table).unwrap();
    assert_eq!(saved.entries.len(), 1);
    let entry = &saved.entries[0];
    assert_eq!(entry.kernels, result["kernels"].as_str().unwrap());
    assert_eq!(entry.build, kernels_build());

    let train = |batch: &str, envs: &[(&str, &str)]| {
        let mut args = vec!["train"];
        args.extend(&JOB[..8]);
        let out = dir.path().join("m.safetensors");
        args.extend([
            "--batch", batch, "--steps", "30", "--device", "gpu", "--out",
        ]);
        args.push(out.to_str().unwrap());
        success(&mdn(&table, envs, &args), "mdn train").1
    };
    let stderr = train("48", &[]);
    assert!(stderr.contains("GPU kernels"), "{stderr}");
    assert!(stderr.contains(&table.display().to_string()), "{stderr}");
    if !entry.changes.is_empty() {
        assert!(stderr.contains(&entry.changes), "{stderr}");
    }
    // Another batch is another job; `off` ignores the table.
    assert!(!train("40", &[]).contains("GPU kernels"));
    let off = Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env(TUNED_KERNELS_ENV, "off")
        .args([
            "train", "--toy", "inverse", "--n", "3000", "--hidden", "6", "--k", "2",
        ])
        .args(["--batch", "48", "--steps", "30", "--device", "gpu", "--out"])
        .arg(dir.path().join("m.safetensors"))
        .output()
        .unwrap();
    let (_, stderr) = success(&off, "mdn train, table off");
    assert!(!stderr.contains("GPU kernels"), "{stderr}");
}

/// An entry for `mdn bench --config small` on this adapter, written by
/// hand: `fused_tile=2` is no adapter's default, so a row that runs it
/// ran the entry.
fn small_bench_entry(ctx: &mdn::gpu::context::GpuContext, kernels: &str) -> TunedEntry {
    let size = mdn::bench::BenchConfig::Small;
    let spec = size.spec(mdn::bench::BenchModel::Mdn);
    let rows = size.dataset().unwrap().len();
    TunedEntry {
        adapter: AdapterKey::of(&ctx.info),
        build: kernels_build().to_string(),
        job: JobShape::new(&spec, size.batch(), rows, 1),
        kernels: kernels.to_string(),
        changes: "fused=on,fused_tile=2".into(),
        steps_per_s: 2.0,
        default_steps_per_s: 1.0,
        measured_at: 0,
    }
}

#[test]
fn bench_runs_the_entry_for_its_row_and_the_environment_still_wins() {
    let Some(ctx) = test_context() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("tuned.json");
    let kernels = KernelConfig::for_adapter(&ctx.info)
        .with_overrides("fused=on,fused_tile=2")
        .unwrap()
        .to_string();
    let mut t = TunedTable::default();
    t.insert(small_bench_entry(&ctx, &kernels));
    t.save(&table).unwrap();
    // The first JSON row (chunked) of a short GPU bench of the small size.
    let bench = |envs: &[(&str, &str)], more: &[&str]| -> Value {
        let mut args = vec!["bench", "--config", "small", "--device", "gpu"];
        args.extend(["--steps", "2", "--repeats", "1", "--json"]);
        args.extend(more);
        let (stdout, _) = success(&mdn(&table, envs, &args), "mdn bench");
        serde_json::from_str(stdout.lines().next().unwrap()).unwrap()
    };
    let row = bench(&[], &[]);
    assert_eq!(row["tuned"], true, "{row}");
    assert_eq!(row["fused"], true, "{row}");
    assert_eq!(row["kernels"], kernels, "{row}");
    assert!(
        (row["tuned_gain"].as_f64().unwrap() - 2.0).abs() < 1e-9,
        "{row}"
    );
    assert_eq!(row["tuned_changes"], "fused=on,fused_tile=2", "{row}");
    let row = bench(&[("MDN_GPU_KERNELS", "fused_tile=1")], &[]);
    assert_eq!(row["tuned"], true, "{row}");
    assert!(
        row["kernels"].as_str().unwrap().contains("fused_tile=1,"),
        "{row}"
    );
    // With `--models 2` the row is another job: the defaults run.
    let row = bench(&[], &["--models", "2"]);
    assert_eq!(row["tuned"], false, "{row}");
    assert!(row.get("tuned_gain").is_none(), "{row}");
    assert!(row.get("tuned_changes").is_none(), "{row}");
}

#[test]
fn a_table_that_cannot_be_used_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("tuned.json");
    // Unreadable: a warning, and the run goes on (on any device).
    std::fs::write(&table, "{ not json").unwrap();
    let out = mdn(
        &table,
        &[],
        &[
            "train", "--toy", "inverse", "--n", "500", "--hidden", "4", "--k", "2",
        ],
    );
    assert!(!out.status.success(), "no --out: clap refuses");
    let model = dir.path().join("m.safetensors");
    let out = mdn(
        &table,
        &[],
        &[
            "train",
            "--toy",
            "inverse",
            "--n",
            "500",
            "--hidden",
            "4",
            "--k",
            "2",
            "--steps",
            "5",
            "--device",
            "cpu",
            "--out",
            model.to_str().unwrap(),
        ],
    );
    let (_, stderr) = success(&out, "mdn train, corrupt table");
    assert!(
        stderr.contains("warning:") && stderr.contains("tuned.json"),
        "{stderr}"
    );

    // An entry the configuration refuses, for a job that is then run: an
    // error that names the table, not the defaults in silence.
    let Some(ctx) = test_context() else {
        return;
    };
    let mut t = TunedTable::default();
    t.insert(small_bench_entry(&ctx, "fused_tile=big"));
    t.save(&table).unwrap();
    let out = mdn(
        &table,
        &[],
        &[
            "bench",
            "--config",
            "small",
            "--device",
            "gpu",
            "--steps",
            "1",
            "--repeats",
            "1",
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("tuned.json")
            && stderr.contains("fused_tile=big")
            && stderr.contains("mdn tune"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_tune_flags_are_refused_before_any_gpu_work() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("tuned.json");
    for (args, says) in [
        (
            vec!["tune", "--toy", "inverse", "--seconds", "0"],
            "--seconds",
        ),
        (
            vec!["tune", "--toy", "inverse", "--models", "0"],
            "--models",
        ),
        (
            vec!["tune", "--toy", "inverse", "--only", "warp"],
            "no setting `warp`",
        ),
        (
            vec!["tune", "--toy", "inverse", "--only", ","],
            "--only names",
        ),
        (vec!["tune"], "--config small"),
        (
            vec!["tune", "--config", "small", "--k", "3"],
            "cannot be used with",
        ),
    ] {
        let out = mdn(&table, &[], &args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!table.exists(), "nothing measured, nothing written");
}

#[test]
fn the_table_lists_what_was_measured_and_marks_stale_entries() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("tuned.json");
    let spec = mdn::model::ModelSpec::mixture(1, 1, vec![32, 32], 5).unwrap();
    let entry = |build: &str, batch: usize, changes: &str| TunedEntry {
        adapter: AdapterKey {
            name: "Some GPU".into(),
            backend: "vulkan".into(),
            vendor: 1,
            device: 2,
            driver: "d".into(),
            driver_info: "1.2.3".into(),
        },
        build: build.into(),
        job: JobShape::new(&spec, batch, 100_000, 1),
        kernels: "fused=on".into(),
        changes: changes.into(),
        steps_per_s: 3.0,
        default_steps_per_s: 2.0,
        measured_at: 0,
    };
    let mut t = TunedTable::default();
    t.insert(entry(kernels_build(), 1024, "fused_rows=16"));
    t.insert(entry("0.0.1+0000000000000000", 512, ""));
    t.save(&table).unwrap();
    let (stdout, _) = success(&mdn(&table, &[], &["tune", "--list"]), "mdn tune --list");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].contains("2 entries"), "{stdout}");
    assert!(
        lines[1].contains("Some GPU") && lines[1].contains("1-32-32-15 mixture K=5, batch 1024")
    );
    assert!(
        lines[1].contains("fused_rows=16, 1.50x") && !lines[1].contains("stale"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("the defaults won") && lines[2].contains("stale"),
        "{stdout}"
    );
    let (stdout, _) = success(
        &mdn(&table, &[], &["tune", "--list", "--json"]),
        "mdn tune --list --json",
    );
    let rows: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["current"], true);
    assert_eq!(rows[1]["current"], false);
    assert_eq!(rows[0]["job"]["batch"], 1024);
    let off = Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env(TUNED_KERNELS_ENV, "off")
        .args(["tune", "--list"])
        .output()
        .unwrap();
    assert!(!off.status.success());
    assert!(
        text(&off.stderr).contains("no table"),
        "{}",
        text(&off.stderr)
    );
}

/// `--only`'s help names every setting the search has (they are listed by
/// hand there).
#[test]
fn the_help_names_every_setting_the_search_tries() {
    let out = Command::new(env!("CARGO_BIN_EXE_mdn"))
        .args(["tune", "--help"])
        .output()
        .unwrap();
    let help = text(&out.stdout).replace(['\n', ' '], "");
    for name in mdn::tune::knob_names() {
        assert!(
            help.contains(&format!("{name},")) || help.contains(&format!("{name})")),
            "{name}"
        );
    }
}
