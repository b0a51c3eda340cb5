"""The web pages in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

One real ``fadecast serve`` process on a free 127.0.0.1 port (the session's quick model, a write
token configured) serves every page. A real cycler export from ``../shared/data/parsers/`` is
uploaded through the page (a bundled file where ../shared is absent); the tests open the cell,
count the capacity plot's points against the stored cell, check the band, move the what-if
control, tab through every control, and fail on any console error. Screenshots of each page go
to ``$FADECAST_ARTIFACTS`` (default ``tests-artifacts/web``). The page-ready and what-if times
are printed, never asserted. Skips with the reason where Chromium or Playwright is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import SHARED_DATA, TEST_DATA
from test_serving_model import serving_model_dir  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("FADECAST_CHROMIUM") or shutil.which("chromium") or \
    shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WRITE_TOKEN = "web-test-write-token"
REAL_FILE = ("parsers/neware_cellpy/nw_regular_export_ife_example.csv", "neware_regular_csv")
ARTIFACTS = Path(os.environ.get("FADECAST_ARTIFACTS") or ROOT / "tests-artifacts") / "web"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium; "
                             "`make test` and .ci/run install it when they can)")]
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright (Python) is not installed: pip install "
                                      "playwright==1.63.0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _slow_cell_csv(path: Path, n: int = 500) -> Path:
    """500 cycles of a synthetic cell still above 80 % at its last cycle (a what-if matters)."""
    from ml.synthetic import make_cell

    cell = make_cell("web500", seed=5, c_rate=0.5, rest_hour=1.0, n_cycles=n,
                     time_scale=0.02, cycle_scale=0.015)
    cell.cycles.drop(columns=["cell_id"]).to_csv(path, index=False)
    return path


def _eis_csv(path: Path) -> Path:
    """Warburg spectra (Z = R + σ(1 − j)/√ω) at cycles 1–3: per cycle one at 3.0 V (baseline,
    σ rising 0.011 → 0.013 Ω s^-½) and one at 3.4 V (top of charge, σ = 0.05 Ω s^-½)."""
    import numpy as np
    import pandas as pd

    f = np.logspace(3, -2, 30)
    w = 2 * np.pi * f
    rows = []
    for cyc in (1, 2, 3):
        for mid, volt, sigma in ((f"b{cyc}", 3.0, 0.010 + 0.001 * cyc), (f"t{cyc}", 3.4, 0.05)):
            rows += [{"measurement_id": mid, "cycle_count": cyc, "voltage_volt": volt,
                      "frequency_hz": fi, "z_real_ohm": 0.05 + sigma / np.sqrt(wi),
                      "z_imag_ohm": -sigma / np.sqrt(wi)} for fi, wi in zip(f, w)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory, serving_model_dir):  # noqa: F811
    """A real ``fadecast serve`` with four stored cells: a 500-cycle one, the two PTO example
    siblings (cohort ``pto``: C/10 and 0.3C) and a bundled raw cell with EIS spectra."""
    from data_registry.store import Registry

    home = tmp_path_factory.mktemp("web-home")
    work = tmp_path_factory.mktemp("web-files")
    reg = Registry(home=home)
    try:
        reg.ingest([_slow_cell_csv(work / "web500_cycles.csv")], "web500")
        meta = {"cohort": "pto", "chemistry": "Li/beta-Li3PS4/PTO",
                "nominal_capacity_ah": 0.000409}
        reg.ingest([ROOT / "examples" / "pto_c10_raw.csv"], "pto-c10", meta=meta)
        reg.ingest([ROOT / "examples" / "pto_c03_raw.csv"], "pto-c03", meta=meta)
        reg.ingest([TEST_DATA / "store" / "cell_part1.csv", TEST_DATA / "store" /
                    "cell_part2.csv", _eis_csv(work / "eis.csv")], "eis-cell")
    finally:
        reg.close()
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FADECAST_HOME": str(home),
           "FADECAST_SERVE_WRITE_TOKEN": WRITE_TOKEN}
    env.pop("FADECAST_SERVE_READ_TOKEN", None)
    log = open(work / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--port", str(port),
                             "--model", str(serving_model_dir)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(base + "/readyz")["status"] == "ready":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("fadecast serve did not start:\n" +
                                   (work / "serve.log").read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield {"base": base, "home": home}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    pw = sync_api.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    except Exception as exc:  # noqa: BLE001 - a broken browser install is a skip, not a failure
        pw.stop()
        pytest.skip(f"Chromium at {CHROMIUM} does not start under Playwright: {exc}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield b
    b.close()
    pw.stop()


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser, width: int = 1280, height: int = 800) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.expected: list[str] = []  # URL parts whose 4xx answers a test provokes on purpose
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status}: {r.url}")
                     if r.status >= 400 and not self._expected(r.url) else None)

    def _expected(self, url: str) -> bool:
        return any(part in url for part in self.expected)

    def _console(self, m) -> None:
        if m.type == "error" and not (m.text.startswith("Failed to load resource") and
                                      self._expected((m.location or {}).get("url", ""))):
            self.errors.append(f"console {m.type}: {m.text}")

    def open(self, url: str) -> "Page":
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        return self

    def ready_ms(self) -> float:
        """Milliseconds from navigation start to the page drawn with its controls live."""
        return float(self.page.evaluate("window.__fadecast.readyMs"))

    def marks(self) -> str:
        """When the page's data arrived, plotly.js was ready and the page was drawn (ms from
        navigation start), and how long its data request took."""
        m = self.page.evaluate("""() => Object.assign({}, window.__fadecast, {
            request: performance.getEntriesByType('resource')
              .filter(e => e.name.includes('/v1/views/')).map(e => e.responseEnd - e.startTime)[0],
            plotlyStart: performance.getEntriesByType('resource')
              .filter(e => e.name.includes('plotly')).map(e => e.startTime)[0]})""")
        return ", ".join(f"{k} {m[k]:.0f}" for k in ("request", "plotlyStart", "dataMs",
                                                       "plotlyMs", "readyMs")
                         if m.get(k) is not None)

    def close(self) -> None:
        assert not self.errors, "browser console errors:\n" + "\n".join(self.errors)
        text = self.page.inner_text("body")
        assert "[object " not in text and "undefined" not in text and "NaN" not in text, text
        self.context.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _wait_for_phone_width(page, timeout_ms: float = 30_000) -> None:
    """After a resize, until the page fits the window (plotly redraws a responsive plot on a
    timer). A page that never fits is left to the caller's assertion, which shows by how much."""
    fits = "() => document.documentElement.scrollWidth - window.innerWidth <= 1"
    try:
        page.wait_for_function(fits, timeout=timeout_ms)  # a function: the CSP forbids eval
    except sync_api.TimeoutError:
        pass


