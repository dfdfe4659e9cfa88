//! The dataset environment on files of every format, its checks, and the
//! readers fuzzed with truncations and byte flips.

use std::io::Write;

use lineage_evo::rng::{Purpose, stream};

use super::*;

/// A `.npy` image: `dtype` such as `<f4`, row-major `shape`, raw `data`.
fn npy(dtype: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': {tuple}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A `.npz` archive of `members` (name, `.npy` image), deflated.
fn npz(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// 40 examples of 3 features in 4 classes: feature 0 is the class, the
/// others noise-free functions of the row.
fn clusters() -> (Vec<f32>, Vec<i64>) {
    let labels: Vec<i64> = (0..40).map(|i| i % 4).collect();
    let x = (0..40)
        .flat_map(|i| [(i % 4) as f32, i as f32 * 0.5, 10.0 + (i % 7) as f32])
        .collect();
    (x, labels)
}

fn spec(path: &Path, task: DatasetTask) -> DatasetSpec {
    DatasetSpec {
        path: path.to_owned(),
        heldout_path: None,
        task,
        inputs: "x".into(),
        targets: "y".into(),
        heldout_fraction: 0.25,
        heldout: 0,
        standardize: false,
        classes: None,
        vocab: None,
        seed: 5,
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn clusters_npz(dir: &Path) -> PathBuf {
    let (x, y) = clusters();
    write(
        dir,
        "clusters.npz",
        &npz(&[
            ("x", npy("<f4", &[40, 3], &f32s(&x))),
            ("y", npy("<i8", &[40], &i64s(&y))),
        ]),
    )
}

#[test]
fn classification_from_npz_splits_standardises_on_train_and_draws_lifetimes() {
    let dir = tempfile::tempdir().unwrap();
    let path = clusters_npz(dir.path());
    let mut s = spec(&path, DatasetTask::Classification);
    s.standardize = true;
    let env = Dataset::new(&s).unwrap();
    assert_eq!(
        env.task(),
        Task::Classification {
            inputs: 3,
            classes: 4
        }
    );
    assert_eq!((env.train_len(), env.heldout.len()), (30, 10));
    let Batch::Labeled { x, labels, .. } = &*env.train else {
        panic!("labelled")
    };
    // Standardised with the training part's moments: mean 0, spread 1 there.
    for f in 0..3 {
        let col: Vec<f32> = x.iter().skip(f).step_by(3).copied().collect();
        let mean = col.iter().sum::<f32>() / 30.0;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 30.0;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "{f}: {mean} {var}"
        );
    }
    // Feature 0 was the class: after one affine map per feature it still is.
    let class_of = |v: f32| labels[x.iter().step_by(3).position(|&w| w == v).unwrap()];
    assert!(
        x.iter()
            .step_by(3)
            .zip(labels)
            .all(|(&v, &l)| class_of(v) == l)
    );
    // The manifest's record of the file.
    let files = env.data_files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].bytes, std::fs::metadata(&path).unwrap().len());
    assert_eq!(files[0].sha256.len(), 64);
    // A lifetime: `budget` distinct training rows, the same for the same stream.
    let draw = || {
        env.lifetime(&mut stream(9, 0, 3, Purpose::Learn), 12)
            .unwrap()
    };
    let (a, b) = (draw(), draw());
    assert_eq!(a.train, b.train);
    assert_eq!(a.train.len(), 12);
    let other = env
        .lifetime(&mut stream(9, 0, 4, Purpose::Learn), 12)
        .unwrap();
    assert_ne!(a.train, other.train);
    assert!(Arc::ptr_eq(&a.heldout, &env.heldout));
    // The same seed splits the same way; another seed another way.
    assert_eq!(Dataset::new(&s).unwrap().train, env.train);
    s.seed = 6;
    assert_ne!(Dataset::new(&s).unwrap().train, env.train);
}

#[test]
fn the_same_files_read_the_same_way_are_one_copy_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = clusters_npz(dir.path());
    let s = spec(&path, DatasetTask::Classification);
    let (a, b) = (Dataset::new(&s).unwrap(), Dataset::new(&s).unwrap());
    assert!(Arc::ptr_eq(&a.train, &b.train) && Arc::ptr_eq(&a.heldout, &b.heldout));
    // Asked another way, or the file changed: read again.
    let mut standardized = s.clone();
    standardized.standardize = true;
    assert!(!Arc::ptr_eq(
        &Dataset::new(&standardized).unwrap().train,
        &a.train
    ));
    let (mut x, y) = clusters();
    x[0] = 99.0;
    std::fs::write(
        &path,
        npz(&[
            ("x", npy("<f4", &[40, 3], &f32s(&x))),
            ("y", npy("<i8", &[40], &i64s(&y))),
        ]),
    )
    .unwrap();
    let c = Dataset::new(&s).unwrap();
    assert!(!Arc::ptr_eq(&c.train, &a.train));
    assert_ne!(c.data_files(), a.data_files());
}

