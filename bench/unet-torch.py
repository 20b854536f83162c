#!/usr/bin/env python3
"""PyTorch reference of diffem's U-Net denoiser (models/denoisers/unet.ts) at MNIST size.

The same network, layer for layer: sinusoidal embedding of log sigma + 2-layer MLP, a 3x3
input conv over [c_in x_t, y, mask], per level `blocks` ResBlocks (GroupNorm, SiLU, conv3x3,
+ Linear(SiLU(e)), GroupNorm, SiLU, dropout, conv3x3, 1x1 skip when widths differ) with
optional self-attention, stride-2 3x3 downsampling; middle ResBlock, attention, ResBlock; the
up path with skip concatenation, nearest x2 upsampling cropped to the skip's size and a 3x3
conv; GroupNorm, SiLU, 3x3 output conv; EDM preconditioning with sigma_data = 1.

Measures, on the CPU with all cores (torch.set_num_threads):
  train    images/s of Adam steps on the weighted denoising loss (t ~ Beta(3, 3), sigma in
           [1e-3, 1e2]) at the given batch size;
  forward  images/s of no-grad forward passes at batch 128 (the E-step's work);
  vjp      images/s of vector-Jacobian products J^T v of the UNCONDITIONAL network at batch
           128 (EM-MMPS's guidance, one forward and one backward pass each, as
           torch.autograd.grad with grad_outputs computes them).

Prints one JSON object on stdout, which `node dist/bench/unet.js` shows next to its own figures.

    /usr/bin/python3 bench/unet-torch.py [--batch 32] [--steps 10] [--levels 32,64]
        [--blocks 1] [--attention 1] [--groups 8] [--embed 64] [--dropout 0.1]
"""
import argparse
import json
import math
import os

# torch runs its own thread pool; OpenBLAS threads under it would oversubscribe the cores.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
import time

import torch
from torch import nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, groups, dropout):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, h, e):
        x = self.conv1(F.silu(self.norm1(h)))
        x = x + self.emb(e)[:, :, None, None]
        x = self.conv2(self.dropout(F.silu(self.norm2(x))))
        return self.skip(h) + x


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-5)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(n, c, h * w).transpose(1, 2)
        k = self.k(y).reshape(n, c, h * w)
        v = self.v(y).reshape(n, c, h * w).transpose(1, 2)
        a = torch.softmax(q @ k / math.sqrt(c), dim=-1)
        return x + self.proj((a @ v).transpose(1, 2).reshape(n, c, h, w))


class Unet(nn.Module):
    def __init__(self, channels, cond, levels, blocks, attention, emb, groups, dropout):
        super().__init__()
        self.register_buffer('freqs', torch.exp(-math.log(1e4) * torch.arange(emb // 2) / (emb // 2)))
        self.embed = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.input = nn.Conv2d(channels + cond, levels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        ch = levels[0]
        for l, c in enumerate(levels):
            layers = nn.ModuleList()
            for _ in range(blocks):
                layers.append(ResBlock(ch, c, emb, groups, dropout))
                ch = c
                layers.append(Attention(ch, groups) if l in attention else nn.Identity())
            self.down.append(layers)
            self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1) if l < len(levels) - 1 else nn.Identity())
        self.mid1 = ResBlock(ch, ch, emb, groups, dropout)
        self.mid_attn = Attention(ch, groups)
        self.mid2 = ResBlock(ch, ch, emb, groups, dropout)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for l in reversed(range(len(levels))):
            ch += levels[l]
            layers = nn.ModuleList()
            for _ in range(blocks):
                layers.append(ResBlock(ch, levels[l], emb, groups, dropout))
                ch = levels[l]
                layers.append(Attention(ch, groups) if l in attention else nn.Identity())
            self.up.append(layers)
            if l > 0:
                self.upsample.append(nn.Conv2d(ch, levels[l - 1], 3, padding=1))
                ch = levels[l - 1]
            else:
                self.upsample.append(nn.Identity())
        self.out_norm = nn.GroupNorm(groups, ch, eps=1e-5)
        self.out = nn.Conv2d(ch, channels, 3, padding=1)

    def forward(self, xt, sigma, cond):
        s = sigma[:, None, None, None]
        c_skip = 1 / (s**2 + 1)
        c_in = 1 / torch.sqrt(s**2 + 1)
        c_out = s * c_in
        angles = torch.log(sigma)[:, None] * self.freqs[None]
        e = F.silu(self.embed(torch.cat([angles.sin(), angles.cos()], 1)))
        h = self.input(torch.cat([xt * c_in, cond], 1))
        skips = []
        for layers, down in zip(self.down, self.downsample):
            for i in range(0, len(layers), 2):
                h = layers[i + 1](layers[i](h, e))
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, e)), e)
        for layers, up in zip(self.up, self.upsample):
            skip = skips.pop()
            h = torch.cat([h, skip], 1)
            for i in range(0, len(layers), 2):
                h = layers[i + 1](layers[i](h, e))
            if not isinstance(up, nn.Identity):
                target = skips[-1].shape[-2:]
                h = F.interpolate(h, scale_factor=2, mode='nearest')[..., : target[0], : target[1]]
                h = up(h)
        return xt * c_skip + self.out(F.silu(self.out_norm(h))) * c_out


