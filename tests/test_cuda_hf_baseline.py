"""test_cuda_hf_baseline.py — how users stream a 7B model through HF transformers today, on the
same GPU as lcbench's CUDA backend, for BENCHMARKS.md (random llama2-7b weights in bf16; speed
does not depend on the values).

  windows: one 4096-token window per forward (SDPA, causal), logits -> NLL, as the HF
           perplexity guide does with non-overlapping windows
  decode:  greedy token by token with a KV cache (DynamicCache), one forward per token (what
           attention_sinks does; its cache eviction is not even counted here), measured as
           `test_cuda_bench decode MODEL SPEC PROMPT STEPS bf16` measures lcbench: a PROMPT-token
           prompt (random ids) in one forward, then 8 warm-up steps and STEPS timed steps, each
           feeding the previous step's argmax and taking the argmax of its last logits row to the
           host (.item(), as lcbench takes its token to the host), torch.cuda.synchronize()
           around the clock.  One parseable line per prompt length:
               hf_decode tokens/s N ms/token N prompt P steps S

usage: python3 tests/test_cuda_hf_baseline.py [n_windows [n_decode [prompts]]]
  n_windows  4096-token windows timed (default 8; 0 skips the windows part)
  n_decode   timed decode steps (default 100)
  prompts    comma-separated prompt lengths for the decode part (default 1), e.g. 16,4000
"""
import inspect, sys, time
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

n_win = int(sys.argv[1]) if len(sys.argv) > 1 else 8
n_dec = int(sys.argv[2]) if len(sys.argv) > 2 else 100
prompts = [int(p) for p in sys.argv[3].split(",")] if len(sys.argv) > 3 else [1]
WARM = 8  # decode steps before the clock starts, as test_cuda_bench's DECODE_WARM
cfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
cfg._attn_implementation = "sdpa"
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
t = time.time()
with torch.device("cuda"):
    model = LlamaForCausalLM(cfg)
model.eval()
torch.cuda.synchronize()
print(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}; "
      f"llama2-7b from its config in bf16 on the device in {time.time() - t:.1f} s", flush=True)
L = 4096
# the prompt's forward returns its last row's logits only, as lcbench's does (transformers >= 4.45)
params = inspect.signature(model.forward).parameters
keep_last = {"logits_to_keep": 1} if "logits_to_keep" in params else {"num_logits_to_keep": 1} if "num_logits_to_keep" in params else {}
with torch.no_grad():
    if n_win > 0:
        ids = torch.randint(0, 32000, (1, L * (n_win + 1)), device="cuda")

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
        del ids
    for P in prompts:
        prompt = torch.randint(0, 32000, (1, P), device="cuda")
        past = transformers.DynamicCache()
        torch.cuda.synchronize()
        t = time.time()
        out = model(prompt, past_key_values=past, use_cache=True, **keep_last)
        tok = int(out.logits[0, -1].argmax().item())
        t_pre = time.time() - t
        for i in range(WARM + n_dec):
            if i == WARM:
                torch.cuda.synchronize()
                t = time.time()
            x = torch.tensor([[tok]], device="cuda")
            out = model(x, past_key_values=out.past_key_values, use_cache=True)
            tok = int(out.logits[0, -1].argmax().item())
        torch.cuda.synchronize()
        el = time.time() - t
        print(f"decode: prompt {P} in one forward {1e3 * t_pre:.1f} ms; {n_dec} steps after {WARM} warm-up, greedy, one at a time "
              f"in {el:.2f} s = {n_dec / el:.1f} tokens/s (bf16, SDPA, DynamicCache)", flush=True)
        print(f"hf_decode tokens/s {n_dec / el:.2f} ms/token {1e3 * el / n_dec:.4f} prompt {P} steps {n_dec}", flush=True)
        del out, past, prompt
        torch.cuda.empty_cache()
