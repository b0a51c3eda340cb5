"""A deep ensemble of FadeNets: members trained from different seeds, their K samples pooled.

The ensemble has FadeNet's interface (same inputs, outputs [B, H, sum K]) so export, calibration
and inference do not change; pooling members adds the spread between independently trained
models to each member's own posterior.
"""
from __future__ import annotations

import torch
from torch import nn

from data_registry.errors import FadecastError
from ml.models.fade_net import FadeNet
from ml.scaling import FeatureScaler

__all__ = ["FadeEnsemble"]


class FadeEnsemble(nn.Module):
    """Pool the samples of ``members`` (FadeNets with the same features).

    Raises
    ------
    FadecastError
        No members, or members with different feature lists.
    """

    def __init__(self, members: list[FadeNet]) -> None:
        super().__init__()
        if not members:
            raise FadecastError("an ensemble needs at least one member", code="bad_parameter",
                                column="ensemble", expected=">= 1 member", found="0")
        names = {tuple(m.feature_names) for m in members}
        if len(names) != 1:
            raise FadecastError("ensemble members read different features",
                                code="bad_parameter", column="feature_names",
                                expected="one feature list", found=str(len(names)))
        self.members = nn.ModuleList(members)
        self.feature_names = members[0].feature_names

    @property
    def is_fitted_(self) -> bool:
        """True when every member is fitted."""
        return all(getattr(m, "is_fitted_", False) for m in self.members)

    @property
    def n_samples(self) -> int:
        """Pooled K."""
        return sum(m.n_samples for m in self.members)

    def set_scaler(self, scaler: FeatureScaler) -> None:
        """Bake the scaler into every member."""
        for m in self.members:
            m.set_scaler(scaler)

    def forward(self, history: torch.Tensor, history_mask: torch.Tensor,
                query_cycle: torch.Tensor, query_hour: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Members' outputs concatenated along the sample axis, each [B, H, sum K]."""
        outs = [m(history, history_mask, query_cycle, query_hour) for m in self.members]
        return tuple(torch.cat([o[i] for o in outs], dim=-1) for i in range(3))

    def config(self) -> dict:
        """The first member's constructor arguments plus the ensemble size and pooled K."""
        return {**self.members[0].config(), "ensemble": len(self.members),
                "n_samples": self.n_samples}
