//! `--data` in every format: the same rows as CSV, Parquet and NPY train
//! the same model bit for bit; `predict`, `sample` and `eval` read and
//! write in chunks with the same bytes as in one piece; bad Parquet and NPY
//! files fail with the file and the column named, a non-zero exit, no
//! output file and no panic. The fixtures are written here with the
//! `parquet` and `npyz` crates.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use mdn::data::csv::{ColumnChoice, load_dataset};
use mdn::data::toy::{ToyProblem, toy_dataset};
use npyz::WriterBuilder;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

fn mdn_env(dir: &Path, args: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdn"));
    cmd.env("MDN_TUNED_KERNELS", "off");
    cmd.args(args.split_whitespace())
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("MDN_CHUNK_ROWS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the mdn binary runs");
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(dir: &Path, args: &str) -> Run {
    ok_env(dir, args, &[])
}

fn ok_env(dir: &Path, args: &str, env: &[(&str, &str)]) -> Run {
    let r = mdn_env(dir, args, env);
    assert_eq!(r.code, Some(0), "mdn {args} failed: {}", r.stderr);
    r
}

/// A run that must fail cleanly, naming every one of `want`.
fn fails(dir: &Path, args: &str, want: &[&str]) {
    let r = mdn_env(dir, args, &[]);
    assert_ne!(r.code, Some(0), "mdn {args} should fail");
    assert_eq!(r.code, Some(1), "mdn {args}: {}", r.stderr);
    assert!(
        !r.stderr.contains("panicked"),
        "mdn {args} panicked: {}",
        r.stderr
    );
    for w in want {
        assert!(
            r.stderr.contains(w),
            "mdn {args}: `{w}` not in: {}",
            r.stderr
        );
    }
}

fn toy_columns(dir: &Path, rows: usize) -> (Vec<f32>, Vec<f32>) {
    ok(
        dir,
        &format!("data --toy inverse --n {rows} --seed 1 --out d.csv"),
    );
    let d = load_dataset(&dir.join("d.csv"), &ColumnChoice::default()).unwrap();
    assert_eq!(
        (d.input_names.clone(), d.target_names.clone()),
        (vec!["y".to_string()], vec!["x".to_string()])
    );
    (d.inputs, d.targets)
}

/// The input `y` as DOUBLE (exact for f32 values) and the target `x` as
/// FLOAT, in row groups of
/// `group` rows, snappy-compressed as pandas writes by default; plus a
/// text column that is never read.
fn write_parquet(path: &Path, x: &[f32], y: &[f32], group: usize) {
    let schema = Arc::new(
        parse_message_type(
            "message m { required binary note (UTF8); required double y; optional float x; }",
        )
        .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut w = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
    for (xs, ys) in x.chunks(group).zip(y.chunks(group)) {
        let mut rg = w.next_row_group().unwrap();
        let mut i = 0;
        while let Some(mut col) = rg.next_column().unwrap() {
            match i {
                0 => {
                    let notes: Vec<ByteArray> = xs.iter().map(|_| ByteArray::from("n/a")).collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&notes, None, None)
                        .unwrap();
                }
                1 => {
                    let v: Vec<f64> = xs.iter().map(|&v| v as f64).collect();
                    col.typed::<DoubleType>()
                        .write_batch(&v, None, None)
                        .unwrap();
                }
                _ => {
                    let def = vec![1i16; ys.len()];
                    col.typed::<FloatType>()
                        .write_batch(ys, Some(&def), None)
                        .unwrap();
                }
            }
            col.close().unwrap();
            i += 1;
        }
        rg.close().unwrap();
    }
    w.close().unwrap();
}

/// A `[rows, 2]` array of `x`, `y` in the given order and float type.
fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, x: &[T], y: &[T], fortran: bool) {
    let rows = x.len() as u64;
    let order = if fortran {
        npyz::Order::Fortran
    } else {
        npyz::Order::C
    };
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[rows, 2])
        .order(order)
        .writer(std::io::BufWriter::new(File::create(path).unwrap()))
        .begin_nd()
        .unwrap();
    if fortran {
        w.extend(x.iter().chain(y).copied()).unwrap();
    } else {
        w.extend(x.iter().zip(y).flat_map(|(a, b)| [*a, *b]))
            .unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn csv_parquet_and_npy_train_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = toy_columns(d, 600);
    write_parquet(&d.join("d.parquet"), &x, &y, 250);
    write_npy(&d.join("d.npy"), &x, &y, false);
    std::fs::write(d.join("d.npy.names"), "y, x\n").unwrap();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let y64: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    write_npy(&d.join("f.npy"), &x64, &y64, true);
    std::fs::write(d.join("f.npy.names"), "y,x").unwrap();
    write_npy(&d.join("plain.npy"), &x, &y, false);

    let train = |data: &str, cols: &str, out: &str| {
        ok(
            d,
            &format!(
                "train --data {data} {cols} --steps 200 --batch 64 --k 3 --hidden 8 --seed 4 \
                 --device cpu --quiet --out {out}"
            ),
        );
        std::fs::read(d.join(out)).unwrap()
    };
    let csv = train("d.csv", "", "csv.st");
    assert_eq!(
        train("d.parquet", "--input y --target x", "pq.st"),
        csv,
        "Parquet"
    );
    assert_eq!(train("d.npy", "", "npy.st"), csv, "NPY, C order, f4");
    assert_eq!(train("f.npy", "", "f.st"), csv, "NPY, Fortran order, f8");
    // Without a names file the columns are c0, c1: same numbers, other names.
    train("plain.npy", "--input c0 --target c1", "plain.st");
    // A validation file and a test file in other formats work too.
    ok(
        d,
        "train --data d.csv --val d.npy --test d.parquet --steps 20 --hidden 8 --device cpu \
         --quiet --out v.st",
    );
    // And every format can be evaluated and predicted on.
    let e_csv = ok(d, "eval --model csv.st --data d.csv --device cpu").stdout;
    assert_eq!(
        ok(d, "eval --model csv.st --data d.parquet --device cpu").stdout,
        e_csv
    );
    assert_eq!(
        ok(d, "eval --model csv.st --data f.npy --device cpu").stdout,
        e_csv
    );
    let p_csv = ok(d, "predict --model csv.st --data d.csv --device cpu").stdout;
    assert_eq!(
        ok(d, "predict --model csv.st --data d.npy --device cpu").stdout,
        p_csv
    );
}

