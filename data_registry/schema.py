"""Canonical schemas: per-sample time series, per-cycle summary, EIS spectra, cell metadata.

Column names follow the Battery Data Format (BDF): units live in the names. Current is
POSITIVE while charging. Im(Z) is stored as measured, NEGATIVE for capacitive and diffusive
behaviour (readers of vendor files that export −Im(Z) convert once, at the reader).

A column is described by data (:class:`Column`), as battery-data-toolkit does, so validation,
documentation and the API all read one table.
"""
from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class Column:
    """One canonical column.

    ``lo``/``hi`` are inclusive physical bounds (None = unbounded); ``monotonic`` is
    ``"increasing"`` (non-decreasing) within a cell where it applies.
    """

    name: str
    dtype: str  # "float64" | "int64" | "string"
    unit: str
    description: str
    required: bool = False
    lo: float | None = None
    hi: float | None = None
    monotonic: str | None = None


@dataclass(frozen=True)
class Table:
    """A named set of columns."""

    name: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


SAMPLES = Table(
    "samples",
    (
        Column("cell_id", "string", "", "Cell identifier (set by the registry at ingest).", True),
        Column("source_row", "int64", "", "1-based row in the raw file this sample came from."),
        Column("test_time_second", "float64", "s", "Elapsed test time since the test start.",
               True, lo=0.0, monotonic="increasing"),
        Column("voltage_volt", "float64", "V", "Terminal voltage (below -0.5 V kept with a "
               "warning down to -5 V: half cells, three-electrode potentials).", True, lo=-0.5,
               hi=10.0),
        Column("current_ampere", "float64", "A", "Current, positive = charge.", True,
               lo=-1e4, hi=1e4),
        Column("cycle_count", "int64", "", "Cycle number as counted by the cycler (>= 0).", True,
               lo=0, monotonic="increasing"),
        Column("step_count", "int64", "", "Step number (index of the protocol step).", False, lo=0),
        Column("charging_capacity_ah", "float64", "Ah",
               "Charge put in, cumulative within the cycle (>= 0).", False, lo=0.0),
        Column("discharging_capacity_ah", "float64", "Ah",
               "Charge taken out, cumulative within the cycle (>= 0).", False, lo=0.0),
        Column("unix_time_second", "float64", "s", "Wall-clock time, seconds since 1970 UTC."),
        Column("ambient_temperature_celsius", "float64", "°C", "Ambient/cell temperature.",
               lo=-80.0, hi=200.0),
        Column("charging_energy_wh", "float64", "Wh", "Energy in, cumulative within the cycle.",
               lo=0.0),
        Column("discharging_energy_wh", "float64", "Wh",
               "Energy out, cumulative within the cycle.", lo=0.0),
        Column("internal_resistance_ohm", "float64", "Ω", "Internal resistance as recorded.",
               lo=0.0),
    ),
)

