"""test_cuda_hf_baseline.py — how users stream a 7B model through HF transformers today, on the
same GPU as lcbench's CUDA backend, for BENCHMARKS.md (random llama2-7b weights in bf16; speed
does not depend on the values).

  windows: one 4096-token window per forward (SDPA, causal), logits -> NLL, as the HF
           perplexity guide does with non-overlapping windows
  decode:  token by token with a KV cache, one forward per token (what attention_sinks does;
           its cache eviction is not even counted here)

usage: python3 tests/test_cuda_hf_baseline.py [n_windows] [n_decode]
"""
import sys, time
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

n_win = int(sys.argv[1]) if len(sys.argv) > 1 else 8
n_dec = int(sys.argv[2]) if len(sys.argv) > 2 else 100
cfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
cfg._attn_implementation = "sdpa"
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = LlamaForCausalLM(cfg)
model.eval()
print(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
L = 4096
ids = torch.randint(0, 32000, (1, L * (n_win + 1)), device="cuda")
with torch.no_grad():
    def window(i):
        x = ids[:, i * L:(i + 1) * L]
        logits = model(x).logits.float()
        return torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:])
    window(0); torch.cuda.synchronize()
    t = time.time()
    for i in range(1, n_win + 1): window(i)
    torch.cuda.synchronize()
    el = time.time() - t
    print(f"windows: {n_win} x {L} tokens in {el:.2f} s = {n_win * L / el:.0f} tokens/s (bf16, SDPA)", flush=True)
    past = transformers.DynamicCache()
    x = ids[:, :1]
    out = model(x, past_key_values=past, use_cache=True)
    torch.cuda.synchronize()
    t = time.time()
    for i in range(1, n_dec + 1):
        out = model(ids[:, i:i + 1], past_key_values=out.past_key_values, use_cache=True)
        nll = torch.nn.functional.cross_entropy(out.logits[0, -1:].float(), ids[0, i + 1:i + 2])
        nll.item()
    el = time.time() - t
    print(f"decode: {n_dec} tokens one at a time in {el:.2f} s = {n_dec / el:.1f} tokens/s (bf16, DynamicCache)", flush=True)
