#!/usr/bin/env python3
"""Preprocessing fixtures for tests/preprocess.rs: what torchvision and timm feed EfficientNet for
three real photos, and the preset table (src/infer.rs `Preprocess::preset`) read from the libraries.

    /tmp/fx/bin/pip install torch torchvision timm safetensors numpy pillow scikit-image efficientnet_pytorch
    /tmp/fx/bin/python baselines/make_preprocess_fixtures.py

1. tests/fixtures/photos/{astronaut,coffee,chelsea}.jpg: scikit-image's sample photos (public domain /
   CC0, see skimage.data), saved as JPEG quality 85 (4:2:0, as cameras write them). Made once; an
   existing file is kept so that the tensors below always describe the committed JPEGs.
2. Each JPEG is decoded ONCE by PIL; every transform below runs on those same pixels:
   - torchvision `EfficientNet_B0_Weights.IMAGENET1K_V1.transforms()` on the uint8 tensor
     (`pil_to_tensor`): torch's antialiased bicubic resize of the short side to 256, center crop 224;
   - timm's eval transform (`create_transform(**resolve_data_config({}, model=...))`) of
     `tf_efficientnet_b0` and `tf_efficientnet_lite0` on the PIL image: PIL bicubic resize of the
     short side to floor(224 / 0.875) = 256, center crop 224. The two differ only in mean/std.
3. Both libraries round to 8 bits after the resize and only then scale to [0, 1] and normalise, so
   the (3, 224, 224) f32 outputs are stored losslessly as the uint8 crop plus the mean and std
   (the script checks `(u8 / 255 - mean) / std` reproduces the library's f32 tensor to 1e-6). That
   keeps the two files under 1 MB:
   - preprocess_torchvision_b0.safetensors: <photo> (u8 [3,224,224]), mean, std (f32 [3]);
   - preprocess_timm_b0.safetensors: <photo> (u8), mean.tf_efficientnet_b0, std.tf_efficientnet_b0,
     mean.tf_efficientnet_lite0, std.tf_efficientnet_lite0.
   Both also hold `synthetic` (u8 [3, 32, 32]): every 7th row and column of the same transform of
   `synthetic()` below, a 451 x 300 (portrait) image the test builds bit-identically, so the
   resampler is checked with no JPEG decoder in between (black/white edges make the bicubic
   undershoot 0, where PIL's 8-bit intermediate and torch's exact one differ).
   Metadata `presets`: JSON list of every (format, variant) preset the libraries give (torchvision
   weights' transforms(), timm resolve_data_config of the default pretrained tag, lukemelas
   get_image_size with its examples/imagenet eval transform), which tests/preprocess.rs compares
   with `Preprocess::preset`; `versions`, `transforms` for the record.
"""
import json
import math
import os

import numpy as np
import PIL
import timm
import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config
from torchvision.transforms import InterpolationMode

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures")
PHOTOS = os.path.join(FIX, "photos")
NAMES = ["astronaut", "coffee", "chelsea"]
VARIANTS = [f"b{i}" for i in range(8)] + [f"lite{i}" for i in range(5)]


def make_photos():
    os.makedirs(PHOTOS, exist_ok=True)
    import skimage.data

    for name in NAMES:
        path = os.path.join(PHOTOS, f"{name}.jpg")
        if not os.path.exists(path):
            Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path, quality=85)
        size = os.path.getsize(path)
        assert size < 150_000, f"{path} is {size} bytes"
        print(f"{path}: {Image.open(path).size} {size} bytes")


def interp_name(mode):
    return {InterpolationMode.BICUBIC: "bicubic", InterpolationMode.BILINEAR: "bilinear"}[mode]


def torchvision_presets():
    rows = []
    for i in range(8):
        t = getattr(torchvision.models, f"EfficientNet_B{i}_Weights").IMAGENET1K_V1.transforms()
        rows.append(
            dict(
                format="torchvision",
                variant=f"b{i}",
                source=f"torchvision {torchvision.__version__} EfficientNet_B{i}_Weights.IMAGENET1K_V1.transforms()",
                resolution=t.crop_size[0],
                resize_size=t.resize_size[0],
                keep_aspect=True,
                interpolation=interp_name(t.interpolation),
                antialias=bool(t.antialias),
                mean=list(t.mean),
                std=list(t.std),
            )
        )
    return rows


