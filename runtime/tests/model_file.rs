//! The `.fqm` file: bit packing round trips for every width, save/load round trips, and every
//! kind of damage (truncation, bit flips, wrong version or magic, inconsistent content) gives an
//! error that names the file, never a panic.

use crate::packed;

use fq_models::{Arch, ArchSpec, Op};
use fq_runtime::format::pack::{pack_row, row_bytes, unpack_row, CHUNK};
use fq_runtime::format::{
    assemble, ActivationScales, FormatError, LayerParams, LayerSource, LayerWeights, PackedMatrix,
    PackedModel, FORMAT_VERSION, HEADER_LEN, MAGIC,
};
use packed::{meta, odd_graph, random_model, Bits};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn codes_strategy() -> impl Strategy<Value = (u8, Vec<i8>)> {
    (2u8..=8).prop_flat_map(|b| {
        let max = (1i32 << (b - 1)) - 1;
        (
            Just(b),
            prop::collection::vec((-max..=max).prop_map(|q| q as i8), 0..200),
        )
    })
}

proptest! {
    #[test]
    fn packing_round_trips_at_every_width((bits, codes) in codes_strategy(), start_chunk in 0usize..30) {
        let mut row = Vec::new();
        pack_row(&codes, bits, &mut row).unwrap();
        prop_assert_eq!(row.len(), row_bytes(codes.len(), bits));
        let mut out = vec![f32::NAN; codes.len()];
        prop_assert!(unpack_row(&row, bits, 0, &mut out));
        let want: Vec<f32> = codes.iter().map(|&q| q as f32).collect();
        prop_assert_eq!(&out, &want);
        // Unpacking may start at any chunk boundary (the GEMM's K blocks).
        let start = (start_chunk * CHUNK).min(codes.len() / CHUNK * CHUNK);
        let mut tail = vec![f32::NAN; codes.len() - start];
        prop_assert!(unpack_row(&row, bits, start, &mut tail));
        prop_assert_eq!(&tail[..], &want[start..]);
    }

    #[test]
    fn packed_matrix_dequantizes_to_code_times_scale((cols, rows) in matrix_strategy()) {
        let bits: Vec<u8> = rows.iter().map(|r| r.0).collect();
        let codes: Vec<i8> = rows.iter().flat_map(|r| r.1.clone()).collect();
        let scales: Vec<f32> = (0..rows.len()).map(|r| 0.5 + r as f32).collect();
        let m = PackedMatrix::from_codes(cols, bits, &codes, scales.clone()).unwrap();
        let deq = m.dequantize();
        for (i, (&q, &d)) in codes.iter().zip(&deq).enumerate() {
            prop_assert_eq!(q as f32 * scales[i / cols], d);
        }
    }
}

/// A few rows of `cols` codes, each row at its own width.
fn matrix_strategy() -> impl Strategy<Value = (usize, Vec<(u8, Vec<i8>)>)> {
    (1usize..40, 1usize..6).prop_flat_map(|(cols, rows)| {
        let row = (2u8..=8).prop_flat_map(move |b| {
            let max = (1i32 << (b - 1)) - 1;
            (
                Just(b),
                prop::collection::vec((-max..=max).prop_map(|q| q as i8), cols),
            )
        });
        (Just(cols), prop::collection::vec(row, rows))
    })
}

fn small_model() -> PackedModel {
    let g = ArchSpec::new(Arch::ResNet18, 2, 32, 3).graph().unwrap();
    random_model(&g, Bits::RandomMix, 11).model
}

/// The envelope written by hand, as the header module documents it.
fn envelope(body: &[u8], version: u32) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

