"""Request and response bodies of ``POST /v1/cohorts/attribution`` (pydantic, bounded).

Every float refuses NaN and ±inf; unknown top-level keys are refused; unknown history or plan
columns are ignored (the per-cycle table's rule). Sizes: at most 50 cells, 10 plans, 20,000
cycles per cell or plan, a horizon of at most 5,000 cycles.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.schemas import HistoryRow

__all__ = ["CohortAttributionRequest", "CohortAttributionResponse", "CohortCell", "PlanRow",
           "PlannedSibling"]

_STRICT = ConfigDict(allow_inf_nan=False, extra="forbid")
_CELL_ID = Field(max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
NonNeg = Annotated[float, Field(ge=0, le=1e12)]


class CohortCell(BaseModel):
    """One sibling: its id, optional nominal capacity and observed per-cycle history."""

    model_config = _STRICT
    cell_id: str = _CELL_ID
    nominal_capacity_ah: float | None = Field(None, gt=0, le=1e5, description="Ah")
    history: list[HistoryRow] = Field(min_length=1, max_length=20_000,
                                      description="observed cycles, in order")


class PlanRow(BaseModel):
    """One planned cycle: its planned clock and protocol (capacities, if sent, are ignored)."""

    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")
    cycle_index: int = Field(ge=0, le=10_000_000)
    test_time_second: float = Field(ge=0, le=1e11,
                                    description="planned elapsed time at the END of the cycle")
    cycle_duration_second: NonNeg | None = None
    rest_second: NonNeg | None = None
    c_rate: float | None = Field(None, gt=0, le=1000)
    temperature_celsius: float | None = Field(None, ge=-100, le=200)


class PlannedSibling(BaseModel):
    """A sibling not run yet: a name and its planned schedule."""

    model_config = _STRICT
    name: str = _CELL_ID
    schedule: list[PlanRow] = Field(min_length=1, max_length=20_000)


class CohortInfo(BaseModel):
    model_config = _STRICT
    name: str | None = Field(None, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    nominal_capacity_ah: float | None = Field(
        None, gt=0, le=1e5, description="reference capacity (Ah); required when the cells' "
        "nominal capacities differ")


class CohortAttributionRequest(BaseModel):
    """``POST /v1/cohorts/attribution``: sibling cells (one is accepted: wide interval +
    advice to run a sibling), optional planned siblings and a per-cell horizon."""

    model_config = _STRICT
    cohort: CohortInfo | None = None
    cells: list[CohortCell] = Field(min_length=1, max_length=50)
    plans: list[PlannedSibling] = Field(default_factory=list, max_length=10)
    plan_clock: Literal["given", "follows_capacity"] = Field(
        "given", description="plans' clocks as given, or each planned cycle shortened by the "
        "constant-current time its predicted fade saves, 2(1 - capacity/reference)/c_rate h "
        "(needs c_rate)")
    horizon_cycles: int | None = Field(None, ge=1, le=5_000)


class CohortAttributionResponse(BaseModel):
    """The CONTRACTS cohort answer (identical to ``fadecast attribute --json``)."""

    model: dict[str, str]
    cohort: dict[str, Any]
    cells: list[dict[str, Any]]
    plans: list[dict[str, Any]]
    identifiability: dict[str, Any] | None
