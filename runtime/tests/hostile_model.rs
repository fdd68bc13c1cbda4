//! Crafted `.fqm` files (valid header and checksum, hostile body): every size a file can declare
//! without backing bytes is refused by name before the runtime allocates or computes with it, and
//! loading stays within the memory bound of docs/FORMAT.md ("Resource bounds"). Peak heap is
//! measured with a counting allocator (this test binary's own), so the bound is asserted exactly,
//! not through timing.

mod packed;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use fq_models::{Arch, ArchSpec, Conv2d, Graph, Node, Op};
use fq_runtime::exec::Executor;
use fq_runtime::format::limits::{
    MAX_ACTIVATION_ELEMS, MAX_CLASSES, MAX_FILE_BYTES, MAX_GROUPS, MAX_INPUT_SIZE, MAX_MACS,
    MAX_NAME_LEN, MAX_NODES, MAX_VALUE_ELEMS,
};
use fq_runtime::format::{wrap, FormatError, PackedModel};
use fq_runtime::metrics::FairnessMetrics;
use fq_runtime::preprocess::{decode_bytes, MAX_IMAGE_ALLOC, MAX_IMAGE_SIDE};
use packed::{random_model, Bits};

/// Counts live heap bytes and their peak, over all threads.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::SeqCst) + n;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: every call forwards to the system allocator with the caller's own arguments; the
// counters are atomics and never touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; `ptr` came from `System` through this allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Old and new blocks may both be live while the data is copied.
            grew(new_size);
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Every test holds this for its whole run, so no other test allocates during a measurement.
static SERIAL: Mutex<()> = Mutex::new(());

/// `f`'s result and the most heap it had allocated at once beyond what was live before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

const MIB: usize = 1 << 20;

/// Bytes of a model with a valid header and checksum, validated or not.
fn file_of(m: &PackedModel) -> Vec<u8> {
    wrap(&postcard::to_allocvec(m).unwrap())
}

fn small_model() -> PackedModel {
    let g = ArchSpec::new(Arch::ResNet18, 2, 32, 3).graph().unwrap();
    random_model(&g, Bits::RandomMix, 5).model
}

/// The small model with its graph replaced by `nodes` on a `size x size` input (layers and
/// tensors dropped: the graph is refused before they are looked at).
fn with_graph(size: usize, nodes: Vec<Node>) -> PackedModel {
    let mut m = small_model();
    m.graph = Graph {
        arch: "crafted".into(),
        in_channels: 3,
        input_size: size,
        num_classes: 3,
        output: nodes.len(),
        nodes,
    };
    m.preprocess.width = size as u32;
    m.preprocess.height = size as u32;
    m.layers.clear();
    m.tensors.clear();
    m.summary.folded.clear();
    m
}

fn node(op: Op, input: usize) -> Node {
    Node {
        name: format!("n{input}"),
        op,
        inputs: vec![input],
    }
}

/// The file is refused with an error naming `field` and `limit`, and parsing it allocated at most
/// a small multiple of its length (documented bound: 128x the file plus 4 MiB).
fn assert_refused(m: &PackedModel, field: &str, limit: &str) {
    let file = file_of(m);
    let (result, peak) = peak_during(|| PackedModel::from_bytes(&file));
    let msg = match result {
        Err(FormatError::Invalid(msg)) => msg,
        other => panic!("expected an invalid-model error naming {limit}, got {other:?}"),
    };
    assert!(msg.contains(field), "`{msg}` does not name {field}");
    assert!(msg.contains(limit), "`{msg}` does not name {limit}");
    assert!(
        peak <= 128 * file.len() + 4 * MIB,
        "{limit}: parsing a {}-byte file allocated {peak} bytes",
        file.len()
    );
}

