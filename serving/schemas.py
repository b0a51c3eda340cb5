"""Request and response bodies of the HTTP API (pydantic), with the bounds bad input hits.

Every float refuses NaN and ±inf; units are in the field names (CONTRACTS.md). Unknown history
columns are ignored (the per-cycle table's rule); unknown top-level keys are refused.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from data_registry.cell_ids import CELL_ID_MAX_LENGTH, CELL_ID_REGEX

__all__ = [
    "AdviceRequest", "AdviceResponse", "CellAdviceRequest", "CellForecastRequest", "CellInfo",
    "ErrorBody",
    "ForecastRequest", "ForecastResponse", "HistoryRow", "ModelsResponse", "Spec",
    "UploadResponse",
]

_STRICT = ConfigDict(allow_inf_nan=False, extra="forbid")
NonNeg = Annotated[float, Field(ge=0, le=1e12)]
Volt = Annotated[float, Field(gt=0, lt=10)]


class CellInfo(BaseModel):
    """Optional metadata of the cell the history belongs to."""

    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")
    cell_id: str | None = Field(None, max_length=CELL_ID_MAX_LENGTH, pattern=CELL_ID_REGEX)
    nominal_capacity_ah: float | None = Field(None, gt=0, le=1e5, description="Ah")
    chemistry: str | None = Field(None, max_length=64)
    active_mass_g: float | None = Field(None, gt=0, le=1e6)


class HistoryRow(BaseModel):
    """One observed cycle (CONTRACTS.md "Per-cycle table"); unknown keys are ignored."""

    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")
    cycle_index: int = Field(ge=0, le=10_000_000)
    test_time_second: float = Field(ge=0, le=1e11, description="elapsed at the END of the cycle")
    discharge_capacity_ah: float = Field(
        ge=0, le=1e5, description="Ah; 0 = the cycle did not discharge (charge-only, rest, still "
        "running): left out of the capacity trend (answer `history`)")
    charge_capacity_ah: NonNeg | None = None
    charge_energy_wh: NonNeg | None = None
    discharge_energy_wh: NonNeg | None = None
    mean_charge_voltage_volt: Volt | None = None
    mean_discharge_voltage_volt: Volt | None = None
    cycle_duration_second: NonNeg | None = None
    rest_second: NonNeg | None = None
    c_rate: float | None = Field(None, ge=0, le=1000)
    charge_policy_c_rate: float | None = Field(
        None, ge=0, le=1000, description="1/h: the charge protocol's PLANNED mean charging "
        "C-rate over a full charge, 1 / (hours to charge 0 -> 100 % SOC at the policy's "
        "currents, CV tail excluded); stated by the user, never measured (the measured "
        "`charge_c_rate` of a cycler export includes the CV tail); read by the cycle-life head "
        "`capacity_charge_policy`")
    temperature_celsius: float | None = Field(None, ge=-100, le=200)
    aw_ohm_per_sqrt_s: NonNeg | None = None
    delta_q_v_variance_ah2: NonNeg | None = None
    delta_q_v_minimum_ah: float | None = Field(None, ge=-1e5, le=1e5)
    delta_q_v_mean_ah: float | None = Field(None, ge=-1e5, le=1e5)
    delta_q_v_skewness: float | None = Field(None, ge=-1e6, le=1e6)
    cycle_label: str | None = Field(
        None, max_length=80, description="the source's label of the cycle, e.g. 'Aging cycle', "
        "'Capacity check', 'HPPC': labelled capacity checks become the capacity trajectory, "
        "pulses and impedance sweeps are left out")


def _check_order(rows: list[HistoryRow]) -> list[HistoryRow]:
    for i in range(1, len(rows)):
        a, b = rows[i - 1], rows[i]
        if b.cycle_index <= a.cycle_index:
            raise ValueError(f"history[{i}].cycle_index must increase: found {b.cycle_index} "
                             f"after {a.cycle_index}")
        if b.test_time_second < a.test_time_second:
            raise ValueError(f"history[{i}].test_time_second must not decrease: found "
                             f"{b.test_time_second} after {a.test_time_second}")
    return rows


class _HistoryBody(BaseModel):
    model_config = _STRICT
    cell: CellInfo | None = None
    history: list[HistoryRow] = Field(min_length=1, description="observed cycles, in order")
    future_hours_per_cycle: float | None = Field(
        None, gt=0, le=1e5, description="planned hours per future cycle (what-if); default: "
        "median duration of the last 10 observed cycles")
    eol_fraction: float = Field(0.8, gt=0, lt=1, description="end of life, of the reference")

    @field_validator("history")
    @classmethod
    def _history_in_order(cls, rows: list[HistoryRow]) -> list[HistoryRow]:
        return _check_order(rows)


class ForecastRequest(_HistoryBody):
    """``POST /v1/forecast``."""

    horizon_cycles: int = Field(ge=1, le=100_000)


class CellForecastRequest(BaseModel):
    """``POST /v1/cells/{cell_id}/forecast``: the history comes from the registry."""

    model_config = _STRICT
    cell: CellInfo | None = None
    horizon_cycles: int = Field(ge=1, le=100_000)
    future_hours_per_cycle: float | None = Field(None, gt=0, le=1e5)
    eol_fraction: float = Field(0.8, gt=0, lt=1)


class Spec(BaseModel):
    """Acceptance spec: the cell passes when its EOL cycle is at or after ``min_cycles_to_eol``."""

    model_config = _STRICT
    min_cycles_to_eol: float = Field(gt=0, le=10_000_000)


class AdviceRequest(_HistoryBody):
    """``POST /v1/advice``."""

    planned_cycles: int = Field(ge=1, le=10_000_000, description="cycle the test ends at")
    tolerance_cycles: float = Field(gt=0, le=10_000_000)
    spec: Spec | None = None


class CellAdviceRequest(BaseModel):
    """``POST /v1/cells/{cell_id}/advice``: the history comes from the registry."""

    model_config = _STRICT
    cell: CellInfo | None = None
    planned_cycles: int = Field(ge=1, le=10_000_000, description="cycle the test ends at")
    tolerance_cycles: float = Field(gt=0, le=10_000_000)
    spec: Spec | None = None
    future_hours_per_cycle: float | None = Field(None, gt=0, le=1e5)
    eol_fraction: float = Field(0.8, gt=0, lt=1)


class Quantiles(BaseModel):
    p05: float | None
    p50: float | None
    p95: float | None


class _ModelRef(BaseModel):
    name: str
    version: str


class _ForecastRow(BaseModel):
    cycle_index: int
    test_time_second: float
    capacity_ah: Quantiles
    loss_time_fraction: Quantiles | float | None
    loss_cycle_fraction: Quantiles | float | None


class _EndOfLife(BaseModel):
    threshold_fraction: float
    cycle_index: Quantiles
    test_time_second: Quantiles
    censored: dict[str, bool] | None = None
    observed: bool | None = Field(
        None, description="true when the history itself already went below the threshold "
        "(three consecutive retentions, the advice's rule): every quantile is that cycle")
    calibrated_widening: dict[str, float] | None = Field(
        None, description="{p05, p95}: the model card's end-of-life calibration (log remaining "
        "cycles) applied to the band's crossings: remaining cycles to p05 × exp(−p05), to p95 × "
        "exp(p95); with fade_progress (the history's share of the way to the threshold already "
        "lost) where the card calibrates by fade-progress bin, the bin whose scales these are. "
        "The end-of-life interval is then no longer where the capacity rows' p05/p95 cross the "
        "threshold. Absent when nothing was widened: no positive scale for this history, an "
        "end of life already observed, none within the horizon, or a cycle-life head's "
        "interval")
    calibrated_on: list[str] | None = Field(
        None, description="the sources whose calibration cells set calibrated_widening (the "
        "card's scale-setting sources of that fade-progress bin, else of its pooled scales): a "
        "cell unlike all of them is widened by other cells' misses")


class ForecastResponse(BaseModel):
    """The CONTRACTS forecast JSON (identical to ``fadecast forecast --json``)."""

    model: _ModelRef
    cell_id: str | None
    forecast: list[_ForecastRow]
    end_of_life: _EndOfLife | None
    attribution: dict[str, Any]
    domain: dict[str, Any] | None = Field(
        None, description="{in_domain, reasons, checked, widened}: every conditioning input "
        "(hours per cycle, C-rate, temperature, capacity scale, chemistry, history length) "
        "against the model card's training domain; out of domain widens the bands")
    uncertainty: dict[str, Any] | None = Field(
        None, description="observation-noise floor, time-share identifiability weight, "
        "cycle-life head used (if any)")
    history: dict[str, Any] | None = Field(
        None, description="{rows, rows_used, basis, dropped}: the history rows that carry the "
        "capacity trend — 'capacity checks' when rows are labelled as such (cycle_label), "
        "never pulses, impedance sweeps or partial cycles whose capacity comes back")


class _AdviceEol(BaseModel):
    threshold_fraction: float
    cycle_index: Quantiles
    elapsed_hour: Quantiles


class AdviceResponse(BaseModel):
    """``POST /v1/advice`` answer."""

    decision: Literal["stop", "continue"]
    reason: str
    end_of_life: _AdviceEol
    pass_probability: float | None = None
    hours_saved_if_stopped: float = Field(description="remaining planned test hours")
    checks: dict[str, bool]
    model: _ModelRef
    domain: dict[str, Any] | None = Field(
        None, description="{in_domain, reasons, checked}: the latest forecast's domain "
        "judgement; any reason fails the in_domain check")
    history: dict[str, Any] | None = Field(
        None, description="{rows, rows_used, basis, dropped}: the history rows the advice "
        "read (capacity checks when labelled; no pulses or partial cycles)")


class ErrorBody(BaseModel):
    """Every 4xx answer."""

    code: str
    message: str
    field: str | None = None
    file: str | None = None
    row: int | None = None


class UploadResponse(BaseModel):
    cell_id: str
    bytes: int
    format_name: str | None = None
    warnings: list[dict[str, Any]] = []
    report: dict[str, Any] = {}


class ModelsResponse(BaseModel):
    models: list[dict[str, Any]]


class BatchForecastRequest(BaseModel):
    """``POST /v1/forecast/batch``: many histories, one forecast each (same rules as
    ``POST /v1/forecast`` per item)."""

    model_config = _STRICT
    items: list[ForecastRequest] = Field(min_length=1, description="one entry per cell")


class BatchItemError(BaseModel):
    code: str
    message: str
    field: str | None = None


class BatchItem(BaseModel):
    index: int = Field(description="position of the item in the request")
    ok: bool
    forecast: ForecastResponse | None = None
    error: BatchItemError | None = None


class BatchForecastResponse(BaseModel):
    """One result per item, in request order; an item the model cannot forecast carries its
    error and does not fail the others."""

    results: list[BatchItem]
    cells_per_second: float = Field(description="items / server compute time of this batch")
