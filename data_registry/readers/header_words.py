"""Header words: the documented aliases (stems) of the generic layouts' columns, in English and
in the languages lab exports use, and the words of a column naming each row's cell.

A header matches a stem after :func:`data_registry.readers.headers.norm` (lower case, blanks to
``_``) with its unit split off (``Current (mA)`` → ``current`` + ``mA``); CamelCase is split too
(``TestTime`` → ``test_time``).
"""
from __future__ import annotations

#: headers (normalised) of a WHOLE-TEST clock: Neware's ``Total Time`` / ``Cumulative Time``,
#: Landt's ``TestTime``, Digatron's ``Program Duration`` / ``Programmdauer`` … ; each reads as
#: ``test_time_second``, and beside one a step clock (:data:`STEP_TIME_STEMS`) is ignored
TOTAL_TIME_STEMS = frozenset({
    "test_time", "total_time", "cumulative_time", "program_duration", "prog_time",
    "program_time", "test_duration", "testzeit", "gesamtzeit", "programmdauer", "prüfdauer",
    "pruefdauer"})
#: headers (normalised) that are a STEP clock when a whole-test clock stands beside them
STEP_TIME_STEMS = frozenset({"time", "step_time", "step_duration", "zeit", "schrittzeit",
                             "schrittdauer"})
_CLOCK = {s: "test_time_second" for s in TOTAL_TIME_STEMS}

