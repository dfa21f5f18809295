#!/usr/bin/env python3
"""Small PyTorch parity fixtures committed under tests/fixtures/, so `cargo test` on a fresh clone
checks the TF-SAME, eps-1e-3, Lite and lukemelas paths against implementations nobody here wrote.

Reduced-width networks (width 0.25, or 0.5 for lukemelas; depth 0.5) keep the files small; the paths they exercise are
the same as the full variants'. Needs torch, timm, safetensors, numpy (and efficientnet_pytorch for
the lukemelas case, skipped when absent):

    python3 -m venv /tmp/fx && /tmp/fx/bin/pip install torch torchvision timm safetensors numpy efficientnet_pytorch
    /tmp/fx/bin/python baselines/make_fixtures.py

For each case TAG it writes tests/fixtures/TAG_weights.safetensors (the state_dict in the source's
own names) and TAG_io.safetensors:
  input [2,3,61,67] (odd and non-square: TF-SAME pads asymmetrically at stride 2), eval-mode logits,
  act.stem / act.stage1..7 / act.head / act.pooled (NCHW), and one training-mode step (BN batch
  statistics, dropout and stochastic depth off; computed in float64): train.input, train.target (i64), train.loss,
  train.logits, grad.input, grad.<param>, bn_after.<module>.running_mean/var with the BN momentum in
  the metadata. Metadata: format, variant, width, depth, num_classes, bn_eps, bn_momentum.
BN running statistics are calibrated on random batches first (see ../shared/fixtures/make_fixtures.py:
an uncalibrated random network's eval-mode signal collapses to ~0 and any output would "match").
"""
import copy
import json
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

OUT = os.environ.get("OUT_DIR", os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
os.makedirs(OUT, exist_ok=True)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)
WIDTH, DEPTH, CLASSES = 0.25, 0.5, 10
H, W = 61, 67


def calibrate_bn(model, res=(H, W)):
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    g = torch.Generator().manual_seed(777)
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, *res, generator=g))
    model.eval()


def stage_outputs_timm(model):
    mods = [("act.stem", model.bn1)] + [(f"act.stage{i+1}", b) for i, b in enumerate(model.blocks)]
    return mods + [("act.head", model.bn2), ("act.pooled", model.global_pool)]


def stage_outputs_lukemelas(model):
    # lukemelas has a flat block list: a stage ends where the next block's stride or width changes.
    ends, blocks = [], model._blocks
    for i, b in enumerate(blocks):
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if nxt is None:
            ends.append(b)
            continue
        a = nxt._block_args
        stride = a.stride[0] if isinstance(a.stride, (list, tuple)) else a.stride
        if a.input_filters != a.output_filters or stride != 1:
            ends.append(b)
    mods = [("act.stem", model._bn0)] + [(f"act.stage{i+1}", b) for i, b in enumerate(ends)]
    return mods + [("act.head", model._bn1), ("act.pooled", model._avg_pooling)]


def train_step(model, momentum, dtype):
    """Gradients (grad.input, grad.<param>) of the fixture's training step in `dtype`."""
    model = model.to(dtype)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum
        if m.__class__.__name__ in ("Dropout", "DropPath"):
            m.eval()
    if hasattr(model, "drop_rate"):
        model.drop_rate = 0.0
    if hasattr(model, "_global_params"):
        model._global_params = model._global_params._replace(drop_connect_rate=0.0)
        model._dropout.p = 0.0
    g = torch.Generator().manual_seed(4321)
    xt = torch.randn(2, 3, H, W, generator=g).to(dtype).requires_grad_(True)
    t = torch.randint(0, CLASSES, (2,), generator=g)
    nn.functional.cross_entropy(model(xt), t).backward()
    grads = {"grad.input": xt.grad.detach()}
    grads.update({f"grad.{n}": p.grad.detach() for n, p in model.named_parameters()})
    return grads


