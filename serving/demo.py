"""``make demo``: the whole fadecast loop on bundled defaults, in a few minutes.

1. ingest the two bundled PTO example cells (C/10 and 0.3C raw time series) into the registry;
2. print the registry's contents and the C/10 cell's per-cycle descriptors;
3. use the user's own champion (FADECAST_HOME's MLflow registry) if there is one, else the
   production model shipped in ``models/production`` (a checkout without it trains a small
   model on a synthetic fleet instead);
4. forecast a held-out synthetic cell and the C/10 cell, with the time/cycle decomposition and
   the 0.3C what-if;
5. fit the two PTO cells as one cohort of siblings (``fadecast cohort``, ``fadecast
   attribute``): each cell's time share and the next sibling protocol worth running;
6. start the API (``fadecast serve``), send one forecast and one advice request, print both
   responses, and stop the service;
7. follow a running test (``fadecast follow``): an export written cycle by cycle, the advice at
   each completed cycle, the flip to stop and its signed webhook received by a local listener
   (started and stopped by the demo).

Every step runs the real ``fadecast`` command line, as a user would.
"""
from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEMO_CONFIG = ROOT / "experiments" / "demo" / "config.toml"
PTO_META = ["chemistry=Li/beta-Li3PS4/PTO", "active_mass_g=0.001",
            "nominal_capacity_ah=0.000409", "temperature_celsius=60",
            "protocol=CC discharge/charge, 10 min rests"]


def _fadecast() -> list[str]:
    exe = shutil.which("fadecast", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "serving.cli"]


def run(*args: str, capture: bool = False) -> str:
    """Run one ``fadecast`` command; echo it; fail the demo loudly if it fails."""
    cmd = _fadecast() + list(args)
    print(f"\n$ fadecast {' '.join(args)}", flush=True)
    out = subprocess.run(cmd, text=True, stdout=subprocess.PIPE if capture else None)
    if out.returncode != 0:
        raise SystemExit(f"demo step failed (exit {out.returncode}): fadecast {' '.join(args)}")
    return out.stdout if capture else ""


def banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"POST {url} -> {exc.code}: {exc.read().decode()[:500]}") from exc


def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"the service was not ready after {timeout_s:.0f} s")


def _history_rows(csv_path: Path) -> list[dict]:
    df = pd.read_csv(csv_path)
    return json.loads(df.to_json(orient="records"))


def _summary(doc: dict) -> str:
    rows = doc["forecast"]
    last = rows[-1]
    share = doc["attribution"]["time_share"]
    eol = doc.get("end_of_life")
    lines = [
        f"model {doc['model']['name']} v{doc['model']['version']}, cell {doc.get('cell_id')}",
        f"time share of the fade so far: {share['p50']:.2f} "
        f"(90 % interval {share['p05']:.2f}–{share['p95']:.2f})",
        f"cycle {last['cycle_index']}: capacity {last['capacity_ah']['p50']:.4g} Ah "
        f"[{last['capacity_ah']['p05']:.4g}, {last['capacity_ah']['p95']:.4g}], "
        f"loss time {last['loss_time_fraction']:.3f} + cycle {last['loss_cycle_fraction']:.3f}",
    ]
    if eol:
        c = eol["cycle_index"]
        lines.append(f"{eol['threshold_fraction']:.0%} reached at cycle {c['p50']:.0f} "
                     f"(90 % interval {c['p05']:.0f}–{c['p95']:.0f})")
    else:
        lines.append("end of life not reached within the horizon")
    return "\n".join(lines)