#[test]
fn save_load_round_trip_is_atomic_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.fqm");
    let model = small_model();
    let size = model.save(&path).unwrap();
    assert_eq!(size, std::fs::metadata(&path).unwrap().len());
    assert_eq!(PackedModel::load(&path).unwrap(), model);
    // Only the model is left in the directory (no temp file).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The documented layout: magic, version, body length, SHA-256 of the body.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes, envelope(&bytes[HEADER_LEN..], FORMAT_VERSION));
    // A failed write names the target and leaves the old file in place.
    let err = model.save(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(PackedModel::load(&dir.path().join("missing.fqm"))
        .unwrap_err()
        .to_string()
        .contains("missing.fqm"));
}

#[test]
fn every_truncation_and_bit_flip_is_an_error() {
    let bytes = small_model().to_bytes().unwrap();
    for len in (0..bytes.len())
        .step_by(7)
        .chain([HEADER_LEN - 1, HEADER_LEN, bytes.len() - 1])
    {
        let e = PackedModel::from_bytes(&bytes[..len]).unwrap_err();
        assert!(
            matches!(
                e,
                FormatError::ShortHeader { .. } | FormatError::Truncated { .. }
            ),
            "truncated to {len}: {e}"
        );
    }
    for pos in (0..bytes.len()).step_by(13).chain(0..HEADER_LEN) {
        for bit in [0, 5] {
            let mut b = bytes.clone();
            b[pos] ^= 1 << bit;
            let e = PackedModel::from_bytes(&b).unwrap_err();
            let expected = match pos {
                0..8 => matches!(e, FormatError::BadMagic { .. }),
                // 3 -> 2 is a readable version, whose decoder finds the v3 body's extra byte.
                8..12 => matches!(e, FormatError::Version { .. } | FormatError::Decode(_)),
                12..20 => matches!(
                    e,
                    FormatError::Truncated { .. } | FormatError::TrailingBytes { .. }
                ),
                _ => e == FormatError::Checksum,
            };
            assert!(expected, "bit {bit} of byte {pos} flipped: {e}");
        }
    }
}

#[test]
fn wrong_magic_or_version_is_named() {
    let model = small_model();
    let bytes = model.to_bytes().unwrap();
    let body = &bytes[HEADER_LEN..];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.fqm");
    let next = FORMAT_VERSION + 1;
    std::fs::write(&path, envelope(body, next)).unwrap();
    let msg = PackedModel::load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("future.fqm") && msg.contains(&format!("version {next}")),
        "{msg}"
    );
    let path = dir.path().join("photo.fqm");
    std::fs::write(
        &path,
        b"\x89PNG\r\n\x1a\n and then some more bytes of an image file..............",
    )
    .unwrap();
    let msg = PackedModel::load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("photo.fqm") && msg.contains("not a FairQuant model"),
        "{msg}"
    );
    let mut extra = bytes.clone();
    extra.extend_from_slice(b"junk");
    assert!(matches!(
        PackedModel::from_bytes(&extra),
        Err(FormatError::TrailingBytes { extra: 4, .. })
    ));
}

/// Well-formed files with a valid checksum but inconsistent content are rejected by validation.
#[test]
fn inconsistent_content_is_rejected() {
    let model = small_model();
    let reject = |m: &PackedModel, what: &str| {
        let bytes = envelope(&postcard::to_allocvec(m).unwrap(), FORMAT_VERSION);
        match PackedModel::from_bytes(&bytes) {
            Err(FormatError::Invalid(msg)) => assert!(msg.contains(what), "{what}: {msg}"),
            other => panic!("{what}: expected a validation error, got {other:?}"),
        }
    };
    let mut m = model.clone();
    let LayerWeights::Packed(p) = &mut m.layers[3].weights else {
        panic!("packed layer expected")
    };
    p.bits[0] = 9;
    reject(&m, "bit-width 9");
    let mut m = model.clone();
    let LayerWeights::Packed(p) = &mut m.layers[0].weights else {
        panic!("packed layer expected")
    };
    p.data.pop();
    reject(&m, "bytes of packed weights");
    let mut m = model.clone();
    m.layers.pop();
    reject(&m, "layers for");
    let mut m = model.clone();
    m.classes.push("extra".into());
    reject(&m, "class names");
    let mut m = model.clone();
    if let Op::Conv2d(c) = &mut m.graph.nodes[0].op {
        c.kernel = 1_000_000;
    }
    reject(&m, "window");
    let mut m = model.clone();
    m.graph.nodes[1].inputs = vec![5];
    reject(&m, "not computed before");
    let mut m = model.clone();
    m.layers[1].bias = None;
    reject(&m, "bias");
    let mut m = model.clone();
    m.preprocess.width = 64;
    reject(&m, "preprocessing");
    // Activation scales (format v3): one per layer, each positive and finite.
    let scales = |v: Vec<Option<f32>>| ActivationScales {
        calibration: "plain".into(),
        images: 4,
        input_scales: v,
    };
    let n = model.layers.len();
    let mut m = model.clone();
    m.activations = Some(scales(vec![Some(0.1); n - 1]));
    reject(&m, "input_scales has");
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let mut m = model.clone();
        let mut v = vec![Some(0.1); n];
        v[2] = Some(bad);
        m.activations = Some(scales(v));
        reject(&m, &format!("layer `{}`", model.layers[2].name));
    }
}

