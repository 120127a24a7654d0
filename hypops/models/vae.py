"""Hyperbolic VAEs for unsupervised hierarchical 3D segmentation (Hsu et al. 2021; SPEC §4).

Two models, one objective
-------------------------
``PaperVAE(PaperConfig(...))`` — the published model on 10³ patches, one 2-D latent per patch:

* encoder: Conv3d 1→16 (k5 p2), 16→32 (k5 p1), 32→64 (k5 p1), 64→128 (k5 p0), ReLUs; flatten 1024 →
  Linear(1024, 300) → ReLU; μ = expmap0(Linear(300, 2)), σ = softplus(Linear(300, 2)) + 1e-5;
* posterior N_W(μ, diag σ²) and prior N_W(0, I) (wrapped normals), K = 8 reparameterised samples;
* decoder ``"gyroconv"``: the K = 8 samples of one patch arranged as a 2×2×2 grid (sample k = 4i + 2j + l
  at voxel (i, j, l), as published) → GyroplaneConv3d(2 → 300, k=1) → ReLU → ConvT 300→1 (k1) → ReLU →
  ConvT 1→64 (k5 p2) → 64→32 (k5 p1) → 32→16 (k5 p1) → 16→1 (k5 p0), ReLUs between → one 10³
  reconstruction per patch; decoder ``"wrapped"``: per sample, logmap0 → Linear(2, 8) → ReLU → 2×2×2 →
  ConvT 1→1 (k1) → ReLU → the same ConvT stack, the likelihood averaged over the K decodes;
* Gaussian likelihood with unit variance.

``PaperConfig(manifold="euclidean", decoder="wrapped")`` is the Euclidean VAE (Normal prior/posterior,
no expmap/logmap: the published LinearConv encoder/decoder). ``paper_ablation(name)`` gives each row of
the published Table 2 (``ABLATIONS``).

``DenseVAE(DenseConfig(...))`` — ours, the fast path: a fully convolutional encoder maps a volume
[B, 1, X, Y, Z] to a latent grid μ [B, D, X, Y, Z] (one ball point per voxel, expmap0 along dim 1; σ per
voxel) with receptive field 1 + 2·Σ dilations = 11 voxels by default (the paper's patches are 10³); the
decoder opens with a k = 3 GyroplaneConv3d (padding 1) on the grid of a posterior sample, then Conv3d
back to one channel. It trains on the same patches with the same objective; the embedding of a patch for
the triplet term is, by default (``embedding="centre"``), the tangent-space mean at the origin of the
latents of its centre voxel(s) (2³ voxels for an even patch size, 1 for odd): the per-voxel latent is
what segmentation clusters, so the triplet term shapes exactly that (``"mean"``: all voxels of the
patch). ``model.embed(volume)`` returns the μ grid of a whole volume in one pass.

Training API (what ``hypops.models.train`` builds on)
-----------------------------------------------------
``model = build_vae("paper" | "paper_fixed" | "dense", **config_overrides)`` (or the classes directly);
``out = model.loss(anchor, positive, negative, generator=None)`` (``model(...)`` is the same), with
anchor/positive/negative the sampler's [B, 1, P, P, P] patches (``TripletSampler``; positive/negative
may be None when the config has ``triplet=False``). ``out`` is a dict of 0-dim tensors:

* ``loss``: what to minimise, recon + beta_kl · kl + triplet_weight · triplet;
* ``recon``: −log p(anchor | z) (unit-variance Gaussian, summed over voxels, averaged over the K
  decodes), reduced over the batch by sum or mean (``elbo_batch_sum``);
* ``kl``: the Monte Carlo KL, mean over the K samples of log q(z|x) − log p(z) (summed over the latent
  grid for the dense model), reduced over the batch like ``recon``;
* ``triplet``: the batch-mean hierarchical triplet loss on encoder means, unweighted (0 when
  ``triplet=False``).

Noise: every sample is drawn with ``torch.randn(..., generator=generator)``, so passing a seeded
torch.Generator (or seeding the global RNG and passing None) makes a step reproducible on CPU.
``model.config`` is the (frozen dataclass) config; ``dataclasses.asdict(model.config)`` plus the
state dict is enough to rebuild a model (``build_vae(preset, **config_dict)``).

Published quirks: the defaults of ``PaperConfig`` reproduce the published model exactly;
``PaperConfig().fixed()`` (preset ``"paper_fixed"``) fixes them; ``DenseConfig`` defaults are ours (fixed).

===============================================  =========================  ===========  =====================
published quirk                                  option                     PaperConfig  fixed() / DenseConfig
===============================================  =========================  ===========  =====================
final ReLU on the reconstruction (recon >= 0)    ``final_relu``             True         False
ReLU on the one-channel k1 ConvT bottleneck      ``bottleneck_relu``        True         False (dense: n/a)
posterior sample and MC KL in float32            ``latent_float64``         False        True
squared triplet distances (paper: unsquared)     ``squared_triplet``        True         False
triplet distance at c = 1, whatever the model c  ``triplet_c_one``          True         False
ELBO summed over the batch, triplet averaged     ``elbo_batch_sum``         True         False
triplet weight (1e3 against a batch-128 sum)     ``triplet_weight``         1e3          1e3 / 128
pvae gyroplane parameterisation (swapped p / a)  ``gyro_parameterization``  "pvae"       "expmap0"
pvae's projection inside the gyroplane map       ``gyro_pvae_exact``        True         False
===============================================  =========================  ===========  =====================

The bottleneck ReLU acts on a single channel computed from nearly identical inputs at initialisation
(all latents start near the origin), so it is often negative everywhere and the decoder then ignores z
entirely: no gradient reaches the gyroplanes or the encoder through the likelihood (measured: 16 of 40
seeds of the published model at initialisation, 17 of 40 with the wrapped decoder). ``fixed()`` removes
it (the bottleneck and the next ConvT then compose linearly).

In float32 the Monte Carlo KL can run away to minus infinity: the optimiser finds posteriors whose own
samples get a hugely negative log q (measured on a 4-triplet toy batch at lr 1e-3: KL −3.6e9 after 12
Adam steps with the published config, −9.3e8 with ``fixed()`` but float32 latents; with float64 latents
the same run stays at KL 2..40 and the loss falls). The likely cause is float32 rounding of (−μ) ⊕ z near
the clip radius (|μ| = 0.996, λ_μ = 250) swamping a small σ. ``latent_float64=True`` draws the sample and
evaluates both log-densities in float64 (tiny tensors: K·B·D values, K·B·X·Y·Z·D for the dense model);
the decoder still runs in the model's dtype.

``fixed()`` divides the triplet weight by the published batch size (128) so that, with the ELBO averaged
instead of summed, the two terms keep the published balance at batch 128 and that balance no longer
depends on the batch size. The anchor is not encoded twice (the published code did so for μ_parent; the
encoder is deterministic, so the result is identical): anchor, positive and negative go through the
encoder as one batch of 3B.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import Curvature, GyroplaneConv3d
from ..ops import expmap0, logmap0, wrapped_normal_log_prob, wrapped_normal_rsample
from .triplet import HierarchicalTripletLoss

__all__ = ["PaperConfig", "DenseConfig", "PaperVAE", "DenseVAE", "ABLATIONS", "PRESETS", "paper_ablation",
           "build_vae"]

MANIFOLDS = ("poincare", "euclidean")
DECODERS = ("gyroconv", "wrapped")
EMBEDDINGS = ("centre", "mean")
PUBLISHED_BATCH = 128
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class PaperConfig:
    """The published model (defaults) and its Table 2 variants; see the module docstring for each quirk."""

    manifold: str = "poincare"  # "poincare" | "euclidean" (the Euclidean VAE baseline)
    decoder: str = "gyroconv"  # "gyroconv" (paper's full model) | "wrapped" (WrappedConv / LinearConv)
    triplet: bool = True
    latent_dim: int = 2
    hidden_dim: int = 300
    K: int = 8
    c: float = 1.0
    learnable_c: bool = False
    beta_kl: float = 1.0
    triplet_weight: float = 1e3
    margin: float = 0.2
    final_relu: bool = True
    bottleneck_relu: bool = True
    latent_float64: bool = False
    squared_triplet: bool = True
    triplet_c_one: bool = True
    elbo_batch_sum: bool = True
    gyro_parameterization: str = "pvae"
    gyro_pvae_exact: bool = True
    backend: str | None = None

    def fixed(self) -> PaperConfig:
        """The same architecture with every published quirk fixed (the right column of the table)."""
        return dataclasses.replace(
            self, final_relu=False, bottleneck_relu=False, latent_float64=True, squared_triplet=False,
            triplet_c_one=False, elbo_batch_sum=False,
            triplet_weight=self.triplet_weight / PUBLISHED_BATCH, gyro_parameterization="expmap0",
            gyro_pvae_exact=False,
        )


# Table 2 of the paper: (manifold, decoder, triplet). The no-triplet rows crashed in the published code.
ABLATIONS = {
    "euclidean_base": dict(manifold="euclidean", decoder="wrapped", triplet=False),
    "euclidean_triplet": dict(manifold="euclidean", decoder="wrapped", triplet=True),
    "hyperbolic_base": dict(manifold="poincare", decoder="wrapped", triplet=False),
    "hyperbolic_gyroconv": dict(manifold="poincare", decoder="gyroconv", triplet=False),
    "hyperbolic_triplet": dict(manifold="poincare", decoder="wrapped", triplet=True),
    "ours": dict(manifold="poincare", decoder="gyroconv", triplet=True),
}


def paper_ablation(name: str, **overrides) -> PaperConfig:
    """The PaperConfig of one Table 2 row (``ABLATIONS``), published quirks on unless overridden."""
    if name not in ABLATIONS:
        raise ValueError(f"paper_ablation: name must be one of {tuple(ABLATIONS)}, got {name!r}")
    return PaperConfig(**{**ABLATIONS[name], **overrides})


@dataclass(frozen=True)
class DenseConfig:
    """The dense model (ours). Encoder: Conv3d k3 with ``channels`` and ``dilations`` (padding = dilation,
    so the grid keeps the input size), ReLUs, then 1×1 heads for μ and σ; decoder: GyroplaneConv3d(D →
    ``decoder_channels``, k3, p1) → ReLU → Conv3d k3 p1 → ReLU → Conv3d 1×1 → 1 channel.

    ``gyro_tied=True`` (default) uses one gyroplane per output channel for the whole 3³ window (the
    paper's eq. 7: a pointwise gyroplane map, then a box sum); ``False`` one plane per offset (the
    Euclidean-conv analogue). The default is for speed: with today's hypops.gyroplane_conv3d on CPU, a
    forward+backward on 16×10³ voxels, D = 2 → 32 channels, took 3.0 s tied and 41 s per-offset.

    ``padding_mode``: how the encoder's convolutions pad (torch's Conv3d modes). "replicate" keeps the latents
    of voxels near a volume's faces like those inside, where zero padding makes the faces a cluster of
    their own when a whole volume is segmented (measured in the demo: level-1 Dice 0.789 against 0.767 with
    zeros, levels 2-3 unchanged)."""

    latent_dim: int = 2
    channels: tuple = (32, 64, 64)
    dilations: tuple = (1, 2, 2)
    decoder_channels: int = 32
    gyro_tied: bool = True
    K: int = 1
    c: float = 1.0
    learnable_c: bool = False
    triplet: bool = True
    beta_kl: float = 1.0
    triplet_weight: float = 1e3 / PUBLISHED_BATCH
    margin: float = 0.2
    embedding: str = "centre"
    latent_float64: bool = True
    final_relu: bool = False
    squared_triplet: bool = False
    triplet_c_one: bool = False
    elbo_batch_sum: bool = False
    padding_mode: str = "replicate"
    backend: str | None = None


def _check_common(where, cfg):
    def pos_int(name):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{where}: {name} must be a positive int, got {v!r}")

    for name in ("latent_dim", "K"):
        pos_int(name)
    for name in ("beta_kl", "triplet_weight", "margin"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{where}: {name} must be a finite non-negative number, got {v!r}")
    c = cfg.c
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not (c > 0 and math.isfinite(c)):
        raise ValueError(f"{where}: c must be a positive finite float, got {cfg.c!r}")
    return pos_int


def _conv_t_stack(in_channels: int, final_relu: bool, bottleneck_relu: bool) -> nn.Sequential:
    """The published decoder tail: a one-channel k1 bottleneck, then 2³ → 10³ through ConvT k5 with
    paddings 2, 1, 1, 0."""
    layers = [nn.ConvTranspose3d(in_channels, 1, 1), nn.ReLU() if bottleneck_relu else nn.Identity(),
              nn.ConvTranspose3d(1, 64, 5, padding=2), nn.ReLU(),
              nn.ConvTranspose3d(64, 32, 5, padding=1), nn.ReLU(),
              nn.ConvTranspose3d(32, 16, 5, padding=1), nn.ReLU(),
              nn.ConvTranspose3d(16, 1, 5, padding=0)]
    if final_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _gaussian_nll(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """−log N(x; mean, 1) summed over the trailing (C, X, Y, Z) dims."""
    return (0.5 * (x - mean).pow(2) + _HALF_LOG_2PI).flatten(-4).sum(-1)


class _VAE(nn.Module):
    """The objective shared by both models. Subclasses provide ``encode(x) -> (mu, sigma)``,
    ``_decode_nll(x, z) -> [B]`` and ``_patch_embedding(mu) -> [B, D]``; ``_event_dim`` is where the
    latent coordinates live in mu (-1 for [B, D], 1 for grids)."""

    _event_dim = -1

    def _init_objective(self, cfg):
        self.config = cfg
        self.hyperbolic = getattr(cfg, "manifold", "poincare") == "poincare"  # DenseVAE: always
        self.curvature = Curvature(cfg.c, learnable=cfg.learnable_c)
        metric = "hyperbolic" if self.hyperbolic else "euclidean"
        self.triplet_loss = HierarchicalTripletLoss(margin=cfg.margin, squared=cfg.squared_triplet,
                                                    metric=metric, backend=cfg.backend)

    def _c(self):
        return self.curvature()

    # The hyperbolic maps the models call go through these methods (and the ``gyroconv`` and
    # ``triplet_loss`` modules), so that benchmarks/bench_train_step.py can build the very same model on
    # another implementation (geoopt) by overriding them, and time it against this one.
    def _expmap0(self, u, dim=-1):
        return expmap0(u, c=self._c(), dim=dim, backend=self.config.backend)

    def _logmap0(self, y, dim=-1):
        return logmap0(y, c=self._c(), dim=dim, backend=self.config.backend)

    def _wrapped_normal_kl(self, mu, sigma, eps):
        """The reparameterised sample z of the posterior N_W(mu, diag sigma²) for the noise eps (all [..., D]),
        and log q(z) − log p(z) with the prior N_W(0, I): [...]."""
        c, backend = self._c(), self.config.backend
        z = wrapped_normal_rsample(mu, sigma, eps, c=c, backend=backend)
        log_q = wrapped_normal_log_prob(z, mu, sigma, c=c, backend=backend)
        zero = torch.zeros((), dtype=mu.dtype, device=mu.device).expand(mu.shape[-1:])
        log_p = wrapped_normal_log_prob(z, zero, torch.ones_like(zero), c=c, backend=backend)
        return z, log_q - log_p

    def _sample(self, mu, sigma, generator):
        """K reparameterised posterior samples [K, *mu.shape(D last)] and their MC KL terms, [K, ...]."""
        d = self._event_dim
        mu_l, sigma_l = mu.movedim(d, -1), sigma.movedim(d, -1)
        eps = torch.randn((self.config.K, *mu_l.shape), generator=generator, dtype=mu.dtype, device=mu.device)
        if self.hyperbolic:
            dtype = torch.float64 if self.config.latent_float64 else mu.dtype
            z, kl = self._wrapped_normal_kl(mu_l.to(dtype), sigma_l.to(dtype), eps.to(dtype))
            return z.to(mu.dtype), kl.to(mu.dtype)
        else:
            z = mu_l + sigma_l * eps
            log_q = (-0.5 * eps.pow(2) - sigma_l.log() - _HALF_LOG_2PI).sum(-1)
            log_p = (-0.5 * z.pow(2) - _HALF_LOG_2PI).sum(-1)
        return z, log_q - log_p

    def loss(self, anchor, positive=None, negative=None, *, generator=None) -> dict:
        cfg = self.config
        if not isinstance(anchor, torch.Tensor) or anchor.dim() != 5 or anchor.shape[1] != 1:
            shape = tuple(anchor.shape) if isinstance(anchor, torch.Tensor) else type(anchor).__name__
            raise ValueError(f"{type(self).__name__}.loss: anchor must be [B, 1, X, Y, Z], got {shape}")
        B = anchor.shape[0]
        if cfg.triplet:
            for name, t in (("positive", positive), ("negative", negative)):
                if not isinstance(t, torch.Tensor) or t.shape != anchor.shape:
                    got = tuple(t.shape) if isinstance(t, torch.Tensor) else t
                    raise ValueError(f"{type(self).__name__}.loss: {name} must be a tensor shaped like "
                                     f"anchor {tuple(anchor.shape)} when triplet=True, got {got}")
            # One encoder pass for the 3B patches (the published code encoded the anchor twice).
            mu_all, sigma_all = self.encode(torch.cat([anchor, positive, negative]))
            mu, sigma = mu_all[:B], sigma_all[:B]
        else:
            mu, sigma = self.encode(anchor)
        z, kl = self._sample(mu, sigma, generator)
        nll = self._decode_nll(anchor, z)  # [B]
        kl = kl.flatten(2).sum(-1).mean(0) if kl.dim() > 2 else kl.mean(0)  # [B]
        reduce = torch.sum if cfg.elbo_batch_sum else torch.mean
        recon, kl = reduce(nll), reduce(kl)
        if cfg.triplet:
            emb = self._patch_embedding(mu_all)
            c = 1.0 if cfg.triplet_c_one else self._c()
            triplet = self.triplet_loss(*emb.split(B), c=c)
        else:
            triplet = torch.zeros((), dtype=recon.dtype, device=recon.device)
        loss = recon + cfg.beta_kl * kl + cfg.triplet_weight * triplet
        return {"loss": loss, "recon": recon, "kl": kl, "triplet": triplet}

    def forward(self, anchor, positive=None, negative=None, *, generator=None) -> dict:
        return self.loss(anchor, positive, negative, generator=generator)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder means μ (no sampling): [B, D] per patch (PaperVAE) or the grid [B, D, X, Y, Z]
        (DenseVAE)."""
        return self.encode(x)[0]


