//! The command line on the two other dataset formats, end to end: the synthetic images rewritten
//! as an ISIC2019 archive (one-hot ground truth with CRLF, `0.0`/`1.0`, the always-zero `UNK` column;
//! metadata with female/male/empty sex) and as a generic folder + CSV with renamed columns. Each
//! trains, quantizes, exports and classifies through the same code a user runs.

use crate::common;

use common::cli;
use fq_compress::run::report::Report;
use fq_runtime::classify::Classifier;
use std::fs;
use std::path::Path;

/// Synth rows: (image path, fine label, Fitzpatrick type as written).
fn synth(dir: &Path) -> Vec<(std::path::PathBuf, String, String)> {
    let data = dir.join("data");
    cli(&[
        "synth",
        "--out",
        data.to_str().unwrap(),
        "--num-images",
        "240",
        "--image-size",
        "32",
    ]);
    let mut r = csv::Reader::from_path(data.join("fitzpatrick17k.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|c| c == n).unwrap();
    let (id, label, skin) = (col("md5hash"), col("label"), col("fitzpatrick_scale"));
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let img = data.join("images").join(format!("{}.png", &rec[id]));
            (img, rec[label].to_string(), rec[skin].to_string())
        })
        .collect()
}

/// train (small model, one epoch) → PTQ-U4 → export, on an already-described dataset.
fn train_compress_export(run: &Path, data_args: &[&str]) -> Report {
    let r = run.to_str().unwrap();
    let mut args = vec!["train", "--run-dir", r];
    args.extend_from_slice(data_args);
    #[rustfmt::skip]
    args.extend_from_slice(&[
        "--width", "8", "--input-size", "32", "--epochs", "1", "--batch-size", "64",
    ]);
    cli(&args);
    cli(&["compress", "--run-dir", r, "--method", "ptq-u4"]);
    cli(&["export", r, "--method", "ptq-u4"]);
    Report::load(&run.join("report.json")).unwrap()
}

#[test]
fn isic2019_archive_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let rows = synth(dir.path());
    let images = dir.path().join("isic/images");
    fs::create_dir_all(&images).unwrap();
    const CLASSES: [&str; 8] = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"];
    let mut labels: Vec<&String> = rows.iter().map(|r| &r.1).collect();
    labels.sort();
    labels.dedup();
    let mut gt = String::from("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\r\n");
    let mut meta = String::from("image,age_approx,anatom_site_general,lesion_id,sex\n");
    for (i, (img, label, skin)) in rows.iter().enumerate() {
        // Some ids carry the archive's `_downsampled` suffix.
        let id = if i % 7 == 0 {
            format!("ISIC_{i:07}_downsampled")
        } else {
            format!("ISIC_{i:07}")
        };
        fs::copy(img, images.join(format!("{id}.png"))).unwrap();
        let class = labels.iter().position(|l| *l == label).unwrap() % CLASSES.len();
        let onehot: Vec<&str> = (0..CLASSES.len())
            .map(|c| if c == class { "1.0" } else { "0.0" })
            .collect();
        gt += &format!("{id},{},0.0\r\n", onehot.join(","));
        let sex = match skin.parse::<i32>().unwrap_or(-1) {
            t if t < 0 => "",
            t if t <= 3 => "female",
            _ => "male",
        };
        meta += &format!("{id},55,anterior torso,,{sex}\n");
    }
    let gt_path = dir.path().join("isic/ISIC_2019_Training_GroundTruth.csv");
    let meta_path = dir.path().join("isic/ISIC_2019_Training_Metadata.csv");
    fs::write(&gt_path, gt).unwrap();
    fs::write(&meta_path, meta).unwrap();
    let run = dir.path().join("run");
    #[rustfmt::skip]
    let report = train_compress_export(&run, &[
        "--dataset", "isic2019",
        "--isic-ground-truth", gt_path.to_str().unwrap(),
        "--isic-metadata", meta_path.to_str().unwrap(),
        "--images", images.to_str().unwrap(),
    ]);
    // The archive's nine columns are the label set; `UNK` is never positive.
    assert_eq!(report.classes[..8], CLASSES);
    assert_eq!(report.classes[8], "UNK");
    assert_eq!(report.groups.len(), 3, "{:?}", report.groups);
    assert!(report.groups.iter().any(|g| g.contains("female")));
    let u4 = &report.results[0];
    assert_eq!(u4.method.label(), "U4");
    assert_eq!(
        u4.metrics.group_count.iter().sum::<usize>(),
        report.test_samples
    );
    let c = Classifier::load(&run.join("model-u4.fqm")).unwrap();
    assert_eq!(c.classes(), report.classes);
    let p = c.classify_path(&images.join("ISIC_0000001.png")).unwrap();
    assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
}

#[test]
fn folder_csv_with_renamed_columns_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let rows = synth(dir.path());
    let mut csv = String::from("file,diagnosis,skin\n");
    for (img, label, skin) in &rows {
        let group = match skin.parse::<i32>().unwrap_or(-1) {
            t if t < 0 => continue,
            t if t <= 3 => "light",
            _ => "dark",
        };
        let name = img.file_name().unwrap().to_str().unwrap();
        csv += &format!("{name},\"{label}\",{group}\n");
    }
    let csv_path = dir.path().join("labels.csv");
    fs::write(&csv_path, csv).unwrap();
    let images = dir.path().join("data/images");
    let run = dir.path().join("run");
    #[rustfmt::skip]
    let report = train_compress_export(&run, &[
        "--dataset", "folder", "--csv", csv_path.to_str().unwrap(),
        "--images", images.to_str().unwrap(),
        "--image-column", "file", "--label-column", "diagnosis", "--group-column", "skin",
    ]);
    let mut groups = report.groups.clone();
    groups.sort();
    assert_eq!(groups, ["dark", "light"]);
    let mut labels: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    labels.sort();
    labels.dedup();
    let mut classes = report.classes.clone();
    classes.sort();
    assert_eq!(classes, labels);
    let c = Classifier::load(&run.join("model-u4.fqm")).unwrap();
    let p = c.classify_path(&rows[0].0).unwrap();
    assert!(p.class < classes.len());
}
