#!/usr/bin/env python3
"""sdpa_bench.py — PyTorch's scaled_dot_product_attention on the shapes of
`test_cuda_bench attn` (tests/test_cuda_bench.c), for the attention-kernel line of BENCHMARKS.md.

Each shape is timed under every SDPA backend that accepts it (flash, cuDNN, memory-efficient, and
PyTorch's own choice): median of 20 launches after 5 of warm-up, CUDA events; TFLOP/s count
4 * head_dim * heads per visible (query, key) pair, as test_cuda_bench does.  lcbench's banded
policies (sink:4:4092, window:4096) see 4,097 keys per query: the non-causal 4096 x 4096 line is
their SDPA equivalent in work.  Needs python3 with torch and a GPU.  Prints one table.

    sdpa_bench.py [ITERS [SHAPES [BACKEND]]]

times the median of ITERS launches instead (a long run holds the card at its sustained,
power-limited clock, as `test_cuda_bench attn DTYPE VARIANTS ITERS SHAPES` does), on the first
SHAPES shapes, under BACKEND only (default, flash, cudnn or efficient).
"""
import statistics
import sys

import torch
import torch.nn.functional as F

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # older torch
    SDPBackend = None


def time_ms(fn, iters=20, warm=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    nshapes = int(sys.argv[2]) if len(sys.argv) > 2 else None
    only = sys.argv[3] if len(sys.argv) > 3 else None
    dt = torch.bfloat16
    dev = "cuda"
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; cuDNN {torch.backends.cudnn.version()}")
    # (label, heads, kv heads, head dim, queries, keys, causal, visible pairs)
    shapes = [
        ("llama2-7b 4096 x 4096 (= sink:4:4092 work)", 32, 32, 128, 4096, 4096, False, 4096 * 4096),
        ("llama2-7b causal 4096 x 4096", 32, 32, 128, 4096, 4096, True, 4096 * 4097 // 2),
        ("llama2-7b 4096 x 8192", 32, 32, 128, 4096, 8192, False, 4096 * 8192),
        ("mistral-7b GQA 32:8 4096 x 4096", 32, 8, 128, 4096, 4096, False, 4096 * 4096),
        ("falcon-7b MQA 71:1 hd 64 4096 x 2048", 71, 1, 64, 4096, 2048, False, 4096 * 2048),
    ]
    backends = [("default", None)]
    if SDPBackend is not None:
        backends += [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                     ("efficient", SDPBackend.EFFICIENT_ATTENTION)]
    if only is not None:
        backends = [b for b in backends if b[0] == only]
        if not backends:
            sys.exit(f"sdpa_bench.py: unknown backend {only!r}")
    print(f"median of {iters} launches")
    print(f"{'shape':<46} {'backend':<10} {'ms':>9} {'TFLOP/s':>9}")
    g = torch.Generator(device=dev).manual_seed(1)
    for label, H, KV, hd, L, S, causal, pairs in shapes[:nshapes]:
        q = torch.randn(1, H, L, hd, device=dev, dtype=dt, generator=g)
        k = torch.randn(1, KV, S, hd, device=dev, dtype=dt, generator=g)
        v = torch.randn(1, KV, S, hd, device=dev, dtype=dt, generator=g)
        flops = 4.0 * hd * H * pairs
        for name, be in backends:
            def run():
                if KV != H:
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            try:
                if be is None:
                    ms = time_ms(run, iters)
                else:
                    with sdpa_kernel([be]):
                        ms = time_ms(run, iters)
                print(f"{label:<46} {name:<10} {ms:9.3f} {flops / ms / 1e9:9.1f}")
            except Exception as e:  # a backend that refuses the shape
                print(f"{label:<46} {name:<10} {'-':>9} {'-':>9}  ({type(e).__name__}: {str(e).splitlines()[0][:60]})")
            sys.stdout.flush()
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