CYCLES = Table(
    "cycles",
    (
        Column("cell_id", "string", "", "Cell identifier.", True),
        Column("cycle_index", "int64", "", "Cycle number (1-based where the source allows).",
               True, lo=0, monotonic="increasing"),
        Column("test_time_second", "float64", "s",
               "Elapsed time at the END of the cycle since the test start.", True, lo=0.0,
               monotonic="increasing"),
        Column("test_time_estimated", "int64", "",
               "1 where test_time_second was estimated from a stated protocol, else 0."),
        Column("discharge_capacity_ah", "float64", "Ah", "Discharge capacity of the cycle.", True,
               lo=0.0),
        Column("charge_capacity_ah", "float64", "Ah", "Charge capacity of the cycle.", lo=0.0),
        Column("discharge_energy_wh", "float64", "Wh", "Discharge energy of the cycle.", lo=0.0),
        Column("charge_energy_wh", "float64", "Wh", "Charge energy of the cycle.", lo=0.0),
        Column("mean_charge_voltage_volt", "float64", "V", "Charge energy / charge capacity.",
               lo=0.0, hi=10.0),
        Column("mean_discharge_voltage_volt", "float64", "V",
               "Discharge energy / discharge capacity.", lo=0.0, hi=10.0),
        Column("cycle_duration_second", "float64", "s", "Duration of the cycle.", lo=0.0),
        Column("rest_second", "float64", "s", "Time at zero current within the cycle.", lo=0.0),
        Column("c_rate", "float64", "1/h", "C-rate of the cycle (current / nominal capacity).",
               lo=0.0),
        Column("charge_policy_c_rate", "float64", "1/h",
               "The charge protocol's PLANNED mean charging C-rate over a full charge, CV tail "
               "excluded (stated by the user; never measured).", lo=0.0),
        Column("temperature_celsius", "float64", "°C", "Cell or ambient temperature.",
               lo=-80.0, hi=200.0),
        Column("equivalent_full_cycles", "float64", "", "Cumulative equivalent full cycles.",
               lo=0.0),
        Column("internal_resistance_ohm", "float64", "Ω", "Internal resistance.", lo=0.0),
        Column("aw_ohm_per_sqrt_s", "float64", "Ω s^-1/2",
               "Warburg coefficient A_w fitted to this cycle's EIS spectrum.", lo=0.0),
        Column("delta_q_v_variance_ah2", "float64", "Ah²",
               "Variance of ΔQ(V) = Q_cycle(V) − Q_10(V) over the discharge.", lo=0.0),
        Column("delta_q_v_minimum_ah", "float64", "Ah", "Minimum of ΔQ(V)."),
        Column("delta_q_v_mean_ah", "float64", "Ah", "Mean of ΔQ(V)."),
        Column("delta_q_v_skewness", "float64", "", "Skewness of ΔQ(V)."),
        Column("cycle_label", "string", "",
               "The source's own label of the cycle ('Aging cycle', 'Capacity check', 'HPPC' …): "
               "labelled capacity checks become the capacity trajectory (ml.features.cycle_kinds)."),
    ),
)

EIS = Table(
    "eis",
    (
        Column("cell_id", "string", "", "Cell identifier.", True),
        Column("measurement_id", "string", "", "One spectrum = one measurement id.", True),
        Column("cycle_count", "int64", "", "Cycle at which the spectrum was taken.", lo=0),
        Column("test_time_second", "float64", "s", "Elapsed test time of the measurement.",
               lo=0.0),
        Column("voltage_volt", "float64", "V", "Cell voltage during the measurement.",
               lo=-0.5, hi=10.0),
        Column("state_of_charge", "float64", "", "State of charge, 0–1.", lo=0.0, hi=1.0),
        Column("frequency_hz", "float64", "Hz", "Frequency.", True, lo=0.0),
        Column("z_real_ohm", "float64", "Ω", "Re(Z).", True),
        Column("z_imag_ohm", "float64", "Ω",
               "Im(Z) as measured: NEGATIVE for capacitive/diffusive behaviour.", True),
    ),
)

#: Cell metadata keys (free-form tags are allowed beside them; values are strings or numbers).
CELL_METADATA_KEYS: dict[str, str] = {
    "chemistry": "Cell chemistry, e.g. 'LFP/graphite' or 'Li/Li3PS4/PTO'.",
    "active_mass_g": "Active material mass of the working electrode, grams.",
    "nominal_capacity_ah": "Nominal capacity, Ah (defines 1C).",
    "temperature_celsius": "Test temperature, °C.",
    "protocol": "Free-text protocol description.",
    "charge_policy_c_rate": "The charge protocol's PLANNED mean charging C-rate over a full "
                            "charge (1/h, CV tail excluded); fills the per-cycle column of that "
                            "name where the cell's cycles do not state it.",
}

TABLES: dict[str, Table] = {t.name: t for t in (SAMPLES, CYCLES, EIS)}
