//! Tests of the synthetic Fitzpatrick17k-format dataset (`fq_compress::data::synth`).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use fq_compress::data::synth::{
    contact_sheet, generate, md5hash, SynthConfig, CLASSES, CSV_HEADER, CSV_NAME, IMAGES_DIR,
    MARKER_NAME,
};
use fq_eval::dataset::fitzpatrick17k::{self, Fitzpatrick17kOptions, SkinGrouping};

/// The real metadata file, committed in `tests/data/real/`.
fn real_csv() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/real/fitzpatrick17k.csv");
    p.is_file().then_some(p)
}

fn small(n: usize) -> SynthConfig {
    SynthConfig {
        num_images: n,
        ..SynthConfig::default()
    }
}

fn read_rows(dir: &Path) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(dir.join(CSV_NAME)).unwrap();
    let header = r.headers().unwrap().clone();
    let rows = r.records().map(|x| x.unwrap()).collect();
    (header, rows)
}

fn png_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir.join(IMAGES_DIR))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn deterministic_and_thread_count_independent() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let cfg = small(120);
    let sa = generate(&cfg, &a, false).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let sb = pool.install(|| generate(&cfg, &b, false)).unwrap();
    assert_eq!(sa.per_type, sb.per_type);
    assert_eq!(sa.per_class, sb.per_class);
    assert_eq!(
        fs::read(a.join(CSV_NAME)).unwrap(),
        fs::read(b.join(CSV_NAME)).unwrap()
    );
    let (pa, pb) = (png_files(&a), png_files(&b));
    assert_eq!(pa.len(), 120);
    assert_eq!(pa, pb, "PNG files differ");

    // Another seed gives other images and other names.
    let c = tmp.path().join("c");
    generate(
        &SynthConfig {
            seed: 1,
            ..cfg.clone()
        },
        &c,
        false,
    )
    .unwrap();
    let pc = png_files(&c);
    assert!(pa.keys().all(|k| !pc.contains_key(k)));
}

#[test]
fn schema_matches_real_fitzpatrick17k() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fitz");
    let cfg = SynthConfig {
        num_images: 300,
        image_size: 48,
        ..SynthConfig::default()
    };
    let summary = generate(&cfg, &dir, false).unwrap();
    assert_eq!(summary.num_images, 300);
    assert_eq!(summary.out_dir, dir);

    let text = fs::read_to_string(dir.join(CSV_NAME)).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,three_partition_label,qc,url,url_alphanum"
    );
    assert_eq!(first, CSV_HEADER.join(","));
    assert!(!text.contains('\r'), "LF line endings like the real file");

    // Label -> (nine, three) partition of the real file, where available.
    let mut real_parts = BTreeMap::new();
    if let Some(real) = real_csv() {
        let real_text = fs::read_to_string(&real).unwrap();
        assert_eq!(
            first,
            real_text.lines().next().unwrap(),
            "header differs from the real file"
        );
        let (_, rows) = read_rows_from(&real);
        for r in rows {
            real_parts.insert(r[3].to_string(), (r[4].to_string(), r[5].to_string()));
        }
        for c in CLASSES {
            assert_eq!(
                real_parts.get(c.label),
                Some(&(c.nine_partition.to_string(), c.three_partition.to_string())),
                "{} partitions differ from the real file",
                c.label
            );
        }
    }

    let (header, rows) = read_rows(&dir);
    assert_eq!(header.len(), 9);
    assert_eq!(rows.len(), 300);
    let mut hashes = HashSet::new();
    for (i, r) in rows.iter().enumerate() {
        let h = &r[0];
        assert_eq!(h, md5hash(cfg.seed, i));
        assert!(h.len() == 32 && h.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        assert!(hashes.insert(h.to_string()), "duplicate hash");
        let t: i32 = r[1].parse().unwrap();
        let c: i32 = r[2].parse().unwrap();
        assert!(t == -1 || (1..=6).contains(&t));
        assert!(c == -1 || (1..=6).contains(&c));
        if t > 0 && c > 0 {
            assert!(
                (t - c).abs() <= 1,
                "second rater differs by more than one type"
            );
        }
        let class = CLASSES
            .iter()
            .find(|k| k.label == &r[3])
            .expect("known label");
        assert_eq!(&r[4], class.nine_partition);
        assert_eq!(&r[5], class.three_partition);
        assert!(r[6].is_empty() || r[6].chars().next().unwrap().is_ascii_digit());
        assert!(r[7].starts_with("https://"));
        assert!(
            r[8].ends_with(".png") && r[8].chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        );
        let img = image::open(dir.join(IMAGES_DIR).join(format!("{h}.png"))).unwrap();
        assert_eq!((img.width(), img.height()), (48, 48));
        assert!(matches!(img, image::DynamicImage::ImageRgb8(_)));
    }
    // qc is mostly empty, and the second rater mostly agrees.
    let empty_qc = rows.iter().filter(|r| r[6].is_empty()).count();
    assert!(empty_qc > 270, "qc should be mostly empty, {empty_qc}/300");
    let agree = rows.iter().filter(|r| r[1] == r[2]).count();
    assert!((120..280).contains(&agree), "rater agreement {agree}/300");
    // Every class occurs; the summary matches the CSV.
    for (label, n) in &summary.per_class {
        assert_eq!(*n, rows.iter().filter(|r| &r[3] == label).count());
        assert!(*n > 0, "{label} missing");
    }
}

