//! The deployment API: load from a path or bytes, classify from a path, bytes, a decoded image, a
//! batch or a tensor (all agree), probabilities, and errors instead of panics. (Per-group
//! evaluation is fq-eval's: eval/tests/evaluation.rs.)

use crate::packed;

use fq_runtime::preprocess::to_chw;
use fq_runtime::{softmax, Classifier, Error, Prediction};
use image::RgbImage;
use packed::{png, saved_classifier as classifier, test_image as image};

#[test]
fn every_entry_point_gives_the_same_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let c = classifier(dir.path());
    assert_eq!(c.classes(), ["class0", "class1", "class2"]);
    assert_eq!(c.summary().method_label, "TEST");
    let img = image(1);
    let p = c.classify_image(&img).unwrap();
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
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
    // The same model from bytes; the logits-to-prediction step is public and the same.
    let from_bytes = Classifier::from_bytes(&std::fs::read(dir.path().join("model.fqm")).unwrap());
    assert_eq!(from_bytes.unwrap().classify_image(&img).unwrap(), p);
    assert_eq!(Prediction::from_logits(p.logits.clone()), p);
    // A batch gives each image's own prediction, in order.
    let images: Vec<RgbImage> = (0..5).map(image).collect();
    let batch = c.classify_images(&images).unwrap();
    assert_eq!(batch.len(), 5);
    for (img, b) in images.iter().zip(&batch) {
        assert_eq!(&c.classify_image(img).unwrap(), b);
    }
    assert_eq!(batch[1], p);
    assert!(c.classify_images(&[]).unwrap().is_empty());
    // A tensor of the wrong size is an error, not a panic.
    let err = c.classify_tensor(&[0.0; 7]).unwrap_err().to_string();
    assert!(err.contains("input has 7 values"), "{err}");
}

#[test]
fn prediction_from_logits_takes_the_first_maximum() {
    let p = Prediction::from_logits(vec![1.0, 3.0, 3.0, -2.0]);
    assert_eq!(p.class, 1);
    assert_eq!(p.probabilities, softmax(&p.logits));
    let rows = Prediction::from_logit_rows(&[0.0, 1.0, 5.0, 2.0, 9.0], 2);
    let classes: Vec<usize> = rows.iter().map(|r| r.class).collect();
    assert_eq!(classes, [1, 0]);
    assert!(Prediction::from_logit_rows(&[1.0], 0).is_empty());
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

/// A file with calibrated activation scales (format v3) runs on the integer path by default, as
/// the compressor evaluated it; `LoadOptions` forces the float path, and `Int8` on a file without
/// scales takes dynamic ones.
#[test]
fn a_file_with_activation_scales_runs_the_integer_path_unless_told_otherwise() {
    use fq_runtime::format::{ActivationScales, PackedModel};
    use fq_runtime::{ActivationChoice, Activations, BackendChoice, LoadOptions};
    let dir = tempfile::tempdir().unwrap();
    let float = classifier(dir.path());
    assert_eq!(float.activations(), Activations::F32);
    let images: Vec<Vec<f32>> = (0..6)
        .map(|i| to_chw(&image(i), float.preprocess()))
        .collect();
    let scales = float
        .executor()
        .calibrate(images.iter().map(Vec::as_slice))
        .unwrap();
    let mut model = PackedModel::load(&dir.path().join("model.fqm")).unwrap();
    model.activations = Some(ActivationScales {
        calibration: "plain".into(),
        images: images.len() as u32,
        input_scales: scales,
    });
    let path = dir.path().join("int8.fqm");
    model.save(&path).unwrap();
    let int8 = Classifier::load(&path).unwrap();
    assert_eq!(int8.activations(), Activations::Int8Static);
    let forced = |activations| {
        Classifier::load_with(
            &path,
            LoadOptions {
                backend: BackendChoice::Cpu,
                activations,
            },
        )
        .unwrap()
    };
    let as_float = forced(ActivationChoice::F32);
    assert_eq!(as_float.activations(), Activations::F32);
    assert_eq!(
        forced(ActivationChoice::Int8).activations(),
        Activations::Int8Static
    );
    let mut dynamic = classifier(dir.path());
    dynamic.choose_activations(ActivationChoice::Int8);
    assert_eq!(dynamic.activations(), Activations::Int8Dynamic);
    for (i, x) in images.iter().enumerate() {
        let a = as_float.classify_tensor(x).unwrap();
        let b = int8.classify_tensor(x).unwrap();
        assert_eq!(a, float.classify_tensor(x).unwrap(), "image {i}");
        assert_ne!(
            a.logits, b.logits,
            "image {i}: the integer path did not run"
        );
        let peak = a.logits.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = a
            .logits
            .iter()
            .zip(&b.logits)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= 0.05 * peak,
            "image {i}: int8 logits differ by {diff} (peak {peak})"
        );
    }
}
