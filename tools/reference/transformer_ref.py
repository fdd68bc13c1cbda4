#!/usr/bin/env python3
"""timm DeiT-Tiny and TinyViT-5M with random weights: the reference the Rust graphs must match.

Default: narrow variants small enough to commit (fixtures/NAME.safetensors with the full state_dict in timm's
names, fixtures/NAME_io.safetensors with input, eval/train logits, CE loss and gradients):
  deit_tiny_w16  deit_tiny_patch16_224 with embed_dim 48 (3 heads of 16), depth 2, 64x64 input
  tiny_vit_w16   tiny_vit_5m_224 with embed_dims (16, 32, 40, 80), depths (1, 1, 2, 1), 64x64 input, so the
                 8x8 / 4x4 / 2x2 stage grids are zero-padded to whole 7 / 14 / 7 windows
`--full DIR`: the full-size models (timm's own configs, 1000 classes, 224x224, batch 2) into DIR instead
(used by tools/reference/full_size_check.sh; about 50 MB, not committed).

Every norm, bias, token, embedding and attention-bias table is randomised (timm initialises several of them to
constants, which would hide a wrong index or layout).
"""

import argparse
import copy
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save

from _common import FIXTURES, seed_everything, write_atomic
from resnet_ref import randomise_bn

SEED = 4321
TARGET = [1, 3]

NARROW = {
    # name: (timm model, kwargs, input size, classes)
    "deit_tiny_w16": ("deit_tiny_patch16_224", dict(embed_dim=48, depth=2, img_size=64), 64, 5),
    "tiny_vit_w16": ("tiny_vit_5m_224", dict(embed_dims=[16, 32, 40, 80], depths=[1, 1, 2, 1]), 64, 5),
}
FULL = {
    "deit_tiny_patch16_224": ("deit_tiny_patch16_224", {}, 224, 1000),
    "tiny_vit_5m_224": ("tiny_vit_5m_224", {}, 224, 1000),
    "resnet50": ("resnet50", {}, 224, 1000),
}


def randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
    randomise_bn(model, gen)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):  # LayerNorm / BatchNorm scale
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif p.dim() == 1:  # biases
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif "attention_biases" in name or name in ("cls_token", "pos_embed"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


def grad_keys(name: str) -> dict:
    if name.startswith("deit"):
        return {"head.weight": "grad_head_weight", "patch_embed.proj.weight": "grad_patch_embed_weight",
                "blocks.0.attn.qkv.weight": "grad_qkv0_weight", "pos_embed": "grad_pos_embed",
                "cls_token": "grad_cls_token"}
    if name.startswith("tiny_vit"):
        return {"head.fc.weight": "grad_head_weight", "patch_embed.conv1.conv.weight": "grad_patch_embed_weight",
                "stages.1.blocks.0.attn.qkv.weight": "grad_qkv0_weight",
                "stages.1.blocks.0.attn.attention_biases": "grad_attention_biases"}
    return {"fc.weight": "grad_head_weight", "conv1.weight": "grad_patch_embed_weight"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", type=Path, help="write the full-size models here instead of the narrow fixtures")
    args = ap.parse_args()
    out_dir, models = (args.full, FULL) if args.full else (FIXTURES, NARROW)
    for name, (arch, kwargs, size, classes) in models.items():
        seed_everything(SEED)
        gen = torch.Generator().manual_seed(SEED)
        model = timm.create_model(arch, pretrained=False, num_classes=classes, **kwargs)
        randomise(model, gen)
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        write_atomic(out_dir / f"{name}.safetensors", save(sd))

        # Reload from the file so the references are computed from exactly what is stored.
        ref = timm.create_model(arch, pretrained=False, num_classes=classes, **kwargs)
        ref.load_state_dict(load_file(str(out_dir / f"{name}.safetensors")), strict=True)
        x = torch.randn([2, 3, size, size], generator=gen, dtype=torch.float32)
        target = torch.tensor(TARGET, dtype=torch.int64)
        ref.eval()
        with torch.no_grad():
            logits_eval = ref(x)
            logits_eval64 = copy.deepcopy(ref).double()(x.double())
        err64 = ((logits_eval.double() - logits_eval64).abs().max() / logits_eval64.abs().max()).item()

        train_model = copy.deepcopy(ref)
        train_model.train()
        logits_train = train_model(x)
        loss = F.cross_entropy(logits_train, target)
        loss.backward()
        params = dict(train_model.named_parameters())
        io = {
            "input": x,
            "target": target,
            "logits_eval": logits_eval,
            "logits_train": logits_train.detach(),
            "loss_train": loss.detach().reshape(1),
        }
        for p, key in grad_keys(name).items():
            io[key] = params[p].grad
        io = {k: v.detach().clone().contiguous() for k, v in io.items()}
        write_atomic(out_dir / f"{name}_io.safetensors", save(io))
        n_params = sum(p.numel() for p in ref.parameters())
        print(f"{name}: {len(sd)} tensors, {n_params} params, f32 vs f64 logits rel err {err64:.2e}, "
              f"loss={loss.item():.6f}")


if __name__ == "__main__":
    main()
