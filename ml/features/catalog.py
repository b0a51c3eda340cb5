"""Every column of the per-cycle table, described by data: name (unit in the name), unit,
group, where it comes from, and what it means. ``complete_cycle_table`` orders its output by
this table and accepts exactly these columns as input (others are ignored and reported)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureColumn:
    """One per-cycle column.

    ``source``: ``input`` (given by the user or the cycler, or reduced from samples),
    ``samples`` (only derivable from per-sample rows), ``derived`` (computed by
    ``complete_cycle_table`` from other columns), ``eis`` (from EIS spectra).
    """

    name: str
    unit: str
    group: str
    source: str
    description: str


_C = FeatureColumn
COLUMNS: tuple[FeatureColumn, ...] = (
    _C("cell_id", "", "id", "input", "Cell identifier."),
    _C("cycle_index", "", "id", "input", "Cycle number (strictly increasing per cell)."),
    _C("test_time_second", "s", "time", "input", "Elapsed test time at the END of the cycle."),
    _C("test_time_estimated", "", "time", "derived",
       "1 where test_time_second was estimated from a stated protocol, else 0."),
    _C("discharge_capacity_ah", "Ah", "capacity", "input", "Charge delivered on discharge."),
    _C("charge_capacity_ah", "Ah", "capacity", "input", "Charge put in on charge."),
    _C("discharge_energy_wh", "Wh", "capacity", "input", "Energy delivered on discharge."),
    _C("charge_energy_wh", "Wh", "capacity", "input", "Energy put in on charge."),
    _C("mean_charge_voltage_volt", "V", "polarization", "input",
       "Charge energy / charge capacity."),
    _C("mean_discharge_voltage_volt", "V", "polarization", "input",
       "Discharge energy / discharge capacity."),
    _C("cycle_duration_second", "s", "time", "input",
       "End of this cycle − end of the previous one (end − first sample for a cell's first)."),
    _C("rest_second", "s", "time", "input",
       "Time at rest within the cycle: |I| <= 0.1 % of the largest |I| of the cell up to the "
       "end of this cycle (causal: later cycles never change it)."),
    _C("c_rate", "1/h", "time", "input",
       "C-rate of the cycle as given; else the discharge C-rate."),
    _C("temperature_celsius", "°C", "conditions", "input",
       "Mean recorded temperature of the cycle (else the cell's metadata value)."),
    _C("internal_resistance_ohm", "Ω", "polarization", "input",
       "Mean recorded internal resistance of the cycle."),
    _C("equivalent_full_cycles", "", "time", "input",
       "Cumulative equivalent full cycles as given; else cumulative discharge Ah / reference Ah."),
    # Reduced from per-sample rows (NaN for tables without them).
    _C("cycle_start_second", "s", "time", "samples", "Time of the cycle's first sample."),
    _C("rest_before_second", "s", "time", "samples",
       "Gap between the previous cycle's last sample and this cycle's first."),
    _C("charge_duration_second", "s", "time", "samples",
       "Time with charging current (interval mean above the cycle's rest threshold)."),
    _C("discharge_duration_second", "s", "time", "samples",
       "Time with discharging current (interval mean below minus the rest threshold)."),
    _C("high_voltage_second", "s", "time", "samples",
       "Time with voltage >= the cell's high-voltage threshold (metadata "
       "high_voltage_threshold_volt, default 0.9 × the cell's top of charge so far: the highest "
       "voltage of a charging sample up to the end of this cycle; 0 before the first charge)."),
    _C("end_of_charge_voltage_volt", "V", "polarization", "samples",
       "Voltage of the last charging sample."),
    _C("end_of_discharge_voltage_volt", "V", "polarization", "samples",
       "Voltage of the last discharging sample."),
    _C("mid_charge_voltage_volt", "V", "polarization", "samples",
       "Voltage at half of the cycle's charge capacity."),
    _C("mid_discharge_voltage_volt", "V", "polarization", "samples",
       "Voltage at half of the cycle's discharge capacity."),
    _C("mid_capacity_polarization_volt", "V", "polarization", "samples",
       "mid_charge_voltage_volt − mid_discharge_voltage_volt (ΔV at matched mid-capacity)."),
    _C("delta_q_v_variance_ah2", "Ah²", "voltage_curves", "input",
       "Variance of ΔQ(V) = Q_cycle(V) − Q_ref(V) over the discharge (Severson 2019)."),
    _C("delta_q_v_minimum_ah", "Ah", "voltage_curves", "input", "Minimum of ΔQ(V)."),
    _C("delta_q_v_mean_ah", "Ah", "voltage_curves", "input", "Mean of ΔQ(V)."),
    _C("delta_q_v_skewness", "", "voltage_curves", "input", "Skewness of ΔQ(V)."),
    _C("delta_q_v_reference_cycle", "", "voltage_curves", "input",
       "Reference cycle of ΔQ(V): 10, else the earliest >= 2 with a discharge."),
    _C("dqdv_peak_voltage_volt", "V", "voltage_curves", "samples",
       "Voltage of the largest smoothed discharge −dQ/dV peak."),
    _C("dqdv_peak_ah_per_volt", "Ah/V", "voltage_curves", "samples", "Its height."),
    _C("dqdv_peak2_voltage_volt", "V", "voltage_curves", "samples",
       "Voltage of the second-largest −dQ/dV peak (NaN if there is none)."),
    _C("dqdv_peak2_ah_per_volt", "Ah/V", "voltage_curves", "samples", "Its height."),
    # Derived by complete_cycle_table.
    _C("elapsed_hour", "h", "time", "derived", "test_time_second / 3600."),
    _C("cycle_duration_hour", "h", "time", "derived",
       "cycle_duration_second / 3600 (else the difference of consecutive end times; the "
       "first end time when the table starts at cycle 0 or 1)."),
    _C("cycle_start_hour", "h", "time", "derived", "Start of the cycle since test start."),
    _C("rest_hour", "h", "time", "derived", "rest_second / 3600."),
    _C("rest_before_hour", "h", "time", "derived", "rest_before_second / 3600."),
    _C("high_voltage_hour", "h", "time", "derived", "high_voltage_second / 3600."),
    _C("cumulative_high_voltage_hour", "h", "time", "derived",
       "Running sum of high_voltage_hour."),
    _C("charge_c_rate", "1/h", "time", "derived",
       "Mean charging current / C-rate capacity (nominal, else reference)."),
    _C("discharge_c_rate", "1/h", "time", "derived",
       "Mean discharging current / C-rate capacity (nominal, else reference)."),
    _C("reference_capacity_ah", "Ah", "capacity", "derived",
       "nominal_capacity_ah when known, else max discharge capacity of the first 3 cycles."),
    _C("retention", "", "capacity", "derived", "discharge_capacity_ah / reference_capacity_ah."),
    _C("coulombic_efficiency", "", "capacity", "derived", "Discharge / charge capacity."),
    _C("coulombic_inefficiency_per_hour", "1/h", "capacity", "derived",
       "(1 − coulombic_efficiency) / cycle_duration_hour: side reactions per hour."),
    _C("energy_efficiency", "", "capacity", "derived", "Discharge / charge energy."),
    _C("discharge_capacity_mah_per_g", "mAh/g", "capacity", "derived",
       "Discharge capacity per gram of active material (active_mass_g metadata)."),
    _C("charge_capacity_mah_per_g", "mAh/g", "capacity", "derived",
       "Charge capacity per gram of active material."),
    _C("polarization_volt", "V", "polarization", "derived",
       "mean_charge_voltage_volt − mean_discharge_voltage_volt."),
    _C("polarization_slope_volt_per_cycle", "V", "polarization", "derived",
       "Rolling OLS slope of polarization over the last 10 cycles, per cycle."),
    _C("polarization_slope_volt_per_hour", "V/h", "polarization", "derived",
       "The same slope against elapsed hours."),
    _C("internal_resistance_slope_ohm_per_cycle", "Ω", "polarization", "derived",
       "Rolling OLS slope of internal resistance over the last 10 cycles, per cycle."),
    _C("internal_resistance_slope_ohm_per_hour", "Ω/h", "polarization", "derived",
       "The same slope against elapsed hours."),
    _C("knee_cycle", "", "knee", "derived",
       "Bacon–Watts breakpoint of the capacity curve so far (NaN until a significant one)."),
    _C("knee_cycle_stderr", "", "knee", "derived", "Its standard error (cycles)."),
    _C("knee_cycle_ci_low", "", "knee", "derived", "Lower end of its 95 % profile interval."),
    _C("knee_cycle_ci_high", "", "knee", "derived", "Upper end of its 95 % profile interval."),
    # From EIS spectra (build_cycle_table with eis=…).
    _C("aw_ohm_per_sqrt_s", "Ω s^-½", "eis", "eis",
       "Warburg coefficient of the latest baseline spectrum at or before the cycle."),
    _C("aw_stderr", "Ω s^-½", "eis", "eis", "Its standard error."),
    _C("aw_slope_per_cycle", "Ω s^-½", "eis", "eis",
       "OLS slope of baseline A_w over the last 5 spectra, per cycle."),
    _C("aw_slope_per_hour", "Ω s^-½/h", "eis", "eis", "The same slope against hours."),
    _C("aw_top_of_charge_ohm_per_sqrt_s", "Ω s^-½", "eis", "eis",
       "A_w of the latest top-of-charge spectrum (the reversible spike, kept apart)."),
    _C("aw_spike_ratio", "", "eis", "eis", "Top-of-charge A_w / baseline A_w."),
    _C("aw_measurement_count", "", "eis", "eis", "Baseline spectra so far."),
)

NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
#: Accepted as input but not output: ``source_row`` (error messages) and protocol statements.
INPUT_ONLY: tuple[str, ...] = ("source_row", "hours_per_cycle")
#: Columns that depend, in a table built from samples, on the sample thresholds (rest current,
#: high-voltage level) — directly or through the charge / discharge durations. The thresholds
#: are causal (``sample_frame.SampleArrays``): from the cell's samples up to each cycle's end.
SAMPLE_THRESHOLD_COLUMNS: tuple[str, ...] = (
    "rest_second", "rest_hour", "charge_duration_second", "discharge_duration_second",
    "charge_c_rate", "discharge_c_rate", "c_rate", "high_voltage_second", "high_voltage_hour",
    "cumulative_high_voltage_hour", "end_of_charge_voltage_volt",
    "end_of_discharge_voltage_volt")


def column(name: str) -> FeatureColumn:
    """The catalogue entry of ``name`` (KeyError with the nearest names if unknown)."""
    for c in COLUMNS:
        if c.name == name:
            return c
    import difflib
    raise KeyError(f"{name!r} is not a per-cycle column; nearest: "
                   f"{difflib.get_close_matches(name, NAMES, n=3)}")