fn read_rows_from(path: &Path) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().clone();
    let rows = r.records().map(|x| x.unwrap()).collect();
    (header, rows)
}

#[test]
fn skin_type_distribution_follows_the_real_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fitz");
    let cfg = SynthConfig {
        num_images: 2000,
        image_size: 32,
        ..SynthConfig::default()
    };
    let s = generate(&cfg, &dir, false).unwrap();
    // Real counts: -1: 565, 1: 2947, 2: 4808, 3: 3308, 4: 2781, 5: 1533, 6: 635 (of 16577).
    let real = [565.0, 2947.0, 4808.0, 3308.0, 2781.0, 1533.0, 635.0];
    let total: f64 = real.iter().sum();
    for (k, (&real_k, &got_k)) in real.iter().zip(&s.per_type).enumerate() {
        let want = real_k / total;
        let got = got_k as f64 / 2000.0;
        assert!(
            (got - want).abs() < 0.03,
            "type index {k}: {got:.3} vs real {want:.3}"
        );
    }
    let light: usize = s.per_type[1..=3].iter().sum();
    let dark: usize = s.per_type[4..=6].iter().sum();
    assert!(
        dark * 2 < light,
        "IV-VI must be a minority: {dark} vs {light}"
    );
    assert!(s.per_type[6] < s.per_type[5] && s.per_type[5] < s.per_type[4]);
    assert!(s.per_type[6] * 4 < s.per_type[2]);
    assert!(
        (20..=120).contains(&s.per_type[0]),
        "about 3% unknown, got {}",
        s.per_type[0]
    );
    // Classes mildly imbalanced: none dominates, none vanishes.
    let counts: Vec<usize> = s.per_class.iter().map(|c| c.1).collect();
    let (lo, hi) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    assert!(lo * 3 > hi, "class imbalance too strong: {counts:?}");
    assert!(
        hi > lo,
        "classes should not be perfectly balanced: {counts:?}"
    );
}

#[test]
fn real_loader_reads_the_synthetic_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("Fitzpatrick17k");
    let s = generate(&small(200), &dir, false).unwrap();

    let ds = fitzpatrick17k::load(&Fitzpatrick17kOptions::from_root(&dir)).unwrap();
    let known: usize = s.per_type[1..].iter().sum();
    assert_eq!(
        ds.len(),
        known,
        "unknown-type rows are dropped, every other row is a sample"
    );
    assert_eq!(ds.skipped.len(), s.per_type[0]);
    let labels: Vec<&str> = CLASSES.iter().map(|c| c.label).collect();
    assert_eq!(ds.classes, labels, "class index = rank of the sorted label");
    assert_eq!(ds.groups, vec!["I-III".to_string(), "IV-VI".to_string()]);
    assert_eq!(
        ds.group_counts(),
        vec![
            s.per_type[1..=3].iter().sum::<usize>(),
            s.per_type[4..=6].iter().sum::<usize>()
        ]
    );

    let mut opts = Fitzpatrick17kOptions::from_root(&dir);
    opts.grouping = SkinGrouping::SixTypes;
    let ds6 = fitzpatrick17k::load(&opts).unwrap();
    assert_eq!(ds6.group_counts(), s.per_type[1..].to_vec());
    for sample in &ds6.samples {
        assert!(sample.image.is_file());
    }
}

