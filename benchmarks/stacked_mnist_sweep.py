"""A recipe sweep for stacked MNIST on a GPU machine that has PyTorch but no TensorFlow.

The stacked-MNIST presets take 1-2 minutes per epoch on 2 CPU cores, so searching for a recipe there is out of
reach; this script re-implements the `dcgan-stacked-mnist` preset layer for layer in PyTorch (same shapes,
Glorot-uniform init, BatchNorm eps 1e-3 / momentum 0.99, Adam eps 1e-7, non-saturating loss, D on real and fake
batches separately, R1 as ``gamma / 2 * E||grad D(x)||^2``) and trains many variants at once on one GPU, scoring
each every few epochs exactly as `keras_gen.metrics.stacked_mnist_modes` does: the keras-gen MNIST domain
classifier (its Keras weights, parity checked) reads each channel of 26,000 samples. A recipe found here becomes
a keras-gen preset and is then measured with the package itself (`benchmarks/mode_collapse.py`).

    python benchmarks/stacked_mnist_sweep.py export DIR            # here (TensorFlow): data + classifier weights
    python benchmarks/stacked_mnist_sweep.py run DIR --configs r1 --out sweep.json --budget 300   # GPU, PyTorch
    python benchmarks/stacked_mnist_sweep.py table sweep.json [more.json ...]                   # anywhere

``run`` starts one process per config (all sharing the GPU), rewrites each config's result after every
evaluation and stops them all at ``--budget`` seconds, evaluating where each one got to.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _every(epochs, step=5):
    return list(range(step, epochs + 1, step))


# The two sweeps behind the r1-stacked-mnist preset (README, "Benchmarks"); keys are `train` options.
CONFIG_SETS = {
    "first": [
        {"name": "base30", "epochs": 30, "evals": _every(30)},
        {"name": "cos10", "epochs": 10, "schedule": "cosine", "evals": [5, 10]},
        {"name": "cos20", "epochs": 20, "schedule": "cosine", "evals": _every(20)},
        {"name": "cos20_s1", "epochs": 20, "schedule": "cosine", "evals": _every(20), "seed": 1},
        {"name": "cos20_ema", "epochs": 20, "schedule": "cosine", "ema": 0.999, "evals": _every(20)},
        {"name": "r1_cos20", "epochs": 20, "schedule": "cosine", "r1": 1.0, "evals": _every(20)},
        {"name": "r1x10_30", "epochs": 30, "r1": 10.0, "evals": _every(30)},
        {"name": "w128_cos20", "epochs": 20, "schedule": "cosine", "width": 128, "evals": _every(20)},
        {"name": "hinge_sn_cos20", "epochs": 20, "schedule": "cosine", "loss": "hinge", "evals": _every(20)},
        {"name": "pack2_cos20", "epochs": 20, "schedule": "cosine", "packing": 2, "evals": _every(20)},
        {"name": "nobn_r1_cos20", "epochs": 20, "schedule": "cosine", "d_norm": None, "r1": 1.0,
         "evals": _every(20)},
    ],
    "r1": [
        {"name": "r1x10_s1", "epochs": 30, "r1": 10.0, "seed": 1, "evals": _every(30)},
        {"name": "r1x10_s2", "epochs": 30, "r1": 10.0, "seed": 2, "evals": _every(30)},
        {"name": "r1x10_45", "epochs": 45, "r1": 10.0, "evals": _every(45)},
        {"name": "r1x30_30", "epochs": 30, "r1": 30.0, "evals": _every(30)},
        {"name": "r1x10_lr4_20", "epochs": 20, "r1": 10.0, "lr": 4e-4, "evals": _every(20)},
        {"name": "r1x10_b0_30", "epochs": 30, "r1": 10.0, "beta1": 0.0, "evals": _every(30)},
        {"name": "r1x10_ema_30", "epochs": 30, "r1": 10.0, "ema": 0.999, "evals": _every(30)},
        {"name": "r1x10_cos30", "epochs": 30, "r1": 10.0, "schedule": "cosine", "evals": _every(30)},
    ],
}


# ---------------------------------------------------------------------------------------------- export (TF)
def export(out_dir):
    """Writes ``out_dir/stack.npz``: the training digits, the 50,000 training triples, the domain classifier's
    weights and a parity set (2,000 real channels with the Keras classifier's probabilities)."""
    sys.path.insert(0, ROOT)
    from keras_gen import data
    from keras_gen.metrics.classifier import domain_classifier

    digits = data._mnist_split_images("train")[..., 0]  # (M, 28, 28) in [-1, 1]
    triples, labels = data._stacked_indices("train", None, None)  # (50000, 3), (50000,)
    classifier = domain_classifier("mnist")
    weights = {
        f"w_{layer.name}_{i}": value for layer in classifier.model.layers for i, value in enumerate(layer.get_weights())
    }
    x, _ = data.load_arrays("stacked_mnist", split="train", num_samples=2000, seed=0)
    check = np.ascontiguousarray(x[..., :1])  # (2000, 28, 28, 1)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "stack.npz")
    np.savez_compressed(
        path, digits=np.round((digits + 1) * 127.5).astype(np.uint8), triples=triples, labels=labels,
        check=check, check_probs=classifier.probabilities(check).astype(np.float32), **weights,
    )
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


# ------------------------------------------------------------------------------------------- run (PyTorch)
class _Classifier:
    """The keras-gen domain classifier in PyTorch, with its Keras weights."""

    def __init__(self, arrays, device):
        import torch

        def tensor(name):
            return torch.tensor(arrays[name], dtype=torch.float32, device=device)

        self.conv1 = tensor("w_conv1_0").permute(3, 2, 0, 1).contiguous(), tensor("w_conv1_1")  # HWIO -> OIHW
        self.conv2 = tensor("w_conv2_0").permute(3, 2, 0, 1).contiguous(), tensor("w_conv2_1")
        self.features = tensor("w_features_0"), tensor("w_features_1")
        self.probabilities = tensor("w_probabilities_0"), tensor("w_probabilities_1")

    def __call__(self, x):
        """``(B, 1, 28, 28)`` in [-1, 1] -> softmax ``(B, 10)``."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            h = F.max_pool2d(F.relu(F.conv2d(x, *self.conv1, padding=1)), 2)
            h = F.max_pool2d(F.relu(F.conv2d(h, *self.conv2, padding=1)), 2)  # (B, 64, 7, 7)
            h = h.permute(0, 2, 3, 1).reshape(len(x), -1)  # Keras flattens channels-last
            h = F.relu(h @ self.features[0] + self.features[1])
            return torch.softmax(h @ self.probabilities[0] + self.probabilities[1], dim=1)


def _networks(config, device):
    """The DCGAN generator and discriminator of `keras_gen.networks.dcgan` for 28x28x3, in PyTorch."""
    import torch
    from torch import nn

    width, latent = config.get("width", 64), config.get("latent", 100)
    spectral = config.get("loss") == "hinge"
    d_batch_norm = config.get("d_norm", "batch") == "batch" and not spectral
    packing = config.get("packing", 1)

    def batch_norm(channels):
        return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # Keras momentum 0.99

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(latent, 7 * 7 * 2 * width, bias=False)
            self.project_bn = batch_norm(2 * width)
            self.up0 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False)
            self.up0_bn = batch_norm(width)
            self.to_image = nn.ConvTranspose2d(width, 3, 4, 2, 1)

        def forward(self, z):
            h = self.project(z).view(-1, 7, 7, 2 * width).permute(0, 3, 1, 2)  # (B, 2w, 7, 7)
            h = torch.relu(self.project_bn(h))
            h = torch.relu(self.up0_bn(self.up0(h)))  # (B, w, 14, 14)
            return torch.tanh(self.to_image(h))  # (B, 3, 28, 28)

    wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda module: module)

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.down0 = wrap(nn.Conv2d(3 * packing, width, 4, 2, 1))
            self.down1 = wrap(nn.Conv2d(width, 2 * width, 4, 2, 1))
            self.down1_bn = batch_norm(2 * width) if d_batch_norm else nn.Identity()
            self.logits = wrap(nn.Linear(7 * 7 * 2 * width, 1))

        def forward(self, x):
            x = x.reshape(-1, packing * 3, 28, 28)  # packing: m consecutive images side by side as channels
            h = nn.functional.leaky_relu(self.down0(x), 0.2)
            h = nn.functional.leaky_relu(self.down1_bn(self.down1(h)), 0.2)  # (B / m, 2w, 7, 7)
            return self.logits(h.permute(0, 2, 3, 1).reshape(len(h), -1))

    generator, discriminator = Generator().to(device), Discriminator().to(device)
    for module in list(generator.modules()) + list(discriminator.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
            nn.init.xavier_uniform_(weight)  # Keras' glorot_uniform
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return generator, discriminator


def _kl_to_uniform(counts):  # keras_gen.metrics.coverage's, repeated: this script runs where keras is absent
    q = counts[counts > 0] / counts.sum()
    return float(np.sum(q * np.log(len(counts) * q)))


def _score(generator, classifier, latent, device, n=26000, seed=1234):
    """`summarize` of n samples of the generator (inference mode: BatchNorm's moving statistics)."""
    import torch

    rng = torch.Generator(device=device).manual_seed(seed)
    generator.eval()
    digits, confidence = [], []
    with torch.no_grad():
        for start in range(0, n, 2000):
            images = generator(torch.randn(min(2000, n - start), latent, generator=rng, device=device))
            p = classifier(images.reshape(-1, 1, 28, 28)).reshape(len(images), 3, 10)  # (b, 3, 10)
            digits.append(p.argmax(-1).cpu().numpy())
            confidence.append(p.max(-1).values.cpu().numpy())
    generator.train()
    return summarize(np.concatenate(digits), np.concatenate(confidence))


def summarize(digits, confidence):
    """``(n, 3)`` predicted digits and their confidences -> the scores `keras_gen.metrics.stacked_mnist_modes`
    gives (modes, KL, summed channel KLs) and the share of channels read with confidence < 0.9."""
    counts = np.bincount(digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2], minlength=1000)  # (1000,)
    channels = [np.bincount(digits[:, c], minlength=10) for c in range(3)]
    return {
        "modes": int(np.count_nonzero(counts)),
        "kl": _kl_to_uniform(counts),
        "channel_kl_sum": sum(_kl_to_uniform(c) for c in channels),
        "low_confidence": float((confidence < 0.9).mean()),
    }


def train(config, data_path, out_dir, deadline):
    """One config: options ``epochs``, ``evals`` (epochs to score at), ``seed``, ``width``, ``latent``,
    ``batch``, ``lr`` (or ``lr_g`` / ``lr_d``), ``beta1``, ``schedule`` (``"cosine"`` to 1% over all steps),
    ``r1`` (gamma), ``loss`` (``"ns"`` or ``"hinge"``, with spectral norm), ``packing``, ``d_norm``
    (``"batch"`` or None), ``ema`` (generator weight EMA momentum, scored beside the raw weights)."""
    import torch
    import torch.nn.functional as F

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.get("seed", 0))
    arrays = np.load(data_path)
    digits = torch.tensor(arrays["digits"], dtype=torch.float32, device=device) / 127.5 - 1.0  # (M, 28, 28)
    triples = torch.tensor(arrays["triples"], dtype=torch.long, device=device)  # (50000, 3)
    classifier = _Classifier(arrays, device)
    generator, discriminator = _networks(config, device)
    latent, batch = config.get("latent", 100), config.get("batch", 64)
    rates = {"g": config.get("lr_g", config.get("lr", 2e-4)), "d": config.get("lr_d", config.get("lr", 2e-4))}
    betas = (config.get("beta1", 0.5), 0.999)
    fused = device == "cuda"
    optimizers = {
        "g": torch.optim.Adam(generator.parameters(), rates["g"], betas=betas, eps=1e-7, fused=fused),
        "d": torch.optim.Adam(discriminator.parameters(), rates["d"], betas=betas, eps=1e-7, fused=fused),
    }
    steps_per_epoch, epochs = len(triples) // batch, config["epochs"]
    total_steps = steps_per_epoch * epochs
    ema_momentum = config.get("ema", 0.0)
    ema = {k: v.detach().clone() for k, v in generator.state_dict().items()} if ema_momentum else None
    gamma, hinge = config.get("r1", 0.0), config.get("loss", "ns") == "hinge"
    result = {"config": config, "device": device, "evals": []}
    path = os.path.join(out_dir, config["name"] + ".json")
    start, step = time.time(), 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(triples), device=device)
        cut = False
        for i in range(steps_per_epoch):
            if i % 50 == 0 and time.time() > deadline - 25:
                cut = True
                break
            if config.get("schedule") == "cosine":
                scale = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / total_steps))
                for key, optimizer in optimizers.items():
                    optimizer.param_groups[0]["lr"] = rates[key] * scale
            real = digits[triples[order[i * batch:(i + 1) * batch]]]  # (B, 3, 28, 28)
            with torch.no_grad():
                fake = generator(torch.randn(batch, latent, device=device))
            real.requires_grad_(bool(gamma))
            real_logits, fake_logits = discriminator(real), discriminator(fake)
            if hinge:
                d_loss = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
            else:
                d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
            total = d_loss
            if gamma:
                (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
                total = total + 0.5 * gamma * grad.pow(2).reshape(batch, -1).sum(1).mean()
            optimizers["d"].zero_grad(set_to_none=True)
            total.backward()
            optimizers["d"].step()
            fake_logits = discriminator(generator(torch.randn(batch, latent, device=device)))
            g_loss = -fake_logits.mean() if hinge else F.softplus(-fake_logits).mean()
            optimizers["g"].zero_grad(set_to_none=True)
            g_loss.backward()
            optimizers["g"].step()
            step += 1
            if ema is not None:
                with torch.no_grad():
                    for k, v in generator.state_dict().items():
                        if v.dtype.is_floating_point and "running" not in k:
                            ema[k].mul_(ema_momentum).add_(v.detach(), alpha=1 - ema_momentum)
                        else:
                            ema[k].copy_(v)  # BN moving statistics and counters: the live ones
        if epoch in config.get("evals", [epochs]) or cut:
            row = {
                "epoch": round(epoch - 1 + i / steps_per_epoch, 2) if cut else epoch,
                "seconds": round(time.time() - start, 1), "d_loss": d_loss.item(), "g_loss": g_loss.item(),
                "raw": _score(generator, classifier, latent, device),
            }
            if ema is not None:
                live = {k: v.clone() for k, v in generator.state_dict().items()}
                generator.load_state_dict(ema)
                row["ema"] = _score(generator, classifier, latent, device)
                generator.load_state_dict(live)
            result["evals"].append(row)
            with open(path + ".tmp", "w") as f:
                json.dump(result, f)
            os.replace(path + ".tmp", path)
            print(config["name"], json.dumps(row), flush=True)
        if cut:
            break


def check_classifier(data_path):
    """Prints the PyTorch classifier's agreement with the Keras one on the parity set; raises if they differ."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    arrays = np.load(data_path)
    probabilities = _Classifier(arrays, device)(torch.tensor(arrays["check"], device=device).permute(0, 3, 1, 2))
    probabilities = probabilities.cpu().numpy()
    agreement = float((probabilities.argmax(1) == arrays["check_probs"].argmax(1)).mean())
    difference = float(np.abs(probabilities - arrays["check_probs"]).max())
    print(f"classifier parity with Keras: argmax agreement {agreement:.4f}, max |p difference| {difference:.1e}")
    if agreement < 0.999 or difference > 1e-3:
        raise SystemExit("The PyTorch classifier does not reproduce the Keras one; the scores would not compare.")


def run(data_dir, config_set, out, budget):
    """Trains every config of ``CONFIG_SETS[config_set]`` at once, writes ``out`` and prints the table."""
    data_path = os.path.join(data_dir, "stack.npz")
    check_classifier(data_path)
    configs = CONFIG_SETS[config_set]
    children = os.path.join(os.path.dirname(os.path.abspath(out)), f"sweep_{config_set}_runs")
    os.makedirs(children, exist_ok=True)
    deadline = time.time() + budget
    processes = [
        subprocess.Popen([sys.executable, __file__, "_child", json.dumps(c), data_path, children, str(deadline)])
        for c in configs
    ]
    for process in processes:
        try:
            process.wait(timeout=max(1.0, deadline + 45 - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
    results = []
    for config in configs:
        path = os.path.join(children, config["name"] + ".json")
        if os.path.exists(path):
            with open(path) as f:
                results.append(json.load(f))
    with open(out, "w") as f:
        json.dump({"command": " ".join(["python benchmarks/stacked_mnist_sweep.py"] + sys.argv[1:]),
                   "budget_seconds": budget, "results": results}, f, indent=1)
    table([out])


def table(paths):
    """Prints one Markdown row per evaluation of every config in the sweep JSON files."""
    print("| config | epoch | s | modes | KL | channel KLs, summed | confidence < 0.9 | EMA weights: KL |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        with open(path) as f:
            document = json.load(f)
        for result in document["results"] if isinstance(document, dict) else document:
            for row in result["evals"]:
                raw, ema = row["raw"], row.get("ema")
                low = raw.get("low_confidence", raw.get("low_conf"))
                print(f"| {result['config']['name']} | {row['epoch']} | {row['seconds']:.0f} | {raw['modes']} | "
                      f"{raw['kl']:.3f} | {raw['channel_kl_sum']:.3f} | {low:.2f} | "
                      f"{'' if ema is None else format(ema['kl'], '.3f')} |")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        config, data_path, out_dir, deadline = json.loads(argv[1]), argv[2], argv[3], float(argv[4])
        return train(config, data_path, out_dir, deadline)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export_parser = commands.add_parser("export", help="write DIR/stack.npz (needs TensorFlow and keras-gen)")
    export_parser.add_argument("dir")
    run_parser = commands.add_parser("run", help="train a config set on the GPU (needs PyTorch)")
    run_parser.add_argument("dir", help="the folder `export` wrote")
    run_parser.add_argument("--configs", choices=sorted(CONFIG_SETS), default="r1")
    run_parser.add_argument("--out", default="stacked_mnist_sweep.json")
    run_parser.add_argument("--budget", type=float, default=300.0, help="seconds until every run is scored")
    table_parser = commands.add_parser("table", help="print the Markdown table of sweep JSON files")
    table_parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "export":
        export(args.dir)
    elif args.command == "run":
        run(args.dir, args.configs, args.out, args.budget)
    else:
        table(args.paths)


if __name__ == "__main__":
    main()
