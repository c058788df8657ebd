"""A recipe sweep for stacked MNIST on a GPU machine that has PyTorch but no TensorFlow.

The stacked-MNIST presets take 1-2 minutes per epoch on 2 CPU cores, so searching for a recipe there is out of
reach; this script re-implements the `dcgan-stacked-mnist` preset layer for layer in PyTorch (same shapes,
Glorot-uniform init, BatchNorm eps 1e-3 / momentum 0.99, Adam eps 1e-7, non-saturating loss, D on real and fake
batches separately, R1 as ``gamma / 2 * E||grad D(x)||^2``) and trains many variants at once on one GPU, scoring
each every few epochs exactly as `keras_gen.metrics.stacked_mnist_modes` does: the keras-gen MNIST domain
classifier (its Keras weights, parity checked) reads each channel of 26,000 samples. A recipe found here becomes
a keras-gen preset and is then measured with the package itself (`benchmarks/mode_collapse.py`).

    python experiments/stacked_mnist_sweep.py export DIR            # here (TensorFlow): data + classifier weights
    python experiments/stacked_mnist_sweep.py run DIR --configs r1 --out sweep.json --budget 300   # GPU, PyTorch
    python experiments/stacked_mnist_sweep.py table sweep.json [more.json ...]                   # anywhere

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
    # The r1-stacked-mnist preset (R1 gamma 10, Adam 4e-4) for longer over six seeds, and what might make it
    # cheaper on CPU cores (lazy R1, StyleGAN2: the penalty every 4th step, 4x weighted; batch 128) or better.
    "long": [
        *({"name": f"preset_s{seed}", "epochs": 60, "r1": 10.0, "lr": 4e-4, "seed": seed, "evals": _every(60)}
          for seed in range(6)),
        *({"name": f"lazy4_s{seed}", "epochs": 60, "r1": 10.0, "r1_every": 4, "lr": 4e-4, "seed": seed,
           "evals": _every(60)} for seed in range(2)),
        *({"name": f"lr8_s{seed}", "epochs": 60, "r1": 10.0, "lr": 8e-4, "seed": seed, "evals": _every(60)}
          for seed in range(2)),
        {"name": "b128_lr8", "epochs": 60, "r1": 10.0, "lr": 8e-4, "batch": 128, "evals": _every(60)},
        {"name": "preset_ema", "epochs": 60, "r1": 10.0, "lr": 4e-4, "ema": 0.999, "evals": _every(60)},
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
        check=check, check_probs=classifier.probabilities(check).astype(np.float32), **weights, **_step_fixture(),
    )
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


def _step_fixture():
    """The r1-stacked-mnist networks' initial weights, a real batch, latents, and keras-gen's gradients on them:
    of the discriminator loss and of R1 (discriminator weights) and of the generator loss (generator weights,
    against the initial discriminator). ``run`` checks the PyTorch copy reproduces them before it trains."""
    import keras
    import tensorflow as tf

    from keras_gen import data, losses, presets

    model = presets.build_model(presets.get_config("r1-stacked-mnist", seed=0))
    G, D = model.generator, model.discriminator
    real, _ = data.load_arrays("stacked_mnist", split="train", num_samples=64, seed=0)  # (64, 28, 28, 3)
    z_d, z_g = (np.random.default_rng(seed).normal(size=(64, 100)).astype(np.float32) for seed in (1, 2))
    out = {f"step_init/{v.path}": v.numpy() for v in G.weights + D.weights}
    fake = G(z_d, training=True)
    with tf.GradientTape(persistent=True) as tape:
        d_loss = model.discriminator_loss_fn(D(real, training=True), D(fake, training=True))
        r1 = losses.r1_penalty(D, real)
        g_loss = model.generator_loss_fn(D(G(z_g, training=True), training=True))
    for name, loss, variables in (("d_loss", d_loss, D), ("r1", r1, D), ("g_loss", g_loss, G)):
        for v, grad in zip(variables.trainable_variables, tape.gradient(loss, variables.trainable_variables)):
            out[f"step_grad_{name}/{v.path}"] = np.zeros(v.shape, np.float32) if grad is None else grad.numpy()
        out[f"step_value_{name}"] = np.float32(loss)
    keras.utils.clear_session()
    return {"step_real": real, "step_z_d": z_d, "step_z_g": z_g, **out}


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


def _discriminator_losses(discriminator, real, fake, hinge, penalize):
    """(D loss, R1 = E||grad_x D(real)||^2 or None): one step's discriminator terms, for `train` and `check_step`."""
    import torch
    import torch.nn.functional as F

    real.requires_grad_(penalize)
    real_logits, fake_logits = discriminator(real), discriminator(fake)
    if hinge:
        d_loss = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    else:
        d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if not penalize:
        return d_loss, None
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return d_loss, grad.pow(2).reshape(len(real), -1).sum(1).mean()


