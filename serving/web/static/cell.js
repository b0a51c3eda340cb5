/* A cell: capacity with forecast band and EOL marker, loss parts, trends, advice, what-if. */
"use strict";
(function () {
  const { el, api, fmt, C, layout, plotConfig, band, capUnit, config } = window.FC;
  const id = config.cell_id;
  const st = { doc: null, whatif: null, xHours: false, unit: null, seq: 0, ctrl: null };

  const X = (hours) => hours ? "Elapsed test time (h)" : "Cycle number";

  function capacityTraces() {
    const d = st.doc, k = st.unit.k, f = d.forecast, hx = st.xHours;
    const hist = d.history;
    const xs = (cyc, hr) => hx ? hr : cyc;
    const scale = (a) => a.map((v) => v === null ? null : v * k);
    const traces = [
      { x: xs(hist.cycle_index, hist.test_time_hour), y: scale(hist.discharge_capacity_ah), type: "scatter",
        mode: "markers", marker: { size: 4, color: C.black }, name: "observed", legendgroup: "observed",
        hovertemplate: "%{y:.4g} " + st.unit.name + "<extra>observed</extra>" },
      ...band(xs(f.cycle_index, f.test_time_hour), scale(f.capacity_ah.p05), scale(f.capacity_ah.p95),
              "current plan 90 % band", "rgba(0,158,115,0.22)", "plan"),
      { x: xs(f.cycle_index, f.test_time_hour), y: scale(f.capacity_ah.p50), type: "scatter", mode: "lines",
        line: { color: C.green, width: 2.5 }, name: "current plan p50 (" + fmt.num(f.hours_per_cycle, 2) + " h/cycle)",
        legendgroup: "plan", hovertemplate: "%{y:.4g} " + st.unit.name + "<extra>plan p50</extra>" },
    ];
    const w = st.whatif;
    if (w) {
      traces.push(...band(xs(w.cycle_index, w.test_time_hour), scale(w.capacity_ah.p05), scale(w.capacity_ah.p95),
                          "what-if 90 % band", "rgba(204,121,167,0.25)", "whatif"));
      traces.push({ x: xs(w.cycle_index, w.test_time_hour), y: scale(w.capacity_ah.p50), type: "scatter", mode: "lines",
        line: { color: C.vermillion, width: 2.5, dash: "dash" }, name: "what-if p50 (" + fmt.num(w.hours_per_cycle, 2) + " h/cycle)",
        legendgroup: "whatif", hovertemplate: "%{y:.4g} " + st.unit.name + "<extra>what-if p50</extra>" });
    }
    return traces;
  }

  function capacityShapes() {
    const d = st.doc, k = st.unit.k, thr = d.eol_fraction * d.reference_capacity_ah * k;
    const shapes = [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: thr, y1: thr,
                      line: { color: C.vermillion, width: 1.5, dash: "dot" } }];
    const ann = [{ xref: "paper", x: 0.01, y: thr, yanchor: "bottom", showarrow: false,
                   text: "end of life: " + Math.round(100 * d.eol_fraction) + " % of " + fmt.num(d.reference_capacity_ah * k, 3) + " " + st.unit.name,
                   font: { color: "#8a3a00", size: 12 } }];
    const e = d.forecast.end_of_life;
    if (e) {
      const key = st.xHours ? "test_time_second" : "cycle_index";
      const conv = (v) => st.xHours ? v / 3600 : v;
      const q = e[key];
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: conv(q.p05), x1: conv(q.p95), y0: 0, y1: 1,
                    fillcolor: "rgba(213,94,0,0.08)", line: { width: 0 } });
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: conv(q.p50), x1: conv(q.p50), y0: 0, y1: 1,
                    line: { color: C.vermillion, width: 2 } });
      ann.push({ x: conv(q.p50), yref: "paper", y: 1, yanchor: "top", xanchor: "left", showarrow: false,
                 text: " EOL p50 " + (st.xHours ? fmt.num(conv(q.p50)) + " h" : "cycle " + fmt.num(q.p50)), font: { color: "#8a3a00" } });
    }
    return { shapes, annotations: ann };
  }

  /* Series shown on the capacity plot: the checkboxes under it and the plot's legend agree. */
  const SERIES_NAMES = { observed: "observed", plan: "current plan", whatif: "what-if", eol: "end-of-life marker" };
  st.hidden = new Set();

  async function drawCapacity() {
    const P = await window.FC.plotly();
    const sa = capacityShapes();
    if (st.hidden.has("eol")) { sa.shapes = sa.shapes.slice(0, 1); sa.annotations = sa.annotations.slice(0, 1); }
    const traces = capacityTraces().map((t) => Object.assign(t, { visible: st.hidden.has(t.legendgroup) ? "legendonly" : true }));
    const div = document.getElementById("capacity-plot");
    await P.react(div, traces, layout(X(st.xHours), "Discharge capacity (" + st.unit.name + ")", sa), plotConfig);
    if (!div.dataset.legendHooked) {
      div.dataset.legendHooked = "1";
      div.on("plotly_legendclick", (ev) => {
        const group = ev.data[ev.curveNumber].legendgroup;
        if (group) { toggleSeries(group, st.hidden.has(group)); }
        return false;  // the page redraws with the new state
      });
    }
  }

  function toggleSeries(group, show) {
    if (show) st.hidden.delete(group); else st.hidden.add(group);
    const box = document.getElementById("show-" + group);
    if (box) box.checked = show;
    drawCapacity();
  }

  function seriesControls() {
    return el("fieldset", { class: "series" }, el("legend", {}, "Show on the plot"),
      Object.entries(SERIES_NAMES).map(([group, label]) => el("label", { class: "inline", for: "show-" + group },
        el("input", { type: "checkbox", id: "show-" + group, checked: !st.hidden.has(group),
                      onchange: (e) => toggleSeries(group, e.target.checked) }), label)));
  }

  async function drawLoss() {
    const P = await window.FC.plotly(), L = st.doc.forecast.loss;
    if (!L) return;
    const pc = (a) => a.map((v) => 100 * v);
    const t = L.time_driven, c = L.cycle_driven;
    const top = (arr) => arr.map((v, i) => 100 * (t.p50[i] + v));
    const traces = [
      { x: L.cycle_index, y: pc(t.p50), type: "scatter", mode: "lines", fill: "tozeroy", stackgroup: null,
        line: { color: C.orange, width: 2 }, fillcolor: "rgba(230,159,0,0.45)", name: "time-driven (p50)",
        hovertemplate: "%{y:.2f} %<extra>time-driven</extra>" },
      { x: L.cycle_index, y: top(c.p50), type: "scatter", mode: "lines", fill: "tonexty",
        line: { color: C.blue, width: 2 }, fillcolor: "rgba(0,114,178,0.35)", name: "cycle-driven (p50, stacked)",
        customdata: pc(c.p50), hovertemplate: "%{customdata:.2f} %<extra>cycle-driven</extra>" },
      { x: L.cycle_index, y: pc(t.p05), type: "scatter", mode: "lines", line: { color: C.orange, dash: "dot", width: 1.5 },
        name: "time-driven 5–95 %", legendgroup: "tb", hovertemplate: "%{y:.2f} %<extra>time p05</extra>" },
      { x: L.cycle_index, y: pc(t.p95), type: "scatter", mode: "lines", line: { color: C.orange, dash: "dot", width: 1.5 },
        showlegend: false, legendgroup: "tb", hovertemplate: "%{y:.2f} %<extra>time p95</extra>" },
      { x: L.cycle_index, y: top(c.p05), type: "scatter", mode: "lines", line: { color: C.blue, dash: "dot", width: 1.5 },
        name: "cycle-driven 5–95 % (on time p50)", legendgroup: "cb", hovertemplate: "%{y:.2f} %<extra>stacked, cycle p05</extra>" },
      { x: L.cycle_index, y: top(c.p95), type: "scatter", mode: "lines", line: { color: C.blue, dash: "dot", width: 1.5 },
        showlegend: false, legendgroup: "cb", hovertemplate: "%{y:.2f} %<extra>stacked, cycle p95</extra>" },
    ];
    await P.react("loss-plot", traces, layout("Cycle number", "Capacity lost (% of reference)"), plotConfig);
  }

  async function drawTrends() {
    const P = await window.FC.plotly(), T = st.doc.trends;
    const small = (x, y) => layout(x, y, { margin: { l: 64, r: 12, t: 8, b: 44 }, hovermode: "closest" });
    if (!T) return;
    const aw = [
      { x: T.aw_baseline.cycle_index, y: T.aw_baseline.value, type: "scatter", mode: "lines+markers",
        marker: { color: C.blue, size: 6 }, line: { color: C.blue }, name: "baseline" },
      { x: T.aw_top_of_charge.cycle_index, y: T.aw_top_of_charge.value, type: "scatter", mode: "markers",
        marker: { color: C.vermillion, size: 8, symbol: "triangle-up" }, name: "top of charge" },
    ];
    const plots = [
      ["aw", aw, small("Cycle number", "A_w (Ω·s^-½)"), T.aw_baseline.cycle_index.length + T.aw_top_of_charge.cycle_index.length,
       "No EIS spectra stored for this cell: A_w needs in-situ impedance (ingest an EIS file with --cell-id " + id + ")."],
      ["pol", [{ x: T.polarization_volt.cycle_index, y: T.polarization_volt.value, type: "scatter",
                 mode: "lines", line: { color: C.purple }, name: "polarization" }], small("Cycle number", "Polarization (V)"),
       T.polarization_volt.cycle_index.length, "No mean charge/discharge voltages: polarization needs voltage data."],
      ["ci", [{ x: T.coulombic_inefficiency.cycle_index, y: T.coulombic_inefficiency.value.map((v) => Math.round(1e8 * v) / 1e6),  // %, float noise removed
                type: "scatter", mode: "lines", line: { color: C.sky }, name: "1 − CE" }], small("Cycle number", "1 − CE (%)"),
       T.coulombic_inefficiency.cycle_index.length, "No charge capacities: coulombic efficiency needs both directions."],
    ];
    for (const [name, traces, lay, pts, msg] of plots) {
      const div = document.getElementById(name + "-plot");
      document.getElementById(name + "-note").textContent = pts ? pts + " points." : msg;
      if (pts) { div.hidden = false; await P.react(div, traces, lay, plotConfig); }
      else { div.hidden = true; }
    }
  }

  function eolLine(f) {
    const e = f.end_of_life;
    if (!e) return "end of life beyond the " + f.cycle_index.length + "-cycle horizon";
    const h = e.test_time_second;
    return "EOL cycle " + fmt.q(e.cycle_index) + ", at " + fmt.num(h.p50 / 3600) + " h (" + fmt.num(h.p05 / 3600) + "–" + fmt.num(h.p95 / 3600) + ")";
  }

  /* ---------- what-if ---------- */
  const logMap = (lo, hi) => ({ to: (s) => lo * Math.pow(hi / lo, s / 100), from: (v) => 100 * Math.log(v / lo) / Math.log(hi / lo) });

  function whatifPanel() {
    const f = st.doc.forecast, proto = (st.doc.trends && st.doc.trends.protocol) || {};
    const h0 = f.hours_per_cycle || 1;
    const hMap = logMap(h0 / 5, h0 * 5);
    const cMap = logMap(0.02, 5);
    const retention = Math.max(0.05, st.doc.retention || 1);
    const c0 = proto.c_rate || Math.min(5, Math.max(0.02, 2 * retention / Math.max(h0 - (proto.rest_hour || 0), 0.05 * h0)));
    const rest0 = Math.max(0, proto.rest_hour !== null && proto.rest_hour !== undefined ? proto.rest_hour : Math.max(0, h0 - 2 * retention / c0));
    const modeH = el("input", { type: "radio", name: "whatif-mode", id: "mode-hours", value: "hours", checked: true });
    const modeC = el("input", { type: "radio", name: "whatif-mode", id: "mode-crate", value: "crate" });
    const hRange = el("input", { type: "range", id: "whatif-hours", min: "0", max: "100", step: "1", value: String(Math.round(hMap.from(h0))),
                                 "aria-describedby": "whatif-hours-out" });
    const hOut = el("output", { id: "whatif-hours-out", for: "whatif-hours" });
    const cRange = el("input", { type: "range", id: "whatif-crate", min: "0", max: "100", step: "1", value: String(Math.round(cMap.from(c0))), disabled: true });
    const cOut = el("output", { id: "whatif-crate-out", for: "whatif-crate" });
    const rRange = el("input", { type: "range", id: "whatif-rest", min: "0", max: "48", step: "0.25", value: String(Math.min(48, rest0)), disabled: true });
    const rOut = el("output", { id: "whatif-rest-out", for: "whatif-rest" });
    const reset = el("button", { type: "button", id: "whatif-reset" }, "Back to the current plan");
    const readout = el("div", { class: "readout", id: "whatif-readout", role: "status", "aria-live": "polite" });

    function hours() {
      if (modeH.checked) return hMap.to(+hRange.value);
      const c = cMap.to(+cRange.value);
      return 2 * retention / c + (+rRange.value);
    }
    function paint() {
      const crate = !modeH.checked;
      hRange.disabled = crate; cRange.disabled = !crate; rRange.disabled = !crate;
      hOut.textContent = fmt.num(hMap.to(+hRange.value), 2) + " h per cycle";
      cOut.textContent = "C/" + fmt.num(1 / cMap.to(+cRange.value), 1) + " = " + fmt.num(cMap.to(+cRange.value), 2) + " C";
      rOut.textContent = fmt.num(+rRange.value, 2) + " h rest per cycle";
      hOut.dataset.value = String(hMap.to(+hRange.value));
      cOut.dataset.value = String(cMap.to(+cRange.value));
      rOut.dataset.value = rRange.value;
    }
    let timer = null;
    async function update() {
      paint();
      const h = hours(), seq = ++st.seq, t0 = performance.now();
      if (st.ctrl) st.ctrl.abort();
      st.ctrl = new AbortController();
      try {
        const w = await api("/v1/views/cells/" + encodeURIComponent(id) + "/whatif?hours_per_cycle=" + h.toFixed(5) +
                            "&horizon_cycles=" + st.doc.horizon_cycles, { signal: st.ctrl.signal });
        if (seq !== st.seq) return;
        st.whatif = w;
        await drawCapacity();
        window.FC.perf.lastWhatifMs = performance.now() - t0;
        window.FC.perf.whatifUpdates = (window.FC.perf.whatifUpdates || 0) + 1;
        readout.replaceChildren(
          el("p", {}, el("b", {}, "Current plan"), " " + fmt.num(f.hours_per_cycle, 2) + " h/cycle: " + eolLine(f)),
          el("p", { id: "whatif-line", "data-hours": String(w.hours_per_cycle) }, el("b", {}, "What-if"), " " + fmt.num(w.hours_per_cycle, 2) + " h/cycle: " + eolLine(w)));
        document.body.dataset.whatif = String(window.FC.perf.whatifUpdates);
      } catch (err) {
        if (err.name !== "AbortError") readout.replaceChildren(el("p", { class: "error", role: "alert" }, err.message));
      }
    }
    const schedule = () => { paint(); clearTimeout(timer); timer = setTimeout(update, 40); };
    for (const x of [hRange, cRange, rRange]) x.addEventListener("input", schedule);
    for (const x of [modeH, modeC]) x.addEventListener("change", schedule);
    reset.addEventListener("click", async () => {
      st.whatif = null; st.seq++; hRange.value = String(Math.round(hMap.from(h0))); modeH.checked = true; paint();
      readout.replaceChildren(el("p", {}, el("b", {}, "Current plan"), " " + fmt.num(f.hours_per_cycle, 2) + " h/cycle: " + eolLine(f)));
      await drawCapacity();
    });
    paint();
    readout.append(el("p", {}, el("b", {}, "Current plan"), " " + fmt.num(f.hours_per_cycle, 2) + " h/cycle: " + eolLine(f)));
    return el("section", { class: "card", "aria-labelledby": "whatif-title" },
      el("h2", { id: "whatif-title" }, "What if the rest of the test ran…"),
      el("fieldset", {}, el("legend", {}, "Set the pace by"),
        el("label", { class: "inline", for: "mode-hours" }, modeH, "hours per cycle"),
        el("label", { class: "inline", for: "mode-crate" }, modeC, "C-rate and rests")),
      el("label", { for: "whatif-hours" }, "Hours per cycle"), hRange, hOut,
      el("label", { for: "whatif-crate" }, "C-rate (charge and discharge)"), cRange, cOut,
      el("label", { for: "whatif-rest" }, "Rest per cycle (h)"), rRange, rOut,
      el("p", { class: "note" }, "The model sees the pace as hours per cycle: C-rate and rests become 2 × retention / C + rest (h). Other conditions stay as observed."),
      reset, readout);
  }

  /* ---------- advice ---------- */
  function advicePanel() {
    const a = st.doc.advice, p = st.doc.plan;
    const planned = el("input", { type: "number", id: "plan-cycles", min: "1", step: "1", value: String(p.planned_cycles) });
    const tol = el("input", { type: "number", id: "plan-tolerance", min: "1", step: "1", value: String(p.tolerance_cycles) });
    const form = el("form", { id: "plan-form", onsubmit: async (e) => {
      e.preventDefault();
      await load("?planned_cycles=" + encodeURIComponent(planned.value) + "&tolerance_cycles=" + encodeURIComponent(tol.value));
    } },
      el("div", { class: "row" },
        el("div", {}, el("label", { for: "plan-cycles" }, "Planned cycles"), planned),
        el("div", {}, el("label", { for: "plan-tolerance" }, "Tolerance (± cycles)"), tol),
        el("div", {}, el("button", { type: "submit" }, "Update advice"))));
    const checks = Object.entries(a.checks || {});
    const e = a.end_of_life;
    return el("section", { class: "card", "aria-labelledby": "advice-title", id: "advice" },
      el("h2", { id: "advice-title" }, "Advice: ", el("span", { class: "badge " + a.decision, id: "advice-decision" }, a.decision)),
      el("p", { id: "advice-reason" }, a.reason),
      el("dl", { class: "kv" },
        el("dt", {}, "EOL cycle (p05–p95)"), el("dd", {}, fmt.q(e.cycle_index)),
        el("dt", {}, "EOL elapsed (h)"), el("dd", {}, fmt.q(e.elapsed_hour)),
        el("dt", {}, "Hours saved if stopped"), el("dd", {}, fmt.num(a.hours_saved_if_stopped) + " h")),
      el("h3", { class: "note" }, "Checks (training domain and stop rule)"),
      el("ul", { class: "checks", id: "advice-checks" }, checks.map(([k, ok]) => el("li", { class: ok ? null : "fail" }, k.replace(/_/g, " ") + (ok ? "" : " — not met")))),
      a.domain && a.domain.reasons && a.domain.reasons.length
        ? el("ul", { class: "note", id: "domain-reasons" }, a.domain.reasons.map((r) => el("li", {}, r))) : null,
      el("p", { class: "note" }, "Plan from " + p.source + "."), form);
  }

  function filesPanel() {
    const files = st.doc.files || [];
    return el("section", { class: "card", "aria-labelledby": "files-title" },
      el("h2", { id: "files-title" }, "Stored files and ingest warnings"),
      files.length ? el("ul", {}, files.map((f) => el("li", {}, f.original_name + " — " + f.format_name + ", " + f.kind + ", " + f.rows + " rows, " + fmt.when(f.ingested_at),
        f.warnings.length ? el("ul", { class: "warnings" }, f.warnings.map((w) => el("li", {}, el("code", {}, w.code), ": " + w.message))) : null)))
        : el("p", { class: "note" }, "none"));
  }

  const viewUrl = (query) => "/v1/views/cells/" + encodeURIComponent(id) + (query || "");
  // asked for as soon as this script runs (before plotly.js is parsed)
  const first = api(viewUrl("")).then((doc) => ({ doc }), (err) => ({ err }));

  async function load(query, given) {
    const main = document.getElementById("main");
    const doc = given || await api(viewUrl(query));
    window.FC.perf.dataMs = performance.now();
    st.doc = doc; st.whatif = null; st.unit = capUnit(doc.reference_capacity_ah);
    const meta = doc.metadata || {};
    const xToggle = el("button", { type: "button", id: "x-toggle", "aria-pressed": "false", onclick: async (ev) => {
      st.xHours = !st.xHours; ev.target.setAttribute("aria-pressed", String(st.xHours));
      ev.target.textContent = st.xHours ? "x axis: elapsed time (h)" : "x axis: cycle number";
      await drawCapacity();
    } }, "x axis: cycle number");
    main.replaceChildren(
      el("p", { class: "note" }, el("a", { href: "/" }, "Cells"), " / ", doc.cohort ? [el("a", { href: "/cohorts/" + encodeURIComponent(doc.cohort) }, "cohort " + doc.cohort), " / "] : null, id),
      el("h1", {}, id),
      el("p", { class: "sub" }, [meta.chemistry, doc.history.cycle_index.length + " cycles observed, last " + doc.history.cycle_index[doc.history.cycle_index.length - 1],
                                  "retention " + fmt.pct(doc.retention), "reference " + fmt.num(doc.reference_capacity_ah * st.unit.k, 3) + " " + st.unit.name,
                                  "time share so far " + fmt.q(doc.forecast.attribution.time_share, 2), "updated " + fmt.when(doc.updated_at)].filter(Boolean).join(" · ")),
      el("div", { class: "grid" },
        el("section", { class: "card", "aria-labelledby": "cap-title" },
          el("div", { class: "row", style: "justify-content:space-between" }, el("h2", { id: "cap-title" }, "Capacity and forecast"), xToggle),
          el("div", { id: "capacity-plot", class: "plot", role: "img", "aria-label": "Discharge capacity per cycle with the forecast's 90 % band and the end-of-life marker" }),
          seriesControls(),
          el("p", { class: "note" }, "Observed points, the forecast median and its 90 % band; dotted line = end-of-life threshold; vertical line and shading = predicted EOL (p50, p05–p95). " + eolLine(doc.forecast) + ".")),
        el("div", {}, whatifPanel())),
      el("div", { class: "grid" },
        el("section", { class: "card", "aria-labelledby": "loss-title" },
          el("h2", { id: "loss-title" }, "Where the loss comes from"),
          el("div", { id: "loss-plot", class: "plot", role: "img", "aria-label": "Time-driven and cycle-driven capacity loss, stacked, with bands" }),
          el("p", { class: "note" }, "Stacked medians of the time-driven (elapsed hours) and cycle-driven parts from the last observed cycle on; dotted lines: each part's 5–95 % model quantiles (" + ((doc.forecast.loss || {}).band || "") + "). One constant-protocol cell cannot tell time from cycles well: compare siblings on the cohort page.")),
        advicePanel()),
      el("section", { class: "card", "aria-labelledby": "trend-title" },
        el("h2", { id: "trend-title" }, "Trends"),
        el("div", { class: "grid3" },
          el("figure", {}, el("div", { id: "aw-plot", class: "plot small", role: "img", "aria-label": "Warburg coefficient, baseline and top of charge" }),
            el("figcaption", { class: "note" }, "A_w baseline vs top of charge, kept apart. ", el("span", { id: "aw-note" }))),
          el("figure", {}, el("div", { id: "pol-plot", class: "plot small", role: "img", "aria-label": "Polarization per cycle" }),
            el("figcaption", { class: "note" }, "Mean charge − mean discharge voltage. ", el("span", { id: "pol-note" }))),
          el("figure", {}, el("div", { id: "ci-plot", class: "plot small", role: "img", "aria-label": "Coulombic inefficiency per cycle" }),
            el("figcaption", { class: "note" }, "1 − discharge/charge capacity. ", el("span", { id: "ci-note" }))))),
      filesPanel());
    await window.FC.plotly();
    window.FC.perf.plotlyMs = performance.now();
    await Promise.all([drawCapacity(), drawLoss(), drawTrends()]);
  }

  document.addEventListener("DOMContentLoaded", async () => {
    try {
      const got = await first;
      if (got.err) throw got.err;
      await load("", got.doc);
    } catch (err) { window.FC.showError(document.getElementById("main"), err); }
    window.FC.markReady();
  });
})();
