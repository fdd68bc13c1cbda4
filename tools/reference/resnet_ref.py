#!/usr/bin/env python3
"""Narrow timm ResNets with random weights (randomised batch norm), plus forward/backward references.

Writes, for NAME in {resnet18_w8, resnet50_w4}:
  fixtures/NAME.safetensors     the full state_dict (torchvision/timm parameter names)
  fixtures/NAME_io.safetensors  input, eval/train logits, bn1 running stats after one train forward,
                                CE gradients for fc.weight / conv1.weight
The format is documented in README.md.
"""

import copy

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from timm.models.resnet import BasicBlock, Bottleneck, ResNet, make_blocks
from torch import nn

from _common import FIXTURES, seed_everything, write_atomic

SEED = 1234
NUM_CLASSES = 5
INPUT = [2, 3, 64, 64]
TARGET = [1, 3]

MODELS = {
    # name: (block, layers, channels, stem_width)
    "resnet18_w8": (BasicBlock, [2, 2, 2, 2], (8, 16, 32, 64), 8),
    "resnet50_w4": (Bottleneck, [3, 4, 6, 3], (4, 8, 16, 32), 4),
}


def build(block, layers, channels, stem_width) -> ResNet:
    """timm ResNet with the stem narrowed to `stem_width`.

    timm 1.0.31 quirk: `ResNet(stem_width=...)` only affects the deep stems (stem_type='deep*'); with the default
    7x7 stem the stem width is hard-coded to 64 (`inplanes = stem_width * 2 if deep_stem else 64`), so
    ResNet(channels=(8, ...), stem_width=8) gets a 64-channel conv1 and an extra layer1.0.downsample (64 -> 8).
    We therefore build the model, then swap in a `stem_width` conv1/bn1 and rebuild the stages with timm's own
    `make_blocks(inplanes=stem_width)`, and re-run timm's init. Replacing an existing attribute keeps the module
    registration order. The default stem is torchvision's (7x7/2 conv, BN, ReLU, 3x3/2 max pool) and the
    downsample is a 1x1 strided conv + BN (down_kernel_size=1, avg_down=False), so the names are torchvision's.
    """
    model = ResNet(block=block, layers=layers, channels=channels, stem_width=stem_width, num_classes=NUM_CLASSES)
    model.conv1 = nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(stem_width)
    stages, _ = make_blocks(
        (block,) * 4, channels, layers, stem_width, act_layer=nn.ReLU, norm_layer=nn.BatchNorm2d
    )
    for stage_name, stage in stages:
        assert hasattr(model, stage_name)
        setattr(model, stage_name, stage)
    model.init_weights(zero_init_last=True)
    assert model.fc.in_features == channels[-1] * block.expansion
    return model


def randomise_bn(model: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) * 1.0 + 0.5)  # [0.5, 1.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)  # [0.5, 2.0), positive
                m.num_batches_tracked.fill_(int(torch.randint(1, 10000, (1,), generator=gen)))


def check_names(sd: dict, block) -> None:
    expected = ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.conv2.weight",
                "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "layer4.1.conv2.weight",
                "fc.weight", "fc.bias"]
    if block is Bottleneck:
        expected += ["layer1.0.conv3.weight", "layer1.0.bn3.weight", "layer1.0.downsample.0.weight",
                     "layer3.5.conv3.weight"]
    missing = [k for k in expected if k not in sd]
    assert not missing, missing
    assert sd["bn1.num_batches_tracked"].dtype == torch.int64
    allowed = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc")
    assert all(k.split(".")[0] in allowed for k in sd), [k for k in sd if k.split(".")[0] not in allowed]


def check_against_torchvision(sd: dict, block, layers) -> None:
    """Same keys and the same conv/linear weight layout as torchvision's ResNet with these blocks, once the
    torchvision model's widths are scaled the same way (a torchvision ResNet with width_per_group scaled
    cannot shrink the stem, so compare keys and key order only)."""
    import torchvision.models.resnet as tvr

    tv_block = tvr.BasicBlock if block is BasicBlock else tvr.Bottleneck
    tv = tvr.ResNet(tv_block, layers, num_classes=NUM_CLASSES)
    assert list(tv.state_dict().keys()) == list(sd.keys())


