#!/usr/bin/env python3
"""Extract compact kernel tables from NVIDIA's aiconfigurator-core package.

Writes reference/kernels/<gpu>/trtllm-<version>/{gemm,context_attention,generation_attention,
comm,moe,context_mla,generation_mla}.csv, a PROVENANCE.md beside them, and reference/kernels/index.csv naming the tables
each shipped hardware profile is checked against. Deterministic: rows are sorted on every key
column and thinned at a fixed stride (no randomness), so a rerun writes the same bytes.

Run (from the repository root):
    python3 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install -r tools/kernels/requirements.txt
    /tmp/kvenv/bin/python tools/kernels/extract.py
"""

import hashlib
import importlib.metadata
import importlib.util
import math
import sys
from pathlib import Path

import pandas as pd

PACKAGE = "aiconfigurator-core"
FRAMEWORK = "trtllm"
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "reference" / "kernels"

# aiconfigurator GPU directory -> shipped hardware profiles measured by it.
GPUS = {
    "gb200": ["gb200-nvl72"],
    "b200_sxm": ["b200-hgx"],
    "h200_sxm": ["h200-hgx"],
    "h100_sxm": ["h100-sxm", "h100-hgx"],
    "a100_sxm": ["a100-sxm"],
}

# Shapes of one whole model kept in full (every m, every dtype) so that a check can hold them
# out as a block: Llama 3.1 70B (hidden 8192, 64 heads, 8 KV heads of 128, FFN 28672) at tensor
# parallelism 4: QKV (n = (64 + 2*8) * 128 / 4 = 2560, k = 8192), output (8192, 2048), gate and
# up as two GEMMs (7168, 8192), down (8192, 7168); attention with 16 heads, 2 KV heads of 128.
MODEL_GEMMS = [(2560, 8192), (8192, 2048), (7168, 8192), (8192, 7168)]
MODEL_ATTENTION = (16, 2, 128)

# Rows kept per table besides the model's (a stride over the sorted table).
TARGET = {"gemm": 4000, "context_attention": 2500, "generation_attention": 2500, "moe": 1500,
          "context_mla": 1000, "generation_mla": 1500}


def version_key(v):
    """Sort key for versions such as 1.3.0rc20, 2.29.2, 0.5.6.post2."""
    parts = []
    for p in v.replace("rc", ".-1.").replace("post", ".").split("."):
        parts.append(int(p) if p.lstrip("-").isdigit() else 0)
    return parts


def latest(path, table, prefer=None):
    """The version directory `prefer` under `path` if it holds `table` itself (not a
    reuse.yaml), else the newest one that does."""
    found = [d for d in path.iterdir() if (d / table).is_file()]
    if not found:
        sys.exit(f"no {table} under {path}")
    for d in found:
        if d.name == prefer:
            return d
    return max(found, key=lambda d: version_key(d.name))


def thin(df, keys, target, keep=None):
    """Sort on `keys`; keep the rows selected by `keep` and every stride-th of the others."""
    df = df.sort_values(keys, kind="mergesort").reset_index(drop=True)
    kept = keep(df) if keep is not None else pd.Series(False, index=df.index)
    rest = df.index[~kept]
    stride = max(1, math.ceil(len(rest) / target))
    chosen = kept.copy()
    chosen.loc[rest[::stride]] = True
    return df[chosen], stride


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(df, path, columns):
    df = df.rename(columns=columns)[list(columns.values())]
    df.to_csv(path, index=False, lineterminator="\n", float_format="%.6g")
    return len(df)


def gemm(src, dst, data):
    df = pd.read_parquet(src)
    keys = ["gemm_dtype", "n", "k", "m"]
    is_model = lambda d: pd.Series(
        [(n, k) in MODEL_GEMMS for n, k in zip(d.n, d.k)], index=d.index
    )
    out, stride = thin(df, keys, TARGET["gemm"], is_model)
    cols = {"gemm_dtype": "dtype", "m": "m", "n": "n", "k": "k", "latency": "latency_ms"}
    rows = write(out, dst / "gemm.csv", cols)
    rule = (
        f"all rows; sorted on {keys}; every row with (n, k) in {MODEL_GEMMS} "
        f"and one in {stride} of the others"
    )
    return ("gemm.csv", src.relative_to(data), len(df), rows, rule)


