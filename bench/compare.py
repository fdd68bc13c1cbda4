"""One benchmark run, side by side (issue 16 item 7): fq-runtime (integer and f32 paths, every
instruction-set path the CPU offers), onnxruntime f32, onnxruntime static int8 (QDQ, per-channel
weights) and PyTorch eager, on ResNet18, ResNet50, DeiT-Tiny and TinyViT-5M at 224x224, 1000
classes, batch 1 and batch 8, 2 threads everywhere, in the same run.

Every measurement is its own process (so its peak resident memory is its own, read with
GNU time), and the runtimes are interleaved: round after round, each round runs every
(model, batch, runtime) once in a rotated order, so that a load change on this shared machine hits
them alike; the figure kept is the best over the rounds (the median of the rounds' medians too).
Then a paired phase at batch 1 (`--paired-rounds N`, 0 to skip; `--paired-block SECONDS`): every
runtime of a model loaded once in a long-lived process, blocks of runs alternated round after
round, medians compared (see paired_phase); at 2 threads, then again at 1 thread each
(`--paired-threads 2,1`, the default; `--quick`: 2 only).
Weights are random (timm init for PyTorch/onnxruntime; the zoo's seed-0 init packed to a 3-5-bit
per-channel mix for fq-runtime): latency does not depend on the values.

Run by bench/compare.sh, which installs the Python packages and builds the Rust binaries.
Writes the "Side by side" section of bench/results.md (other sections are kept),
bench/compare.json and its chart, bench/compare.svg (`compare.py --chart [JSON] [--svg OUT]`
redraws the chart of a finished run).

Child modes (run by the parent): --child ort|torch MODEL_FILE ARCH BATCH BUDGET MIN_REPS;
--serve-child ort|torch MODEL_FILE ARCH BATCH [THREADS] (the paired phase's server).
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

MODELS = [("resnet18", "ResNet18"), ("resnet50", "ResNet50"),
          ("deit_tiny_patch16_224", "DeiT-Tiny"), ("tiny_vit_5m_224", "TinyViT-5M")]
BATCHES = [1, 8]
THREADS = 2
HEADING = "## Side by side: fq-runtime, onnxruntime and PyTorch in one run"
FLAGS = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
         "avx512_bf16", "avx512_fp16", "avx_vnni", "avx_vnni_int8", "amx_tile", "amx_int8",
         "amx_bf16", "asimd", "asimddp", "i8mm", "sve"]


def peak_rss_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def time_fn(fn, budget, min_reps):
    """Best and median seconds of fn after one warm-up call, as `bench_side time` times."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < budget and len(times) < 500):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[0], times[len(times) // 2], len(times)


def child(kind, path, arch, batch, budget, min_reps):
    """One onnxruntime or PyTorch measurement in this process; prints one JSON line."""
    t0 = time.perf_counter()
    fn = load_runner(kind, path, arch, batch)
    load_s = time.perf_counter() - t0
    best, median, reps = time_fn(fn, budget, min_reps)
    print(json.dumps({"runtime": kind, "batch": batch, "best_ms": best * 1e3,
                      "median_ms": median * 1e3, "reps": reps, "load_s": load_s,
                      "peak_rss_kb": peak_rss_kb()}))


def load_runner(kind, path, arch, batch, threads=THREADS):
    """Loads an onnxruntime (`ort-*`) or PyTorch session with `threads` threads and returns a
    function running it once on `batch` random images."""
    import numpy as np
    x = np.random.default_rng(11).uniform(-2, 2, (batch, 3, 224, 224)).astype(np.float32)
    if kind.startswith("ort"):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        fn = lambda: sess.run(None, feed)  # noqa: E731
    else:
        import timm
        import torch
        torch.set_num_threads(threads)
        model = timm.create_model(arch, pretrained=False, num_classes=1000).eval()
        model.load_state_dict(torch.load(path))
        xt = torch.from_numpy(x)

        def fn():
            with torch.inference_mode():
                model(xt)
    return fn


def serve_child(kind, path, arch, batch, threads):
    """An onnxruntime or PyTorch session on `threads` threads kept loaded for the paired phase:
    prints {"ready": ...}, then answers each line N on stdin with one JSON line of N runs'
    milliseconds (as `bench_side serve` does for fq-runtime)."""
    fn = load_runner(kind, path, arch, batch, threads)
    for _ in range(2):
        fn()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        ms = []
        for _ in range(int(line)):
            t = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t) * 1e3)
        print(json.dumps({"ms": ms}), flush=True)