#[test]
fn chunked_inference_equals_one_piece() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = toy_columns(d, 300);
    write_parquet(&d.join("d.parquet"), &x, &y, 64);
    ok(
        d,
        "train --data d.csv --steps 100 --k 3 --hidden 8 --device cpu --quiet --out m.st",
    );
    let small = [("MDN_CHUNK_ROWS", "7")];
    for args in [
        "predict --model m.st --data d.csv --device cpu",
        "predict --model m.st --data d.csv --device cpu --point mean,median,mode --quantiles 0.1,0.9",
        "predict --model m.st --data d.parquet --device cpu --point median",
        "sample --model m.st --data d.csv --device cpu --per-input 3 --seed 9",
        "sample --model m.st --grid -1:2:50 --device cpu --per-input 2",
        "eval --model m.st --data d.csv --device cpu",
        "eval --model m.st --data d.csv --device cpu --json",
        "eval --model m.st --data d.parquet --device cpu --json",
    ] {
        let whole = ok(d, args).stdout;
        let chunked = ok_env(d, args, &small).stdout;
        assert!(!whole.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&chunked),
            String::from_utf8_lossy(&whole),
            "{args}"
        );
    }
    // --out writes the same bytes as stdout.
    let whole = ok(d, "predict --model m.st --data d.csv --device cpu").stdout;
    ok_env(
        d,
        "predict --model m.st --data d.csv --device cpu --out p.csv",
        &small,
    );
    assert_eq!(std::fs::read(d.join("p.csv")).unwrap(), whole);
}

