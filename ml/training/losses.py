"""Proper scoring losses on K-sample forecasts (torch)."""
from __future__ import annotations

import torch

__all__ = ["sample_crps", "forecast_loss"]


def sample_crps(samples: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CRPS of the empirical distribution of ``samples`` [..., K] at ``target`` [...].

    ``CRPS = E|X - y| - 0.5 E|X - X'|`` (same unit as the target). NaN targets give NaN.
    """
    k = samples.shape[-1]
    term1 = (samples - target[..., None]).abs().mean(-1)
    s, _ = torch.sort(samples, dim=-1)
    # E|X - X'| from sorted samples: sum_i (2i - K - 1) s_i * 2 / K^2
    w = (2.0 * torch.arange(1, k + 1, dtype=samples.dtype) - k - 1.0)
    term2 = (s * w).sum(-1) * 2.0 / (k * k)
    return term1 - 0.5 * term2


def _masked_mean(values: torch.Tensor) -> torch.Tensor:
    ok = torch.isfinite(values)
    if not ok.any():
        return values.new_zeros(())
    return values[ok].mean()


def forecast_loss(outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                  batch: dict[str, torch.Tensor], truth_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """CRPS on future capacity plus, where truth exists, CRPS on the time and cycle loss
    fractions and on the time share at the last observed cycle (query 0).

    Returns ``{"loss", "crps_capacity", "crps_split", "crps_share"}``.
    """
    cap, lt, lc = outputs
    crps_cap = _masked_mean(sample_crps(cap, batch["target_capacity"]))
    crps_t = sample_crps(lt, batch["target_time"])
    crps_c = sample_crps(lc, batch["target_cycle"])
    crps_split = _masked_mean(0.5 * (crps_t + crps_c))
    tot = lt[:, 0] + lc[:, 0]
    share = lt[:, 0] / tot.clamp(min=1e-6)
    t_tot = batch["target_time"][:, 0] + batch["target_cycle"][:, 0]
    t_share = batch["target_time"][:, 0] / t_tot.clamp(min=1e-6)
    t_share = torch.where(t_tot > 0.01, t_share, torch.full_like(t_share, float("nan")))
    crps_share = _masked_mean(sample_crps(share, t_share))
    loss = crps_cap + truth_weight * (crps_split + 0.1 * crps_share)
    return {"loss": loss, "crps_capacity": crps_cap.detach(), "crps_split": crps_split.detach(),
            "crps_share": crps_share.detach()}
