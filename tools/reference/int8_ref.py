#!/usr/bin/env python3
"""The integer arithmetic of fq-runtime's 8-bit path on the narrow ResNet18 (resnet18_w8), in PyTorch.

Independent of the Rust code: it reads the resnet_ref.py fixtures (timm weights with random batch norms and
their input) and computes, for every convolution, what the runtime's integer path must compute:

  weights   per output channel, symmetric 4-bit codes of the *unfolded* conv weight (scale max|w| / 7,
            round half to even), as the compressor quantises; batch norm folded into the channel's scale
            and a bias (s' = s * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps))
  input     q = clamp(round_half_even(x * float32(1 / s_act)), -127, 127), one static scale per tensor,
            s_act = max |x| / 127 over the two input images in the float model (f32 activations, the
            dequantised folded weights), as `Executor::calibrate` does
  sum       acc = conv2d(q, codes), exact (float64 holds every sum of these sizes exactly)
  output    y = acc * (s_act * s'[o]) + b'[o], then ReLU / residual add / max pool / average pool in float;
            the final Linear (a GEMV on one feature vector) stays f32, as in the runtime
  residual  an identity shortcut is added from its codes, q * s_act of the block's conv1 (the scale its
            codes have: the max pooling writes them for layer1.0, a convolution's epilogue for the
            others), as the runtime adds it (`Executor::set_residual_codes`); a downsampling shortcut
            is added as floats

Writes fixtures/int8_resnet18_w8.safetensors:
  codes.<conv>      I8  [out, in*k*k]  weight codes          wscale.<conv>  F32 [out]  their unfolded scales
  act_scale.<conv>  F32 [1]            the static input scale
  q.<conv>          I8  [2, c, h, w]   the conv's input codes for the two images
  acc.<conv>        I32 [2, out, oh, ow]  the integer sums before any rescaling
  logits            F32 [2, 5]         the integer model's logits
  float_logits      F32 [2, 5]         the same weights with f32 activations
The Rust test (tests/tests/int8_reference.rs) feeds q.<conv> through the runtime's integer convolution and
requires acc.<conv> bit for bit, then runs the whole model with the act_scale values and compares logits.
"""

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save

from _common import FIXTURES, seed_everything, write_atomic

BITS = 4
EPS = 1e-5
STAGES = [2, 2, 2, 2]


def quantise_codes(w):
    """Per-output-channel symmetric codes (round half to even) and scales of a conv weight."""
    qmax = 2 ** (BITS - 1) - 1
    flat = w.reshape(w.shape[0], -1)
    scale = flat.abs().amax(dim=1) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.round(flat / scale[:, None]).clamp(-qmax, qmax)
    return codes.to(torch.int8), scale.float()


class IntegerResNet:
    def __init__(self, sd):
        self.sd = sd
        self.convs = {}  # name -> (codes [out, in, k, k] float64, folded scale f32, folded bias f32, stride, pad)
        self.record = {}

    def add_conv(self, conv, bn, stride, pad):
        w = self.sd[f"{conv}.weight"]
        codes, scale = quantise_codes(w)
        g, b = self.sd[f"{bn}.weight"].double(), self.sd[f"{bn}.bias"].double()
        m, v = self.sd[f"{bn}.running_mean"].double(), self.sd[f"{bn}.running_var"].double()
        factor = g / torch.sqrt(v + EPS)
        folded_scale = (scale.double() * factor).float()
        folded_bias = (b - m * factor).float()
        self.convs[conv] = (codes.reshape(w.shape).double(), folded_scale, folded_bias, stride, pad)
        self.record[conv] = {"codes": codes, "wscale": scale}

    def conv(self, name, x, act_scales):
        codes, s, b, stride, pad = self.convs[name]
        if act_scales is None:  # float model: dequantised folded weights, f32 activations
            w = (codes * s.double()[:, None, None, None]).float()
            self.peak[name] = max(self.peak.get(name, 0.0), float(x.abs().max()))
            return F.conv2d(x, w, b, stride=stride, padding=pad)
        s_act = act_scales[name]
        inv = torch.tensor(1.0, dtype=torch.float32) / s_act
        q = torch.round(x * inv).clamp(-127, 127)
        acc = F.conv2d(q.double(), codes, stride=stride, padding=pad)
        assert acc.abs().max() < 2**31 and torch.equal(acc, acc.round())
        self.record[name]["q"] = q.to(torch.int8)
        self.record[name]["acc"] = acc.to(torch.int32)
        return (acc * (s_act.double() * s.double())[None, :, None, None]).float() + b[None, :, None, None]

    @staticmethod
    def residual_codes(x, s_act):
        """An identity shortcut as the runtime adds it from its codes: q * s_act, in float32."""
        inv = torch.tensor(1.0, dtype=torch.float32) / s_act
        return torch.round(x * inv).clamp(-127, 127) * s_act

    def forward(self, x, act_scales=None):
        self.peak = {}
        y = F.relu(self.conv("conv1", x, act_scales))
        y = F.max_pool2d(y, 3, 2, 1)
        for i, blocks in enumerate(STAGES):
            for j in range(blocks):
                p = f"layer{i + 1}.{j}"
                out = F.relu(self.conv(f"{p}.conv1", y, act_scales))
                out = self.conv(f"{p}.conv2", out, act_scales)
                if f"{p}.downsample.0" in self.convs:
                    short = self.conv(f"{p}.downsample.0", y, act_scales)
                elif act_scales is not None:
                    short = self.residual_codes(y, act_scales[f"{p}.conv1"])
                else:
                    short = y
                y = F.relu(out + short)
        y = y.mean(dim=(2, 3))
        return F.linear(y, self.sd["fc.weight"], self.sd["fc.bias"])


def main():
    seed_everything(0)
    sd = load_file(str(FIXTURES / "resnet18_w8.safetensors"))
    x = load_file(str(FIXTURES / "resnet18_w8_io.safetensors"))["input"]
    net = IntegerResNet(sd)
    net.add_conv("conv1", "bn1", 2, 3)
    for i, blocks in enumerate(STAGES):
        for j in range(blocks):
            p = f"layer{i + 1}.{j}"
            stride = 2 if (i > 0 and j == 0) else 1
            net.add_conv(f"{p}.conv1", f"{p}.bn1", stride, 1)
            net.add_conv(f"{p}.conv2", f"{p}.bn2", 1, 1)
            if f"{p}.downsample.0.weight" in sd:
                net.add_conv(f"{p}.downsample.0", f"{p}.downsample.1", stride, 0)
    with torch.no_grad():
        float_logits = net.forward(x)
        act_scales = {k: torch.tensor(v / 127.0, dtype=torch.float32) for k, v in net.peak.items()}
        logits = net.forward(x, act_scales)
    out = {"logits": logits.contiguous(), "float_logits": float_logits.contiguous()}
    for name, r in net.record.items():
        out[f"codes.{name}"] = r["codes"].contiguous()
        out[f"wscale.{name}"] = r["wscale"].contiguous()
        out[f"act_scale.{name}"] = act_scales[name].reshape(1).contiguous()
        out[f"q.{name}"] = r["q"].contiguous()
        out[f"acc.{name}"] = r["acc"].contiguous()
    write_atomic(FIXTURES / "int8_resnet18_w8.safetensors", save(out))
    print(f"int8_resnet18_w8: {len(net.record)} convolutions; logits {logits.tolist()}")


if __name__ == "__main__":
    main()