SAMPLE_STEMS: dict[str, str] = {
    "test_time": "test_time_second", "time": "test_time_second",
    "elapsed_time": "test_time_second",
    "voltage": "voltage_volt", "potential": "voltage_volt",
    "current": "current_ampere",
    "cycle": "cycle_count", "cycle_number": "cycle_count", "cycle_index": "cycle_count",
    "step": "step_count", "step_index": "step_count", "step_number": "step_count",
    "charge_capacity": "charging_capacity_ah", "charging_capacity": "charging_capacity_ah",
    "discharge_capacity": "discharging_capacity_ah",
    "discharging_capacity": "discharging_capacity_ah",
    "charge_energy": "charging_energy_wh", "charging_energy": "charging_energy_wh",
    "discharge_energy": "discharging_energy_wh", "discharging_energy": "discharging_energy_wh",
    "temperature": "ambient_temperature_celsius",
    "ambient_temperature": "ambient_temperature_celsius",
    "internal_resistance": "internal_resistance_ohm",
    "unix_time": "unix_time_second",
    # single-letter European notation (U[V], I[A]) and BioLogic's working-electrode potential
    "u": "voltage_volt", "i": "current_ampere", "ewe": "voltage_volt", "ecell": "voltage_volt",
    # LAND/Lanhe's abbreviations (Cur(mA)); Neware BTS 8's ids and counters (Cycle ID,
    # Capacitance_Chg(mAh), Engy_DChg(mWh))
    "cur": "current_ampere", "curr": "current_ampere",
    "cycle_id": "cycle_count", "step_id": "step_count",
    "capacitance_chg": "charging_capacity_ah", "capacitance_dchg": "discharging_capacity_ah",
    "engy_chg": "charging_energy_wh", "engy_dchg": "discharging_energy_wh",
    **_CLOCK,
}
CYCLE_STEMS: dict[str, str] = {
    "cycle": "cycle_index", "cycle_number": "cycle_index", "cycle_count": "cycle_index",
    "cycle_no": "cycle_index", "cycle_nr": "cycle_index", "cycle_id": "cycle_index",
    "cycles": "cycle_index", "cyc": "cycle_index", "cycle#": "cycle_index",
    "test_time": "test_time_second", "time": "test_time_second",
    "elapsed_time": "test_time_second",
    "discharge_capacity": "discharge_capacity_ah", "charge_capacity": "charge_capacity_ah",
    "capacity": "discharge_capacity_ah", "discharging_capacity": "discharge_capacity_ah",
    "discharge_cap": "discharge_capacity_ah", "dis_capacity": "discharge_capacity_ah",
    "dchg_capacity": "discharge_capacity_ah", "qd": "discharge_capacity_ah",
    "q_discharge": "discharge_capacity_ah", "capacity_discharge": "discharge_capacity_ah",
    "charging_capacity": "charge_capacity_ah", "chg_capacity": "charge_capacity_ah",
    "qc": "charge_capacity_ah", "q_charge": "charge_capacity_ah",
    "discharge_energy": "discharge_energy_wh", "charge_energy": "charge_energy_wh",
    "temperature": "temperature_celsius", "internal_resistance": "internal_resistance_ohm",
    "cycle_duration": "cycle_duration_second", "rest": "rest_second",
    # Neware's per-cycle export (Chg. Cap.(Ah), DChg. Cap.(Ah), Chg. Energy(Wh) …)
    "chg_cap": "charge_capacity_ah", "dchg_cap": "discharge_capacity_ah",
    "chg_energy": "charge_energy_wh", "dchg_energy": "discharge_energy_wh",
    **_CLOCK,
}
#: header words of German, French, Spanish and Italian exports → the English stem they mean
#: (accents and umlauts spelled both ways; the CJK words below join them); added to the sample
#: and per-cycle stems below
FOREIGN_STEMS: dict[str, str] = {
    # German
    "zyklus": "cycle", "zyklusnummer": "cycle_number", "zyklus_nr": "cycle_nr",
    "zeit": "time",
    "spannung": "voltage", "strom": "current", "temperatur": "temperature",
    "schritt": "step", "ladekapazität": "charge_capacity", "ladekapazitaet": "charge_capacity",
    "entladekapazität": "discharge_capacity", "entladekapazitaet": "discharge_capacity",
    "kapazität": "capacity", "kapazitaet": "capacity",
    "ladeenergie": "charge_energy", "entladeenergie": "discharge_energy",
    # French
    "numéro_de_cycle": "cycle_number", "numero_de_cycle": "cycle_number", "temps": "time",
    "tension": "voltage", "courant": "current", "température": "temperature",
    "capacité_de_charge": "charge_capacity", "capacite_de_charge": "charge_capacity",
    "capacité_de_décharge": "discharge_capacity", "capacite_de_decharge": "discharge_capacity",
    "capacité": "capacity", "capacite": "capacity",
    # Spanish
    "ciclo": "cycle", "tiempo": "time", "voltaje": "voltage", "tensión": "voltage",
    "corriente": "current", "capacidad_de_carga": "charge_capacity",
    "capacidad_de_descarga": "discharge_capacity", "capacidad": "capacity",
    # Italian
    "tempo": "time", "tensione": "voltage", "corrente": "current",
    "capacità_di_carica": "charge_capacity", "capacità_di_scarica": "discharge_capacity",
    "capacità": "capacity", "capacita": "capacity",
    # the identity of a cell (see CELL_WORDS): German, French, Spanish, Italian
    "zelle": "cell", "zellen_id": "cell_id", "zell_id": "cell_id", "zellname": "cell_name",
    "zellennummer": "cell_number", "zelle_nr": "cell_nr", "kanal": "channel",
    "batterie": "battery", "cellule": "cell", "id_cellule": "cell_id",
    "nom_cellule": "cell_name", "voie": "channel", "canal": "channel",
    "échantillon": "sample", "echantillon": "sample", "celda": "cell", "id_celda": "cell_id",
    "batería": "battery", "bateria": "battery", "muestra": "sample", "cella": "cell",
    "id_cella": "cell_id", "canale": "channel", "batteria": "battery", "campione": "sample",
}
#: header words of Chinese (simplified and traditional), Japanese and Korean exports (Neware BTS,
#: LAND, Hokuto Denko, Toyo, WonATech … installed with a local-language UI) → the English stem
#: they mean. Capacities per mass (比容量, 充电比容量 …) are left out: those exports also carry the
#: absolute capacity, which needs no active mass.
CJK_STEMS: dict[str, str] = {
    # cycle and step numbers
    "循环": "cycle", "循环号": "cycle_number", "循环序号": "cycle_number",
    "循环次数": "cycle_number", "循环数": "cycle_number", "循環": "cycle",
    "循環號": "cycle_number", "循環次數": "cycle_number", "サイクル": "cycle",
    "サイクル数": "cycle_number", "サイクル番号": "cycle_number", "サイクルno": "cycle_number",
    "사이클": "cycle", "사이클수": "cycle_number", "사이클_번호": "cycle_number",
    "工步": "step", "工步号": "step_number", "工步序号": "step_number", "步骤": "step",
    "步骤号": "step_number", "步骤序号": "step_number", "工步號": "step_number",
    "步驟": "step", "ステップ": "step", "ステップ番号": "step_number", "스텝": "step",
    "스텝_번호": "step_number",
    # clocks: a whole-test clock, and a step clock (ignored beside a whole-test one)
    "总时间": "total_time", "测试时间": "test_time", "累计时间": "cumulative_time",
    "總時間": "total_time", "測試時間": "test_time", "累計時間": "cumulative_time",
    "総経過時間": "total_time", "試験時間": "test_time", "총시간": "total_time",
    "누적시간": "cumulative_time", "시험시간": "test_time",
    "时间": "time", "時間": "time", "시간": "time", "工步时间": "step_time",
    "步骤时间": "step_time", "相对时间": "step_time", "工步時間": "step_time",
    "步驟時間": "step_time", "ステップ時間": "step_time", "経過時間": "elapsed_time",
    "스텝시간": "step_time",
    # measurements
    "电流": "current", "電流": "current", "전류": "current",
    "电压": "voltage", "電壓": "voltage", "電圧": "voltage", "전압": "voltage",
    "容量": "capacity", "용량": "capacity",
    "充电容量": "charge_capacity", "放电容量": "discharge_capacity",
    "充電容量": "charge_capacity", "放電容量": "discharge_capacity",
    "충전용량": "charge_capacity", "방전용량": "discharge_capacity",
    "充电能量": "charge_energy", "放电能量": "discharge_energy",
    "充電能量": "charge_energy", "放電能量": "discharge_energy",
    "充電電力量": "charge_energy", "放電電力量": "discharge_energy",
    "충전에너지": "charge_energy", "방전에너지": "discharge_energy",
    "温度": "temperature", "溫度": "temperature", "온도": "temperature",
    "内阻": "internal_resistance", "內阻": "internal_resistance",
    "内部抵抗": "internal_resistance", "내부저항": "internal_resistance",
    # the identity of a cell (see CELL_WORDS)
    "通道": "channel", "通道号": "channel_no", "电池": "battery", "电池编号": "battery_id",
    "样品": "sample", "通道號": "channel_no", "電池": "battery", "セル": "cell",
    "チャンネル": "channel", "채널": "channel", "셀": "cell",
}
FOREIGN_STEMS.update(CJK_STEMS)
TOTAL_TIME_STEMS = TOTAL_TIME_STEMS | frozenset(
    k for k, v in CJK_STEMS.items() if v in ("total_time", "test_time", "cumulative_time"))