class PaperVAE(_VAE):
    """The published model and its Table 2 variants. ``PaperVAE(config=None, **overrides)``: config
    defaults to ``PaperConfig()``; keyword overrides replace config fields. Input patches [B, 1, 10, 10, 10].

    encode(x) -> (mu [B, D] in the ball (or R^D), sigma [B, D]); decode(z [K, B, D]) -> [B, 1, 10, 10, 10]
    (gyroconv: one reconstruction from the K = 8 samples) or [K, B, 1, 10, 10, 10] (wrapped: one per
    sample); loss(anchor, positive, negative, generator=None) -> dict (module docstring).
    """

    patch_size = 10

    def __init__(self, config: PaperConfig | None = None, **overrides):
        super().__init__()
        cfg = dataclasses.replace(config or PaperConfig(), **overrides)
        where = "PaperVAE"
        pos_int = _check_common(where, cfg)
        pos_int("hidden_dim")
        if cfg.manifold not in MANIFOLDS:
            raise ValueError(f"{where}: manifold must be one of {MANIFOLDS}, got {cfg.manifold!r}")
        if cfg.decoder not in DECODERS:
            raise ValueError(f"{where}: decoder must be one of {DECODERS}, got {cfg.decoder!r}")
        if cfg.decoder == "gyroconv":
            if cfg.manifold != "poincare":
                raise ValueError(f"{where}: decoder='gyroconv' needs manifold='poincare' (gyroplanes live in "
                                 "the ball); the Euclidean baseline uses decoder='wrapped'")
            if cfg.K != 8:
                # The 2×2×2 grid of samples is what the ConvT stack turns into 10³; K = n³ gives (n + 8)³.
                raise ValueError(
                    f"{where}: decoder='gyroconv' needs K=8 (its 2x2x2 sample grid), got K={cfg.K}")
        self._init_objective(cfg)
        D, H = cfg.latent_dim, cfg.hidden_dim
        self.encoder = nn.Sequential(
            nn.Conv3d(1, 16, 5, padding=2), nn.ReLU(),
            nn.Conv3d(16, 32, 5, padding=1), nn.ReLU(),
            nn.Conv3d(32, 64, 5, padding=1), nn.ReLU(),
            nn.Conv3d(64, 128, 5, padding=0), nn.ReLU(),
            nn.Flatten(), nn.Linear(1024, H), nn.ReLU(),
        )
        self.fc_mu = nn.Linear(H, D)
        self.fc_sigma = nn.Linear(H, D)
        if cfg.decoder == "gyroconv":
            pvae = cfg.gyro_parameterization == "pvae"
            self.gyroconv = GyroplaneConv3d(
                D, H, 1, tied=pvae, bias=not pvae, c=self.curvature,
                parameterization=cfg.gyro_parameterization, pvae_exact=cfg.gyro_pvae_exact,
                backend=cfg.backend)
            self.decoder = _conv_t_stack(H, cfg.final_relu, cfg.bottleneck_relu)
        else:
            self.fc_dec = nn.Linear(D, 8)
            self.decoder = _conv_t_stack(1, cfg.final_relu, cfg.bottleneck_relu)

    def encode(self, x: torch.Tensor):
        if x.dim() != 5 or tuple(x.shape[1:]) != (1, 10, 10, 10):
            raise ValueError(f"PaperVAE.encode: x must be [B, 1, 10, 10, 10], got {tuple(x.shape)}")
        h = self.encoder(x)
        mu = self.fc_mu(h)
        if self.hyperbolic:
            mu = self._expmap0(mu)
        sigma = F.softplus(self.fc_sigma(h)) + 1e-5
        return mu, sigma

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        K, B, D = z.shape
        if self.config.decoder == "gyroconv":
            # Sample k = 4i + 2j + l sits at grid voxel (i, j, l), the published reshape.
            grid = z.permute(1, 2, 0).reshape(B, D, 2, 2, 2)
            return self.decoder(torch.relu(self.gyroconv(grid)))
        h = self._logmap0(z) if self.hyperbolic else z
        h = torch.relu(self.fc_dec(h)).reshape(K * B, 1, 2, 2, 2)
        return self.decoder(h).reshape(K, B, 1, 10, 10, 10)

    def _decode_nll(self, x, z):
        recon = self.decode(z)
        nll = _gaussian_nll(x, recon)
        return nll if self.config.decoder == "gyroconv" else nll.mean(0)

    def _patch_embedding(self, mu):
        return mu