#[test]
fn rerun_skips_replaces_and_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    let cfg = small(20);
    let s1 = generate(&cfg, &dir, false).unwrap();
    assert!(dir.join(MARKER_NAME).is_file());
    assert!(!tmp.path().join("ds.partial").exists());
    let marker_time = fs::metadata(dir.join(MARKER_NAME))
        .unwrap()
        .modified()
        .unwrap();

    // Same config over a complete output: nothing is rewritten.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let s2 = generate(&cfg, &dir, false).unwrap();
    assert_eq!(s1, s2);
    let again = fs::metadata(dir.join(MARKER_NAME))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(marker_time, again);

    // An incomplete output (image missing) is regenerated.
    let victim = fs::read_dir(dir.join(IMAGES_DIR))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::remove_file(&victim).unwrap();
    generate(&cfg, &dir, false).unwrap();
    assert!(victim.is_file());

    // A stale .partial from an interrupted run is cleaned up; another config replaces the output.
    fs::create_dir_all(tmp.path().join("ds.partial/images")).unwrap();
    let other = SynthConfig {
        num_images: 10,
        ..cfg.clone()
    };
    let s3 = generate(&other, &dir, false).unwrap();
    assert_eq!(s3.num_images, 10);
    assert_eq!(png_files(&dir).len(), 10);
    assert_eq!(read_rows(&dir).1.len(), 10);
    assert!(!tmp.path().join("ds.partial").exists());
    assert!(!tmp.path().join("ds.old").exists());

    // A directory that is not a synthetic dataset is never replaced.
    let foreign = tmp.path().join("foreign");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("notes.txt"), b"keep me").unwrap();
    let err = generate(&cfg, &foreign, false).unwrap_err();
    assert!(err.to_string().contains("refusing"), "{err}");
    assert_eq!(fs::read(foreign.join("notes.txt")).unwrap(), b"keep me");

    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    generate(&cfg, &empty, false).unwrap();
    assert!(empty.join(CSV_NAME).is_file());
}

#[test]
fn invalid_configs_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = [
        SynthConfig {
            num_images: 0,
            ..SynthConfig::default()
        },
        SynthConfig {
            image_size: 4,
            ..SynthConfig::default()
        },
        SynthConfig {
            type_weights: [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            ..SynthConfig::default()
        },
        SynthConfig {
            class_weights: [0.0; 6],
            ..SynthConfig::default()
        },
        SynthConfig {
            noise_sigma: f32::NAN,
            ..SynthConfig::default()
        },
    ];
    for cfg in bad {
        assert!(
            generate(&cfg, &tmp.path().join("x"), false).is_err(),
            "{cfg:?}"
        );
    }
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn config_round_trips_through_json_and_contact_sheet_renders() {
    let cfg = SynthConfig::default();
    assert_eq!((cfg.seed, cfg.num_images, cfg.image_size), (0, 3000, 64));
    let json = serde_json::to_string(&cfg).unwrap();
    let back: SynthConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(cfg, back);
    let partial: SynthConfig = serde_json::from_str(r#"{"seed": 7}"#).unwrap();
    assert_eq!(partial.seed, 7);
    assert_eq!(partial.num_images, 3000);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    generate(&small(150), &dir, false).unwrap();
    let sheet = tmp.path().join("sheet.png");
    contact_sheet(&dir, &sheet, 2).unwrap();
    let img = image::open(&sheet).unwrap();
    // 6 classes x (tile 128 + 4 gap) - 4; 6 types x 2 x 128 + 5 x 4.
    assert_eq!((img.width(), img.height()), (6 * 2 * 128 + 20, 6 * 132 - 4));
}