def timm_transform(name):
    return create_transform(**resolve_data_config({}, model=timm.create_model(name, pretrained=False)))


def timm_presets():
    rows = []
    for fmt, prefix in [("timm", "efficientnet_"), ("timm-tf", "tf_efficientnet_")]:
        for v in VARIANTS:
            name = prefix + v
            model = timm.create_model(name, pretrained=False)
            cfg = resolve_data_config({}, model=model)
            t = create_transform(**cfg)
            resize, crop = t.transforms[0], t.transforms[1]
            size = resize.size if isinstance(resize.size, int) else resize.size[0]
            # torchvision's Resize(int) resizes the short side; Resize((h, w)) (crop_mode squash) both.
            keep_aspect = isinstance(resize.size, int) or len(resize.size) == 1
            assert size == math.floor(cfg["input_size"][1] / cfg["crop_pct"]), (name, size, cfg)
            normalize = t.transforms[-1]
            rows.append(
                dict(
                    format=fmt,
                    variant=v,
                    source=f"timm {timm.__version__} {name}.{model.pretrained_cfg.get('tag')} resolve_data_config: {cfg}",
                    resolution=crop.size[0],
                    resize_size=size,
                    keep_aspect=keep_aspect,
                    interpolation=interp_name(resize.interpolation),
                    antialias=True,  # PIL's resize always widens the filter when shrinking
                    mean=[float(x) for x in normalize.mean],
                    std=[float(x) for x in normalize.std],
                )
            )
    return rows


def lukemelas_presets():
    # efficientnet_pytorch ships no transform; its examples/imagenet/main.py evaluates with
    # Resize(image_size, BICUBIC) + CenterCrop(image_size) on PIL images, ImageNet mean/std
    # (advprop weights: x * 2 - 1 instead). It has no Lite weights.
    try:
        from efficientnet_pytorch import EfficientNet
    except ImportError:
        print("efficientnet_pytorch missing: no lukemelas rows")
        return []
    rows = []
    for i in range(8):
        size = EfficientNet.get_image_size(f"efficientnet-b{i}")
        rows.append(
            dict(
                format="lukemelas",
                variant=f"b{i}",
                source=f"efficientnet_pytorch get_image_size('efficientnet-b{i}') + examples/imagenet/main.py val_transforms",
                resolution=size,
                resize_size=size,
                keep_aspect=True,
                interpolation="bicubic",
                antialias=True,
                mean=[0.485, 0.456, 0.406],
                std=[0.229, 0.224, 0.225],
            )
        )
    return rows