def dump(tag, model, stage_outputs, meta, momentum, width=WIDTH):
    calibrate_bn(model)
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(sd, f"{OUT}/{tag}_weights.safetensors", metadata={"source": tag})

    out, hooks = {}, []
    for name, mod in stage_outputs(model):
        hooks.append(mod.register_forward_hook(lambda m, i, o, name=name: out.__setitem__(name, o.detach().clone())))
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(2, 3, H, W, generator=g)
    with torch.no_grad():
        out["logits"] = model(x)
    for h in hooks:
        h.remove()
    out["input"] = x
    if "act.head" in out and out["act.head"].dim() == 4 and tag.startswith("lukemelas"):
        # lukemelas applies swish after _bn1 inside forward, not in the module: record what follows it.
        out["act.head"] = out["act.head"] * torch.sigmoid(out["act.head"])
    if tag.startswith("lukemelas"):
        out["act.stem"] = out["act.stem"] * torch.sigmoid(out["act.stem"])

    # One training-mode step, in float64: several BN-bias gradients are exactly zero in real
    # arithmetic (a BN followed by conv + BN cancels constant shifts), and float32 PyTorch leaves
    # up to ~1e-5 of noise there. A float64 reference is exact to f32 precision everywhere; the
    # same step in float32 records how far PyTorch's own f32 arithmetic lands from it, per tensor
    # (metadata `torch_f32_err`), which bounds what any f32 implementation can be asked for.
    f32_grads = train_step(copy.deepcopy(model), momentum, torch.float32)
    model = model.double()
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum
        if m.__class__.__name__ in ("Dropout", "DropPath"):
            m.eval()
    if hasattr(model, "drop_rate"):
        model.drop_rate = 0.0
    if hasattr(model, "_global_params"):
        model._global_params = model._global_params._replace(drop_connect_rate=0.0)
        model._dropout.p = 0.0
    g = torch.Generator().manual_seed(4321)
    xt = torch.randn(2, 3, H, W, generator=g).double().requires_grad_(True)
    t = torch.randint(0, CLASSES, (2,), generator=g)
    model.zero_grad(set_to_none=True)
    logits = model(xt)
    loss = nn.functional.cross_entropy(logits, t)
    loss.backward()
    out.update({"train.input": xt.detach(), "train.target": t, "train.loss": loss.detach().reshape(()),
                "train.logits": logits.detach(), "grad.input": xt.grad})
    for n, p in model.named_parameters():
        out[f"grad.{n}"] = p.grad.detach()
    for n, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            out[f"bn_after.{n}.running_mean"] = m.running_mean.detach().clone()
            out[f"bn_after.{n}.running_var"] = m.running_var.detach().clone()
    err = {k: float((f32_grads[k].double() - out[k].double()).abs().max()) for k in f32_grads}
    out = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in out.items()}
    meta = {k: str(v) for k, v in {**meta, "torch_f32_err": json.dumps(err), "width": width, "depth": DEPTH, "num_classes": CLASSES,
                                    "bn_momentum": momentum}.items()}
    save_file(out, f"{OUT}/{tag}_io.safetensors", metadata=meta)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"{tag}: {nparams} params, logits std {out['logits'].std():.3g}, loss {loss.item():.5f}, "
          f"acts {[k for k in out if k.startswith('act.')]}")


from timm.models import efficientnet as E  # noqa: E402

torch.manual_seed(0)
m = E._gen_efficientnet("tf_efficientnet_b0", channel_multiplier=WIDTH, depth_multiplier=DEPTH, pretrained=False,
                        bn_eps=1e-3, pad_type="same", num_classes=CLASSES)
dump("timm_tf_b", m, stage_outputs_timm, {"format": "timm-tf", "variant": "b0", "bn_eps": 1e-3}, 0.01)