def classify_photo(kind, path, arch, photo):
    """Classifies one photo (decode, resize, normalise, batch 1) in this process: the peak-memory
    figure of a Python deployment."""
    import numpy as np
    from PIL import Image
    img = Image.open(photo).convert("RGB").resize((224, 224), Image.BILINEAR)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = ((np.asarray(img, np.float32) / 255 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
    if kind.startswith("ort"):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        logits = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    else:
        import timm
        import torch
        torch.set_num_threads(THREADS)
        model = timm.create_model(arch, pretrained=False, num_classes=1000).eval()
        model.load_state_dict(torch.load(path))
        with torch.inference_mode():
            logits = model(torch.from_numpy(x)).numpy()
    print(json.dumps({"runtime": kind, "top1": int(logits[0].argmax()), "peak_rss_kb": peak_rss_kb()}))


GNU_TIME = "/usr/bin/time"


def failure(code, text):
    """A failed child's exit status and what it said: from its `Error:` line (a Rust binary's
    error and its causes, up to any backtrace that RUST_BACKTRACE adds) or its last lines."""
    lines = [x for x in text.strip().splitlines() if x.strip()]
    start = next((i for i, x in enumerate(lines) if x.startswith("Error:")), None)
    if start is not None:
        end = next((i for i, x in enumerate(lines) if i > start and "backtrace" in x.lower()), len(lines))
        lines = [x.strip() for x in lines[start:end]][:4]
    else:
        lines = lines[-3:]
    return f"exit {code}: {' / '.join(lines)}"


def run_child(cmd, env=None):
    """Runs cmd, returns (its last JSON line, its peak resident kB, error or None).

    The peak comes from GNU time (`%M`, its child's wait4 ru_maxrss): the ru_maxrss this script
    would get from its own wait4 is at least this (large) Python process's, since Linux carries
    the forked address space's high-water mark over exec. Without GNU time: the child's own VmHWM
    from its JSON line, where it prints one."""
    with tempfile.TemporaryFile("w+") as errf, tempfile.NamedTemporaryFile("r") as rssf:
        wrap = [GNU_TIME, "-f", "%M", "-o", rssf.name] if os.access(GNU_TIME, os.X_OK) else []
        p = subprocess.Popen(wrap + cmd, stdout=subprocess.PIPE, stderr=errf, env=env, text=True)
        out = p.stdout.read()
        p.wait()
        errf.seek(0)
        err = errf.read()
        rss_lines = [x for x in rssf.read().split() if x.isdigit()]
    rss = int(rss_lines[-1]) if rss_lines else None
    if p.returncode != 0:
        return None, rss, failure(p.returncode, err or out)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    try:
        res = json.loads(lines[-1])
    except (IndexError, ValueError):
        try:  # one pretty-printed document (fq-classify --json)
            res = json.loads(out)
        except ValueError:
            return None, rss, "no JSON on stdout"
    if rss is None and isinstance(res, dict):
        rss = res.get("peak_rss_kb")
    return res, rss, None


class Server:
    """One runtime kept loaded in its own process (`bench_side serve` or `--serve-child`),
    timing blocks of runs on request."""

    def __init__(self, cmd, env):
        self.error = None
        self.errf = tempfile.TemporaryFile("w+")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errf,
                                  env=env, text=True)

    def _answer(self):
        line = self.p.stdout.readline()
        if not line:
            self.p.wait()
            self.errf.seek(0)
            raise RuntimeError(failure(self.p.returncode, self.errf.read()))
        return json.loads(line)

    def ready(self):
        """Waits for the loaded message; False (with self.error) if the process failed."""
        try:
            return self._answer().get("ready", False)
        except (RuntimeError, ValueError) as e:
            self.error = str(e)
            return False

    def block(self, n):
        """Milliseconds of n runs."""
        self.p.stdin.write(f"{n}\n")
        self.p.stdin.flush()
        return self._answer()["ms"]

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        self.p.wait()
        self.errf.close()


# What a paired block waits after the previous runtime's block: onnxruntime's and OpenMP's
# worker threads spin for a while after a run before they sleep, and would take CPU time from
# the next runtime's block.
SETTLE_S = 0.05
# The ratios the paired phase reports (numerator, denominator; runtime keys of paired_phase).
PAIRED_RATIOS = [("fq-int8", "ort-int8"), ("fq-f32", "ort-f32"), ("fq-int8", "ort-f32"),
                 ("fq-f32", "torch"), ("ort-int8", "ort-f32")]


def threads_label(threads):
    """`1 thread`, `2 threads`: how the tables and the chart name a paired phase's thread count
    (an int, or the string key `compare.json` keeps it under)."""
    return f"{threads} thread{'' if str(threads) == '1' else 's'}"


def paired_phase(servers_for, models, rounds, block_s, threads):
    """Batch 1, every runtime of a model loaded at once in its own long-lived process, their
    blocks of runs (each about block_s seconds) alternated round after round in a rotated
    order: each runtime sees the same stretches of the host, so their medians can be compared.

    servers_for(arch) -> [(key, Server)], every server on `threads` threads (named in the
    progress lines). Returns {arch: {"runtimes": {key: {...}}, "ratios": {"a/b": {...}},
    "errors": {...}}}."""
    out = {}
    for arch, label in models:
        servers = servers_for(arch)
        cell = {"runtimes": {}, "ratios": {}, "errors": {}}
        out[arch] = cell
        live = []
        # A server that failed to load is left out (its error reported); all are closed below.
        for key, srv in servers:
            if srv.ready():
                live.append((key, srv))
            else:
                cell["errors"][key] = srv.error
        try:
            # Each runtime's block length from a probe block: about block_s seconds of runs.
            reps = {}
            for key, srv in live:
                probe = statistics.median(srv.block(3))
                reps[key] = max(3, min(100, round(block_s * 1e3 / max(probe, 1e-3))))
            blocks = {key: [] for key, _ in live}
            for r in range(rounds if live else 0):
                order = live[r % len(live):] + live[:r % len(live)]
                for key, srv in order:
                    time.sleep(SETTLE_S)
                    blocks[key].append(srv.block(reps[key]))
                print(f"paired {label} {threads}t round {r + 1}/{rounds}: " + ", ".join(
                    f"{k} {statistics.median(blocks[k][-1]):.1f}" for k, _ in live), file=sys.stderr)
        except (RuntimeError, ValueError, OSError) as e:
            cell["errors"]["paired"] = str(e)
            blocks = {}
        finally:
            for _, srv in servers:
                srv.close()
        for key, bl in blocks.items():
            runs = [ms for b in bl for ms in b]
            cell["runtimes"][key] = {"median_ms": statistics.median(runs), "best_ms": min(runs),
                                     "runs": len(runs), "block_runs": reps[key],
                                     "block_medians_ms": [statistics.median(b) for b in bl]}
        t = cell["runtimes"]
        for a, b in PAIRED_RATIOS:
            if a in t and b in t:
                per_round = [x / y for x, y in zip(t[a]["block_medians_ms"], t[b]["block_medians_ms"])]
                cell["ratios"][f"{a}/{b}"] = {
                    "median": t[a]["median_ms"] / t[b]["median_ms"],
                    "best": t[a]["best_ms"] / t[b]["best_ms"],
                    "rounds_ahead": sum(x < 1 for x in per_round), "rounds": len(per_round),
                    "round_min": min(per_round), "round_max": max(per_round)}
    return out


def cpu_info():
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "CPU part") and model in ("", "unknown", platform.machine()):
                    model = val.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(val.split())
    except OSError:
        pass
    return {"model": model, "cores": os.cpu_count(), "machine": platform.machine(),
            "flags": [f for f in FLAGS if f in flags]}


