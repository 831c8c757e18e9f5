#!/usr/bin/env python3
"""Export an image encoder from Python to TorchScript + preprocessing JSON for `conceptlab embed`.

For users whose encoder lives in open_clip, timm, torchvision or Hugging Face transformers: the
image tower is traced (or scripted) to a module mapping float [B,3,H,W] -> [B,D], and the
preprocessing the model was trained with is written beside it as ENCODER.json (schema in
docs/embed.md). Optionally a concept vocabulary is embedded with the model's text tower into a
`conceptlab.vocab` HDF5 file (`names` [V] strings, `embeddings` float32 [V,D]) for naming concepts.

Examples:
  tools/export_torchscript.py --source open_clip --model ViT-B-16 --pretrained openai --out clip_b16.pt \\
      --vocab words.txt --vocab-out clip_b16.vocab.h5
  tools/export_torchscript.py --source timm --model vit_small_patch14_dinov2.lvd142m --out dinov2_s.pt
  tools/export_torchscript.py --source torchvision --model resnet50 --weights DEFAULT --out r50.pt
  tools/export_torchscript.py --source hf --model facebook/dinov2-base --out dinov2_b.pt

torch and the chosen library are imported only when exporting, so --help works anywhere.
"""
import argparse
import json
import math
import os
import sys

PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def interp_name(x):
    """Map a torchvision InterpolationMode / PIL resample / timm string to our JSON names."""
    name = str(getattr(x, "value", x)).lower()
    if name.isdigit():
        name = PIL_RESAMPLE.get(int(name), "bilinear")
    for base in ("bicubic", "lanczos", "box", "nearest", "bilinear"):
        if base in name:
            # conceptlab reproduces PIL's antialiased resampling exactly (torchvision on PIL images).
            return base if base == "nearest" else base + "_antialias"
    return "bilinear_antialias"


def preprocess_json(image_size, resize_size, interpolation, mean, std, crop=True):
    return {
        "image_size": int(image_size),
        "resize": "shorter_side_center_crop" if crop else "direct",
        "resize_size": 0 if (not crop or int(resize_size) == int(image_size)) else int(resize_size),
        "interpolation": interpolation,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "channel_order": "RGB",
        "input_range": [0.0, 1.0],
        "alpha": "drop",
    }


def from_torchvision_transform(t):
    """Reads Resize/CenterCrop/Normalize out of a torchvision Compose (open_clip, torchvision)."""
    import torchvision.transforms as T

    size = resize = None
    interp = "bilinear_antialias"
    mean = std = None
    crop = False
    steps = getattr(t, "transforms", [t])
    for s in steps:
        if isinstance(s, T.Resize):
            rs = s.size if isinstance(s.size, int) else s.size[0]
            if not isinstance(s.size, int) and len(s.size) == 2 and s.size[0] == s.size[1]:
                size = rs  # Resize((S, S)): direct
            resize = rs
            interp = interp_name(s.interpolation)
        elif isinstance(s, T.CenterCrop):
            crop = True
            size = s.size[0] if isinstance(s.size, (list, tuple)) else s.size
        elif isinstance(s, T.Normalize):
            mean, std = s.mean, s.std
    if hasattr(t, "crop_size"):  # torchvision weights' ImageClassification preset
        size, resize, crop = t.crop_size[0], t.resize_size[0], True
        interp = interp_name(t.interpolation)
        mean, std = t.mean, t.std
    if size is None or mean is None:
        raise SystemExit("cannot read the preprocessing from %r; write the JSON by hand (docs/embed.md)" % (t,))
    return preprocess_json(size, resize or size, interp, mean, std, crop)