def synthetic():
    """(451, 300, 3) uint8: 0/255 blocks on the left half, wrapping gradients on the right.
    tests/preprocess.rs `synthetic()` computes the same integers."""
    h, w = 451, 300
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    blocks = ((x // (3 + c) + y // 5) % 2) * 255
    ramps = (x * 7 + y * 3 + c * 50) % 256
    return np.where(x < w // 2, blocks, ramps).astype(np.uint8)


def u8_crop(pixels_u8_chw, out_f32, mean, std, what):
    """The uint8 crop, checked to reproduce the library's normalised f32 tensor."""
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    back = (pixels_u8_chw.float() / 255.0 - m) / s
    err = (back - out_f32).abs().max().item()
    assert err < 1e-6, f"{what}: u8 reconstruction off by {err}"
    return pixels_u8_chw.contiguous()


def main():
    torch.set_num_threads(2)
    make_photos()
    presets = torchvision_presets() + timm_presets() + lukemelas_presets()
    versions = json.dumps(
        dict(torch=torch.__version__, torchvision=torchvision.__version__, timm=timm.__version__, pillow=PIL.__version__)
    )

    tv_weights = torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1
    tv = tv_weights.transforms()
    tm = {name: timm_transform(name) for name in ["tf_efficientnet_b0", "tf_efficientnet_lite0"]}
    tv_out, timm_out = {}, {}
    for name in NAMES:
        img = Image.open(os.path.join(PHOTOS, f"{name}.jpg")).convert("RGB")  # the one decode
        chw = TF.pil_to_tensor(img)  # (3, H, W) uint8
        # torchvision: on the tensor, as `weights.transforms()(read_image(path))` runs it.
        out = tv(chw)
        crop = TF.center_crop(TF.resize(chw, tv.resize_size, interpolation=tv.interpolation, antialias=True), tv.crop_size)
        tv_out[name] = u8_crop(crop, out, tv.mean, tv.std, f"torchvision {name}")
        # timm: on the PIL image, as its datasets load them. Resize + CenterCrop, then ToTensor + Normalize.
        crops = {}
        for model_name, t in tm.items():
            out = t(img)
            pil_crop = t.transforms[1](t.transforms[0](img))
            c = TF.pil_to_tensor(pil_crop)
            norm = t.transforms[-1]
            crops[model_name] = u8_crop(c, out, norm.mean.tolist(), norm.std.tolist(), f"{model_name} {name}")
        assert torch.equal(crops["tf_efficientnet_b0"], crops["tf_efficientnet_lite0"])
        timm_out[name] = crops["tf_efficientnet_b0"]
        # For the record: how far torch's uint8 bicubic is from PIL's on the same pixels (8-bit levels).
        d = (tv_out[name].int() - timm_out[name].int()).abs()
        print(f"{name}: {tuple(chw.shape)}; torchvision (torch) vs timm (PIL) bicubic: max {d.max().item()} levels, mean {d.float().mean().item():.4f}")

    img = Image.fromarray(synthetic())
    chw = TF.pil_to_tensor(img)
    crop = TF.center_crop(TF.resize(chw, tv.resize_size, interpolation=tv.interpolation, antialias=True), tv.crop_size)
    tv_out["synthetic"] = u8_crop(crop, tv(chw), tv.mean, tv.std, "torchvision synthetic")[:, ::7, ::7].contiguous()
    t = tm["tf_efficientnet_b0"]
    crop = TF.pil_to_tensor(t.transforms[1](t.transforms[0](img)))
    norm = t.transforms[-1]
    full = u8_crop(crop, t(img), norm.mean.tolist(), norm.std.tolist(), "timm synthetic")
    timm_out["synthetic"] = full[:, ::7, ::7].contiguous()
    d = (tv_out["synthetic"].int() - timm_out["synthetic"].int()).abs()
    print(f"synthetic: torchvision (torch) vs timm (PIL): max {d.max().item()} levels, mean {d.float().mean().item():.4f}")

    meta_common = {"versions": versions, "presets": json.dumps(presets)}
    save_file(
        {**tv_out, "mean": torch.tensor(tv.mean), "std": torch.tensor(tv.std)},
        os.path.join(FIX, "preprocess_torchvision_b0.safetensors"),
        metadata={**meta_common, "transforms": repr(tv)},
    )
    norms = {}
    for model_name, t in tm.items():
        norms[f"mean.{model_name}"] = t.transforms[-1].mean.float()
        norms[f"std.{model_name}"] = t.transforms[-1].std.float()
    save_file(
        {**timm_out, **norms},
        os.path.join(FIX, "preprocess_timm_b0.safetensors"),
        metadata={**meta_common, "transforms": json.dumps({k: repr(t) for k, t in tm.items()})},
    )
    print("preset table (format variant: resolution resize keep_aspect interpolation mean std):")
    for r in presets:
        print(f"  {r['format']:11} {r['variant']:5} {r['resolution']:4} {r['resize_size']:4} {r['keep_aspect']!s:5} {r['interpolation']:8} {r['mean']} {r['std']}")
    for f in ["preprocess_torchvision_b0.safetensors", "preprocess_timm_b0.safetensors"]:
        print(f, os.path.getsize(os.path.join(FIX, f)), "bytes")


if __name__ == "__main__":
    main()