def prepare(work, models, fq_bin, quick):
    """Exports every model: fq-runtime packed file, PyTorch state dict, ONNX f32, ONNX int8 QDQ.
    Returns {arch: {"fq", "pt", "ort-f32", "ort-int8": path or None, "errors": {...}, ...}}."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import timm
    import torch
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name, n):
            rng = np.random.default_rng(5)
            self.items = iter([{name: rng.uniform(-2, 2, (1, 3, 224, 224)).astype(np.float32)}
                               for _ in range(n)])

        def get_next(self):
            return next(self.items, None)

    info = {}
    for arch, label in models:
        d = {"label": label, "errors": {}}
        info[arch] = d
        fq = os.path.join(work, f"{arch}.fqm")
        meta, _, err = run_child([fq_bin, "export", "--model", arch, "--out", fq])
        if err:
            d["errors"]["fq"] = err
        else:
            d["fq"], d["fq_meta"] = fq, meta
        torch.manual_seed(0)
        model = timm.create_model(arch, pretrained=False, num_classes=1000).eval()
        d["params"] = sum(p.numel() for p in model.parameters())
        pt = os.path.join(work, f"{arch}.pt")
        torch.save(model.state_dict(), pt)
        d["pt"] = pt
        x = torch.randn(1, 3, 224, 224)
        f32 = os.path.join(work, f"{arch}.onnx")
        try:
            torch.onnx.export(model, (x,), f32, input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, opset_version=17,
                              dynamo=False)
            with torch.no_grad():
                ref = model(x).numpy()
            sess = ort.InferenceSession(f32, providers=["CPUExecutionProvider"])
            diff = float(abs(sess.run(None, {"x": x.numpy()})[0] - ref).max())
            if diff > 1e-3:
                raise RuntimeError(f"onnxruntime differs from PyTorch by {diff}")
            d["ort-f32"], d["ort_f32_max_diff"] = f32, diff
        except Exception as e:  # noqa: BLE001 — a failed export is a '–' in the table, with its reason
            d["errors"]["ort-f32"] = f"export: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            continue
        q = os.path.join(work, f"{arch}.int8.onnx")
        try:
            pre = os.path.join(work, f"{arch}.pre.onnx")
            try:
                quant_pre_process(f32, pre)
            except Exception as e:  # noqa: BLE001 — TinyViT: "Incomplete symbolic shape inference"
                quant_pre_process(f32, pre, skip_symbolic_shape=True)
                d["ort_int8_note"] = f"quant_pre_process without symbolic shape inference ({e})"
            quantize_static(pre, q, Reader("x", 2 if quick else 8), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
            # The operators onnxruntime runs after its graph fusions (QLinearConv, QGemm, ...):
            # which MLAS integer kernels the int8 model reaches.
            opts = ort.SessionOptions()
            opts.optimized_model_filepath = os.path.join(work, f"{arch}.int8.opt.onnx")
            sess = ort.InferenceSession(q, opts, providers=["CPUExecutionProvider"])
            ops = {}
            for node in onnx.load(opts.optimized_model_filepath).graph.node:
                ops[node.op_type] = ops.get(node.op_type, 0) + 1
            d["ort_int8_ops"] = dict(sorted(ops.items(), key=lambda kv: -kv[1]))
            out = sess.run(None, {"x": x.numpy()})[0]
            d["ort_int8_top1_agrees"] = bool(out.argmax() == ref.argmax())
            d["ort-int8"] = q
        except Exception as e:  # noqa: BLE001
            d["errors"]["ort-int8"] = f"quantize: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        print(f"prepared {label}: errors {d['errors'] or 'none'}", file=sys.stderr)
    return info


def fq_isas(fq_bin):
    """The distinct kernel-path pairs FQ_MAX_ISA reaches on this CPU: [(value, paths)], best first."""
    seen, out = set(), []
    for value in ["native", "avx512", "avxvnni", "avx2", "ssse3", "neon", "portable"]:
        env = dict(os.environ, FQ_MAX_ISA=value)
        meta, _, err = run_child([fq_bin, "paths"], env)
        if err or meta is None:
            continue
        key = (meta["f32"], meta["int8"])
        if key not in seen:
            seen.add(key)
            out.append((value, meta))
    return out


def main():
    argv = sys.argv[1:]
    if argv and argv[0] == "--child":
        kind, path, arch, batch, budget, reps = argv[1:7]
        return child(kind, path, arch, int(batch), float(budget), int(reps))
    if argv and argv[0] == "--serve-child":
        kind, path, arch, batch = argv[1:5]
        return serve_child(kind, path, arch, int(batch), int(argv[5]) if len(argv) > 5 else THREADS)
    if argv and argv[0] == "--photo-child":
        return classify_photo(*argv[1:5])
    quick = "--quick" in argv
    opt = lambda name, default: argv[argv.index(name) + 1] if name in argv else default  # noqa: E731
    out_svg = opt("--svg", "bench/compare.svg")
    if argv and argv[0] == "--chart":
        # The chart of a finished run: compare.py --chart [compare.json] [--svg out.svg].
        src = argv[1] if len(argv) > 1 and not argv[1].startswith("--") else "bench/compare.json"
        with open(src) as f:
            res = json.load(f)
        write_atomic(out_svg, chart_svg(res, [m for m in MODELS if m[0] in res["times"]]))
        print(f"wrote {out_svg} from {src}", file=sys.stderr)
        return
    fq_bin, classify_bin = opt("--fq-bin", None), opt("--classify-bin", None)
    results_md, out_json = opt("--out", "bench/results.md"), opt("--json", "bench/compare.json")
    work = os.path.abspath(opt("--work", "target/bench-compare"))
    photo_src = opt("--photo", "runtime/fuzz/seeds/image_preprocess/real-progressive-cat.jpg")
    rounds = int(opt("--rounds", 1 if quick else 3))
    budget = float(opt("--budget", 0.3 if quick else 1.5))
    paired_rounds = int(opt("--paired-rounds", 3 if quick else 20))
    paired_block = float(opt("--paired-block", 0.3))
    paired_list = opt("--paired-threads", str(THREADS) if quick else f"{THREADS},1")
    try:
        paired_threads = [int(t) for t in paired_list.split(",")]
    except ValueError:
        paired_threads = []
    if not paired_threads or min(paired_threads) < 1:
        sys.exit(f"compare.py: --paired-threads {paired_list}: expected thread counts of at least 1, "
                 f"comma-separated (e.g. 2,1)")
    models = MODELS[:1] if quick else MODELS
    os.makedirs(work, exist_ok=True)
    if not fq_bin or not classify_bin:
        sys.exit("compare.py: --fq-bin and --classify-bin are required (bench/compare.sh passes them)")

    import onnxruntime
    import timm
    import torch
    versions = {"python": platform.python_version(), "torch": torch.__version__.split("+")[0],
                "timm": timm.__version__, "onnxruntime": onnxruntime.__version__}
    cpu = cpu_info()
    t_start = time.time()
    load_start = list(os.getloadavg())
    # onnxruntime's quantizer leaves temporary files (*.data, sym_shape_infer_temp.onnx) in the
    # current directory: prepare from the work directory (binaries as absolute paths).
    fq_bin, classify_bin = os.path.abspath(fq_bin), os.path.abspath(classify_bin)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        info = prepare(work, models, fq_bin, quick)
    finally:
        os.chdir(cwd)
    isas = fq_isas(fq_bin)
    print(f"fq kernel paths: {isas}", file=sys.stderr)

    # The runtimes, each a (name, how to run one measurement) pair.
    base_env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS))
    runtimes = []
    for value, meta in isas:
        tag = f"{meta['f32']}/{meta['int8']}"
        # `ssse3` lowers only the integer kernel (the floats stay on the portable loops, which
        # the `portable` level times): its integer path alone.
        for path in ["int8"] if value == "ssse3" else ["int8", "f32"]:
            runtimes.append((f"fq-{path} [{tag}]", ("fq", path, value)))
    runtimes += [("ort-f32", ("ort-f32",)), ("ort-int8", ("ort-int8",)), ("torch", ("torch",))]

    def command(rt, arch, batch):
        d = info[arch]
        kind = rt[0]
        if kind == "fq":
            if "fq" not in d:
                return None, None
            # The portable paths are 5-20x slower: one timed run after the warm-up (the rounds
            # still give several) keeps the whole run within about half an hour.
            min_reps = 1 if rt[2] == "portable" else 2 if batch > 1 else 3
            return ([fq_bin, "time", "--model-file", d["fq"], "--path", rt[1], "--batch", str(batch),
                     "--threads", str(THREADS), "--budget", str(budget), "--min-reps", str(min_reps)],
                    dict(base_env, FQ_MAX_ISA=rt[2]))
        path = d.get("pt") if kind == "torch" else d.get(kind)
        if path is None:
            return None, None
        return ([sys.executable, "-W", "ignore", os.path.abspath(__file__), "--child", kind, path, arch,
                 str(batch), str(budget), "3"], base_env)

    # Rounds, interleaved: (model, batch) cells in turn, and within a cell every runtime, the
    # order rotated each round.
    def report(memory, rounds_done):
        """Writes the JSON and the section from what was measured so far (after every round,
        so an interrupted run still leaves its figures)."""
        table = {}
        for (arch, batch, name), runs in samples.items():
            table.setdefault(arch, {}).setdefault(str(batch), {})[name] = {
                "best_ms": min(x["best_ms"] for x in runs),
                "median_ms": statistics.median(x["median_ms"] for x in runs),
                "rounds": len(runs),
                "peak_rss_kb": max((x["maxrss_kb"] or 0) for x in runs),
                "kernels": runs[0].get("kernels"),
                # Each round's best and the CPUs' handoff just before it (`handoff`).
                "rounds_best_ms": [x["best_ms"] for x in runs],
                "rounds_handoff_ns": [x.get("handoff_ns") for x in runs],
            }
        result = {"cpu": cpu, "threads": THREADS, "versions": versions, "quick": quick,
                  "rounds": rounds_done, "budget_s": budget, "fq_isas": [m for _, m in isas],
                  "models": {a: {k: v for k, v in info[a].items() if k not in ("fq", "pt", "ort-f32", "ort-int8")}
                             for a in info},
                  "times": table, "errors": {f"{a} b{b} {n}": e for (a, b, n), e in errors.items()},
                  "memory_resnet18_photo": memory, "seconds": time.time() - t_start,
                  "paired": paired.get(THREADS, {}), "paired_rounds": paired_rounds, "paired_block_s": paired_block,
                  "paired_other_threads": {str(t): v for t, v in paired.items() if t != THREADS},
              "load_average": {"start": load_start, "end": list(os.getloadavg())}}
        tmp = out_json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, out_json)
        write_section(results_md, markdown(result, info, models, [n for n, _ in runtimes]))
        write_atomic(out_svg, chart_svg(result, models))
        print(f"wrote {out_json}, {out_svg} and the side-by-side section of {results_md}", file=sys.stderr)

    def handoff():
        """The two CPUs' cache-line handoff just now (`bench_side handoff`, two pinned threads),
        in ns; None if it failed. About 20-50 ns where the two vCPUs share a cache, about 190-330
        where they do not."""
        res, _, err = run_child([fq_bin, "handoff"], base_env)
        return None if err or not isinstance(res, dict) else res.get("handoff_ns")

    samples = {}  # (arch, batch, runtime name) -> list of child JSON
    paired = {}  # threads -> paired_phase's result, once it has run
    errors = {}
    for r in range(rounds):
        for arch, label in models:
            for batch in BATCHES:
                order = runtimes[r % len(runtimes):] + runtimes[:r % len(runtimes)]
                for name, rt in order:
                    cmd, env = command(rt, arch, batch)
                    if cmd is None:
                        continue
                    ns = handoff()
                    res, rss, err = run_child(cmd, env)
                    key = (arch, batch, name)
                    if err:
                        errors[key] = err
                        print(f"round {r} {label} b{batch} {name}: {err}", file=sys.stderr)
                        continue
                    res["maxrss_kb"] = rss
                    res["handoff_ns"] = ns
                    samples.setdefault(key, []).append(res)
                    print(f"round {r} {label} b{batch} {name}: {res['best_ms']:.1f} ms"
                          + (f" (handoff {ns:.0f} ns)" if ns else ""), file=sys.stderr)
        report([], r + 1)

    # The paired phase: batch 1, the CPU's own fq paths and the other runtimes each loaded once,
    # their blocks alternated (see paired_phase).
    def servers_for(arch, threads):
        d, out = info[arch], []
        env = dict(base_env, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        if "fq" in d and isas:
            value = isas[0][0]  # the CPU's own kernel paths
            for path in ["int8", "f32"]:
                out.append((f"fq-{path}", Server(
                    [fq_bin, "serve", "--model-file", d["fq"], "--path", path, "--batch", "1",
                     "--threads", str(threads)], dict(env, FQ_MAX_ISA=value))))
        for kind, key in [("ort-f32", "ort-f32"), ("ort-int8", "ort-int8"), ("torch", "pt")]:
            if d.get(key):
                out.append((kind, Server([sys.executable, "-W", "ignore", os.path.abspath(__file__),
                                          "--serve-child", kind, d[key], arch, "1", str(threads)], env)))
        return out

    for threads in paired_threads if paired_rounds > 0 else []:
        paired[threads] = paired_phase(lambda arch: servers_for(arch, threads), models, paired_rounds,
                                       paired_block, threads)
        report([], rounds)

    # Peak memory of classifying one photo with ResNet18 at batch 1, each runtime as deployed.
    photo = os.path.join(work, "photo.jpg")
    with open(photo_src, "rb") as f:
        data = f.read()
    # The fuzz seed has one leading mutation byte before the JPEG's FF D8 marker.
    with open(photo, "wb") as f:
        f.write(data[data.index(b"\xff\xd8"):])
    memory = []
    r18 = info.get("resnet18", {})
    if "fq" in r18:
        for act in ["f32", "int8"]:
            res, rss, err = run_child([classify_bin, "--model", r18["fq"], "--backend", "cpu", "-q",
                                       "--json", "--activations", act, photo], base_env)
            memory.append({"runtime": f"fq-classify (CLI, {act})", "peak_rss_kb": rss, "error": err})
    for kind, key in [("ort-f32", "ort-f32"), ("ort-int8", "ort-int8"), ("torch", "pt")]:
        if r18.get(key):
            res, rss, err = run_child([sys.executable, "-W", "ignore", os.path.abspath(__file__),
                                       "--photo-child", kind, r18[key], "resnet18", photo], base_env)
            memory.append({"runtime": f"Python + {kind}", "peak_rss_kb": rss, "error": err})
    report(memory, rounds)


def model_columns(first, models):
    """The header and rule of a table with one column per model."""
    return ["| " + first + " | " + " | ".join(label for _, label in models) + " |",
            "|---|" + "---|" * len(models)]


def markdown(res, info, models, names):
    cpu = res["cpu"]
    fq_names = [n for n in names if n.startswith("fq-")]
    best_fq = {p: next((n for n in fq_names if n.startswith(f"fq-{p}")), None) for p in ["int8", "f32"]}
    v = res["versions"]
    md = [HEADING, ""]
    md.append(f"CPU: **{cpu['model']}**, {cpu['cores']} cores ({cpu['machine']}); flags: "
              f"{', '.join(cpu['flags']) or 'none of interest'}. {res['threads']} threads everywhere "
              f"(RAYON_NUM_THREADS, intra_op_num_threads, torch.set_num_threads). PyTorch {v['torch']}, "
              f"timm {v['timm']}, onnxruntime {v['onnxruntime']}, Python {v['python']}. "
              f"{res['rounds']} interleaved round(s), {res['budget_s']} s per measurement"
              f"{' (--quick)' if res['quick'] else ''}; each measurement its own process. "
              f"`bench/compare.sh`; raw figures in `bench/compare.json`." +
              (" Load average (1/5/15 min) at the start {} and the end {}: other jobs shared the CPU "
               "when it exceeds the thread count.".format(
                   "/".join(f"{x:.1f}" for x in res["load_average"]["start"]),
                   "/".join(f"{x:.1f}" for x in res["load_average"]["end"]))
               if "load_average" in res else ""))
    md.append("")
    md.append("fq-runtime: packed 3–5-bit per-channel weights (mean ≈ 4 bits, random), `fq-int8` = the "
              "integer path with static activation scales calibrated on 4 random images, `fq-f32` = codes "
              "unpacked to f32; kernel paths in brackets (f32/int8), the lower ones forced with `FQ_MAX_ISA`. "
              "onnxruntime int8: `quantize_static`, QDQ, per-channel s8 weights, u8 activations "
              "(`quant_pre_process` first; 8 random calibration images, 2 with --quick). PyTorch: timm eager, "
              "`inference_mode`. Random weights, random inputs: latency does not depend on the values.")
    md.append("")
    md.append("![Latency per batch: the best of the rounds, then the paired blocks' medians; each group on its own scale](compare.svg)")
    md.append("")
    for batch in BATCHES:
        md.append(f"### Batch {batch}: best ms per batch (median of the rounds' medians)")
        md.append("")
        md.extend(model_columns("runtime", models))
        for n in names:
            cells = []
            for arch, _ in models:
                t = res["times"].get(arch, {}).get(str(batch), {}).get(n)
                err = res["errors"].get(f"{arch} b{batch} {n}") or info[arch]["errors"].get(
                    n if not n.startswith("fq") else "fq")
                cells.append(f"{t['best_ms']:.1f} ({t['median_ms']:.1f})" if t else
                             f"– ({err})" if err else "–")
            md.append(f"| {n} | " + " | ".join(cells) + " |")
        md.append("")
        ratios = [("fq-f32 ÷ ort-f32", best_fq["f32"], "ort-f32"),
                  ("fq-int8 ÷ ort-int8", best_fq["int8"], "ort-int8"),
                  ("fq-int8 ÷ ort-f32", best_fq["int8"], "ort-f32"),
                  ("fq-f32 ÷ torch", best_fq["f32"], "torch"),
                  ("fq-int8 ÷ torch", best_fq["int8"], "torch"),
                  ("ort-int8 ÷ ort-f32", "ort-int8", "ort-f32"),
                  ("fq-int8 ÷ fq-f32", best_fq["int8"], best_fq["f32"])]
        for n in fq_names:
            if n not in best_fq.values():
                p = "int8" if n.startswith("fq-int8") else "f32"
                ratios.append((f"{n} ÷ {best_fq[p]}", n, best_fq[p]))
        md.append(f"Ratios at batch {batch} (time ÷ time, best figures; below 1 = the first is faster):")
        md.append("")
        md.extend(model_columns("ratio", models))
        for label, a, b in ratios:
            cells = []
            for arch, _ in models:
                t = res["times"].get(arch, {}).get(str(batch), {})
                cells.append(f"{t[a]['best_ms'] / t[b]['best_ms']:.2f}" if a in t and b in t else "–")
            md.append(f"| {label} | " + " | ".join(cells) + " |")
        md.append("")
    md.extend(paired_md(res, models, best_fq))
    md.extend(placement(res, models, best_fq))
    md.append("### Peak resident memory")
    md.append("")
    md.append("Classifying one photo (JPEG decode, resize, batch 1) with ResNet18, each runtime as deployed "
              "(fq-runtime: the `fq-classify` CLI; the others: a Python process with numpy and PIL); "
              "`ru_maxrss` of the process (GNU time's `%M`).")
    md.append("")
    md.append("| runtime | peak RSS (MiB) |")
    md.append("|---|---|")
    for m in res["memory_resnet18_photo"]:
        rss = m["peak_rss_kb"]
        md.append(f"| {m['runtime']} | {'–' if rss is None else f'{rss / 1024:.0f}'}"
                  f"{' (failed: ' + m['error'] + ')' if m['error'] else ''} |")
    md.append("")
    md.append("Peak RSS of the timing processes (MiB, batch 1 / batch 8; includes model loading and, "
              "for fq-int8, calibration):")
    md.append("")
    md.extend(model_columns("runtime", models))
    for n in names:
        cells = []
        for arch, _ in models:
            t = res["times"].get(arch, {})
            a, b = t.get("1", {}).get(n), t.get("8", {}).get(n)
            cells.append(" / ".join(f"{x['peak_rss_kb'] / 1024:.0f}" if x else "–" for x in (a, b)))
        md.append(f"| {n} | " + " | ".join(cells) + " |")
    md.append("")
    for a, label in models:
        if info[a].get("ort_int8_note"):
            md.append(f"{label}, onnxruntime int8: {info[a]['ort_int8_note']}.")
            md.append("")
    for a, label in models:
        for what, err in info[a]["errors"].items():
            md.append(f"{label}, {what}: {err}.")
            md.append("")
    ops = {label: info[a].get("ort_int8_ops") for a, label in models if info[a].get("ort_int8_ops")}
    if ops:
        md.append("onnxruntime int8 after its graph optimisations (which MLAS kernels it reaches): " + "; ".join(
            f"{label}: " + ", ".join(f"{k} {n}" for k, n in list(o.items())[:6]) for label, o in ops.items()) + ".")
        md.append("")
    return "\n".join(md)


def paired_md(res, models, best_fq):
    """The paired phase's tables (batch 1): at the run's thread count, then at each other one
    (`--paired-threads`); empty if it did not run."""
    paired, others = res.get("paired") or {}, res.get("paired_other_threads") or {}
    if not paired and not any(others.values()):
        return []
    md = ["### Paired blocks, batch 1: medians in the same stretches of the host", "",
          f"Every runtime of a model loaded once in its own process (`bench_side serve`, "
          f"`compare.py --serve-child`), then {res['paired_rounds']} rounds of one block of runs each "
          f"(about {res['paired_block_s']} s a block, the order rotated every round, {SETTLE_S * 1e3:.0f} ms "
          f"between blocks for the previous runtime's threads to go idle). A shared host's two vCPUs change "
          f"speed for seconds at a time, which moves a 1-second measurement in a process of its own "
          f"(above); blocks side by side see the same stretches, so their medians compare." +
          (" Median ms of all runs (fastest):" if paired else ""), ""]
    if paired:
        md.extend(paired_tables(paired, models, best_fq))
    for threads, other in sorted(others.items()):
        if not other:
            continue
        md.extend([f"### Paired blocks, batch 1, {threads_label(threads)} each", "",
                   f"The same phase again with every runtime on {threads_label(threads)} (`--paired-threads`)" +
                   (": with one, no runtime's speed depends on how its threads share a layer or on "
                    "where the host puts the two vCPUs, so the ratios are the kernels' and the "
                    "executors' alone" if threads == "1" else "") + ". Median ms of all runs (fastest):", ""])
        md.extend(paired_tables(other, models, best_fq))
    return md


def paired_tables(paired, models, best_fq):
    """One paired phase's medians table and its ratios."""
    keys = ["fq-int8", "fq-f32", "ort-int8", "ort-f32", "torch"]
    names = {"fq-int8": best_fq["int8"] or "fq-int8", "fq-f32": best_fq["f32"] or "fq-f32"}
    md = model_columns("runtime", models)
    for k in keys:
        cells = []
        for arch, _ in models:
            cell = paired.get(arch, {})
            t = cell.get("runtimes", {}).get(k)
            err = cell.get("errors", {}).get(k) or cell.get("errors", {}).get("paired")
            cells.append(f"{t['median_ms']:.1f} ({t['best_ms']:.1f})" if t else f"– ({err})" if err else "–")
        md.append(f"| {names.get(k, k)} | " + " | ".join(cells) + " |")
    md.append("")
    md.append("Ratios of the medians (of the fastest runs in brackets); then in how many rounds the "
              "first's block median was below the second's, and the range of the rounds' ratios:")
    md.append("")
    md.extend(model_columns("ratio", models))
    for a, b in PAIRED_RATIOS:
        cells = []
        for arch, _ in models:
            r = paired.get(arch, {}).get("ratios", {}).get(f"{a}/{b}")
            cells.append(f"**{r['median']:.2f}** ({r['best']:.2f}); {r['rounds_ahead']}/{r['rounds']}, "
                         f"{r['round_min']:.2f}–{r['round_max']:.2f}" if r else "–")
        md.append(f"| {a} ÷ {b} | " + " | ".join(cells) + " |")
    md.append("")
    return md