#: 経過時間 (elapsed time) is Hokuto Denko's step clock beside 総経過時間, else the test's clock
STEP_TIME_STEMS = STEP_TIME_STEMS | frozenset(
    k for k, v in CJK_STEMS.items() if v in ("time", "step_time", "elapsed_time"))
#: header words (normalised, no unit) of a column naming the cell each row belongs to: a table
#: of MANY cells in one file (``cell_name``, battery-archive ``cell_id``, an Excel export's
#: ``Cell`` or ``Channel``); with more than one value it is split (``--cell-column``) or
#: refused, never read as one cell (:mod:`data_registry.readers.cell_column`)
CELL_WORDS: frozenset[str] = frozenset({
    "cell", "cell_id", "cellid", "cell_name", "cellname", "cell_no", "cell_nr",
    "cell_number", "cell_num", "cell_label", "cell_barcode", "cell_serial", "barcode",
    "bar_code", "serial_number", "channel", "channel_id", "channel_no", "channel_number",
    "chan", "sample", "sample_id", "sample_name", "sample_no", "battery", "battery_id",
    "battery_name", "battery_no", "bat_id", "cell_#", "channel_#",
})
CELL_WORDS = CELL_WORDS | frozenset(k for k, v in FOREIGN_STEMS.items() if v in CELL_WORDS)


def _with_foreign(stems: dict[str, str]) -> dict[str, str]:
    """``stems`` plus each :data:`FOREIGN_STEMS` word whose English stem it knows."""
    return {**{k: stems[v] for k, v in FOREIGN_STEMS.items() if v in stems}, **stems}


SAMPLE_STEMS = _with_foreign(SAMPLE_STEMS)
CYCLE_STEMS = _with_foreign(CYCLE_STEMS)
EIS_STEMS: dict[str, str] = {
    "frequency": "frequency_hz", "freq": "frequency_hz",
    "z_real": "z_real_ohm", "re_z": "z_real_ohm", "zreal": "z_real_ohm",
    "z_imag": "z_imag_ohm", "im_z": "z_imag_ohm", "zimag": "z_imag_ohm",
    "re(z)": "z_real_ohm", "z'": "z_real_ohm", "zre": "z_real_ohm", "z_re": "z_real_ohm",
    "real": "z_real_ohm", "zreal_ohm": "z_real_ohm",
    # imaginary-part headers, whatever their sign: the validator decides the sign by content
    # (a stored −Z″ is negated to Im(Z), warning eis_imaginary_sign_flipped)
    "im(z)": "z_imag_ohm", "z''": "z_imag_ohm", "zim": "z_imag_ohm", "z_im": "z_imag_ohm",
    "imag": "z_imag_ohm", "-im(z)": "z_imag_ohm", "-z''": "z_imag_ohm", "-zim": "z_imag_ohm",
    "-z_imag": "z_imag_ohm", "minus_z_imag": "z_imag_ohm",
    # primes written as a double quote (CH Instruments: Z"/ohm) or as Unicode primes
    'z"': "z_imag_ohm", "z′": "z_real_ohm", "z″": "z_imag_ohm", "z′′": "z_imag_ohm",
    "freq_hz": "frequency_hz", "f": "frequency_hz",
    "measurement": "measurement_id", "spectrum": "measurement_id",
    "cycle": "cycle_count", "test_time": "test_time_second", "time": "test_time_second",
    "voltage": "voltage_volt", "soc": "state_of_charge",
}