def _tab_through(page, max_extra: int = 5) -> list[str]:
    """Press Tab until every visible control has had focus; returns the controls never
    reached (empty when the page is fully keyboard-operable)."""
    page.evaluate("""() => {
      const sel = 'a[href], button:not([disabled]), input:not([disabled]):not([tabindex="-1"]),'
                + 'select:not([disabled]), textarea, summary, [tabindex="0"]';
      let k = 0;
      for (const e of document.querySelectorAll(sel)) {
        const r = e.getBoundingClientRect(), s = getComputedStyle(e);
        if (r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && !e.closest('dialog')
            && !(e.closest('details:not([open])') && e.tagName !== 'SUMMARY'))
          // a radio group is one Tab stop (arrow keys move inside it)
          e.dataset.kbd = e.type === 'radio' ? 'radio:' + e.name : String(k++);
        else delete e.dataset.kbd;
      }
      window.__seen = new Set();
      window.__outline = [];
      document.addEventListener('focusin', (ev) => {
        const e = ev.target;
        if (e.dataset && e.dataset.kbd !== undefined) window.__seen.add(e.dataset.kbd);
        const s = getComputedStyle(e);
        window.__outline.push(s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0);
      });
      document.activeElement && document.activeElement.blur();
    }""")
    total = page.evaluate("new Set([...document.querySelectorAll('[data-kbd]')]"
                          ".map(e => e.dataset.kbd)).size")
    for _ in range(total + max_extra):
        page.keyboard.press("Tab")
    missing = page.evaluate("""() => [...document.querySelectorAll('[data-kbd]')]
        .filter(e => !window.__seen.has(e.dataset.kbd))
        .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' ' +
                  (e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 40))""")
    outlined = page.evaluate("window.__outline")
    assert outlined and all(outlined), "a focused control shows no focus outline"
    assert total > 0
    return missing