def load_open_clip(a):
    import open_clip

    if a.spatial:
        raise SystemExit("--spatial: not available for open_clip towers; export the same weights with --source hf "
                         "or timm")

    model, _, preprocess = open_clip.create_model_and_transforms(a.model, pretrained=a.pretrained or None)
    model.eval()

    class Tower(__import__("torch").nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.encode_image(x)

    text = None
    if a.vocab:
        tok = open_clip.get_tokenizer(a.model)

        def text(words):
            return model.encode_text(tok(words))

    return Tower(model), from_torchvision_transform(preprocess), text, None


def load_timm(a):
    import timm

    model = timm.create_model(a.model, pretrained=a.weights != "none", num_classes=0)
    model.eval()
    spatial = None
    if a.spatial:
        # forward_features: [B, C, h, w] for CNNs, [B, prefix + h*w, D] for ViTs (class token and
        # registers first, timm's num_prefix_tokens).
        class Features(__import__("torch").nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return self.m.forward_features(x)

        spatial = {"prefix_tokens": int(getattr(model, "num_prefix_tokens", 0))}
        model = Features(model)
    cfg = timm.data.resolve_data_config({}, model=model)
    size = cfg["input_size"][-1]
    crop_pct = cfg.get("crop_pct", 1.0) or 1.0
    crop = cfg.get("crop_mode", "center") == "center"
    resize = int(math.floor(size / crop_pct))
    pre = preprocess_json(size, resize, interp_name(cfg.get("interpolation", "bicubic")), cfg["mean"], cfg["std"], crop)
    return model, pre, None, spatial


def load_torchvision(a):
    import torch
    import torchvision

    weights = None if a.weights == "none" else a.weights
    model = torchvision.models.get_model(a.model, weights=weights)
    for head in ("fc", "classifier", "heads", "head"):
        if hasattr(model, head):
            setattr(model, head, torch.nn.Identity())
            break
    model.eval()
    spatial = None
    if a.spatial:
        # CNNs end in a global pool and the head: keep the layers before the pool ([B, C, h, w]).
        children = list(model.children())
        pools = [i for i, c in enumerate(children) if isinstance(c, (torch.nn.AdaptiveAvgPool2d, torch.nn.AvgPool2d))]
        if not pools:
            raise SystemExit("--spatial: %s has no global pooling layer to cut at (torchvision CNNs only)" % a.model)
        model = torch.nn.Sequential(*children[:pools[-1]])
        spatial = {}
    if weights:
        w = torchvision.models.get_model_weights(a.model)[weights] if isinstance(weights, str) else weights
        pre = from_torchvision_transform(w.transforms())
    else:
        pre = preprocess_json(a.image_size or 224, 256, "bilinear_antialias", [0.485, 0.456, 0.406],
                              [0.229, 0.224, 0.225], True)
    return model, pre, None, spatial


def load_hf(a):
    import torch
    import transformers

    proc = transformers.AutoImageProcessor.from_pretrained(a.model)
    model = transformers.AutoModel.from_pretrained(a.model)
    model.eval()
    is_clip = hasattr(model, "get_image_features")

    class Tower(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            if a.spatial:  # every token of the last layer, class token (and registers) first
                m = self.m.vision_model if is_clip else self.m
                return m(pixel_values=x).last_hidden_state
            if is_clip:
                return self.m.get_image_features(pixel_values=x)
            out = self.m(pixel_values=x)
            pooled = getattr(out, "pooler_output", None)
            return pooled if pooled is not None else out.last_hidden_state[:, 0]

    crop = bool(getattr(proc, "do_center_crop", False))
    cs = getattr(proc, "crop_size", None) or {}
    sz = getattr(proc, "size", None) or {}
    image = cs.get("height") if crop else (sz.get("height") or sz.get("shortest_edge"))
    resize = sz.get("shortest_edge") or sz.get("height") or image
    pre = preprocess_json(image, resize, interp_name(getattr(proc, "resample", 2)), proc.image_mean, proc.image_std,
                          crop)
    text = None
    if a.vocab and is_clip:
        tok = transformers.AutoTokenizer.from_pretrained(a.model)

        def text(words):
            return model.get_text_features(**tok(words, padding=True, return_tensors="pt"))

    spatial = None
    if a.spatial:
        cfg = model.config.vision_config if is_clip else model.config
        spatial = {"prefix_tokens": 1 + int(getattr(cfg, "num_register_tokens", 0) or 0)}
    return Tower(model), pre, text, spatial


def write_vocab(path, names, emb, config):
    import h5py
    import numpy as np

    with h5py.File(path + ".tmp", "w") as f:
        f.attrs["format"] = "conceptlab.vocab"
        f.attrs["schema_version"] = 1
        f.attrs["config"] = json.dumps(config)
        f.create_dataset("names", data=np.array(names, dtype=object), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("embeddings", data=np.asarray(emb, dtype=np.float32))
    os.replace(path + ".tmp", path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--source", required=True, choices=["open_clip", "timm", "torchvision", "hf"])
    ap.add_argument("--model", required=True, help="model name (open_clip/timm/torchvision) or HF hub id / folder")
    ap.add_argument("--pretrained", default="", help="open_clip pretrained tag, e.g. openai, laion2b_s34b_b88k")
    ap.add_argument("--weights", default="DEFAULT", help="torchvision weights name, or 'none' (timm: 'none' = random)")
    ap.add_argument("--image-size", type=int, default=0, help="override the input side")
    ap.add_argument("--out", required=True, help="output TorchScript file; the JSON goes to the same path with .json")
    ap.add_argument("--method", default="trace", choices=["trace", "script"])
    ap.add_argument("--batch-check", type=int, default=2, help="batch size of the trace-vs-eager check")
    ap.add_argument("--vocab", default="", help="text file, one concept word or phrase per line")
    ap.add_argument("--prompt", default="{}", help="prompt template for vocabulary words, e.g. 'a photo of {}'")
    ap.add_argument("--vocab-out", default="", help="output conceptlab.vocab HDF5 (default: OUT with .vocab.h5)")
    ap.add_argument("--spatial", action="store_true",
                    help="export the feature map [B,C,h,w] (CNNs) or the last layer's tokens [B,T,D] (ViTs) instead of "
                         "the pooled embedding; the JSON then turns on `conceptlab embed --patches`")
    a = ap.parse_args(argv)
    if a.vocab and a.spatial:
        raise SystemExit("--vocab needs the pooled image embedding: export without --spatial for the vocabulary")

    import torch

    loader = {"open_clip": load_open_clip, "timm": load_timm, "torchvision": load_torchvision, "hf": load_hf}[a.source]
    tower, pre, text, spatial = loader(a)
    if a.image_size:
        pre["image_size"] = a.image_size
    s = pre["image_size"]
    x = torch.randn(a.batch_check, 3, s, s)
    with torch.no_grad():
        ref = tower(x)
        if a.method == "trace":
            ts = torch.jit.trace(tower, x, check_trace=False)
        else:
            ts = torch.jit.script(tower)
        got = ts(x)
    want = (3, 4) if a.spatial else (2,)
    if ref.dim() not in want or ref.shape[0] != a.batch_check:
        raise SystemExit("the image tower returns shape %s, expected %s" % (
            tuple(ref.shape), "[B, C, h, w] or [B, T, D]" if a.spatial else "[B, D]"))
    diff = (ref - got).abs().max().item()
    if diff > 1e-4:
        raise SystemExit("TorchScript output differs from eager by %g; try --method script" % diff)
    base = os.path.splitext(a.out)[0]
    ts.save(a.out)
    card = dict(pre)
    card.update({"model": "%s:%s%s" % (a.source, a.model, (" (" + a.pretrained + ")") if a.pretrained else ""),
                 "torch_version": torch.__version__})
    if a.spatial:
        # conceptlab embed reads "patches" and the "output" object (tools/embed/encoder.h OutputParams).
        card.update({"patches": True, "output": dict(spatial), "output_shape": "[N,%s] float32" % ",".join(
            str(d) for d in ref.shape[1:])})
    else:
        card["output"] = "[N,%d] float32" % ref.shape[1]
    with open(base + ".json", "w") as f:
        json.dump(card, f, indent=1)
    print("wrote %s ([B,3,%d,%d] -> [B,%s]) and %s" % (a.out, s, s, ",".join(str(d) for d in ref.shape[1:]),
                                                      base + ".json"))

    if a.vocab:
        if text is None:
            raise SystemExit("--vocab needs a model with a text tower (open_clip, or a CLIP model on hf)")
        names = [w.strip() for w in open(a.vocab, encoding="utf-8") if w.strip()]
        with torch.no_grad():
            emb = torch.cat([text([a.prompt.format(w) for w in names[i:i + 64]]) for i in range(0, len(names), 64)])
        if emb.shape[1] != ref.shape[1]:
            raise SystemExit("text embeddings have dim %d, image embeddings %d" % (emb.shape[1], ref.shape[1]))
        out = a.vocab_out or base + ".vocab.h5"
        write_vocab(out, names, emb.float().numpy(), {"model": card["model"], "prompt": a.prompt})
        print("wrote %s (%d words)" % (out, len(names)))


if __name__ == "__main__":
    sys.exit(main())