def attention(src, dst, data, name):
    df = pd.read_parquet(src)
    total = len(df)
    df = df[(df.kernel_source == "torch_flow") & (df.beam_width == 1)].copy()
    h, kvh, hd = MODEL_ATTENTION
    is_model = lambda d: (d.num_heads == h) & (d.num_key_value_heads == kvh) & (d.head_dim == hd)
    common = {
        "batch_size": "batch",
        "num_heads": "heads",
        "num_key_value_heads": "kv_heads",
        "head_dim": "head_dim",
        "window_size": "window_tokens",
    }
    if name == "context_attention":
        keys = ["attn_dtype", "kv_cache_dtype", "head_dim", "num_heads", "num_key_value_heads",
                "window_size", "batch_size", "isl"]
        cols = {"attn_dtype": "dtype", "kv_cache_dtype": "kv_cache_dtype", **common,
                "isl": "prompt_tokens", "latency": "latency_ms"}
    else:
        # A decode step of a sequence with isl + step tokens already in its KV cache.
        df["kv_tokens"] = df.isl + df.step
        keys = ["kv_cache_dtype", "head_dim", "num_heads", "num_key_value_heads", "window_size",
                "batch_size", "kv_tokens"]
        cols = {"kv_cache_dtype": "kv_cache_dtype", **common, "kv_tokens": "kv_tokens",
                "latency": "latency_ms"}
    out, stride = thin(df, keys, TARGET[name], is_model)
    rows = write(out, dst / f"{name}.csv", cols)
    rule = (
        "kernel_source == torch_flow and beam_width == 1; sorted on "
        f"{keys}; every row with (heads, kv_heads, head_dim) = {MODEL_ATTENTION} and one in "
        f"{stride} of the others"
    )
    if name == "generation_attention":
        rule += "; kv_tokens = isl + step"
    return (f"{name}.csv", src.relative_to(data), total, rows, rule)


def comm(nccl_src, custom_src, dst, data):
    n = pd.read_parquet(nccl_src)
    n = n.assign(library="nccl-" + n.version, dtype=n.nccl_dtype)
    c = pd.read_parquet(custom_src)
    c = c.assign(library=FRAMEWORK + "-custom-" + c.version, dtype=c.allreduce_dtype)
    df = pd.concat([n, c], ignore_index=True)
    df = df.sort_values(["library", "op_name", "dtype", "num_gpus", "message_size"],
                        kind="mergesort")
    cols = {"library": "library", "op_name": "op", "dtype": "dtype", "num_gpus": "gpus",
            "message_size": "message_elements", "latency": "latency_ms"}
    rows = write(df, dst / "comm.csv", cols)
    rule = ("all rows of both files; message_elements = message bytes / element bytes "
            "(half and bfloat16: 2, int8: 1)")
    srcs = f"{nccl_src.relative_to(data)}, {custom_src.relative_to(data)}"
    return ("comm.csv", srcs, len(n) + len(c), rows, rule)


def moe(src, dst, data):
    df = pd.read_parquet(src)
    total = len(df)
    dist = "balanced" if (df.distribution == "balanced").any() else "power_law_1.01"
    df = df[df.distribution == dist]
    keys = ["kernel_source", "moe_dtype", "num_experts", "topk", "hidden_size", "inter_size",
            "moe_tp_size", "moe_ep_size", "num_tokens"]
    out, stride = thin(df, keys, TARGET["moe"])
    cols = {"kernel_source": "kernel_source", "moe_dtype": "dtype", "num_tokens": "tokens",
            "hidden_size": "hidden", "inter_size": "inter", "topk": "topk",
            "num_experts": "experts", "moe_tp_size": "tp", "moe_ep_size": "ep",
            "distribution": "distribution", "latency": "latency_ms"}
    rows = write(out, dst / "moe.csv", cols)
    rule = f"distribution == {dist}; sorted on {keys}; one row in {stride}"
    return ("moe.csv", src.relative_to(data), total, rows, rule)


def mla(src, dst, data, name):
    """MLA attention kernels (DeepSeek-V3's multi-head latent attention, the only MLA model:
    no model block is kept, its shapes are the whole table)."""
    df = pd.read_parquet(src)
    total = len(df)
    common = {"mla_dtype": "dtype", "kv_cache_dtype": "kv_cache_dtype", "tp_size": "tp",
              "batch_size": "batch", "num_heads": "heads"}
    if name == "context_mla":
        keys = ["mla_dtype", "kv_cache_dtype", "num_heads", "tp_size", "batch_size", "isl"]
        cols = {**common, "isl": "prompt_tokens", "latency": "latency_ms"}
    else:
        # A decode step of a sequence with isl + step tokens already in its KV cache.
        df = df.assign(kv_tokens=df.isl + df.step)
        keys = ["mla_dtype", "kv_cache_dtype", "num_heads", "tp_size", "batch_size", "kv_tokens"]
        cols = {**common, "kv_tokens": "kv_tokens", "latency": "latency_ms"}
    out, stride = thin(df, keys, TARGET[name])
    rows = write(out, dst / f"{name}.csv", cols)
    rule = f"all rows; sorted on {keys}; one row in {stride}"
    if name == "generation_mla":
        rule += "; kv_tokens = isl + step"
    return (f"{name}.csv", src.relative_to(data), total, rows, rule)