def test_upload_a_real_file_through_the_page_then_open_the_cell(service, browser):
    if SHARED_DATA is not None and (SHARED_DATA / REAL_FILE[0]).is_file():
        upload, cell_id = SHARED_DATA / REAL_FILE[0], "neware-ife"
    else:  # ../shared is absent: the same steps with a bundled raw file
        upload, cell_id = TEST_DATA / "store" / "cell_full.csv", "bundled-cell"
        print("note: ../shared/data absent — uploaded the bundled tests/data/store/cell_full.csv "
              "instead of a real cycler export")
    p = Page(browser).open(service["base"] + "/")
    page = p.page
    assert "asks for a write token" in page.inner_text("#upload-auth")
    page.set_input_files("#upload-file", str(upload))
    page.fill("#upload-cell", cell_id)
    page.click("#upload-go")
    page.wait_for_selector("#token-dialog[open]")  # writing is protected: asked before sending
    page.fill("#token-input", WRITE_TOKEN)
    page.click("#token-dialog button[value='ok']")
    page.wait_for_selector("#upload-status a", timeout=30_000)
    status = page.inner_text("#upload-status")
    assert f"Stored {cell_id}" in status, status
    assert page.get_attribute("#upload-progress", "value") == "100"
    if upload.name.startswith("nw_regular"):
        assert "duplicate_rows" in page.inner_text("#upload-warnings")  # the reader's warning
    row = page.wait_for_selector(f"tr[data-cell='{cell_id}']", timeout=30_000)
    assert "fresh" in (row.get_attribute("class") or "")
    _shot(page, "cells")
    # a bad file: the service's message (file, line, column, what was found) shown, nothing stored
    p.expected.append("/v1/cells/bad-cell/samples")
    page.set_input_files("#upload-file", str(TEST_DATA / "serving" / "cycles_bad_value.csv"))
    page.fill("#upload-cell", "bad-cell")
    page.click("#upload-go")
    alert = page.wait_for_selector("#upload-status [role='alert']", timeout=30_000).inner_text()
    assert "not_numeric" in alert and "cycles_bad_value.csv:3" in alert and "'n/a'" in alert
    stored = [c["cell_id"] for c in _get(service["base"] + "/v1/cells?budget_ms=0")["cells"]]
    assert "bad-cell" not in stored and cell_id in stored
    page.click(f"tr[data-cell='{cell_id}'] a")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.url.endswith(f"/cells/{cell_id}")

    from data_registry.store import Registry
    from serving.history import cell_history

    reg = Registry(home=service["home"])
    try:
        frame, _ = cell_history(reg, cell_id)
    finally:
        reg.close()
    plot = page.evaluate("""() => document.getElementById('capacity-plot').data.map(t =>
        ({name: t.name, n: t.x.length, y: t.y}))""")
    observed = next(t for t in plot if t["name"] == "observed")
    assert observed["n"] == len(frame) >= 3
    hi = next(t for t in plot if t["name"].startswith("current plan 90 % band p95"))["y"]
    lo = next(t for t in plot if t["name"] == "current plan 90 % band")["y"]
    assert len(hi) == len(lo) > 0 and max(h - l for h, l in zip(hi, lo)) > 0
    assert page.inner_text("#advice-decision") in {"stop", "continue"}
    p.close()


def test_cell_page_speed_whatif_keyboard_and_phone_width(service, browser):
    url = service["base"] + "/cells/web500"
    p = Page(browser)
    p.page.goto(service["base"] + "/static/vendor/plotly-basic.min.js")  # in the HTTP cache
    loads = []
    for _ in range(3):  # 1st: plotly.js compiled from scratch; then V8's code cache helps
        loads.append((p.open(url).ready_ms(), p.marks()))
    print("\nweb: 500-cycle cell page interactive (ms from navigation start): " +
          "; ".join(f"load {i + 1}: {ms:.0f} ({marks})" for i, (ms, marks) in enumerate(loads)))
    page = p.page
    n_obs = page.evaluate("document.getElementById('capacity-plot').data[0].x.length")
    assert n_obs == 500
    before = page.evaluate("""() => document.getElementById('capacity-plot').data
        .find(t => t.name.startsWith('current plan p50')).y""")
    times = []
    for key in ("End", "Home", "End"):  # slowest pace, fastest pace, slowest again
        done = int(page.get_attribute("body", "data-whatif") or 0)
        page.focus("#whatif-hours")
        page.keyboard.press(key)
        page.wait_for_selector(f"body[data-whatif='{done + 1}']", timeout=30_000)
        times.append(page.evaluate("window.__fadecast.lastWhatifMs"))
    after = page.evaluate("""() => document.getElementById('capacity-plot').data
        .find(t => t.name.startsWith('what-if p50')).y""")
    assert len(after) == len(before)
    assert max(abs(a - b) for a, b in zip(after, before)) > 0, "the what-if did not change"
    assert "What-if" in page.inner_text("#whatif-readout")
    print("web: what-if updates " + ", ".join(f"{t:.0f}" for t in times) +
          " ms (input to redrawn plot: request + redraw; not asserted)")
    # series toggles by keyboard (the plot's legend follows)
    page.focus("#show-observed")
    page.keyboard.press("Space")
    page.wait_for_function("""() => document.getElementById('capacity-plot').data
        .find(t => t.name === 'observed').visible === 'legendonly'""")
    page.keyboard.press("Space")
    page.wait_for_function("""() => document.getElementById('capacity-plot').data
        .find(t => t.name === 'observed').visible === true""")
    _shot(page, "cell")  # the what-if at the slowest pace beside the current plan
    if os.environ.get("FADECAST_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(ARTIFACTS / "cell.png", ROOT / "docs" / "cell-page.png")
    # the C-rate + rest mode drives the same forecast: 2 × retention / C + rest hours per cycle
    done = int(page.get_attribute("body", "data-whatif"))
    page.check("#mode-crate")
    page.wait_for_selector(f"body[data-whatif='{done + 1}']", timeout=30_000)
    got = page.evaluate("""() => ({
        c: Number(document.getElementById('whatif-crate-out').dataset.value),
        rest: Number(document.getElementById('whatif-rest-out').dataset.value),
        hours: Number(document.getElementById('whatif-line').dataset.hours)})""")
    retention = _get(service["base"] + "/v1/views/cells/web500")["retention"]
    assert got["hours"] == pytest.approx(2 * retention / got["c"] + got["rest"], rel=1e-4), got
    missing = _tab_through(page)
    assert not missing, f"never reached by Tab: {missing}"
    page.set_viewport_size({"width": 390, "height": 844})
    _wait_for_phone_width(page)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow} px wider than a phone screen"
    _shot(page, "cell-phone")
    p.close()


