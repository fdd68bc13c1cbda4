//! Decoding a whole labelled set up front: every sample's image, in sample order, resized to the
//! model's input; a bad preprocessing configuration is an error, not a panic.

use fq_eval::dataset::folder::{self, FolderCsvOptions};
use fq_eval::images::load_dataset_images;
use fq_runtime::preprocess::PreprocessConfig;
use image::{ImageFormat, Rgb, RgbImage};

#[test]
fn dataset_images_are_decoded_in_order_and_resized() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("img");
    std::fs::create_dir_all(&images).unwrap();
    let mut csv = String::from("image,label,group\n");
    for i in 0..40u8 {
        let img = RgbImage::from_pixel(5 + u32::from(i), 7, Rgb([i, 2 * i, 3 * i]));
        img.save_with_format(images.join(format!("{i}.png")), ImageFormat::Png)
            .unwrap();
        csv.push_str(&format!("{i}.png,c{},g\n", i % 3));
    }
    let csv_path = dir.path().join("d.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let d = folder::load(&FolderCsvOptions::new(&csv_path, &images)).unwrap();
    let cfg = PreprocessConfig {
        width: 6,
        height: 3,
        ..PreprocessConfig::default()
    };
    let imgs = load_dataset_images(&d, &cfg, true).unwrap();
    assert_eq!(imgs.len(), 40);
    for (i, img) in imgs.iter().enumerate() {
        let i = i as u8;
        assert_eq!(img.dimensions(), (6, 3));
        assert_eq!(img.get_pixel(2, 1).0, [i, 2 * i, 3 * i]);
    }
    // An invalid configuration is an error, not a panic.
    let bad = PreprocessConfig {
        std: [0.0, 1.0, 1.0],
        ..cfg
    };
    assert!(load_dataset_images(&d, &bad, false).is_err());
}
