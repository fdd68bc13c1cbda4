//! The deployment API: classify from a path, bytes, a decoded image or a tensor (all agree),
//! probabilities, and per-group evaluation with the shared metric code.

mod packed;

use std::io::Cursor;

use fq_models::{Arch, ArchSpec};
use fq_runtime::classify::{softmax, Classifier, ClassifyError};
use fq_runtime::dataset::{Dataset, Origin, Sample};
use fq_runtime::metrics::FairnessMetrics;
use fq_runtime::preprocess::to_chw;
use image::{ImageFormat, Rgb, RgbImage};
use packed::{random_model, Bits};

fn image(seed: u32) -> RgbImage {
    // Not the model's 32x32: the API resizes as the compressor's preprocessing does.
    RgbImage::from_fn(40, 36, |x, y| {
        let v = (x * 7 + y * 13 + seed * 31) % 256;
        Rgb([
            v as u8,
            ((v * 3 + seed) % 256) as u8,
            ((x * y + seed) % 256) as u8,
        ])
    })
}

fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn classifier(dir: &std::path::Path) -> Classifier {
    let g = ArchSpec::new(Arch::ResNet18, 4, 32, 3).graph().unwrap();
    let path = dir.join("model.fqm");
    random_model(&g, Bits::RandomMix, 2)
        .model
        .save(&path)
        .unwrap();
    Classifier::load(&path).unwrap()
}

#[test]
fn every_entry_point_gives_the_same_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let c = classifier(dir.path());
    assert_eq!(c.classes(), ["class0", "class1", "class2"]);
    assert_eq!(c.summary().method_label, "TEST");
    let img = image(1);
    let p = c.classify_image(&img);
    assert_eq!(p.probabilities.len(), 3);
    assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert_eq!(p.probabilities, softmax(&p.logits));
    let best = (0..3)
        .max_by(|&a, &b| p.logits[a].total_cmp(&p.logits[b]))
        .unwrap();
    assert_eq!(p.class, best);
    assert_eq!(c.classify_tensor(&to_chw(&img, c.preprocess())).unwrap(), p);
    assert_eq!(c.classify_bytes(&png(&img), "upload.png").unwrap(), p);
    let path = dir.path().join("lesion.png");
    std::fs::write(&path, png(&img)).unwrap();
    assert_eq!(c.classify_path(&path).unwrap(), p);
    let err = c.classify_bytes(b"not an image", "upload.bin").unwrap_err();
    assert!(err.to_string().contains("upload.bin"), "{err}");
}

#[test]
fn evaluation_uses_the_shared_metrics_and_maps_names() {
    let dir = tempfile::tempdir().unwrap();
    let c = classifier(dir.path());
    let images: Vec<RgbImage> = (0..8).map(image).collect();
    let labels = [0, 1, 2, 0, 1, 2, 0, 1];
    let groups = [0, 0, 0, 0, 1, 1, 1, 1];
    let ev = c.evaluate(&images, &labels, &groups).unwrap();
    let want = FairnessMetrics::compute(&labels, &ev.predictions, &groups, 3, c.groups()).unwrap();
    assert_eq!(ev.metrics, want);
    let single: Vec<usize> = images.iter().map(|i| c.classify_image(i).class).collect();
    assert_eq!(ev.predictions, single);

    // The same set as a dataset whose class and group lists are in another order.
    let csv = dir.path().join("held_out.csv");
    let samples = images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let path = dir.path().join(format!("{i}.png"));
            std::fs::write(&path, png(img)).unwrap();
            Sample {
                id: i.to_string(),
                image: path,
                label: 2 - labels[i],
                group: 1 - groups[i],
                origin: Origin {
                    file: csv.clone(),
                    line: i + 2,
                },
            }
        })
        .collect();
    let mut ds = Dataset {
        name: "held-out".into(),
        samples,
        classes: vec!["class2".into(), "class1".into(), "class0".into()],
        groups: vec!["IV-VI".into(), "I-III".into()],
        skipped: Vec::new(),
    };
    assert_eq!(c.evaluate_dataset(&ds).unwrap(), ev);

    ds.samples[3].image = dir.path().join("gone.png");
    let err = c.evaluate_dataset(&ds).unwrap_err().to_string();
    assert!(
        err.contains("held_out.csv") && err.contains("gone.png"),
        "{err}"
    );
    ds.classes[0] = "melanoma".into();
    match c.evaluate_dataset(&ds) {
        Err(ClassifyError::Mismatch(m)) => assert!(m.contains("melanoma"), "{m}"),
        other => panic!("expected a class mismatch, got {other:?}"),
    }
}

#[test]
fn a_damaged_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let _ = classifier(dir.path());
    let path = dir.path().join("model.fqm");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = Classifier::load(&path)
        .err()
        .expect("a damaged file")
        .to_string();
    assert!(
        err.contains("model.fqm") && err.contains("checksum"),
        "{err}"
    );
}