#[test]
fn a_huge_input_size_is_refused_by_name() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let m = with_graph(1_000_000, vec![node(Op::Relu, 0)]);
    assert_refused(&m, "graph.input_size = 1000000", "MAX_INPUT_SIZE");
    // The largest allowed size passes this check (and fails later, on the output shape).
    let m = with_graph(MAX_INPUT_SIZE, vec![node(Op::Relu, 0)]);
    let err = PackedModel::from_bytes(&file_of(&m))
        .unwrap_err()
        .to_string();
    assert!(!err.contains("MAX_INPUT_SIZE"), "{err}");
}

#[test]
fn too_many_nodes_are_refused_by_name() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let nodes = (0..MAX_NODES + 1).map(|i| node(Op::Relu, i)).collect();
    assert_refused(&with_graph(32, nodes), "number of graph nodes", "MAX_NODES");
}

#[test]
fn one_huge_activation_is_refused_by_name() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A 1x1 conv to 64 channels at 1024 px: 2^26 floats from a file of a few hundred bytes.
    let conv = Op::Conv2d(Conv2d {
        in_channels: 3,
        out_channels: 64,
        kernel: 1,
        stride: 1,
        padding: 0,
        groups: 1,
        bias: false,
    });
    assert_refused(
        &with_graph(1024, vec![node(conv, 0)]),
        "n0",
        "MAX_VALUE_ELEMS",
    );
}

#[test]
fn the_sum_of_activations_is_refused_by_name() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Each ReLU's output is 3 * 2^20 floats, allowed; 60 of them are not.
    let nodes = (0..60).map(|i| node(Op::Relu, i)).collect();
    let m = with_graph(1024, nodes);
    assert_refused(&m, "activations up to this node", "MAX_ACTIVATION_ELEMS");
    let msg = PackedModel::from_bytes(&file_of(&m))
        .unwrap_err()
        .to_string();
    // The input and nodes 0..=n hold 3 * 2^20 * (n + 2) floats, over 2^27 first at n = 41.
    let first = MAX_ACTIVATION_ELEMS / (3 << 20) - 1;
    assert!(msg.contains(&format!("node {first} ")), "{msg}");
}

#[test]
fn too_much_work_is_refused_by_name() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Max pools with 64x64 windows at stride 1 on a 1024 px input: ~10^10 reads each.
    let pool = Op::MaxPool2d {
        kernel: 64,
        stride: 1,
        padding: 0,
    };
    let nodes = (0..6).map(|i| node(pool.clone(), i)).collect();
    let m = with_graph(1024, nodes);
    assert_refused(&m, "multiply-accumulates up to this node", "MAX_MACS");
    let msg = PackedModel::from_bytes(&file_of(&m))
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&format!("MAX_MACS = {MAX_MACS}")), "{msg}");
    // A conv whose kernel covers most of the image: a 1.4e11-element im2col matrix.
    let conv = Op::Conv2d(Conv2d {
        in_channels: 3,
        out_channels: 1,
        kernel: 300,
        stride: 1,
        padding: 0,
        groups: 1,
        bias: false,
    });
    let m = with_graph(1024, vec![node(conv, 0)]);
    assert_refused(&m, "im2col matrix", "MAX_VALUE_ELEMS");
}

#[test]
fn class_group_and_name_limits_are_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut m = small_model();
    m.classes = (0..MAX_CLASSES + 1).map(|i| i.to_string()).collect();
    m.graph.num_classes = m.classes.len();
    assert_refused(&m, "number of classes", "MAX_CLASSES");

    let mut m = small_model();
    m.groups = (0..MAX_GROUPS + 1).map(|i| i.to_string()).collect();
    assert_refused(&m, "number of groups", "MAX_GROUPS");

    let mut m = small_model();
    m.classes[1] = "x".repeat(MAX_NAME_LEN + 1);
    assert_refused(&m, "length of a class name", "MAX_NAME_LEN");
    let mut m = small_model();
    m.graph.nodes[0].name = "n".repeat(MAX_NAME_LEN + 1);
    assert_refused(&m, "length of a node name", "MAX_NAME_LEN");
}