def blas_gflops_1thread():
    """GFLOP/s of a 512^3 matmul on one thread: tells OpenBLAS from Debian's reference BLAS."""
    torch.set_num_threads(1)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        a @ b
        n += 1
    return n * 2 * 512**3 / (time.perf_counter() - t0) / 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--levels', default='32,64')
    parser.add_argument('--blocks', type=int, default=1)
    parser.add_argument('--attention', default='1', help="comma-separated level indices ('' for none)")
    parser.add_argument('--groups', type=int, default=8)
    parser.add_argument('--embed', type=int, default=64)
    parser.add_argument('--dropout', type=float, default=0.1)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: all cores)')
    args = parser.parse_args()
    # A reference on the reference BLAS runs ~20x slow: refuse, so no ratio flatters us.
    blas = blas_gflops_1thread()
    if blas < 15:
        raise SystemExit(f"torch's BLAS gives {blas:.1f} GFLOP/s on one thread: it is not OpenBLAS. "
                         "apt-get install libopenblas0-pthread, then run again.")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    torch.manual_seed(0)
    levels = [int(v) for v in args.levels.split(',')]
    attention = {int(v) for v in args.attention.split(',') if v != ''}
    net = Unet(1, 2, levels, args.blocks, attention, args.embed, args.groups, args.dropout)
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    n = 256
    x = torch.rand(n, 1, 28, 28) * 4 - 2
    cond = torch.rand(n, 2, 28, 28) * 4 - 2
    beta = torch.distributions.Beta(3.0, 3.0)

    def step():
        idx = torch.randint(0, n, (args.batch,))
        xb, cb = x[idx], cond[idx]
        sigma = torch.exp(math.log(1e-3) + (math.log(1e2) - math.log(1e-3)) * beta.sample((args.batch,)))
        xt = xb + sigma[:, None, None, None] * torch.randn_like(xb)
        loss = ((net(xt, sigma, cb) - xb) ** 2).mean((1, 2, 3)).mul(1 / sigma**2 + 1).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()

    net.train()
    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    train = args.steps * args.batch / (time.perf_counter() - t)

    net.eval()
    sigma = torch.ones(128)
    with torch.no_grad():
        net(x[:128], sigma, cond[:128])
        t = time.perf_counter()
        net(x[:128], sigma, cond[:128])
        net(x[128:], sigma, cond[128:])
        forward = n / (time.perf_counter() - t)

    prior = Unet(1, 0, levels, args.blocks, attention, args.embed, args.groups, 0.0).eval()
    cotangent = torch.randn(n, 1, 28, 28)
    nothing = torch.zeros(128, 0, 28, 28)

    def vjp(rows):
        xt = x[rows].clone().requires_grad_(True)
        return torch.autograd.grad(prior(xt, sigma, nothing), xt, cotangent[rows])[0]

    vjp(slice(0, 128))
    t = time.perf_counter()
    vjp(slice(0, 128))
    vjp(slice(128, 256))
    vjp_rate = n / (time.perf_counter() - t)
    print(json.dumps({
        'runtime': f'PyTorch {torch.__version__} CPU, {torch.get_num_threads()} threads',
        'parameters': params,
        'train_images_per_s': round(train, 1),
        'forward_images_per_s': round(forward, 1),
        'vjp_images_per_s': round(vjp_rate, 1),
        'batch': args.batch,
        'blas_gflops_1thread': round(blas, 1),
    }))


if __name__ == '__main__':
    main()
