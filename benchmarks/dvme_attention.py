"""DVME in the paper's listing form: the 1,536-d meta-embedding (3 backbones x 512) as 1,536
tokens of width 1 through timm's Attention, one training step per batch, measured on this
machine's CPU with the fused kernel (``scaled_dot_product_attention``, what medsweep runs) and
with the attention matrix written out (timm's non-fused path), side by side.

    .venv/bin/python benchmarks/dvme_attention.py [--batch 256] [--tokens 1536]

Each variant runs in a process of its own, so its peak resident memory is its own. Printed:
seconds per training step and the step's peak memory above the process's baseline, per
variant, then what a GPU needs at that batch: the written-out attention is batch x tokens^2
floats per copy, and a training step keeps about three copies (scores, softmax, its
gradient); the fused kernel keeps none (O(batch x tokens) memory). Last line
``listing form, batch B: X s per step, Y MiB (fused) vs Z MiB (written out)``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _step(batch: int, tokens: int, fused: bool, repeats: int) -> dict:
    import torch

    from trainables.models.heads import DVME

    torch.manual_seed(0)
    proj = tokens // 3
    head = DVME([2048, 2048, 1536], n_classes=5, proj_dim=proj, attention_form="listing")
    head.attn.fused_attn = fused
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-4)
    features = [torch.randn(batch, d) for d in (2048, 2048, 1536)]
    labels = torch.randint(0, 5, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(head(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step()  # warm-up: allocations and kernels chosen
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    seconds = (time.perf_counter() - started) / repeats
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"fused": fused, "s_per_step": seconds, "peak_mib_above_baseline": peak - baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=1536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["fused", "written"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_step(args.batch, args.tokens, args.child == "fused", args.repeats)))
        return
    results = {}
    for variant in ("fused", "written"):
        done = subprocess.run([sys.executable, __file__, "--child", variant, "--batch", str(args.batch),
                               "--tokens", str(args.tokens), "--repeats", str(args.repeats)],
                              capture_output=True, text=True, check=True)
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[variant]
        print(f"{variant:>8}: {r['s_per_step']:.3f} s per training step, peak {r['peak_mib_above_baseline']:,.0f} MiB "
              f"above baseline (batch {args.batch}, {args.tokens} tokens)")
    copy_gib = args.batch * args.tokens**2 * 4 / 2**30
    print(f"GPU, batch {args.batch}: a written-out attention matrix is {copy_gib:.2f} GiB in fp32 per copy, "
          f"about {3 * copy_gib:.1f} GiB for a training step (scores, softmax, gradient); the fused "
          f"memory-efficient kernel keeps none of it")
    f, w = results["fused"], results["written"]
    print(f"listing form, batch {args.batch}: {f['s_per_step']:.3f} s per step, "
          f"{f['peak_mib_above_baseline']:,.0f} MiB (fused) vs {w['peak_mib_above_baseline']:,.0f} MiB (written out)")


if __name__ == "__main__":
    main()
