#!/usr/bin/env python3
"""timm `features_only` fixtures committed under tests/fixtures/, so the library's multi-scale
feature output can be checked against timm's own.

For TAG in timm_b and timm_tf_b it rebuilds the model that baselines/make_fixtures.py builds for TAG,
but with features_only=True (default out_indices), loads the committed TAG_weights.safetensors
(its head keys dropped: a features_only model has no conv_head / bn2 / classifier), runs the
committed `input` of TAG_io.safetensors in eval mode and writes tests/fixtures/TAG_features.safetensors:
  feature.0 .. feature.K-1 (NCHW float32, exactly as timm returns them; the input stays in TAG_io),
  metadata: format ("timm"), model (the timm constructor call), feature_info (JSON: module,
  num_chs, reduction per level, from model.feature_info.get_dicts()), source, timm/torch versions.
As a sanity check (printed, not saved) each feature is compared with the act.stageN of TAG_io
tapped at the same module (timm module `blocks.N` -> act.stage{N+1}): same weights, same input.
Needs torch, timm, safetensors (see make_fixtures.py for the venv):

    /tmp/fx/bin/python baselines/make_feature_fixtures.py
"""
import json
import os
import re

import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from timm.models import efficientnet as E

OUT = os.environ.get("OUT_DIR", os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)
WIDTH, DEPTH, CLASSES = 0.25, 0.5, 10  # as in make_fixtures.py
HEAD = ("conv_head.", "bn2.", "classifier.")  # keys of the full model that features_only drops

# The same constructor calls as make_fixtures.py, plus features_only=True.
CASES = {
    "timm_tf_b": ("tf_efficientnet_b0", dict(channel_multiplier=WIDTH, depth_multiplier=DEPTH, pretrained=False,
                                             bn_eps=1e-3, pad_type="same", num_classes=CLASSES)),
    "timm_b": ("efficientnet_b0", dict(channel_multiplier=WIDTH, depth_multiplier=DEPTH, pretrained=False,
                                       num_classes=CLASSES)),
}

for tag, (variant, kwargs) in CASES.items():
    torch.manual_seed(0)
    model = E._gen_efficientnet(variant, features_only=True, **kwargs)

    # Load the committed weights without the head; anything else missing or unexpected is an error.
    sd = load_file(f"{OUT}/{tag}_weights.safetensors")
    dropped = sorted(k for k in sd if k.startswith(HEAD))
    sd = {k: v for k, v in sd.items() if not k.startswith(HEAD)}
    res = model.load_state_dict(sd, strict=False)
    assert not res.missing_keys and not res.unexpected_keys, (tag, res)
    model.eval()

    io = load_file(f"{OUT}/{tag}_io.safetensors")
    with torch.no_grad():
        feats = model(io["input"].float())
    info = model.feature_info.get_dicts(keys=["module", "num_chs", "reduction"])
    assert len(feats) == len(info)

    out = {f"feature.{i}": f.detach().float().contiguous() for i, f in enumerate(feats)}
    args = ", ".join(f"{k}={v!r}" for k, v in {**kwargs, "features_only": True}.items())
    meta = {
        "format": "timm",
        "model": f"timm.models.efficientnet._gen_efficientnet({variant!r}, {args})",
        "feature_info": json.dumps(info),
        "source": f"{tag}_io.safetensors input",
        "timm_version": timm.__version__,
        "torch_version": torch.__version__,
    }
    path = f"{OUT}/{tag}_features.safetensors"
    save_file(out, path, metadata=meta)

    print(f"{tag}: dropped head keys {dropped}")
    for i, (f, d) in enumerate(zip(feats, info)):
        # `blocks.N` (or `blocks.N.M`, the last block of stage N) is the output of stage N+1.
        n = int(re.match(r"blocks\.(\d+)", d["module"]).group(1))
        ref = io[f"act.stage{n + 1}"]
        assert ref.shape == f.shape, (tag, i, ref.shape, f.shape)
        diff = (f - ref).abs().max().item()
        print(f"  feature.{i} {tuple(f.shape)} module={d['module']} num_chs={d['num_chs']} "
              f"reduction={d['reduction']} vs act.stage{n + 1}: max abs diff {diff:.3g} (ref max {ref.abs().max():.3g})")
    print(f"  wrote {path} ({os.path.getsize(path)} bytes)")