/// `mdn data` draws and writes its rows a chunk at a time: chunks of 7 rows
/// give the bytes of one piece, and the file holds `toy_dataset`'s rows.
#[test]
fn data_in_chunks_equals_one_piece_and_the_toy_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for toy in [ToyProblem::Forward, ToyProblem::Inverse, ToyProblem::Band] {
        let name = format!("{toy:?}").to_lowercase();
        let args = format!("data --toy {name} --n 100 --seed 4 --out {name}.csv");
        ok(d, &args);
        let whole = std::fs::read(d.join(format!("{name}.csv"))).unwrap();
        ok_env(d, &args, &[("MDN_CHUNK_ROWS", "7")]);
        let chunked = std::fs::read(d.join(format!("{name}.csv"))).unwrap();
        assert_eq!(chunked, whole, "{name}");
        // The file's rows, whatever `--data` would take as inputs and
        // targets, are the toy's rows: the CSV's shortest round-trip
        // digits read back as the same f32s.
        let read = load_dataset(&d.join(format!("{name}.csv")), &ColumnChoice::default());
        let rows = |d: &mdn::Dataset| -> Vec<f32> {
            (0..d.len())
                .flat_map(|r| [d.input_row(r), d.target_row(r)].concat())
                .collect()
        };
        let want = toy_dataset(toy, 100, 4);
        assert_eq!(rows(&read.unwrap()), rows(&want), "{name}");
    }
}