def placement(res, models, best_fq):
    """The host's placement of the two vCPUs around each batch-1 measurement of the best fq
    paths and onnxruntime: each round's best ms with the cache-line handoff measured just before
    it (`bench_side handoff`), so a ratio can be read against the placement its two figures had."""
    rows = [n for n in (best_fq["int8"], "ort-int8", best_fq["f32"], "ort-f32") if n]
    cells = {n: [] for n in rows}
    seen = []
    for n in rows:
        for arch, _ in models:
            t = res["times"].get(arch, {}).get("1", {}).get(n)
            if not t or "rounds_handoff_ns" not in t:
                cells[n].append("–")
                continue
            pairs = list(zip(t["rounds_best_ms"], t["rounds_handoff_ns"]))
            seen += [h for _, h in pairs if h]
            cells[n].append(", ".join(f"{ms:.2f} @ {h:.0f}" if h else f"{ms:.2f}" for ms, h in pairs))
    if not seen:
        return []
    md = ["### The host's placement of the two vCPUs (batch 1)", "",
          f"Before every measurement the run times how long a cache line written by one thread takes to "
          f"reach the other (`bench_side handoff`, two pinned threads): {min(seen):.0f}–{max(seen):.0f} ns "
          f"in this run. Tens of ns: the two vCPUs share a cache; several times that (190–330 ns on the "
          f"Zen 5 EPYC of stops 57–58): the host has put them on cores that share none (other chiplets), which "
          f"a shared host does for minutes at a time, and 2-thread figures move with it (`bench/results.md`, "
          f"\"Update, stop 57\" and \"stop 58\"). Each round's best ms @ the handoff ns just before it:", ""]
    md.extend(model_columns("runtime", models))
    for n in rows:
        md.append(f"| {n} | " + " | ".join(cells[n]) + " |")
    md.append("")
    return md