#[test]
fn test_metrics_must_cover_every_group() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut m = small_model();
    m.summary.test_metrics = Some(FairnessMetrics {
        group_names: m.groups.clone(),
        group_count: vec![10],
        group_correct: vec![5],
        group_accuracy: vec![Some(0.5)],
        avg_acc: 0.5,
        worst_acc: 0.5,
        gap: 0.0,
        eopp0: 0.0,
        eopp1: 0.0,
        eodd: 0.0,
        overall_acc: 0.5,
    });
    let err = PackedModel::from_bytes(&file_of(&m))
        .unwrap_err()
        .to_string();
    assert!(err.contains("test metrics have [1, 1, 1]"), "{err}");
}

/// Postcard reads a declared length element by element (serde preallocates at most 1 MiB), so a
/// length far beyond the body fails at the end of the input without a big allocation.
#[test]
fn huge_declared_lengths_fail_at_the_end_of_the_body() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let varint = |v: u64| postcard::to_allocvec(&v).unwrap();
    // The architecture name (the body's first field) declared 2^62 bytes long.
    let arch = [varint(1 << 62), b"resnet".to_vec()].concat();
    // A 4-field graph prefix, then 2^40 nodes of which 3 are present.
    let prefix = postcard::to_allocvec(&("x", 3usize, 32usize, 3usize)).unwrap();
    let relu = postcard::to_allocvec(&Node {
        name: String::new(),
        op: Op::Relu,
        inputs: vec![0],
    })
    .unwrap();
    let nodes = [prefix, varint(1 << 40), relu.repeat(3)].concat();
    // A node whose input list is declared 2^40 long.
    let prefix = postcard::to_allocvec(&("x", 3usize, 32usize, 3usize, 1usize)).unwrap();
    let head = postcard::to_allocvec(&(String::new(), Op::Relu)).unwrap();
    let inputs = [prefix, head, varint(1 << 40), vec![0; 16]].concat();
    for body in [arch, nodes, inputs] {
        let file = wrap(&body);
        let (result, peak) = peak_during(|| PackedModel::from_bytes(&file));
        match result {
            Err(FormatError::Decode(msg)) => assert!(msg.contains("end"), "{msg}"),
            other => panic!("expected a decode error, got {other:?}"),
        }
        assert!(
            peak <= 4 * MIB,
            "a {}-byte body allocated {peak} bytes",
            body.len()
        );
    }
}

/// The documented amplification of decoding, on the types with the largest in-memory size per
/// encoded byte: a million minimal graph nodes (3 bytes each), batch-norm name pairs, class names
/// and parameter tensors, each list far beyond its limit so that the decoder has to hold it all
/// before validation refuses it. Each allocates at most 128 times the file's length.
#[test]
fn decoding_allocates_a_bounded_multiple_of_the_file() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 1_000_000;
    let mut nodes = with_graph(32, Vec::new());
    nodes.graph.nodes = (0..N)
        .map(|_| Node {
            name: String::new(),
            op: Op::Relu,
            inputs: Vec::new(),
        })
        .collect();
    let mut folded = small_model();
    folded.summary.folded = vec![(String::new(), String::new()); N];
    let mut classes = small_model();
    classes.classes = vec![String::new(); N];
    let mut tensors = small_model();
    tensors.tensors = (0..N)
        .map(|_| fq_runtime::format::NamedTensor {
            name: String::new(),
            shape: Vec::new(),
            data: Vec::new(),
        })
        .collect();
    for (what, m) in [
        ("nodes", nodes),
        ("folded", folded),
        ("classes", classes),
        ("tensors", tensors),
    ] {
        let file = file_of(&m);
        drop(m);
        let (result, peak) = peak_during(|| PackedModel::from_bytes(&file));
        assert!(result.is_err(), "{what}");
        let factor = peak as f64 / file.len() as f64;
        println!(
            "{what}: {} bytes decode with a peak of {peak} bytes ({factor:.1}x)",
            file.len()
        );
        assert!(
            peak <= 128 * file.len() + 4 * MIB,
            "{what}: a {}-byte file allocated {peak} bytes ({factor:.1}x)",
            file.len()
        );
    }
}

