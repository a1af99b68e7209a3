"""The bundled draft without torch: plain numpy against ONNX Runtime, measured in one run.

Both engines run the same float32 forward of the bundled draft (a 4-layer Llama) over one
window of random token ids, with logits at every position (a surprise score needs them all):

- **numpy**: crossprefill's own engine (`crossprefill_cli.models.numpy_draft`): the
  weights from `safetensors.numpy`, blocks of 256 rows, causal attention one key head
  at a time, BLAS on one thread; its blocks in turn, and side by side on 2 threads;
- **onnxruntime**: the same arithmetic built as an ONNX graph with `onnx.helper`
  (opset 17, the weights as initializers; input the token ids, int64 [N]; output the
  logits, [N, vocab]; N free), run on the CPU execution provider with all graph
  optimizations (ORT_ENABLE_ALL, the default), with the default thread count and with
  `intra_op_num_threads=2`.

Both take q, k and v as one matmul and gate and up as another (the same weights,
concatenated at load), so the comparison is of engines, not of layouts.

Needs `pip install onnx onnxruntime` (neither is a dependency of crossprefill).

One call per engine and size comes first: the run fails unless every engine's logits
match numpy's within float32 tolerance, and its time is reported as the first call.
Then `--rounds` rounds, each of them all of:

- one forward of `--tokens` and of `--small-tokens` ids per engine, each after a pause
  that lets the previous engine's idle threads stop spinning;
- whole `python -c "import ..."` processes, timed from outside: the interpreter alone,
  numpy's imports, ORT's, ORT's with what building the graph needs (onnx, safetensors);
- in-process: loading the weights, numpy's matrices, building and serialising the
  graph, an InferenceSession from those bytes; and, in a fresh process that has
  imported onnxruntime, reading the .onnx file and its first InferenceSession.

Cells are medians over the rounds (forwards also show the spread: a shared machine's
bursts of load slow numpy's two OpenBLAS threads most). The verdict adds up a cold start
of `--windows` windows of `--tokens` per engine: imports, weights or session, and the
windows at the median forward time.

    python -m bench.engines --tokens 1024 --small-tokens 256 --rounds 9

Other processes on the machine blur every number alike: the rounds are interleaved.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

from crossprefill_cli.models.numpy_llama import (KeyValueCache, Llama, LlamaShape, Runner,
                                                 side_by_side)
from crossprefill_cli.models.threads import one_blas_thread

DRAFT = Path(__file__).resolve().parents[1] / "crossprefill_cli" / "drafts" / "builtin"
SEED = 20261202
OPSET = 17
TOLERANCE = 1e-3  # max abs logit difference: float32 rounding, summed in another order
QUIET_SECONDS = 0.25
NUMPY_IMPORTS = "import numpy, safetensors.numpy"
ORT_IMPORTS = "import onnxruntime"
ORT_BUILD_IMPORTS = "import onnxruntime, onnx, safetensors.numpy"
IMPORTS = ["pass", NUMPY_IMPORTS, ORT_IMPORTS, ORT_BUILD_IMPORTS]  # "pass": the interpreter alone
LOAD_WEIGHTS = "load weights (safetensors.numpy, config.json)"
NUMPY_MATRICES = "numpy: transpose and concatenate the matrices"
BUILD_GRAPH = "ORT: build, check and serialise the graph"
SESSION = "ORT: InferenceSession from bytes"
FIRST_SESSION_NAME = "ORT: read .onnx file + first InferenceSession of a process"
# ORT's default session options: all graph optimizations, the default thread count
FIRST_SESSION = ("import sys, time, onnxruntime\n"
                 "started = time.perf_counter()\n"
                 "graph = open(sys.argv[1], 'rb').read()\n"
                 "onnxruntime.InferenceSession(graph, providers=['CPUExecutionProvider'])\n"
                 "print(time.perf_counter() - started)")


def load_draft_weights() -> tuple[dict, dict[str, np.ndarray]]:
    config = json.loads((DRAFT / "config.json").read_text())
    return config, load_file(DRAFT / "model.safetensors")


def numpy_engine(config: dict, weights: dict[str, np.ndarray], run: Runner | None = None):
    """crossprefill's numpy engine (`models.numpy_draft`) as token ids [N] -> logits [N,
    vocab], its blocks run by `run` (in turn by default), BLAS on one thread as there."""
    model = Llama(LlamaShape.of(config), weights)

    def forward(ids: np.ndarray) -> np.ndarray:
        with one_blas_thread():
            cache = KeyValueCache(model.shape, len(ids))
            return model.logits(model.forward(ids.tolist(), cache, run=run))

    return forward


class GraphBuilder:
    """Nodes and initializers of an ONNX graph, each output named after its node."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}

    def constant(self, name: str, value) -> str:
        self.initializers[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def ints(self, *values: int) -> str:
        """An int64 vector (shapes, axes, slice bounds), stored once however often used."""
        name = "ints_" + "_".join(map(str, values))
        if name not in self.initializers:
            self.constant(name, np.array(values, dtype=np.int64))
        return name

    def op(self, op_type: str, *inputs: str, **attributes) -> str:
        output = f"{op_type}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output


def onnx_draft(config: dict, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The same forward as `NumpyDraft`, as an ONNX graph: ids int64 [N] to logits [N, vocab]."""
    heads, head_dim = config["num_attention_heads"], config["head_dim"]
    hidden, intermediate, half = config["hidden_size"], config["intermediate_size"], head_dim // 2
    g = GraphBuilder()
    f32 = np.float32
    embed = g.constant("embed", weights["model.embed_tokens.weight"])
    # the numpy engine's own fused matrices and rotary frequencies: the same arithmetic
    model = Llama(LlamaShape.of(config), weights)
    inv_freq = g.constant("inv_freq", model.inverse_frequencies[None, :])
    eps, two = g.constant("eps", f32(config["rms_norm_eps"])), g.constant("two", f32(2))
    scale = g.constant("scale", f32(head_dim ** -0.5))
    minus_inf, zero = g.constant("minus_inf", f32(-np.inf)), g.constant("zero", f32(0))

    def last_axis_slice(t: str, start: int, end: int) -> str:
        return g.op("Slice", t, g.ints(start), g.ints(end), g.ints(-1))

    def rms_norm(x: str, weight_name: str) -> str:
        # Pow, ReduceMean, Add, Sqrt, Div, Mul: the pattern ORT fuses into one RMSNorm kernel
        mean_square = g.op("ReduceMean", g.op("Pow", x, two), axes=[-1], keepdims=1)
        normed = g.op("Div", x, g.op("Sqrt", g.op("Add", mean_square, eps)))
        return g.op("Mul", normed, g.constant(weight_name, weights[weight_name]))

    def rope(t: str) -> str:  # HF Llama's rotate-half
        rotated = g.op("Concat", g.op("Neg", last_axis_slice(t, half, head_dim)),
                       last_axis_slice(t, 0, half), axis=-1)
        return g.op("Add", g.op("Mul", t, cos), g.op("Mul", rotated, sin))

    positions = g.op("Range", g.constant("first_position", np.int64(0)),
                     g.op("Squeeze", g.op("Shape", "ids")), g.constant("step", np.int64(1)))
    float_positions = g.op("Cast", positions, to=TensorProto.FLOAT)
    freqs = g.op("Mul", g.op("Unsqueeze", float_positions, g.ints(1)), inv_freq)
    angles = g.op("Concat", freqs, freqs, axis=-1)
    cos, sin = g.op("Cos", angles), g.op("Sin", angles)
    is_future = g.op("Greater", g.op("Unsqueeze", positions, g.ints(0)),
                     g.op("Unsqueeze", positions, g.ints(1)))
    future = g.op("Where", is_future, minus_inf, zero)

    picks = [g.constant(f"pick_{n}", np.int64(n)) for n in range(3)]  # q, k, v out of qkv
    x = g.op("Gather", embed, "ids", axis=0)
    for i in range(config["num_hidden_layers"]):
        layer = model.layers[i]
        qkv = g.op("MatMul", rms_norm(x, f"model.layers.{i}.input_layernorm.weight"),
                   g.constant(f"qkv_{i}", layer.qkv))
        qkv = g.op("Reshape", qkv, g.ints(0, 3, heads, head_dim))
        qkv = g.op("Transpose", qkv, perm=[1, 2, 0, 3])
        q, k, v = (g.op("Gather", qkv, pick, axis=0) for pick in picks)
        scores = g.op("MatMul", g.op("Mul", rope(q), scale),
                      g.op("Transpose", rope(k), perm=[0, 2, 1]))
        probabilities = g.op("Softmax", g.op("Add", scores, future), axis=-1)
        context = g.op("Transpose", g.op("MatMul", probabilities, v), perm=[1, 0, 2])
        attention = g.op("MatMul", g.op("Reshape", context, g.ints(0, hidden)),
                         g.constant(f"o_{i}", layer.output))
        x = g.op("Add", x, attention)
        gate_up = g.op("MatMul", rms_norm(x, f"model.layers.{i}.post_attention_layernorm.weight"),
                       g.constant(f"gate_up_{i}", layer.gate_up))
        gate = last_axis_slice(gate_up, 0, intermediate)
        up = last_axis_slice(gate_up, intermediate, 2 * intermediate)
        activated = g.op("Mul", g.op("Mul", gate, g.op("Sigmoid", gate)), up)
        x = g.op("Add", x, g.op("MatMul", activated, g.constant(f"down_{i}", layer.down)))
    # the tied output head: Gemm reads the embedding transposed, no second copy of it
    logits = g.op("Gemm", rms_norm(x, "model.norm.weight"), embed, transB=1)

    graph = helper.make_graph(
        g.nodes, "draft",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["tokens"])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT,
                                       ["tokens", config["vocab_size"]])],
        list(g.initializers.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def ort_session(graph: bytes, threads: int = 0) -> ort.InferenceSession:
    """A CPU session with all graph optimizations; `threads` 0 is ORT's default count."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def ort_forward(session: ort.InferenceSession):
    return lambda ids: session.run(None, {"ids": ids})[0]


def seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def forward_seconds(forward, ids: np.ndarray) -> tuple[np.ndarray, float]:
    """`forward(ids)` and its time, after a pause: the other engine's idle threads spin a
    while after its call (OpenBLAS's up to ~0.1 s) and would share the cores with this one."""
    time.sleep(QUIET_SECONDS)
    started = time.perf_counter()
    logits = forward(ids)
    return logits, time.perf_counter() - started


def process_seconds(code: str) -> float:
    """Wall time of a whole `python -c code` process, from outside."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024, help="tokens in a window")
    parser.add_argument("--small-tokens", type=int, default=256, help="tokens in a small window")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--windows", type=int, default=4,
                        help="windows in the verdict's cold start")
    args = parser.parse_args()
    sizes = [args.tokens, args.small_tokens]

    config, weights = load_draft_weights()
    graph = onnx_draft(config, weights).SerializeToString()
    engines = {
        "numpy": numpy_engine(config, weights),
        "numpy, blocks on 2 threads": numpy_engine(
            config, weights, side_by_side(ThreadPoolExecutor(max_workers=2))),
        "onnxruntime, 1 thread": ort_forward(ort_session(graph, threads=1)),
        "onnxruntime, 2 threads": ort_forward(ort_session(graph, threads=2)),
    }
    rng = np.random.default_rng(SEED)
    ids = {size: rng.integers(0, config["vocab_size"], size, dtype=np.int64) for size in sizes}

    # the first call per engine and size: the correctness check, and its time
    first_call, differences, largest_logit = {}, {}, 0.0
    for size in sizes:
        logits = {}
        for name, forward in engines.items():
            logits[name], first_call[(name, size)] = forward_seconds(forward, ids[size])
            differences[(name, size)] = float(np.abs(logits[name] - logits["numpy"]).max())
        largest_logit = max(largest_logit, float(np.abs(logits["numpy"]).max()))
    worst = max(differences.values())
    print(f"max abs logit difference from numpy: {worst:.2e} (tolerance {TOLERANCE:g}; "
          f"|logits| up to {largest_logit:.1f})")
    if worst > TOLERANCE:
        raise SystemExit(f"the engines disagree: {differences}")

    times: dict = {}
    with tempfile.NamedTemporaryFile(suffix=".onnx") as graph_file:
        graph_file.write(graph)
        graph_file.flush()
        for _ in range(args.rounds):
            for size in sizes:
                for name, forward in engines.items():
                    _, elapsed = forward_seconds(forward, ids[size])
                    times.setdefault((name, size), []).append(elapsed)
            for code in IMPORTS:
                times.setdefault(code, []).append(process_seconds(code))
            loaded = {}
            steps = {
                LOAD_WEIGHTS: lambda: loaded.update(weights=load_draft_weights()[1]),
                NUMPY_MATRICES: lambda: numpy_engine(config, loaded["weights"]),
                BUILD_GRAPH: lambda: loaded.update(
                    graph=onnx_draft(config, loaded["weights"]).SerializeToString()),
                SESSION: lambda: ort_session(loaded["graph"]),
            }
            for step_name, step in steps.items():
                times.setdefault(step_name, []).append(seconds(step))
            first_session = subprocess.run([sys.executable, "-c", FIRST_SESSION, graph_file.name],
                                           check=True, capture_output=True, text=True).stdout
            times.setdefault(FIRST_SESSION_NAME, []).append(float(first_session))
    median = {key: statistics.median(values) for key, values in times.items()}

    print(f"\nnumpy {np.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, "
          f"safetensors {version('safetensors')}; {os.cpu_count()} cores; graph "
          f"{len(graph) / 2**20:.1f} MiB, opset {OPSET}; {args.rounds} interleaved rounds\n")
    print("| engine | tokens | ms, median | ms, min-max | ms, first call |")
    print("|---|---:|---:|---:|---:|")
    for size in sizes:
        for name in engines:
            runs = times[(name, size)]
            print(f"| {name} | {size:,} | {median[(name, size)] * 1e3:.0f} | "
                  f"{min(runs) * 1e3:.0f}-{max(runs) * 1e3:.0f} | "
                  f"{first_call[(name, size)] * 1e3:.0f} |")
    print("\n| cold cost | ms, median |\n|---|---:|")
    for code in IMPORTS:
        print(f"| process: `python -c \"{code}\"` | {median[code] * 1e3:.0f} |")
    for step_name in (LOAD_WEIGHTS, NUMPY_MATRICES, BUILD_GRAPH, SESSION, FIRST_SESSION_NAME):
        print(f"| {step_name} | {median[step_name] * 1e3:.0f} |")

    # a cold start: imports, weights or session, then the windows at the median forward time
    ort_name = min((n for n in engines if n.startswith("onnxruntime")),
                   key=lambda n: median[(n, args.tokens)])
    numpy_name = min((n for n in engines if n.startswith("numpy")),
                     key=lambda n: median[(n, args.tokens)])

    def windows(name: str) -> float:
        return args.windows * median[(name, args.tokens)]

    cold = {
        numpy_name: median[NUMPY_IMPORTS] + median[LOAD_WEIGHTS] + median[NUMPY_MATRICES]
        + windows(numpy_name),
        "ORT, prebuilt .onnx file": median[ORT_IMPORTS] + median[FIRST_SESSION_NAME]
        + windows(ort_name),
        "ORT, graph built at start": median[ORT_BUILD_IMPORTS] + median[LOAD_WEIGHTS]
        + median[BUILD_GRAPH] + median[FIRST_SESSION_NAME] + windows(ort_name),
    }
    print(f"\n| cold start, {args.windows} windows of {args.tokens:,} tokens | s |\n|---|---:|")
    for name, total in cold.items():
        print(f"| {name} | {total:.2f} |")

    def ratio(size: int, pick) -> float:
        return pick(times[(ort_name, size)]) / pick(times[(numpy_name, size)])

    fastest = min(cold, key=cold.get)
    print(f"\nVerdict: {ort_name} runs a window of {args.tokens:,} tokens in "
          f"{ratio(args.tokens, statistics.median):.2f}x the time of {numpy_name} at the median "
          f"({ratio(args.tokens, min):.2f}x best against best), and one of "
          f"{args.small_tokens:,} in {ratio(args.small_tokens, statistics.median):.2f}x "
          f"({ratio(args.small_tokens, min):.2f}x). `import onnxruntime` costs "
          f"{(median[ORT_IMPORTS] - median[NUMPY_IMPORTS]) * 1e3:+.0f} ms against numpy's and "
          f"safetensors' imports, its first session {median[FIRST_SESSION_NAME] * 1e3:.0f} ms "
          f"against "
          f"{(median[LOAD_WEIGHTS] + median[NUMPY_MATRICES]) * 1e3:.0f} ms for numpy's weights; "
          f"building the graph at start adds `import onnx` "
          f"({(median[ORT_BUILD_IMPORTS] - median[ORT_IMPORTS]) * 1e3:+.0f} ms) and "
          f"{median[BUILD_GRAPH] * 1e3:.0f} ms. A cold start of {args.windows} windows is fastest "
          f"with {fastest}: {cold[fastest]:.2f} s, against "
          + ", ".join(f"{t:.2f} s for {n}" for n, t in cold.items() if n != fastest) + ".")


if __name__ == "__main__":
    main()
