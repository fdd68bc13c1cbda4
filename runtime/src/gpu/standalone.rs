//! One packed GEMM on its own, for the benchmark: a Linear layer applied to a batch of `m` input
//! vectors already on the device, so that a run times the kernel (and its submit), not uploads.

use std::sync::Arc;

use super::buffers::{activation, read_floats, readback, uniform, LayerBuffers};
use super::dispatch::{self, Dispatch, GemmKernel, GemmParams, Shared};
use super::{GpuDevice, GpuError};
use crate::format::Layer;

pub struct LinearGemm {
    dev: Arc<GpuDevice>,
    dispatch: Dispatch,
    input: wgpu::Buffer,
    output: wgpu::Buffer,
    staging: wgpu::Buffer,
    m: usize,
    rows: usize,
    cols: usize,
    _weights: LayerBuffers,
    _batch: wgpu::Buffer,
}

impl LinearGemm {
    /// `out[b][o] = epilogue(W[o] · x[b])` for `b < m`, with `layer`'s weights (scale and bias).
    pub fn new(
        dev: Arc<GpuDevice>,
        layer: &Layer,
        m: usize,
        kernel: GemmKernel,
    ) -> Result<Self, GpuError> {
        let (rows, cols) = layer.weights.dims();
        let device = &dev.device;
        let weights = LayerBuffers::new(device, layer);
        let batch = uniform(device, "batch", &[m as u32]);
        let dummy = activation(device, "absent operand", 1);
        let input = activation(device, "gemm input", m * cols);
        let output = activation(device, "gemm output", m * rows);
        let shared = Shared {
            device,
            kernels: &dev.kernels,
            batch: &batch,
            dummy: &dummy,
        };
        let params = GemmParams {
            m: rows as u32,
            k: cols as u32,
            c_in: cols as u32,
            h: 1,
            w: 1,
            c_group: cols as u32,
            c_out: rows as u32,
            ho: 1,
            wo: 1,
            kernel: 1,
            stride: 1,
            padding: 0,
            flags: 0,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        };
        let d = dispatch::gemm(&shared, kernel, params, 1, &weights, &input, None, &output);
        let staging = readback(device, (m * rows * 4) as u64);
        Ok(Self {
            dispatch: d,
            input,
            output,
            staging,
            m,
            rows,
            cols,
            _weights: weights,
            _batch: batch,
            dev,
        })
    }

    /// Uploads the `m x K` input (row-major).
    pub fn set_input(&self, x: &[f32]) -> Result<(), GpuError> {
        if x.len() != self.m * self.cols {
            return Err(GpuError::Input {
                got: x.len(),
                expected: self.m * self.cols,
            });
        }
        self.dev
            .queue
            .write_buffer(&self.input, 0, bytemuck::cast_slice(x));
        Ok(())
    }

    /// One submit of the kernel, waited for.
    pub fn run(&self) -> Result<(), GpuError> {
        let mut enc = self.dev.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.dispatch.record(&mut pass, self.m as u32);
        }
        self.dev.queue.submit([enc.finish()]);
        self.dev
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Run(e.to_string()))
    }

    /// `times` launches of the kernel recorded in one compute pass, one submit, waited for: the
    /// benchmark takes the difference of two counts, which cancels the submit-and-wait overhead
    /// (tens of microseconds, longer than a GEMV over a few MiB of codes on a real GPU).
    pub fn run_repeated(&self, times: u32) -> Result<(), GpuError> {
        let mut enc = self.dev.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..times {
                self.dispatch.record(&mut pass, self.m as u32);
            }
        }
        self.dev.queue.submit([enc.finish()]);
        self.dev
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Run(e.to_string()))
    }

    /// The last run's `m x rows` result.
    pub fn output(&self) -> Result<Vec<f32>, GpuError> {
        let bytes = (self.m * self.rows * 4) as u64;
        let mut enc = self.dev.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&self.output, 0, &self.staging, 0, bytes);
        self.dev.queue.submit([enc.finish()]);
        read_floats(&self.dev.device, &self.staging, self.m * self.rows)
    }
}