#[test]
fn a_file_over_the_size_limit_is_not_read() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.fqm");
    // Sparse: no disk is used, but reading it would allocate 1 GiB.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(MAX_FILE_BYTES + 1)
        .unwrap();
    let (result, peak) = peak_during(|| PackedModel::load(&path));
    let msg = result.unwrap_err().to_string();
    assert!(
        msg.contains("MAX_FILE_BYTES") && msg.contains("big.fqm"),
        "{msg}"
    );
    assert!(peak < MIB, "{peak}");
}

/// A valid model stays within the bound too: decoding within 128x its file, and one forward pass
/// within its activations (4 bytes per element of every value, as validated against
/// MAX_ACTIVATION_ELEMS) plus the conv scratch, here bounded by the same figure.
#[test]
fn a_valid_model_loads_and_runs_within_the_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let file = small_model().to_bytes().unwrap();
    let (model, peak) = peak_during(|| PackedModel::from_bytes(&file).unwrap());
    assert!(peak <= 128 * file.len() + 4 * MIB, "decode: {peak} bytes");
    let activations: usize = model
        .graph
        .shapes()
        .unwrap()
        .iter()
        .map(|s| s.numel())
        .sum();
    let mut m = model;
    let exec = Executor::from_model(&mut m).unwrap();
    let image = vec![0.5f32; exec.input_len()];
    let (logits, peak) = peak_during(|| exec.run(&image).unwrap());
    assert_eq!(logits.len(), 3);
    assert!(
        peak <= 2 * 4 * activations + 4 * MIB,
        "run: {peak} bytes for {activations} activation elements"
    );
}

/// Sanity of the limits themselves: the paper's models at 224 px are far inside them.
#[test]
fn the_paper_models_are_inside_the_limits() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for arch in ["resnet18", "resnet50", "deit-tiny", "tiny-vit-5m"] {
        let g = ArchSpec::new(arch.parse().unwrap(), 64, 224, 1000)
            .graph()
            .unwrap();
        let shapes = g.shapes().unwrap();
        let total: usize = shapes.iter().map(|s| s.numel()).sum();
        assert!(
            g.nodes.len() * 4 < MAX_NODES,
            "{arch}: {} nodes",
            g.nodes.len()
        );
        assert!(
            total * 3 < MAX_ACTIVATION_ELEMS,
            "{arch}: {total} activation elements"
        );
        assert!(
            shapes.iter().all(|s| s.numel() * 16 < MAX_VALUE_ELEMS),
            "{arch}"
        );
        assert!(
            g.macs().unwrap() * 4 < MAX_MACS,
            "{arch}: {} MACs",
            g.macs().unwrap()
        );
    }
}

/// A small JPEG whose frame header declares `w x h` pixels (SOF0 patched; JPEG has no checksum).
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(8, 8, image::Rgb([90, 60, 30]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    let mut bytes = out.into_inner();
    let sof = bytes
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a baseline frame header");
    // FF C0, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bytes
}

/// Images arrive from the same places as models: a header declaring a huge canvas is refused
/// before the pixel buffer is allocated, whether it exceeds the side or the allocation limit.
#[test]
fn an_image_declaring_a_huge_canvas_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(decode_bytes(&jpeg_declaring(8, 8), "ok.jpg").is_ok());
    let too_wide = MAX_IMAGE_SIDE as u16 + 1;
    // Within the side limit, but 16000 x 16000 RGB is 768 MB, over MAX_IMAGE_ALLOC.
    let cases = [
        (jpeg_declaring(too_wide, 8), "Image size exceeds limit"),
        (jpeg_declaring(16000, 16000), "Memory limit exceeded"),
    ];
    for (bytes, why) in cases {
        let (result, peak) = peak_during(|| decode_bytes(&bytes, "crafted.jpg"));
        let msg = match result {
            Ok(img) => panic!("{why}: decoded {:?}", img.dimensions()),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains("crafted.jpg") && msg.contains(why), "{msg}");
        assert!(peak < MAX_IMAGE_ALLOC as usize / 4, "{why}: {peak} bytes");
    }
}
