//! Global limits on what a `.fqm` file may declare, checked before the runtime allocates or
//! computes anything sized from it.
//!
//! The header's SHA-256 catches damage, not an attacker: anyone can write a body with a matching
//! checksum. Sizes that the file must back with bytes (weights, names, tensors) are bounded by the
//! file's own length already; these limits bound what it can declare *without* backing bytes: the
//! input size and the activations, pooling windows and multiply-accumulates that follow from it,
//! the graph's node count, and the class and group counts that later size per-class and
//! per-group tables. Together they cap a model's peak memory and run time (docs/FORMAT.md,
//! "Resource bounds"). The values leave a wide margin over every model of the paper (224 px,
//! under 400 nodes, a few classes and groups).

/// Largest image side (pixels) a graph may declare as its input.
pub const MAX_INPUT_SIZE: usize = 1024;
/// Largest number of graph nodes.
pub const MAX_NODES: usize = 4096;
/// Largest value (activation, f32 elements) a node may produce, zero-padded conv inputs and
/// im2col matrices included: 128 MiB.
pub const MAX_VALUE_ELEMS: usize = 1 << 25;
/// Largest sum of all values' sizes (f32 elements) of one image: 512 MiB, so the executor's
/// activations stay below that whatever it keeps alive.
pub const MAX_ACTIVATION_ELEMS: usize = 1 << 27;
/// Largest work per image: multiply-accumulates of convolutions, Linear layers and attention, plus
/// the window reads of max pooling (about 35 s at 1 GMAC/s; ResNet-50 at 224 px is 4.1 G).
pub const MAX_MACS: u64 = 1 << 35;
/// Largest kernel, stride, padding or attention dimension; keeps every size computation far from
/// overflow.
pub const MAX_WINDOW: usize = 4096;
/// Largest weight matrix (elements) of one layer: 2^32. A `u64`, so the same check means the same
/// on 64-bit targets and on wasm32, where `usize` has 32 bits and any count that fits passes.
pub const MAX_WEIGHT_ELEMS: u64 = 1 << 32;
/// Most classes (ImageNet has 1000; per-class tables grow with the square of this).
pub const MAX_CLASSES: usize = 4096;
/// Most patient groups.
pub const MAX_GROUPS: usize = 256;
/// Longest name (bytes): architecture, node, class, group, parameter and method names.
pub const MAX_NAME_LEN: usize = 1024;
/// Largest `.fqm` file [`PackedModel::load`](super::PackedModel::load) reads (ResNet-50 in f32
/// is about 100 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;
