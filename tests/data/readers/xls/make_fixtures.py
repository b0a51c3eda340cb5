"""Writes the legacy Excel (.xls, BIFF8) fixtures of tests/test_readers_xls.py from the
bundled C/10 export (examples/pto_c10_raw.csv, its first 3 cycles). Needs ``xlwt`` (not a
dependency of fadecast: ``pip install --target /tmp/xlwt xlwt==1.3.0`` and
``PYTHONPATH=/tmp/xlwt python tests/data/readers/xls/make_fixtures.py``).

* ``neware_zh_detail.xls``: a Neware-BTS-7-style workbook with its Chinese UI: an info sheet,
  then the record sheet (数据序号, 循环号, 工步号, 工步类型, 总时间 as an Excel duration cell
  ``[h]:mm:ss``, 电流(mA), 电压(V), 充电容量(mAh), 放电容量(mAh));
* ``land_cycles.xls``: a per-cycle sheet only (Cycle, Discharge Capacity (mAh), Charge
  Capacity (mAh), no clock);
* ``blank_first_row.xls``: a sample sheet whose header sits on row 2 under an empty row 1.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import xlwt

HERE = Path(__file__).resolve().parent
RAW = HERE.parents[3] / "examples" / "pto_c10_raw.csv"


def main() -> None:
    d = pd.read_csv(RAW)
    d = d[d["cycle_count"] <= 3].reset_index(drop=True)
    wb = xlwt.Workbook(encoding="utf-8")
    info = wb.add_sheet("测试信息")
    info.write(0, 0, "测试名称")
    info.write(0, 1, "pto_c10")
    rec = wb.add_sheet("详细数据")
    duration = xlwt.easyxf(num_format_str="[h]:mm:ss.000")
    heads = ["数据序号", "循环号", "工步号", "工步类型", "总时间", "电流(mA)", "电压(V)",
             "充电容量(mAh)", "放电容量(mAh)"]
    for j, h in enumerate(heads):
        rec.write(0, j, h)
    for i, r in d.iterrows():
        kind = "恒流充电" if r.current_ampere > 0 else "恒流放电" if r.current_ampere < 0 else "搁置"
        row = i + 1
        rec.write(row, 0, row)
        rec.write(row, 1, int(r.cycle_count))
        rec.write(row, 2, int(r.step_count))
        rec.write(row, 3, kind)
        rec.write(row, 4, float(r.test_time_second) / 86400.0, duration)  # Excel days
        rec.write(row, 5, float(r.current_ampere) * 1e3)
        rec.write(row, 6, float(r.voltage_volt))
        rec.write(row, 7, float(r.charging_capacity_ah) * 1e3)
        rec.write(row, 8, float(r.discharging_capacity_ah) * 1e3)
    wb.save(str(HERE / "neware_zh_detail.xls"))

    wb = xlwt.Workbook(encoding="utf-8")
    cyc = wb.add_sheet("Cycle")
    for j, h in enumerate(["Cycle", "Charge Capacity (mAh)", "Discharge Capacity (mAh)"]):
        cyc.write(0, j, h)
    for i, (qc, qd) in enumerate([(1.012, 1.0005), (1.010, 0.99875), (1.007, 0.9961)]):
        cyc.write(i + 1, 0, i + 1)
        cyc.write(i + 1, 1, qc)
        cyc.write(i + 1, 2, qd)
    wb.save(str(HERE / "land_cycles.xls"))

    wb = xlwt.Workbook(encoding="utf-8")
    sheet = wb.add_sheet("Channel_1")
    for j, h in enumerate(["Test Time(s)", "Current(A)", "Voltage(V)", "Cycle Index"]):
        sheet.write(1, j, h)
    for i in range(5):
        for j, v in enumerate([10.0 * i, 0.5, 3.7 + 0.01 * i, 1]):
            sheet.write(i + 2, j, v)
    wb.save(str(HERE / "blank_first_row.xls"))


if __name__ == "__main__":
    main()