CHART_RUNTIMES = [("fq-int8", "#1b7837"), ("fq-f32", "#7fbf7b"), ("ort-int8", "#2166ac"),
                  ("ort-f32", "#92c5de"), ("torch", "#b2182b")]


def chart_svg(res, models):
    """The batch-1 and batch-8 latencies as an SVG bar chart, one group of bars per model and
    batch (the rounds' best figures), then per model the paired phase's medians (at the run's
    thread count, then at each other one, `--paired-threads`), each group on
    its own scale (its slowest runtime the full width), the CPU model and flags in the title:
    what `bench/results.md`'s tables say, at a glance."""
    # The CPU's own kernel paths (no FQ_MAX_ISA): the first fq-int8 and fq-f32 runtimes whose
    # measurements say so.
    cells = [c for m in res["times"].values() for c in m.values()]
    native = lambda p: next((n for c in cells for n, r in c.items()  # noqa: E731
                             if n.startswith(f"fq-{p} ") and (r.get("kernels") or {}).get("fq_max_isa") == "native"),
                            None)
    label_of = {"fq-int8": native("int8"), "fq-f32": native("f32"),
                "ort-int8": "ort-int8", "ort-f32": "ort-f32", "torch": "torch"}
    esc = lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # noqa: E731
    bar, gap, left, width = 14, 10, 150, 430
    # One group per (model, batch) of the rounds' best figures, then one per model of each paired
    # phase's medians (batch 1), when it ran.
    rows = [(f"{label}, batch {batch}, best",
             [(name, colour, res["times"][arch][str(batch)].get(label_of[name] or "", {}).get("best_ms"))
              for name, colour in CHART_RUNTIMES])
            for batch in BATCHES for arch, label in models if str(batch) in res["times"].get(arch, {})]
    phases = [("", res.get("paired") or {})] + [
        (f", {threads_label(t)} each", p)
        for t, p in sorted((res.get("paired_other_threads") or {}).items())]
    rows += [(f"{label}, batch 1, median of the paired blocks{suffix}",
              [(name, colour, paired[arch]["runtimes"].get(name, {}).get("median_ms"))
               for name, colour in CHART_RUNTIMES])
             for suffix, paired in phases
             for arch, label in models if paired.get(arch, {}).get("runtimes")]
    height = 70 + len(rows) * (len(CHART_RUNTIMES) * bar + gap + 18) + 30
    cpu = res["cpu"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="18" font-size="14" font-weight="bold">Latency per batch, ms, '
           f'{threads_label(res["threads"])} unless a group says otherwise (shorter is faster)</text>',
           f'<text x="10" y="34">{esc(cpu["model"])}, {cpu["cores"]} cores; '
           f'{esc(", ".join(cpu["flags"]))}</text>']
    x = 10
    for name, colour in CHART_RUNTIMES:
        shown = label_of[name] or name
        out.append(f'<rect x="{x}" y="44" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{x + 14}" y="53">{esc(shown)}</text>')
        x += 14 + 6.2 * len(shown) + 14
    y = 70
    for title, figures in rows:
        most = max((ms for _, _, ms in figures if ms), default=0) or 1
        out.append(f'<text x="10" y="{y + 11}" font-weight="bold">{esc(title)}</text>')
        y += 16
        for name, colour, ms in figures:
            if ms:
                w = max(1, round(width * ms / most))
                out.append(f'<rect x="{left}" y="{y}" width="{w}" height="{bar - 2}" fill="{colour}"/>'
                           f'<text x="{left + w + 4}" y="{y + bar - 4}">{ms:.2f} ms</text>')
            out.append(f'<text x="{left - 6}" y="{y + bar - 4}" text-anchor="end">{esc(name)}</text>')
            y += bar
        y += gap
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_atomic(path, text):
    """`text` to `path` through a temporary file in the same directory and a rename."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".compare.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_section(path, text):
    """Replaces this script's section of path (a '## ' heading and what follows up to the next
    '# '/'## ' heading), keeping the others; appends it when absent. Atomic (rename)."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    blocks, cur = [], (None, [])
    for line in old.splitlines():
        if line.startswith("# ") or line.startswith("## "):
            blocks.append(cur)
            cur = (line.rstrip(), [])
        cur[1].append(line)
    blocks.append(cur)
    parts, inserted = [], False
    for heading, lines in blocks:
        body = "\n".join(lines).strip()
        if heading == HEADING:
            if not inserted:
                parts.append(text.strip())
                inserted = True
        elif body:
            parts.append(body)
    if not inserted:
        parts.append(text.strip())
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".results.")
    with os.fdopen(fd, "w") as f:
        f.write("\n\n".join(parts) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
