"""FadeNet: a masked attention encoder over the per-cycle history that infers the parameters of
a monotone time term and a monotone cycle term, decoded over the requested future schedule.

Capacity (fraction of the reference) at cycle ``N`` and elapsed hour ``t``::

    cap(N, t) = c0 - L_time(t) - L_cycle(N)
    L_time(t) = s * L * g_t(t) / g_t(t_last),   L_cycle(N) = (1 - s) * L * g_c(N) / g_c(N_last)

``s`` is the time share at the last observed cycle, ``L`` the loss there, ``c0`` the fresh
capacity, ``g_t``/``g_c`` the pluggable monotone shapes (``time_terms``, ``cycle_terms``).

* ``(c0, L)`` are NOT guessed by the network: for every posterior sample they are fitted in the
  graph by weighted least squares to the observed retention, so each sample explains the past.
* ``s`` has an explicit posterior on 20 bins: a prior from the head (what the cell's signals —
  C-rates, rests, coulombic inefficiency, polarization, A_w — say) times the profile likelihood
  of the history under each share (tempered by a learned factor for correlated residuals).
  When elapsed time and cycles rise in lockstep the likelihood is flat and the posterior stays
  as wide as the prior; rests and rate changes make it sharp.
* Shape parameters (exponents, onset, knee) get a mean and a scale from the head.

K samples use FIXED quasi-random draws baked into the graph (buffers ``noise`` and
``share_uniform``; the share is drawn by inverse CDF), so the ONNX export is deterministic.
Outputs are [B, H, K].
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from data_registry.errors import FadecastError
from ml.models.cycle_terms import make_cycle_term
from ml.models.time_terms import make_time_term
from ml.scaling import FeatureScaler

__all__ = ["FadeNet", "fixed_normal_draws"]

ANCHORS = ("retention", "elapsed_hour", "cycle_index")
N_BINS = 20  # bins of the time-share posterior
INPUT_CLAMP = 100.0  # scaled inputs beyond +-100 standard deviations are clipped
HEAD_CLAMP = 15.0  # raw head outputs are clipped: every parameter stays finite


def _fit_anchor(basis: torch.Tensor, r: torch.Tensor, w: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted least squares ``r ~ c0 - L * basis`` per sample, with ``L >= 0``.

    ``basis`` [B, K, T] (1 at the last observed row), ``r`` / ``w`` [B, 1, T]. Returns ``c0``,
    ``L`` and the fit's RMSE, each [B, K, 1].
    """
    sw = w.sum(-1, keepdim=True).clamp(min=1e-6)
    mf = (w * basis).sum(-1, keepdim=True) / sw
    mr = (w * r).sum(-1, keepdim=True) / sw
    df, dr = basis - mf, r - mr
    var = (w * df * df).sum(-1, keepdim=True)
    cov = (w * df * dr).sum(-1, keepdim=True)
    loss = (-cov / var.clamp(min=1e-9)).clamp(min=0.0)
    c0 = mr + loss * mf
    resid = r - (c0 - loss * basis)
    rmse = torch.sqrt((w * resid * resid).sum(-1, keepdim=True) / sw)
    return c0, loss, rmse


def fixed_normal_draws(n_samples: int, n_dims: int, seed: int = 0) -> np.ndarray:
    """``n_samples`` x ``n_dims`` standard-normal draws from a scrambled Sobol sequence, each
    column centred and scaled to unit variance (stable, low-discrepancy posterior samples)."""
    from scipy.stats import norm, qmc

    if n_dims == 0:
        return np.zeros((n_samples, 0), dtype=np.float32)
    u = qmc.Sobol(d=n_dims, scramble=True, seed=seed).random(n_samples)
    z = norm.ppf(np.clip(u, 1e-4, 1 - 1e-4))
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    return z.astype(np.float32)