/// `predict` on the CPU splits each chunk into tasks of a few thousand
/// rows (formatted in parallel, written by a thread of its own): many tasks
/// a chunk, one task a chunk, and one chunk for the file give the same
/// bytes. A bad row far into the file stops the run with its line, and the
/// output file never appears (nor its temporary).
#[test]
fn predict_in_parallel_tasks_equals_one_piece() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = 10_000;
    toy_columns(d, rows);
    ok(
        d,
        "train --data d.csv --steps 50 --k 3 --hidden 8 --device cpu --quiet --out m.st",
    );
    let args = "predict --model m.st --data d.csv --device cpu";
    let whole = ok(d, args).stdout;
    assert_eq!(whole.iter().filter(|&&b| b == b'\n').count(), rows + 1);
    for chunk in ["1000", "4096", "4097", "9999"] {
        let chunked = ok_env(d, args, &[("MDN_CHUNK_ROWS", chunk)]).stdout;
        assert!(chunked == whole, "MDN_CHUNK_ROWS={chunk}");
    }
    let summaries = format!("{args} --point mean,median --quantiles 0.25");
    let whole = ok(d, &summaries).stdout;
    let chunked = ok_env(d, &summaries, &[("MDN_CHUNK_ROWS", "333")]).stdout;
    assert!(chunked == whole);

    // Line 9 002 (row 9 001) is not a number.
    let text = std::fs::read_to_string(d.join("d.csv")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[9001] = "oops,0.5";
    std::fs::write(d.join("bad.csv"), lines.join("\n") + "\n").unwrap();
    let r = mdn_env(
        d,
        "predict --model m.st --data bad.csv --device cpu --out p.csv",
        &[("MDN_CHUNK_ROWS", "1000")],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.csv") && r.stderr.contains("9002"),
        "{}",
        r.stderr
    );
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('p') || n.starts_with(".mdn-tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn bad_parquet_and_npy_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = toy_columns(d, 64);
    ok(
        d,
        "train --data d.csv --steps 5 --k 2 --hidden 4 --device cpu --quiet --out m.st",
    );
    write_parquet(&d.join("good.parquet"), &x, &y, 64);
    // Truncated files.
    let bytes = std::fs::read(d.join("good.parquet")).unwrap();
    std::fs::write(d.join("cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(d.join("junk.parquet"), b"x,y\n1,2\n").unwrap();
    // A null, a NaN, and integers (which are fine).
    let schema = Arc::new(
        parse_message_type("message m { optional double x; required double y; required int64 i; }")
            .unwrap(),
    );
    let write = |name: &str, xs: &[f64], def: &[i16], ys: &[f64]| {
        let props = Arc::new(WriterProperties::builder().build());
        let mut w =
            SerializedFileWriter::new(File::create(d.join(name)).unwrap(), schema.clone(), props)
                .unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<DoubleType>()
            .write_batch(xs, Some(def), None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<DoubleType>().write_batch(ys, None, None).unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        let ints: Vec<i64> = (0..ys.len() as i64).collect();
        c.typed::<Int64Type>()
            .write_batch(&ints, None, None)
            .unwrap();
        c.close().unwrap();
        rg.close().unwrap();
        w.close().unwrap();
    };
    write("null.parquet", &[1.0, 3.0], &[1, 0, 1], &[1.0, 2.0, 3.0]);
    write(
        "nan.parquet",
        &[1.0, 2.0, 3.0],
        &[1, 1, 1],
        &[1.0, f64::NAN, 3.0],
    );
    write(
        "ints.parquet",
        &[1.0, 2.0, 3.0, 4.0],
        &[1, 1, 1, 1],
        &[1.0, 2.0, 3.0, 2.5],
    );
    ok(
        d,
        "train --data ints.parquet --input i --target y --steps 3 --hidden 4 --device cpu --quiet --out i.st",
    );

    // NPY: truncated, wrong dtype, wrong shape, NaN, a names file that
    // does not fit.
    write_npy(&d.join("good.npy"), &x, &y, false);
    let bytes = std::fs::read(d.join("good.npy")).unwrap();
    std::fs::write(d.join("cut.npy"), &bytes[..bytes.len() - 9]).unwrap();
    std::fs::write(d.join("head.npy"), &bytes[..20]).unwrap();
    let mut w = npyz::WriteOptions::new()
        .dtype(npyz::DType::Plain("<U3".parse().unwrap()))
        .shape(&[2, 2])
        .writer(File::create(d.join("text.npy")).unwrap())
        .begin_nd()
        .unwrap();
    for s in ["a", "b", "c", "d"] {
        w.push(s).unwrap();
    }
    w.finish().unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[4])
        .writer(File::create(d.join("flat.npy")).unwrap())
        .begin_nd()
        .unwrap();
    w.extend([1.0f32, 2.0, 3.0, 4.0]).unwrap();
    w.finish().unwrap();
    write_npy(
        &d.join("nan.npy"),
        &[1.0f32, 2.0, f32::NAN],
        &[1.0, 2.0, 3.0],
        false,
    );
    write_npy(&d.join("names.npy"), &x, &y, false);
    std::fs::write(d.join("names.npy.names"), "a,b,c\n").unwrap();

    let cases: &[(&str, &[&str])] = &[
        ("cut.parquet", &["cut.parquet", "Parquet"]),
        (
            "junk.parquet",
            &["junk.parquet", "not a readable Parquet file"],
        ),
        (
            "null.parquet --input x --target y",
            &["null.parquet", "`x`", "row 2", "null"],
        ),
        (
            "nan.parquet --input x --target y",
            &["nan.parquet", "`y`", "row 2", "finite"],
        ),
        ("good.parquet", &["good.parquet", "`note`", "not numbers"]),
        (
            "good.parquet --input z --target x",
            &["good.parquet", "`z`", "note, y, x"],
        ),
        ("cut.npy", &["cut.npy", "truncated"]),
        ("head.npy", &["head.npy", "truncated"]),
        ("text.npy", &["text.npy", "<U3", "floats"]),
        ("flat.npy", &["flat.npy", "2-D", "(4)"]),
        ("nan.npy", &["nan.npy", "`c0`", "row 3", "finite"]),
        ("names.npy", &["names.npy.names", "3 column(s)", "has 2"]),
    ];
    for (data, want) in cases {
        fails(
            d,
            &format!("train --data {data} --steps 3 --device cpu --out out.st"),
            want,
        );
        assert!(
            !d.join("out.st").exists(),
            "{data}: an output file was written"
        );
        let (file, _) = data.split_once(' ').unwrap_or((data, ""));
        // (good.parquet is bad only for training on its text column.)
        if !data.contains("--") && *data != "good.parquet" {
            fails(
                d,
                &format!("predict --model m.st --data {file} --device cpu --out p.csv"),
                &[file],
            );
            fails(
                d,
                &format!("eval --model m.st --data {file} --device cpu"),
                &[file],
            );
            assert!(!d.join("p.csv").exists(), "{data}: predict wrote a file");
        }
    }
}