/// A version-2 body, written by hand with the field order format v2 had (no activation scales):
/// independent of the crate's own v2 decoder.
fn v2_body(m: &PackedModel) -> Vec<u8> {
    postcard::to_allocvec(&(
        &m.graph,
        &m.classes,
        &m.groups,
        &m.preprocess,
        &m.summary,
        &m.layers,
        &m.tensors,
    ))
    .unwrap()
}

#[test]
fn version_2_files_still_load_without_activation_scales() {
    let mut model = small_model();
    model.activations = None;
    let v2 = envelope(&v2_body(&model), 2);
    assert_eq!(PackedModel::from_bytes(&v2).unwrap(), model);
    // The v2 body is a prefix of the v3 one: v3 appends the `Option` (one byte for `None`).
    let v3 = model.to_bytes().unwrap();
    assert_eq!(v3.len(), v2.len() + 1);
    // A v2 header on a v3 body (the scales' byte left over) is refused, not misread.
    let mut scaled = model.clone();
    scaled.activations = Some(ActivationScales {
        calibration: "group-balanced".into(),
        images: 9,
        input_scales: vec![Some(0.05); model.layers.len()],
    });
    let body = scaled.to_bytes().unwrap()[HEADER_LEN..].to_vec();
    assert!(matches!(
        PackedModel::from_bytes(&envelope(&body, 2)),
        Err(FormatError::Decode(_))
    ));
    // And the v3 file with scales round-trips them exactly.
    let back = PackedModel::from_bytes(&envelope(&body, FORMAT_VERSION)).unwrap();
    assert_eq!(back, scaled);
    // A real version-2 file (fq-classify's parity fixture as format v2 wrote it, kept
    // unchanged): it loads, with no scales.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/v2-model.fqm");
    let bytes = std::fs::read(fixture).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    assert_eq!(PackedModel::from_bytes(&bytes).unwrap().activations, None);
}

#[test]
fn assemble_refuses_what_it_cannot_pack_or_fold() {
    let g = odd_graph();
    let err = assemble(
        &g,
        meta(&g),
        |_, rows, cols| {
            Ok(LayerParams {
                weights: LayerSource::Quantized {
                    bits: vec![1; rows],
                    codes: vec![0; rows * cols],
                    scales: vec![1.0; rows],
                },
                bias: None,
            })
        },
        |_| Err("unused".into()),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("layer `a`") && err.to_string().contains("2..=8"),
        "{err}"
    );

    // A batch norm after a max pool has no convolution to fold into.
    let mut g = odd_graph();
    g.nodes[3].inputs = vec![2];
    g.nodes[2].inputs = vec![1];
    g.nodes.swap(2, 3);
    let err = assemble(
        &g,
        meta(&g),
        |_, _, _| Err("unused".into()),
        |_| Err("unused".into()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot be folded"), "{err}");
}