class _Hook(http.server.BaseHTTPRequestHandler):
    """The demo's webhook listener: records each POST and checks its signature."""

    secret = ""
    received: list = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        from serving.webhook import SIGNATURE_HEADER, verify

        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok = verify(body, self.headers.get(SIGNATURE_HEADER), type(self).secret)
        type(self).received.append({"key": self.headers.get("Idempotency-Key"),
                                    "signature_ok": ok, "payload": json.loads(body)})
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def follow_running_test(work: Path) -> None:
    """Write a fast-fading synthetic cell's export cycle by cycle while ``fadecast follow``
    tails it; the follower exits once advised to stop, after its webhook was delivered."""
    import secrets
    import threading

    from ml.synthetic import make_cell
    from ml.synthetic_samples import csv_header, csv_rows, sample_rows

    seed = int(time.time()) % 997  # a new cell each run (its raw bytes differ)
    cell_id = f"demo-running-{time.strftime('%Y%m%d-%H%M%S')}"
    cycles = make_cell(cell_id, seed=seed, stop_retention=0.5, c_rate=0.5, time_scale=0.04,
                       cycle_scale=0.25, n_cycles=90).cycles
    samples = sample_rows(cycles, 5.0, points_per_step=4)
    export = work / "running_test.csv"
    export.write_bytes(csv_header() + csv_rows(samples[samples["cycle_count"] <= 30]))
    handler = type("Hook", (_Hook,), {"secret": secrets.token_hex(16), "received": []})
    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{listener.server_address[1]}/hook"
    cmd = ["follow", str(export), "--cell-id", cell_id, "--planned-cycles", "400",
           "--tolerance-cycles", "20", "--meta", "nominal_capacity_ah=5.0", "--interval", "0.2",
           "--webhook-url", url, "--exit-on-stop", "--json"]
    print(f"webhook listener on {url}; FADECAST_SERVE_WEBHOOK_SECRET set for the follower")
    print(f"$ fadecast {' '.join(cmd)}")
    proc = subprocess.Popen(_fadecast() + cmd, stdout=subprocess.PIPE, text=True, bufsize=1,
                            env={**os.environ,
                                 "FADECAST_SERVE_WEBHOOK_SECRET": handler.secret})
    events: list[dict] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            ev = json.loads(line)
            events.append(ev)
            kind = ev.get("event")
            if kind == "advice" and (ev["cycle_index"] % 5 == 0 or ev["decision"] == "stop"):
                eol = ev["end_of_life"]["cycle_index"]
                print(f"  cycle {ev['cycle_index']:3d}: {ev['decision']:8s} (EOL cycle p50 "
                      f"{eol['p50']}, 90 % {eol['p05']}-{eol['p95']}; advised in "
                      f"{1000 * ev['second']:.0f} ms)", flush=True)
            elif kind == "flip":
                print(f"  advice flipped at cycle {ev['cycle_index']}: {ev['from']} -> "
                      f"{ev['to']}; webhook queued", flush=True)
            elif kind in ("webhook_delivered", "webhook_retry", "webhook_failed", "error"):
                print(f"  {kind}: {json.dumps({k: v for k, v in ev.items() if k != 'event'})}",
                      flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not any(
                e.get("event") in ("advice", "advice_error") and e["cycle_index"] >= 29
                for e in list(events)):
            time.sleep(0.1)  # the follower first catches up with the 30 cycles written
        print("  (caught up; the test now runs one cycle every 0.5 s)", flush=True)
        for c in range(31, int(cycles["cycle_index"].max()) + 1):
            if proc.poll() is not None:
                break
            time.sleep(0.5)  # one cycle of the test every 0.5 s
            with open(export, "ab") as fh:
                fh.write(csv_rows(samples[samples["cycle_count"] == c]))
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        listener.shutdown()
        listener.server_close()
    stops = [e for e in events if e.get("event") == "flip" and e.get("to") == "stop"]
    if not stops:
        raise SystemExit("demo step failed: the followed test was never advised to stop")
    for hook in handler.received:
        p = hook["payload"]
        print(f"webhook received: Idempotency-Key {hook['key']}, HMAC-SHA256 signature "
              f"{'verified' if hook['signature_ok'] else 'WRONG'}; {p['cell_id']} at cycle "
              f"{p['cycle_index']}: {p['previous_decision']} -> {p['decision']} "
              f"({p['reason']})")
    if not handler.received:
        raise SystemExit("demo step failed: no webhook reached the listener")
    print(f"follower exited (code {proc.returncode}); listener stopped; nothing left running")


def main() -> int:
    home = Path(os.environ.get("FADECAST_HOME", ROOT / "fadecast-data"))
    os.environ["FADECAST_HOME"] = str(home)
    print(f"FADECAST_HOME = {home}")

    banner("1. Ingest the bundled example cells (re-ingesting is a no-op)")
    run("ingest", str(EXAMPLES / "pto_c10_raw.csv"), "--cell-id", "pto-c10",
        *[x for kv in PTO_META for x in ("--meta", kv)], "--no-progress")
    run("ingest", str(EXAMPLES / "pto_c03_raw.csv"), "--cell-id", "pto-c03",
        *[x for kv in PTO_META for x in ("--meta", kv)], "--no-progress")

    banner("2. The registry's contents and the C/10 cell's per-cycle descriptors")
    run("cells")
    run("show", "pto-c10")
    work = Path(tempfile.mkdtemp(prefix="fadecast-demo-"))
    features_csv = work / "pto-c10.features.csv"
    run("features", "pto-c10", "-o", str(features_csv))
    feats = pd.read_csv(features_csv)
    cols = [c for c in ("cycle_index", "elapsed_hour", "discharge_capacity_ah", "retention",
                        "coulombic_efficiency", "polarization_volt") if c in feats.columns]
    print(feats[cols].iloc[[0, 9, 19, 29, len(feats) - 1]].to_string(index=False))

    banner("3. The model: your own champion in FADECAST_HOME if any, else the shipped one")
    from ml.model_store import shipped_model_dir

    shipped = shipped_model_dir()
    if shipped is None:  # a checkout without models/production: train a small one
        print("no shipped production model in this checkout; training a small one on a "
              "synthetic fleet (MLflow run; champion registered in FADECAST_HOME)")
        run("train", "--config", str(DEMO_CONFIG), "--no-progress")
    else:
        card = json.loads((shipped / "model_card.json").read_text(encoding="utf-8"))
        print(f"shipped production model {card.get('version')} at {shipped}, trained on: "
              + ", ".join(dict.fromkeys(f"{d['source']} ({d['licence']})"
                                        for d in card.get("training_data", []))))

    banner("4. Forecast: a held-out synthetic cell, then the C/10 cell and its 0.3C what-if")
    from ml.synthetic import make_cell  # numpy/pandas only

    held_out = make_cell("demo-heldout", seed=7, c_rate=0.2, rest_hour=4.0, n_cycles=200,
                         time_scale=0.06, cycle_scale=0.04)
    seen = held_out.cycles.iloc[:80]
    seen_csv = work / "demo-heldout.cycles.csv"
    seen.to_csv(seen_csv, index=False)
    doc = json.loads(run("forecast", "--cycles", str(seen_csv), "--horizon-cycles", "120",
                         "--nominal-capacity-ah", "5.0", "--json", capture=True))
    print(_summary(doc))
    truth = held_out.truth
    if truth is not None and "loss_time_frac" in truth:
        t = truth.iloc[79]
        share = t["loss_time_frac"] / max(t["loss_time_frac"] + t["loss_cycle_frac"], 1e-12)
        print(f"(truth at cycle 80: time share {share:.2f})")
    doc = json.loads(run("forecast", "--cell", "pto-c10", "--horizon-cycles", "60", "--json",
                         capture=True))
    print(_summary(doc))
    hours_03c = 2 * (0.995 / 0.3) + 2 * 600 / 3600  # discharge + charge at 0.3C + two rests
    doc = json.loads(run("forecast", "--cell", "pto-c10", "--horizon-cycles", "60",
                         "--hours-per-cycle", f"{hours_03c:.2f}", "--json", capture=True))
    print("what if the rest of the test ran at 0.3C:")
    print(_summary(doc))

    banner("5. Sibling cells: the C/10 and 0.3C cells as one cohort (fadecast attribute)")
    run("cohort", "pto", "--add", "pto-c10", "pto-c03")
    cohort = json.loads(run("attribute", "--cohort", "pto", "--json", capture=True))
    for c in cohort["cells"]:
        ts = c["attribution"]["time_share"]
        print(f"{c['cell_id']}: time share at cycle {c['last_cycle_index']}: {ts['p50']:.2f} "
              f"(90 % interval {ts['p05']:.2f}-{ts['p95']:.2f})"
              + ("" if c["attribution"].get("identifiable", True) else
                 "; not identifiable yet: its fade so far is within the noise"))
    ident = cohort["identifiability"]
    print(f"advice: {ident['advice']}")

    banner("6. The API: start, one forecast, one advice, stop")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    serve_log = open(work / "serve.log", "w", encoding="utf-8")  # its access lines, never a full pipe
    proc = subprocess.Popen(_fadecast() + ["serve", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=serve_log, text=True)
    try:
        _wait_ready(f"{base}/readyz", proc)
        with urllib.request.urlopen(f"{base}/", timeout=30) as page:  # the web pages
            print(f"web pages: {base}/ (HTTP {page.status}; a cell at {base}/cells/pto-c10, "
                  f"the model at {base}/model) while the demo's service runs")
        history = _history_rows(seen_csv)
        body = {"cell": {"cell_id": "demo-heldout", "nominal_capacity_ah": 5.0},
                "history": history, "horizon_cycles": 40}
        print(f"POST {base}/v1/forecast  ({len(history)} cycles of history)")
        forecast = _post(f"{base}/v1/forecast", body)
        print(json.dumps({**forecast, "forecast": forecast["forecast"][:2] + ["…"]}, indent=2))
        advice_body = {"cell": {"cell_id": "demo-heldout", "nominal_capacity_ah": 5.0},
                       "history": history, "eol_fraction": 0.8, "planned_cycles": 400,
                       "tolerance_cycles": 40}
        print(f"POST {base}/v1/advice")
        print(json.dumps(_post(f"{base}/v1/advice", advice_body), indent=2))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        # uvicorn shuts down gracefully on SIGTERM, then re-raises it: -15 is a clean stop.
        serve_log.close()
        state = "cleanly" if proc.returncode in (0, -signal.SIGTERM) else f"exit {proc.returncode}"
        print(f"service stopped ({state}); its log: "
              + " | ".join((work / "serve.log").read_text(encoding="utf-8").splitlines()[:2]))
    banner("7. Follow a running test: the export grows cycle by cycle; the advice flips to stop "
           "and a signed webhook reaches a local listener")
    follow_running_test(work)
    shutil.rmtree(work, ignore_errors=True)
    print("\ndemo done: `fadecast forecast` and `fadecast serve` use your champion in "
          f"{home} when there is one, else the shipped model")
    print("web pages: run `fadecast serve` and open http://127.0.0.1:8000/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