torch.manual_seed(0)
m = E._gen_efficientnet_lite("tf_efficientnet_lite0", channel_multiplier=WIDTH, depth_multiplier=DEPTH,
                             pretrained=False, bn_eps=1e-3, pad_type="same", num_classes=CLASSES)
dump("timm_tf_lite", m, stage_outputs_timm, {"format": "timm-tf", "variant": "lite0", "bn_eps": 1e-3}, 0.01)

torch.manual_seed(0)
m = E._gen_efficientnet("efficientnet_b0", channel_multiplier=WIDTH, depth_multiplier=DEPTH, pretrained=False,
                        num_classes=CLASSES)
dump("timm_b", m, stage_outputs_timm, {"format": "timm", "variant": "b0", "bn_eps": 1e-5}, 0.1)

try:
    from efficientnet_pytorch import EfficientNet as LM
    from efficientnet_pytorch.utils import efficientnet as lm_params

    # Width 0.5, not 0.25: lukemelas never adds the identity to a stage's FIRST block (its stride is
    # stored as a list, so `stride == 1` is false), which matters only when such a block keeps its
    # width, as stage 1 does at width 0.25. At width >= 0.5, as in every real variant, none does.
    torch.manual_seed(0)
    blocks_args, global_params = lm_params(width_coefficient=0.5, depth_coefficient=DEPTH, image_size=None,
                                           dropout_rate=0.2, drop_connect_rate=0.2, num_classes=CLASSES)
    m = LM(blocks_args, global_params)
    dump("lukemelas_b", m, stage_outputs_lukemelas, {"format": "lukemelas", "variant": "b0", "bn_eps": 1e-3}, 0.01, width=0.5)
except ImportError as e:
    print("efficientnet_pytorch not installed, lukemelas fixture skipped:", e)


def dump_multistep(tag, model, steps=5):
    """Five SGD steps (momentum 0.9, lr 0.01, BN momentum 0.1, no dropout / stochastic depth) on
    two alternating batches of 8 at 64x64, in float64: the loss of each step and the final parameters
    (well-conditioned: PyTorch f32 and f64 agree to 1e-6 here; at 32x32 with batch 4 the last BNs
    normalise 4 values and f32 and f64 PyTorch already differ by 1% after one step).
    Catches what a single-step check cannot (optimizer state, running statistics over steps)."""
    model = copy.deepcopy(model).double()
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
        if m.__class__.__name__ in ("Dropout", "DropPath"):
            m.eval()
    if hasattr(model, "drop_rate"):
        model.drop_rate = 0.0
    g = torch.Generator().manual_seed(99)
    batches = [(torch.randn(8, 3, 64, 64, generator=g), torch.randint(0, CLASSES, (8,), generator=g)) for _ in range(2)]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    out, losses = {}, []
    for s in range(steps):
        x, t = batches[s % 2]
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x.double()), t)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    for i, (x, t) in enumerate(batches):
        out[f"multi.input{i}"], out[f"multi.target{i}"] = x, t
    out["multi.loss"] = torch.tensor(losses)
    for n, p in model.named_parameters():
        out[f"multi.final.{n}"] = p.detach()
    for n, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            out[f"multi.final.{n}.running_mean"] = m.running_mean.detach()
            out[f"multi.final.{n}.running_var"] = m.running_var.detach()
    out = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in out.items()}
    save_file(out, f"{OUT}/{tag}_multistep.safetensors", metadata={"steps": str(steps), "lr": "0.01", "momentum": "0.9"})
    print(f"{tag}_multistep: losses {[round(v, 5) for v in losses]}")


torch.manual_seed(0)
m = E._gen_efficientnet("efficientnet_b0", channel_multiplier=WIDTH, depth_multiplier=DEPTH, pretrained=False,
                        num_classes=CLASSES)
m.load_state_dict(__import__("safetensors.torch", fromlist=["load_file"]).load_file(f"{OUT}/timm_b_weights.safetensors"))
dump_multistep("timm_b", m)