class _Attention(nn.Module):
    """Multi-head self-attention over valid rows only (padding rows are never attended to)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        dh = d // self.n_heads
        q = q.reshape(b, t, self.n_heads, dh).transpose(1, 2)
        k = k.reshape(b, t, self.n_heads, dh).transpose(1, 2)
        v = v.reshape(b, t, self.n_heads, dh).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        scores = scores + (valid[:, None, None, :] - 1.0) * 1e4
        att = torch.softmax(scores, dim=-1) @ v
        return self.out(att.transpose(1, 2).reshape(b, t, d))


class FadeNet(nn.Module):
    """Forecaster of capacity and its time/cycle decomposition (see module docstring).

    Parameters
    ----------
    feature_names:
        Input features in model order; must contain ``retention``, ``elapsed_hour``,
        ``cycle_index`` (their scaler state is baked into the graph to recover raw values).
    time_term, cycle_term:
        ``{"none", "power", "onset"}`` and ``{"none", "power", "knee"}``.
    d_model, n_heads, n_layers:
        Encoder width, attention heads, attention blocks.
    n_samples:
        K, posterior samples per forecast.
    seed:
        Seeds the weights and the fixed posterior draws.
    """

    def __init__(self, feature_names: tuple[str, ...] | list[str], *, time_term: str = "power",
                 cycle_term: str = "power", d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 1, n_samples: int = 32, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.feature_names = tuple(feature_names)
        missing = [a for a in ANCHORS if a not in self.feature_names]
        if missing:
            raise FadecastError(f"FadeNet needs feature(s) {missing}", code="bad_features",
                                expected=f"features including {list(ANCHORS)}",
                                found=str(list(self.feature_names)))
        self.anchor_index = tuple(self.feature_names.index(a) for a in ANCHORS)
        self.time_term_name, self.cycle_term_name = time_term, cycle_term
        self.time_term = make_time_term(time_term)
        self.cycle_term = make_cycle_term(cycle_term)
        f = len(self.feature_names)
        self.embed = nn.Sequential(nn.Linear(2 * f, d_model), nn.GELU(),
                                   nn.Linear(d_model, d_model))
        self.blocks = nn.ModuleList(_Attention(d_model, n_heads) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.ffn = nn.ModuleList(nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(),
                                               nn.Linear(2 * d_model, d_model))
                                 for _ in range(n_layers))
        self.pool_query = nn.Parameter(torch.randn(d_model) / math.sqrt(d_model))
        self.n_params = self.time_term.n_params + self.cycle_term.n_params
        self.register_buffer("share_bins", (torch.arange(N_BINS) + 0.5) / N_BINS)
        self.head = nn.Sequential(nn.Linear(3 * d_model + 2, 2 * d_model), nn.GELU(),
                                  nn.Linear(2 * d_model, 2 * self.n_params + N_BINS))
        draws = fixed_normal_draws(n_samples, self.n_params + 1, seed)
        self.register_buffer("noise", torch.from_numpy(draws[:, :-1].copy()))
        from scipy.stats import norm

        self.register_buffer("share_uniform", torch.from_numpy(
            norm.cdf(draws[:, -1]).astype(np.float32)))
        self.evidence_temperature = nn.Parameter(torch.tensor(-1.0))
        self.noise_floor = nn.Parameter(torch.tensor(0.5))
        self.register_buffer("anchor_mean", torch.zeros(3))
        self.register_buffer("anchor_std", torch.ones(3))
        self.register_buffer("anchor_log", torch.zeros(3))
        self.is_fitted_ = False

    @property
    def n_samples(self) -> int:
        """K, posterior samples per forecast."""
        return int(self.noise.shape[0])

    def set_scaler(self, scaler: FeatureScaler) -> None:
        """Bake the scaler state of the anchor features into the graph."""
        idx = [scaler.features.index(a) for a in ANCHORS]
        self.anchor_mean.copy_(torch.tensor([scaler.mean_[i] for i in idx], dtype=torch.float32))
        self.anchor_std.copy_(torch.tensor([scaler.std_[i] for i in idx], dtype=torch.float32))
        self.anchor_log.copy_(torch.tensor([float(scaler.transform_of(a) == "log1p")
                                            for a in ANCHORS]))

    def _raw_anchor(self, x: torch.Tensor, j: int) -> torch.Tensor:
        z = x[..., self.anchor_index[j]] * self.anchor_std[j] + self.anchor_mean[j]
        z = torch.minimum(z, 60.0 - 30.0 * self.anchor_log[j])  # expm1 stays finite (<= e^30)
        return self.anchor_log[j] * torch.expm1(z) + (1.0 - self.anchor_log[j]) * z

    def encode(self, history: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Summary vector [B, 3d+2] plus the raw history series needed by the in-graph fit:
        retention ``r``, its weight ``w`` (1 = observed), hours and cycles, each [B, 1, T]."""
        x = history * mask
        valid = (mask.amax(dim=-1) > 0).to(history.dtype)  # [B, T]
        # absurd inputs (retention 100x, clocks far outside training) must give finite output
        h = self.embed(torch.cat([x.clamp(-INPUT_CLAMP, INPUT_CLAMP), mask], dim=-1))
        for att, norm, ffn in zip(self.blocks, self.norms, self.ffn):
            h = h + att(norm(h), valid)
            h = h + ffn(h)
        w = valid[..., None]
        mean = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
        scores = (h @ self.pool_query) / math.sqrt(h.shape[-1]) + (valid - 1.0) * 1e4
        attn = (torch.softmax(scores, dim=1)[..., None] * h).sum(1)
        last = h[:, -1]
        ret = self._raw_anchor(x, 0)[:, None, :]
        ret_w = mask[..., self.anchor_index[0]][:, None, :]
        hours = self._raw_anchor(history, 1).clamp(min=0.0)[:, None, :]
        cycles = self._raw_anchor(history, 2).clamp(min=0.0)[:, None, :]
        hour_last, cycle_last = hours[..., -1:], cycles[..., -1:]
        stats = torch.cat([torch.log1p(hour_last[:, 0]) / 10.0,
                           torch.log1p(cycle_last[:, 0]) / 10.0], dim=-1)
        return torch.cat([mean, attn, last, stats], dim=-1), ret, ret_w, hours, cycles

    def forward(self, history: torch.Tensor, history_mask: torch.Tensor, query_cycle: torch.Tensor,
                query_hour: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(capacity_fraction, loss_time_fraction, loss_cycle_fraction)``, each [B, H, K]."""
        summary, ret, ret_w, hours, cycles = self.encode(history, history_mask)
        out = self.head(summary).clamp(-HEAD_CLAMP, HEAD_CLAMP)
        p = self.n_params
        mu, log_scale, prior_logits = out[:, :p], out[:, p:2 * p], out[:, 2 * p:]
        scale = F.softplus(log_scale - 1.0) + 1e-3
        u = mu[:, None, :] + scale[:, None, :] * self.noise[None, :, :p]  # [B, K, P]
        n_t = self.time_term.n_params
        u_t, u_c = u[..., :n_t], u[..., n_t:]
        hl, cl = hours[..., -1:], cycles[..., -1:]  # [B, 1, 1]
        share = self._share(prior_logits, mu[:, None, :n_t], mu[:, None, n_t:], ret, ret_w,
                            hours, cycles)  # [B, K, 1]
        g_t_last = self.time_term(u_t, hl, hl).clamp(min=1e-6)
        g_c_last = self.cycle_term(u_c, cl, cl).clamp(min=1e-6)
        # per sample: fit fresh capacity c0 and loss-at-last L to the observed history
        basis = share * self.time_term(u_t, hours, hl) / g_t_last + (1.0 - share) * \
            self.cycle_term(u_c, cycles, cl) / g_c_last
        c0, loss_last, _ = _fit_anchor(basis, ret, ret_w)
        qh, qc = query_hour[:, None, :], query_cycle[:, None, :]  # [B, 1, H]
        loss_time = share * loss_last * self.time_term(u_t, qh, hl) / g_t_last
        loss_cycle = (1.0 - share) * loss_last * self.cycle_term(u_c, qc, cl) / g_c_last
        cap = c0 - loss_time - loss_cycle
        return cap.transpose(1, 2), loss_time.transpose(1, 2), loss_cycle.transpose(1, 2)

    def _share(self, prior_logits: torch.Tensor, ut_mean: torch.Tensor, uc_mean: torch.Tensor,
               ret: torch.Tensor, ret_w: torch.Tensor, hours: torch.Tensor,
               cycles: torch.Tensor) -> torch.Tensor:
        """K samples [B, K, 1] of the time share at the last observed cycle.

        Posterior over share bins = prior (head, from the cell's signals) x likelihood of the
        observed history (profile likelihood of the per-share anchor fit, tempered by a learned
        factor for correlated residuals). Flat likelihood (time and cycles in lockstep) leaves
        the prior: a wide interval. Samples come from the posterior's inverse CDF at fixed
        quantiles baked into the graph.
        """
        b = ret.shape[0]
        if self.time_term_name == "none":
            return ret.new_zeros(b, self.n_samples, 1)
        if self.cycle_term_name == "none":
            return ret.new_ones(b, self.n_samples, 1)
        hl, cl = hours[..., -1:], cycles[..., -1:]
        g_t = self.time_term(ut_mean, hours, hl) / self.time_term(ut_mean, hl, hl).clamp(min=1e-6)
        g_c = self.cycle_term(uc_mean, cycles, cl) / self.cycle_term(uc_mean, cl, cl).clamp(
            min=1e-6)
        s = self.share_bins[None, :, None]  # [1, S, 1]
        _, _, rmse = _fit_anchor(s * g_t + (1.0 - s) * g_c, ret, ret_w)  # [B, S, 1]
        floor = 1e-3 * F.softplus(self.noise_floor)
        n_obs = ret_w.sum(-1)  # [B, 1]
        loglik = -0.5 * torch.sigmoid(self.evidence_temperature) * n_obs * torch.log(
            rmse[..., 0] ** 2 + floor ** 2)
        logits = prior_logits + loglik
        post = torch.softmax(logits - logits.amax(dim=-1, keepdim=True), dim=-1)  # [B, S]
        cdf = torch.cumsum(post, dim=-1)
        prev = cdf - post
        u = self.share_uniform[None, :, None]  # [1, K, 1]
        width = 1.0 / post.shape[-1]
        frac = ((u - prev[:, None, :]) / post[:, None, :].clamp(min=1e-9)).clamp(0.0, 1.0)
        return (width * frac).sum(-1, keepdim=True)  # [B, K, 1]

    def config(self) -> dict:
        """Constructor arguments (for the card and for rebuilding the model)."""
        first = self.blocks[0].qkv if len(self.blocks) else None
        return {"feature_names": list(self.feature_names), "time_term": self.time_term_name,
                "cycle_term": self.cycle_term_name,
                "d_model": int(self.embed[0].out_features),
                "n_heads": int(self.blocks[0].n_heads) if first is not None else 1,
                "n_layers": len(self.blocks), "n_samples": self.n_samples}