#[test]
fn a_class_subset_keeps_and_renumbers_its_classes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(&clusters_npz(dir.path()), DatasetTask::Classification);
    s.classes = Some(vec![3, 1]);
    let env = Dataset::new(&s).unwrap();
    assert_eq!(
        env.task(),
        Task::Classification {
            inputs: 3,
            classes: 2
        }
    );
    assert_eq!(env.train_len() + env.heldout.len(), 20);
    let Batch::Labeled { x, labels, .. } = &*env.train else {
        panic!()
    };
    for (row, &l) in x.chunks(3).zip(labels) {
        // Feature 0 is the original class: 3 is now 0, 1 is now 1.
        assert_eq!(row[0], if l == 0 { 3.0 } else { 1.0 });
    }
}

#[test]
fn regression_from_csv_reads_every_other_column_as_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("a, y, b\n");
    for i in 0..20 {
        text += &format!("{}, {}, {}\n", i, 2.5 * i as f32, -i);
    }
    let path = write(dir.path(), "table.csv", text.as_bytes());
    let mut s = spec(&path, DatasetTask::Regression);
    s.inputs = "*".into();
    let env = Dataset::new(&s).unwrap();
    assert_eq!(
        env.task(),
        Task::Regression {
            inputs: 2,
            outputs: 1
        }
    );
    let Batch::Dense { x, y, n } = &*env.train else {
        panic!()
    };
    assert_eq!(*n, 15);
    for (row, &t) in x.chunks(2).zip(y) {
        assert_eq!((row[1], t), (-row[0], 2.5 * row[0]));
    }
}

#[test]
fn sequences_from_safetensors_leave_negative_labels_unscored() {
    let dir = tempfile::tempdir().unwrap();
    let x: Vec<f32> = (0..8 * 3 * 2).map(|i| i as f32).collect();
    let labels: Vec<i64> = (0..8 * 3)
        .map(|i| if i % 3 == 0 { -1 } else { i % 2 })
        .collect();
    let (xb, yb) = (f32s(&x), i64s(&labels));
    let tensors = [
        (
            "x",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![8, 3, 2], &xb)
                .unwrap(),
        ),
        (
            "y",
            safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![8, 3], &yb).unwrap(),
        ),
    ];
    let bytes = safetensors::serialize(tensors, None).unwrap();
    let path = write(dir.path(), "seq.safetensors", &bytes);
    let env = Dataset::new(&spec(&path, DatasetTask::Sequences)).unwrap();
    assert_eq!(
        env.task(),
        Task::SequenceClassification {
            inputs: 2,
            classes: 2,
            steps: 3
        }
    );
    let Batch::Sequences { labels, .. } = &*env.train else {
        panic!()
    };
    assert!(labels.chunks(3).all(|s| s[0] == IGNORE && s[1] < 2));
}

#[test]
fn a_token_stream_holds_out_its_tail_in_whole_windows() {
    let dir = tempfile::tempdir().unwrap();
    let tokens: Vec<i64> = (0..200).map(|i| (i * 7) % 13).collect();
    let path = write(
        dir.path(),
        "stream.npy",
        &npy("<i8", &[200], &i64s(&tokens)),
    );
    let mut s = spec(&path, DatasetTask::Tokens { context: 4 });
    s.targets = "tokens".into();
    s.heldout_fraction = 0.1;
    let env = Dataset::new(&s).unwrap();
    assert_eq!(
        env.task(),
        Task::NextToken {
            vocab: 13,
            context: 4
        }
    );
    assert_eq!(env.train_len(), 180);
    // The last 20 tokens, as 4 windows of 5.
    let Batch::Tokens { n, len, tokens: w } = &*env.heldout else {
        panic!()
    };
    assert_eq!((*n, *len), (4, 5));
    assert_eq!(w[0], tokens[180] as u32);
    let life = env
        .lifetime(&mut stream(1, 0, 0, Purpose::Learn), 40)
        .unwrap();
    let Batch::Tokens { n, len, .. } = life.train else {
        panic!()
    };
    assert_eq!((n, len), (10, 5));
    s.vocab = Some(12);
    let err = Dataset::new(&s).unwrap_err().to_string();
    assert!(
        err.contains("`vocab` is 12 but the data hold token 12"),
        "{err}"
    );
}

/// `Dataset::new`'s error for `spec`, which must fail.
fn error(spec: &DatasetSpec) -> String {
    Dataset::new(spec).unwrap_err().to_string()
}

