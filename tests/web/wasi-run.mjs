// Runs a wasm32-wasip1 binary (a `cargo test` harness) under Node's built-in WASI, so the
// runtime's unit tests, the SIMD128 micro-kernel's among them, run as WebAssembly with the same
// engine (V8) as Chromium. Used as cargo's runner:
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node tests/web/wasi-run.mjs"
// The working directory is preopened as "." and the system temp dir as /tmp, so tests that
// write temporary files can. Exits with the program's exit code.
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import process from 'node:process';
import { WASI } from 'node:wasi';

const [file, ...args] = process.argv.slice(2);
if (!file) {
  console.error('usage: node tests/web/wasi-run.mjs PROGRAM.wasm [ARGS...]');
  process.exit(2);
}
const wasi = new WASI({
  version: 'preview1',
  args: [file, ...args],
  env: { ...process.env, TMPDIR: '/tmp' },
  preopens: { '.': process.cwd(), '/tmp': tmpdir() },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