class DenseVAE(_VAE):
    """The dense model (ours). ``DenseVAE(config=None, **overrides)``: config defaults to ``DenseConfig()``.

    encode(x [B, 1, X, Y, Z]) -> (mu [B, D, X, Y, Z] in the ball along dim 1, sigma [B, D, X, Y, Z]), any
    spatial size; decode(z [N, D, X, Y, Z]) -> [N, 1, X, Y, Z]; embed(volume) -> the μ grid in one pass;
    patch_embedding(mu grid) -> [B, D], the point the triplet term compares; loss as PaperVAE.
    """

    _event_dim = 1

    def __init__(self, config: DenseConfig | None = None, **overrides):
        super().__init__()
        cfg = dataclasses.replace(config or DenseConfig(), **overrides)
        where = "DenseVAE"
        pos_int = _check_common(where, cfg)
        pos_int("decoder_channels")
        chans, dils = tuple(cfg.channels), tuple(cfg.dilations)
        if not chans or len(chans) != len(dils) or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in chans + dils):
            raise ValueError(f"{where}: channels and dilations must be equally long non-empty tuples of "
                             f"positive ints, got channels={cfg.channels!r}, dilations={cfg.dilations!r}")
        if cfg.embedding not in EMBEDDINGS:
            raise ValueError(f"{where}: embedding must be one of {EMBEDDINGS}, got {cfg.embedding!r}")
        self._init_objective(cfg)
        layers, prev = [], 1
        for ch, dil in zip(chans, dils):
            layers += [nn.Conv3d(prev, ch, 3, padding=dil, dilation=dil, padding_mode=cfg.padding_mode), nn.ReLU()]
            prev = ch
        self.encoder = nn.Sequential(*layers)
        self.head_mu = nn.Conv3d(prev, cfg.latent_dim, 1)
        self.head_sigma = nn.Conv3d(prev, cfg.latent_dim, 1)
        H = cfg.decoder_channels
        self.gyroconv = GyroplaneConv3d(cfg.latent_dim, H, 3, padding=1, tied=cfg.gyro_tied, c=self.curvature,
                                        backend=cfg.backend)
        tail = [nn.ReLU(), nn.Conv3d(H, H, 3, padding=1), nn.ReLU(), nn.Conv3d(H, 1, 1)]
        if cfg.final_relu:
            tail.append(nn.ReLU())
        self.decoder = nn.Sequential(*tail)

    @property
    def receptive_field(self) -> int:
        """Side of the input cube one latent voxel depends on."""
        return 1 + 2 * sum(self.config.dilations)

    def encode(self, x: torch.Tensor):
        if x.dim() != 5 or x.shape[1] != 1:
            raise ValueError(f"DenseVAE.encode: x must be [B, 1, X, Y, Z], got {tuple(x.shape)}")
        h = self.encoder(x)
        mu = self._expmap0(self.head_mu(h), dim=1)
        sigma = F.softplus(self.head_sigma(h)) + 1e-5
        return mu, sigma

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.gyroconv(z))

    def _decode_nll(self, x, z):
        K, B = z.shape[:2]
        grid = z.movedim(-1, 2).reshape(K * B, *z.shape[-1:], *z.shape[2:-1])
        recon = self.decode(grid).reshape(K, B, *x.shape[1:])
        return _gaussian_nll(x, recon).mean(0)

    def patch_embedding(self, mu: torch.Tensor) -> torch.Tensor:
        """[B, D, X, Y, Z] μ grid -> [B, D]: expmap0 of the mean logmap0 over the centre voxel(s)
        (``embedding="centre"``) or over the whole patch (``"mean"``). A tangent-space mean at the origin
        stays in the ball and, for a single voxel, is that voxel's latent exactly."""
        if self.config.embedding == "centre":
            sl = tuple(slice((n - 1) // 2, n // 2 + 1) for n in mu.shape[2:])
            mu = mu[(slice(None), slice(None), *sl)]
        return self._expmap0(self._logmap0(mu, dim=1).flatten(2).mean(-1))

    _patch_embedding = patch_embedding


PRESETS = ("paper", "paper_fixed", "dense")


def build_vae(preset: str = "paper", **overrides) -> _VAE:
    """A model by preset name: ``"paper"`` (PaperVAE, published defaults), ``"paper_fixed"`` (PaperVAE with
    ``PaperConfig().fixed()``), ``"dense"`` (DenseVAE); ``overrides`` replace config fields (e.g.
    ``build_vae("paper", **ABLATIONS["euclidean_base"])``)."""
    if preset == "paper":
        return PaperVAE(PaperConfig(), **overrides)
    if preset == "paper_fixed":
        return PaperVAE(PaperConfig().fixed(), **overrides)
    if preset == "dense":
        return DenseVAE(DenseConfig(), **overrides)
    raise ValueError(f"build_vae: preset must be one of {PRESETS}, got {preset!r}")
