#!/usr/bin/env python3
"""PyTorch eager baselines for the figures `examples/bench.rs` prints, on the same machine:
B0 forward (eval, fp32) images/s and a training step (train mode: forward, cross-entropy,
backward, SGD update; dropout and stochastic depth on) images/s and peak memory (CUDA's peak
allocation; on the CPU the growth of the peak resident memory over the step), on the CPU and,
where there is one, on the CUDA GPU. One JSON object per measurement on stdout.

    bash baselines/pytorch.sh                      # makes a venv with torch, then runs this
    python3 baselines/pytorch.py --forward 8:224 --train 32:32:10 --train 64:224:1000

On CUDA each measurement runs twice: strict fp32 ("tf32": false, the figure the bench's targets
compare with, as our kernels have no tensor cores) and PyTorch's default ("tf32": true: cuDNN
runs fp32 convolutions on TF32 tensor cores unless torch.backends.cudnn.allow_tf32 is off).

burn's figures come from baselines/burn.sh (B0 on burn's wgpu backend, the same JSON
lines with "framework": "burn"); append them to the same file for `bench --targets --baseline`.
"""
import argparse
import json
import os
import resource
import time

import torch
import torchvision


def timed(fn, iters, device):
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def forward(device, batch, res, iters):
    m = torchvision.models.efficientnet_b0().eval().to(device)
    x = torch.randn(batch, 3, res, res, device=device)

    def step():
        with torch.no_grad():
            m(x)

    s = timed(step, iters, device)
    return {"framework": "pytorch", "what": "forward", "device": device, "batch": batch, "resolution": res, "seconds": s,
            "images_per_s": batch / s}


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def train(device, batch, res, classes, iters):
    rss0 = resident_bytes()
    m = torchvision.models.efficientnet_b0(num_classes=classes).train().to(device)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, res, res, device=device)
    y = torch.randint(0, classes, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    s = timed(step, iters, device)
    out = {"framework": "pytorch", "what": "train", "device": device, "batch": batch, "resolution": res, "classes": classes,
           "seconds": s, "images_per_s": batch / s}
    if device == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    else:
        # The process's peak resident memory beyond what it held before the model was built.
        out["peak_memory_gib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0) / 2**30
    return out


def strict_fp32():
    """No TF32 anywhere: the fp32_precision settings where this torch has them (2.9+; mixing them
    with the legacy flags is refused there), else the legacy allow_tf32 flags."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--forward", action="append", default=[], help="BATCH:RES")
    ap.add_argument("--train", action="append", default=[], help="BATCH:RES:CLASSES")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--devices", default="cpu,cuda")
    a = ap.parse_args()
    if not a.forward and not a.train:
        a.forward, a.train = ["1:224", "8:224"], ["32:32:10", "32:224:1000"]
    devices = [d for d in a.devices.split(",") if d == "cpu" or torch.cuda.is_available()]
    print(json.dumps({"torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                      "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}))
    for d in devices:
        # PyTorch's defaults first (TF32 convolutions), then strict fp32.
        for tf32 in ([True, False] if d == "cuda" else [None]):
            if tf32 is False:
                strict_fp32()
            tag = {} if tf32 is None else {"tf32": tf32}
            for f in a.forward:
                b, r = map(int, f.split(":"))
                print(json.dumps({**forward(d, b, r, a.iters), **tag}), flush=True)
            for t in a.train:
                b, r, c = map(int, t.split(":"))
                print(json.dumps({**train(d, b, r, c, a.iters), **tag}), flush=True)


if __name__ == "__main__":
    main()