def _generator_loss(fake_logits, hinge):
    import torch.nn.functional as F

    return -fake_logits.mean() if hinge else F.softplus(-fake_logits).mean()


def train(config, data_path, out_dir, deadline):
    """One config: options ``epochs``, ``evals`` (epochs to score at), ``seed``, ``width``, ``latent``,
    ``batch``, ``lr`` (or ``lr_g`` / ``lr_d``), ``beta1``, ``schedule`` (``"cosine"`` to 1% over all steps),
    ``r1`` (gamma), ``r1_every`` (lazy R1: the penalty on every k-th step only, weighted k), ``loss`` (``"ns"``
    or ``"hinge"``, with spectral norm), ``packing``, ``d_norm``
    (``"batch"`` or None), ``ema`` (generator weight EMA momentum, scored beside the raw weights)."""
    import torch

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
    r1_every = config.get("r1_every", 1)
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
            penalize = bool(gamma) and step % r1_every == 0
            d_loss, r1 = _discriminator_losses(discriminator, real, fake, hinge, penalize)
            total = d_loss + 0.5 * gamma * r1_every * r1 if penalize else d_loss
            optimizers["d"].zero_grad(set_to_none=True)
            total.backward()
            optimizers["d"].step()
            g_loss = _generator_loss(discriminator(generator(torch.randn(batch, latent, device=device))), hinge)
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


def _load_keras_weights(generator, discriminator, arrays, prefix="step_init/"):
    """Copies the fixture's Keras weights (HWIO kernels, (in, out) dense kernels, BN statistics) into the copy."""
    import torch

    def t(name, layout=None):
        value = arrays[prefix + name]
        if layout == "conv":  # HWIO (Conv2D) / HW-out-in (Conv2DTranspose) -> PyTorch's (O, I, H, W) / (I, O, H, W)
            value = value.transpose(3, 2, 0, 1)
        elif layout == "dense":
            value = value.T
        return torch.tensor(np.ascontiguousarray(value))

    g, d = generator, discriminator
    with torch.no_grad():
        g.project.weight.copy_(t("project/kernel", "dense"))
        g.up0.weight.copy_(t("up0/kernel", "conv"))
        g.to_image.weight.copy_(t("to_image/kernel", "conv"))
        g.to_image.bias.copy_(t("to_image/bias"))
        d.down0.weight.copy_(t("down0/kernel", "conv"))
        d.down0.bias.copy_(t("down0/bias"))
        d.down1.weight.copy_(t("down1/kernel", "conv"))
        d.down1.bias.copy_(t("down1/bias"))
        d.logits.weight.copy_(t("logits_dense/kernel", "dense"))
        d.logits.bias.copy_(t("logits_dense/bias"))
        for name, bn in (("project_bn", g.project_bn), ("up0_bn", g.up0_bn), ("down1_bn", d.down1_bn)):
            bn.weight.copy_(t(f"{name}/gamma"))
            bn.bias.copy_(t(f"{name}/beta"))
            bn.running_mean.copy_(t(f"{name}/moving_mean"))
            bn.running_var.copy_(t(f"{name}/moving_variance"))


