"""Cycle-driven loss terms: monotone shapes g(N) of the cycle count ``N`` (one variant per class).

Same contract as :mod:`ml.models.time_terms`; ``none`` means no cycle-driven loss, ``knee`` adds
an accelerating (quadratic) part after a knee cycle, which may lie beyond the observed history.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ml.models.options import check_option

__all__ = ["CYCLE_TERMS", "make_cycle_term", "NoCycleTerm", "PowerCycleTerm", "KneeCycleTerm"]

CYCLE_REF = 100.0  # cycles


def _exponent(u: torch.Tensor) -> torch.Tensor:
    return 0.5 + 1.5 * torch.sigmoid(u)  # (0.5, 2.0)


class NoCycleTerm(nn.Module):
    """No cycle-driven loss: ``g(N) = 0``."""

    n_params = 0

    def forward(self, u: torch.Tensor, cycles: torch.Tensor, last_cycle: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(cycles.expand(u.shape[0], u.shape[1], cycles.shape[-1]))


class PowerCycleTerm(nn.Module):
    """``g(N) = (N / 100) ** q`` with ``q`` in (0.5, 2.0)."""

    n_params = 1

    def forward(self, u: torch.Tensor, cycles: torch.Tensor, last_cycle: torch.Tensor) -> torch.Tensor:
        q = _exponent(u[..., 0:1])
        return (torch.clamp(cycles, min=1e-3) / CYCLE_REF) ** q - (1e-3 / CYCLE_REF) ** q


class KneeCycleTerm(nn.Module):
    """``g(N) = (N/100) ** q + kappa * (softplus((N - N_k) / 10) * 10 / 100) ** 2`` with the knee
    ``N_k`` in (0.5, 2.5) x the last observed cycle and ``kappa >= 0``."""

    n_params = 3

    def forward(self, u: torch.Tensor, cycles: torch.Tensor, last_cycle: torch.Tensor) -> torch.Tensor:
        q = _exponent(u[..., 0:1])
        knee = last_cycle * (0.5 + 2.0 * torch.sigmoid(u[..., 1:2]))
        kappa = F.softplus(u[..., 2:3] - 2.0)
        ramp = F.softplus((cycles - knee) / 10.0) * 10.0 / CYCLE_REF
        ramp0 = F.softplus((0.0 - knee) / 10.0) * 10.0 / CYCLE_REF
        base = (torch.clamp(cycles, min=1e-3) / CYCLE_REF) ** q - (1e-3 / CYCLE_REF) ** q
        return base + kappa * (ramp ** 2 - ramp0 ** 2)


CYCLE_TERMS = {"none": NoCycleTerm, "power": PowerCycleTerm, "knee": KneeCycleTerm}


def make_cycle_term(name: str) -> nn.Module:
    """The cycle term called ``name`` (one of :data:`CYCLE_TERMS`); did-you-mean on a typo."""
    return CYCLE_TERMS[check_option("cycle_term", name, CYCLE_TERMS)]()