def provenance(dst, version, gpu, entries):
    lines = [
        f"# Kernel tables: {gpu}, {dst.name}",
        "",
        f"Extracted by `tools/kernels/extract.py` from the Python package `{PACKAGE}` "
        f"{version} (NVIDIA, Apache-2.0; notice in `reference/kernels/LICENSE-aiconfigurator`), "
        "files under `aiconfigurator_core/systems/data/`. Latencies are NVIDIA's measurements, "
        "in milliseconds, unchanged; rows are a deterministic subsample.",
        "",
        "| file | source (in the package) | source rows | rows kept | filter |",
        "|---|---|---|---|---|",
    ]
    for f, src, total, rows, rule in entries:
        lines.append(f"| `{f}` | `{src}` | {total} | {rows} | {rule} |")
    lines += ["", "SHA-256 of the source files:", ""]
    (dst / "PROVENANCE.md").write_text("\n".join(lines) + "\n")


def main():
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None:
        sys.exit(f"{PACKAGE} is not installed; see tools/kernels/requirements.txt")
    version = importlib.metadata.version(PACKAGE)
    data = Path(spec.submodule_search_locations[0]) / "systems" / "data"
    index = ["hardware,tables"]
    for gpu, profiles in GPUS.items():
        g = data / gpu
        # The newest attention collection names the set; the other tables come from the same
        # framework version where it has them (the newest otherwise; PROVENANCE.md says which).
        attn_dir = latest(g / "attention" / FRAMEWORK, "context_attention_perf.parquet")
        v = attn_dir.name
        gemm_dir = latest(g / "gemm" / FRAMEWORK, "gemm_perf.parquet", v)
        comm_dir = latest(g / "comm" / FRAMEWORK, "custom_allreduce_perf.parquet", v)
        nccl_dir = latest(g / "comm" / "nccl", "nccl_perf.parquet")
        moe_dir = latest(g / "moe" / FRAMEWORK, "moe_perf.parquet", v)
        mla_dir = latest(g / "mla" / FRAMEWORK, "generation_mla_perf.parquet", v)
        dst = OUT / gpu / f"{FRAMEWORK}-{attn_dir.name}"
        dst.mkdir(parents=True, exist_ok=True)
        entries = [
            gemm(gemm_dir / "gemm_perf.parquet", dst, data),
            attention(attn_dir / "context_attention_perf.parquet", dst, data,
                      "context_attention"),
            attention(attn_dir / "generation_attention_perf.parquet", dst, data,
                      "generation_attention"),
            comm(nccl_dir / "nccl_perf.parquet", comm_dir / "custom_allreduce_perf.parquet",
                 dst, data),
            moe(moe_dir / "moe_perf.parquet", dst, data),
            mla(mla_dir / "context_mla_perf.parquet", dst, data, "context_mla"),
            mla(mla_dir / "generation_mla_perf.parquet", dst, data, "generation_mla"),
        ]
        sources = [
            gemm_dir / "gemm_perf.parquet",
            attn_dir / "context_attention_perf.parquet",
            attn_dir / "generation_attention_perf.parquet",
            nccl_dir / "nccl_perf.parquet",
            comm_dir / "custom_allreduce_perf.parquet",
            moe_dir / "moe_perf.parquet",
            mla_dir / "context_mla_perf.parquet",
            mla_dir / "generation_mla_perf.parquet",
        ]
        provenance(dst, version, gpu, entries)
        with open(dst / "PROVENANCE.md", "a") as f:
            for s in sources:
                f.write(f"- `{s.relative_to(data)}`: `{sha256(s)}`\n")
        for p in profiles:
            index.append(f"{p},{dst.relative_to(OUT)}")
        print(f"{dst.relative_to(ROOT)}: " + ", ".join(f"{e[0]} {e[3]}" for e in entries))
    (OUT / "index.csv").write_text("\n".join(index) + "\n")


if __name__ == "__main__":
    main()