def test_cells_table_sorts_filters_and_takes_a_dropped_file(service, browser):
    p = Page(browser).open(service["base"] + "/")
    page = p.page
    page.wait_for_selector("tr[data-cell='web500']")
    page.click("th:has-text('Last cycle') button")
    first = page.eval_on_selector("#cells-table tbody tr", "r => r.dataset.cell")
    cycles = page.evaluate("""() => [...document.querySelectorAll('#cells-table tbody tr td.num:first-of-type')]
        .map(td => Number(td.textContent))""")
    assert cycles == sorted(cycles, reverse=True) and first == "web500"
    page.fill("#cell-filter", "pto")
    shown = page.eval_on_selector_all("#cells-table tbody tr", "rs => rs.map(r => r.dataset.cell)")
    assert sorted(shown) == ["pto-c03", "pto-c10"]
    page.fill("#cell-filter", "")
    # a file dropped on the drop zone is picked like a chosen one
    page.evaluate("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(['cycle_index,test_time_second,discharge_capacity_ah\\n'],
                              'dropped run 7.csv', {type: 'text/csv'}));
        document.getElementById('drop-zone').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""")
    assert page.input_value("#upload-cell") == "dropped_run_7"
    assert page.is_enabled("#upload-go")
    missing = _tab_through(page)
    assert not missing, f"never reached by Tab: {missing}"
    page.set_viewport_size({"width": 390, "height": 844})  # the wide table scrolls in its box
    _wait_for_phone_width(page)
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    _shot(page, "cells-phone")
    p.close()


def test_aw_baseline_and_top_of_charge_are_kept_apart(service, browser):
    p = Page(browser).open(service["base"] + "/cells/eis-cell")
    traces = p.page.evaluate("""() => document.getElementById('aw-plot').data.map(t =>
        ({name: t.name, x: t.x, y: t.y}))""")
    by = {t["name"]: t for t in traces}
    assert by["baseline"]["x"] == [1, 2, 3] and by["top of charge"]["x"] == [1, 2, 3]
    assert by["baseline"]["y"] == pytest.approx([0.011, 0.012, 0.013], rel=1e-3)
    assert by["top of charge"]["y"] == pytest.approx([0.05] * 3, rel=1e-3)
    p.close()


def test_cohort_and_model_pages(service, browser):
    p = Page(browser).open(service["base"] + "/cohorts/pto")
    page = p.page
    names = page.evaluate("document.getElementById('overlay-plot').data.map(t => t.name)")
    assert len(names) == 2 and any(n.startswith("pto-c10") for n in names)
    assert len(page.evaluate("document.getElementById('split-plot').data[0].y")) == 2
    # issue 9's POST /v1/cohorts/attribution, fed the stored siblings' histories by the page
    page.wait_for_selector("#next-protocol, #attribution-status", timeout=30_000)
    assert page.query_selector("#next-protocol"), page.inner_text("#attribution")
    assert "run a sibling" in page.inner_text("#next-protocol") or \
        "pinned" in page.inner_text("#next-protocol")
    splits = page.evaluate("document.getElementById('split-plot').data.map(t => t.name)")
    assert splits == ["each cell alone (p50)", "cohort fit (p50)"]
    assert page.eval_on_selector_all("#cohort-law tbody tr", "rs => rs.length") >= 4
    _shot(page, "cohort")
    assert not _tab_through(page)
    p.close()
    p = Page(browser).open(service["base"] + "/model")
    page = p.page
    assert page.inner_text("#model-sources") == "synthetic"
    assert page.eval_on_selector_all("#conformal-table tbody tr", "rs => rs.length") >= 2
    assert "names no MLflow run" in page.inner_text("#run-note")
    _shot(page, "model")
    assert not _tab_through(page)
    p.close()
