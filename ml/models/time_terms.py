"""Time-driven loss terms: monotone shapes g(t) of elapsed hours ``t`` (one variant per class).

A term maps raw parameters ``u`` [B, K, P] to a shape ``g(t)`` [B, K, H] with ``g`` non-decreasing
in ``t`` and ``g(0) = 0``; FadeNet scales it so the time loss at the last observed hour equals the
inferred time share of the observed loss. ``none`` is a real variant (no time-driven loss).
"""
from __future__ import annotations

import torch
from torch import nn

from ml.models.options import check_option

__all__ = ["TIME_TERMS", "make_time_term", "NoTimeTerm", "PowerTimeTerm", "OnsetTimeTerm"]

HOUR_REF = 1000.0  # h


def _exponent(u: torch.Tensor) -> torch.Tensor:
    return 0.2 + 0.8 * torch.sigmoid(u)  # (0.2, 1.0): sub-linear SEI-like growth up to linear


class NoTimeTerm(nn.Module):
    """No time-driven loss: ``g(t) = 0``."""

    n_params = 0

    def forward(self, u: torch.Tensor, hours: torch.Tensor, last_hour: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(hours.expand(u.shape[0], u.shape[1], hours.shape[-1]))


class PowerTimeTerm(nn.Module):
    """``g(t) = (t / 1000 h) ** p`` with ``p`` in (0.2, 1.0)."""

    n_params = 1

    def forward(self, u: torch.Tensor, hours: torch.Tensor, last_hour: torch.Tensor) -> torch.Tensor:
        p = _exponent(u[..., 0:1])
        return (torch.clamp(hours, min=1e-3) / HOUR_REF) ** p - (1e-3 / HOUR_REF) ** p


class OnsetTimeTerm(nn.Module):
    """``g(t) = (max(t - t0, 0) / 1000 h) ** p``: a cell that holds until ``t0`` (a fraction in
    (0, 0.9) of the observed hours), then fades."""

    n_params = 2

    def forward(self, u: torch.Tensor, hours: torch.Tensor, last_hour: torch.Tensor) -> torch.Tensor:
        p = _exponent(u[..., 0:1])
        t0 = 0.9 * torch.sigmoid(u[..., 1:2]) * last_hour
        return (torch.clamp(hours - t0, min=1e-3) / HOUR_REF) ** p - (1e-3 / HOUR_REF) ** p


TIME_TERMS = {"none": NoTimeTerm, "power": PowerTimeTerm, "onset": OnsetTimeTerm}


def make_time_term(name: str) -> nn.Module:
    """The time term called ``name`` (one of :data:`TIME_TERMS`); did-you-mean on a typo."""
    return TIME_TERMS[check_option("time_term", name, TIME_TERMS)]()