def check_step(data_path, tolerance=1e-3, generator_tolerance=5e-3):
    """Checks that the PyTorch copy (in float64) reproduces keras-gen's losses and gradients on the export's fixed
    step (`_step_fixture`); raises if any weight's gradient differs by more than ``tolerance`` of its largest
    entry (or of 1e-2 of the loss's largest gradient, for those that should be 0). The generator's gradients get
    ``generator_tolerance``: through its batch norms they cancel so much that float32 itself is off by ~1e-3 in
    Keras (and by 3 % in a float32 PyTorch copy) against float64. This check is what found keras-gen's R1
    gradients through Keras' own BatchNormalization 1-6 % off (tests/test_losses.py). It runs the loss code
    `train` runs."""
    import torch

    arrays = np.load(data_path)
    if "step_real" not in arrays:
        raise SystemExit(f"{data_path} has no training-step fixture: export it again with this script.")
    generator, discriminator = _networks({}, "cpu")
    _load_keras_weights(generator, discriminator, arrays)
    generator.double()
    discriminator.double()

    def t(name):
        return torch.tensor(arrays[name], dtype=torch.float64)

    real = t("step_real").permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        fake = generator(t("step_z_d"))
    d_loss, r1 = _discriminator_losses(discriminator, real, fake, hinge=False, penalize=True)
    g_loss = _generator_loss(discriminator(generator(t("step_z_g"))), hinge=False)
    conv = (3, 2, 0, 1)
    layouts = {
        "d": [("down0/kernel", discriminator.down0.weight, conv), ("down0/bias", discriminator.down0.bias, None),
              ("down1/kernel", discriminator.down1.weight, conv), ("down1/bias", discriminator.down1.bias, None),
              ("down1_bn/gamma", discriminator.down1_bn.weight, None),
              ("down1_bn/beta", discriminator.down1_bn.bias, None),
              ("logits_dense/kernel", discriminator.logits.weight, (1, 0)),
              ("logits_dense/bias", discriminator.logits.bias, None)],
        "g": [("project/kernel", generator.project.weight, (1, 0)), ("up0/kernel", generator.up0.weight, conv),
              ("up0_bn/gamma", generator.up0_bn.weight, None), ("to_image/kernel", generator.to_image.weight, conv),
              ("to_image/bias", generator.to_image.bias, None)],
    }
    worst = 0.0
    for name, loss, role in (("d_loss", d_loss, "d"), ("r1", r1, "d"), ("g_loss", g_loss, "g")):
        value_difference = abs(loss.item() - float(arrays[f"step_value_{name}"]))
        grads = torch.autograd.grad(loss, [p for _, p, _ in layouts[role]], retain_graph=True, allow_unused=True)
        largest = max(np.abs(arrays[f"step_grad_{name}/{key}"]).max() for key, _, _ in layouts[role])
        for (key, _, axes), got in zip(layouts[role], grads):
            ref = arrays[f"step_grad_{name}/{key}"].astype(np.float64)
            got = np.zeros_like(ref) if got is None else got.detach().numpy()
            got = got.transpose(np.argsort(axes)) if axes else got  # back to the Keras layout
            # A gradient that should be 0 (the bias batch norm cancels) is float32 noise in Keras: 1e-2 of the largest.
            scale = max(np.abs(ref).max(), np.abs(got).max(), 1e-2 * largest)
            difference = float(np.abs(got - ref).max() / scale)
            worst = max(worst, difference)
            if difference > (generator_tolerance if role == "g" else tolerance) or value_difference > 1e-5:
                raise SystemExit(
                    f"The PyTorch copy does not reproduce keras-gen's training step: d {name} / d {key} differs by "
                    f"{difference:.1e} of its largest entry ({name} {loss.item():.6f} vs "
                    f"{float(arrays[f'step_value_{name}']):.6f}); the sweep would not describe the preset."
                )
    print(f"training-step parity with keras-gen: losses and gradients within {worst:.1e} (float64 copy)")


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
    check_step(data_path)
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
        json.dump({"command": " ".join(["python experiments/stacked_mnist_sweep.py"] + sys.argv[1:]),
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