def functional_forward(sd: dict, x: torch.Tensor, layers, bottleneck: bool, train: bool) -> torch.Tensor:
    """Independent float64 forward from the state dict alone, with torchvision's ResNet semantics
    (used to check that the timm module computes what the Rust graph assumes)."""
    p = {k: v.to(torch.float64) for k, v in sd.items() if v.is_floating_point()}

    def bn(h, name):
        if train:  # batch statistics, biased variance for the normalisation
            mean = h.mean(dim=(0, 2, 3))
            var = h.var(dim=(0, 2, 3), unbiased=False)
        else:
            mean, var = p[f"{name}.running_mean"], p[f"{name}.running_var"]
        h = (h - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + 1e-5)
        return h * p[f"{name}.weight"][None, :, None, None] + p[f"{name}.bias"][None, :, None, None]

    def conv(h, name, stride, padding):
        return F.conv2d(h, p[f"{name}.weight"], stride=stride, padding=padding)

    h = F.relu(bn(conv(x.to(torch.float64), "conv1", 2, 3), "bn1"))
    h = F.max_pool2d(h, 3, 2, 1)
    for stage, n in enumerate(layers):
        for i in range(n):
            pre = f"layer{stage + 1}.{i}"
            stride = 2 if stage > 0 and i == 0 else 1
            if bottleneck:
                y = F.relu(bn(conv(h, f"{pre}.conv1", 1, 0), f"{pre}.bn1"))
                y = F.relu(bn(conv(y, f"{pre}.conv2", stride, 1), f"{pre}.bn2"))
                y = bn(conv(y, f"{pre}.conv3", 1, 0), f"{pre}.bn3")
            else:
                y = F.relu(bn(conv(h, f"{pre}.conv1", stride, 1), f"{pre}.bn1"))
                y = bn(conv(y, f"{pre}.conv2", 1, 1), f"{pre}.bn2")
            if f"{pre}.downsample.0.weight" in p:
                sc = bn(conv(h, f"{pre}.downsample.0", stride, 0), f"{pre}.downsample.1")
            else:
                sc = h
            h = F.relu(y + sc)
    h = h.mean(dim=(2, 3))
    return F.linear(h, p["fc.weight"], p["fc.bias"])


def main():
    for name, (block, layers, channels, stem_width) in MODELS.items():
        seed_everything(SEED)
        gen = torch.Generator().manual_seed(SEED)
        model = build(block, layers, channels, stem_width)
        randomise_bn(model, gen)
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        check_names(sd, block)
        check_against_torchvision(sd, block, layers)
        write_atomic(FIXTURES / f"{name}.safetensors", save(sd))  # = safetensors.torch.save_file, atomically

        # Reload from the file so the references are computed from exactly what is stored.
        loaded = load_file(str(FIXTURES / f"{name}.safetensors"))
        ref = build(block, layers, channels, stem_width)
        ref.load_state_dict(loaded, strict=True)

        x = torch.randn(INPUT, generator=gen, dtype=torch.float32)
        target = torch.tensor(TARGET, dtype=torch.int64)

        ref.eval()
        with torch.no_grad():
            logits_eval = ref(x)

        train_model = copy.deepcopy(ref)
        train_model.train()
        train_model.zero_grad(set_to_none=True)
        logits_train = train_model(x)
        loss = F.cross_entropy(logits_train, target)
        loss.backward()

        for train, got in ((False, logits_eval), (True, logits_train)):
            ref64 = functional_forward(loaded, x, layers, block is Bottleneck, train)
            err = (got.double() - ref64).abs().max().item()
            assert err < 1e-3, (name, train, err)  # measured: <= 5e-6 eval, <= 9e-5 train (resnet50_w4)

        bn = train_model.bn1
        # Check the update against the formula (momentum 0.1, unbiased batch variance).
        with torch.no_grad():
            h = train_model.conv1(x)
            n = h.shape[0] * h.shape[2] * h.shape[3]
            mean = h.mean(dim=(0, 2, 3))
            var_unbiased = h.var(dim=(0, 2, 3), unbiased=True)
            exp_mean = 0.9 * loaded["bn1.running_mean"] + 0.1 * mean
            exp_var = 0.9 * loaded["bn1.running_var"] + 0.1 * var_unbiased
            assert torch.allclose(bn.running_mean, exp_mean, rtol=1e-5, atol=1e-6)
            assert torch.allclose(bn.running_var, exp_var, rtol=1e-5, atol=1e-6)
            assert int(bn.num_batches_tracked) == int(loaded["bn1.num_batches_tracked"]) + 1
            assert n == INPUT[0] * (INPUT[2] // 2) * (INPUT[3] // 2)

        io = {
            "input": x,
            "target": target,
            "logits_eval": logits_eval,
            "logits_train": logits_train.detach(),
            "loss_train": loss.detach().reshape(1),
            "bn1.running_mean_after": bn.running_mean.detach(),
            "bn1.running_var_after": bn.running_var.detach(),
            "grad_fc_weight": train_model.fc.weight.grad,
            "grad_fc_bias": train_model.fc.bias.grad,
            "grad_conv1_weight": train_model.conv1.weight.grad,
        }
        io = {k: v.detach().clone().contiguous() for k, v in io.items()}
        write_atomic(FIXTURES / f"{name}_io.safetensors", save(io))
        n_params = sum(p.numel() for p in ref.parameters())
        print(
            f"{name}: {len(sd)} tensors, {n_params} params, logits_eval[0]={logits_eval[0].tolist()}, "
            f"loss={loss.item():.6f}"
        )


if __name__ == "__main__":
    main()