#[test]
fn bad_files_are_named_with_the_array_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (mut x, y) = clusters();
    let file = |name: &str, x: &[f32], y: Vec<u8>, ydtype: &str| {
        write(
            dir.path(),
            name,
            &npz(&[
                ("x", npy("<f4", &[40, 3], &f32s(x))),
                ("y", npy(ydtype, &[40], &y)),
            ]),
        )
    };
    x[7] = f32::NAN;
    let err = error(&spec(
        &file("nan.npz", &x, i64s(&y), "<i8"),
        DatasetTask::Classification,
    ));
    assert!(err.contains("nan.npz, array `x`: value 7 is NaN"), "{err}");
    let (x, mut y2) = clusters();
    y2[3] = -2;
    let err = error(&spec(
        &file("neg.npz", &x, i64s(&y2), "<i8"),
        DatasetTask::Classification,
    ));
    assert!(err.contains("array `y`: label 3 is -2"), "{err}");
    let floats: Vec<f32> = y.iter().map(|&l| l as f32).collect();
    let err = error(&spec(
        &file("float.npz", &x, f32s(&floats), "<f4"),
        DatasetTask::Classification,
    ));
    assert!(err.contains("labels must be integers"), "{err}");
    let mut s = spec(
        &file("ok.npz", &x, i64s(&y), "<i8"),
        DatasetTask::Classification,
    );
    s.targets = "labels".into();
    let err = error(&s);
    assert!(
        err.contains("array `labels`: no such array (the archive holds `x`, `y`)"),
        "{err}"
    );
    // A header that claims more than the file holds.
    let mut big = npy("<f4", &[1_000_000_000, 3], &f32s(&x));
    big.truncate(big.len() - 4);
    let path = write(dir.path(), "big.npy", &big);
    let err = error(&spec(&path, DatasetTask::Classification));
    assert!(
        err.contains("big.npy") && err.contains("truncated or its header is corrupt"),
        "{err}"
    );
    let path = write(dir.path(), "data.txt", b"1,2,3");
    let err = error(&spec(&path, DatasetTask::Classification));
    assert!(err.contains("unknown format"), "{err}");
}

/// Every truncation and many single-byte flips of `bytes`, written as
/// `name` and read as `spec` describes: an error or a data set, never a
/// panic.
fn fuzz(dir: &Path, name: &str, bytes: &[u8], spec: impl Fn(&Path) -> DatasetSpec) {
    let path = dir.join(name);
    let mut cases: Vec<Vec<u8>> = (0..bytes.len())
        .step_by(7)
        .map(|n| bytes[..n].to_vec())
        .collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut flipped = bytes.to_vec();
        let at = (state >> 33) as usize % flipped.len();
        flipped[at] ^= 1 << ((state >> 20) % 8);
        cases.push(flipped);
    }
    for (i, case) in cases.iter().enumerate() {
        std::fs::write(&path, case).unwrap();
        let s = spec(&path);
        let outcome = std::panic::catch_unwind(|| Dataset::new(&s).map(|_| ()));
        assert!(
            outcome.is_ok(),
            "{name}: case {i} ({} bytes) panicked",
            case.len()
        );
    }
}

#[test]
fn readers_survive_truncations_and_byte_flips() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = clusters();
    let classify = |p: &Path| spec(p, DatasetTask::Classification);
    let archive = std::fs::read(clusters_npz(dir.path())).unwrap();
    fuzz(dir.path(), "f.npz", &archive, classify);
    // A real file, as numpy's savez_compressed wrote it.
    let digits =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/data/digits/digits.npz");
    fuzz(
        dir.path(),
        "digits.npz",
        &std::fs::read(digits).unwrap(),
        classify,
    );
    let stored = {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in [
            ("x", npy("<f4", &[40, 3], &f32s(&x))),
            ("y", npy("<i8", &[40], &i64s(&y))),
        ] {
            zip.start_file(format!("{name}.npy"), options).unwrap();
            zip.write_all(&bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    };
    fuzz(dir.path(), "s.npz", &stored, classify);
    let tokens: Vec<i64> = (0..300).map(|i| i % 11).collect();
    fuzz(
        dir.path(),
        "t.npy",
        &npy("<i8", &[300], &i64s(&tokens)),
        |p| {
            let mut s = spec(p, DatasetTask::Tokens { context: 4 });
            s.heldout_fraction = 0.2;
            s
        },
    );
    let (xb, yb) = (f32s(&x), i64s(&y));
    let st = safetensors::serialize(
        [
            (
                "x",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![40, 3], &xb)
                    .unwrap(),
            ),
            (
                "y",
                safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![40], &yb)
                    .unwrap(),
            ),
        ],
        None,
    )
    .unwrap();
    fuzz(dir.path(), "f.safetensors", &st, classify);
    let mut csv = String::from("x0,x1,y\n");
    for i in 0..40 {
        csv += &format!("{},{},{}\n", i as f32 * 0.1, -i, i % 3);
    }
    fuzz(dir.path(), "f.csv", csv.as_bytes(), |p| {
        let mut s = spec(p, DatasetTask::Classification);
        s.inputs = "*".into();
        s
    });
}
