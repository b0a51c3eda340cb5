/* A cohort: sibling cells overlaid, each cell's split, and the cohort attribution (issue 9's
   POST /v1/cohorts/attribution) where this service has it. */
"use strict";
(function () {
  const { el, api, fmt, SERIES, layout, plotConfig, config } = window.FC;
  const name = config.cohort;
  const st = { doc: null, xHours: false };
  // asked for as soon as this script runs (before plotly.js is parsed)
  const first = api("/v1/views/cohorts/" + encodeURIComponent(name)).then((doc) => ({ doc }), (err) => ({ err }));

  async function drawOverlay() {
    const P = await window.FC.plotly();
    const traces = st.doc.cells.filter((c) => !c.error).map((c, i) => ({
      x: st.xHours ? c.test_time_hour : c.cycle_index, y: c.retention.map((v) => 100 * v), type: "scatter", mode: "lines+markers",
      marker: { size: 3, color: SERIES[i % SERIES.length] }, line: { color: SERIES[i % SERIES.length], dash: ["solid", "dash", "dot", "dashdot"][i % 4] },
      name: c.cell_id + (c.hours_per_cycle ? " (" + fmt.num(c.hours_per_cycle, 1) + " h/cycle)" : ""),
      hovertemplate: "%{y:.1f} %<extra>" + c.cell_id + "</extra>" }));
    await P.react("overlay-plot", traces, layout(st.xHours ? "Elapsed test time (h)" : "Cycle number", "Retention (% of reference capacity)"), plotConfig);
  }

  async function drawSplit() {
    const P = await window.FC.plotly();
    const cells = st.doc.cells.filter((c) => c.time_share && c.time_share.p50 !== null);
    const y = cells.map((c) => c.cell_id);
    const p50 = cells.map((c) => 100 * c.time_share.p50);
    await P.react("split-plot", [
      { type: "bar", orientation: "h", y, x: p50, name: "each cell alone (p50)", marker: { color: "#E69F00" },
        error_x: { type: "data", symmetric: false, array: cells.map((c, i) => 100 * c.time_share.p95 - p50[i]),
                   arrayminus: cells.map((c, i) => p50[i] - 100 * c.time_share.p05), color: "#000" },
        hovertemplate: "%{x:.0f} %<extra>time share</extra>" },
    ], layout("Time-driven share (%)", "", { xaxis: { range: [0, 100], title: { text: "Time-driven share (%)" }, automargin: true },
             margin: { l: 120, r: 16, t: 8, b: 48 }, hovermode: "closest", showlegend: false }), plotConfig);
  }

  async function attribution(box) {
    if (!st.doc.attribution_available) {
      box.replaceChildren(el("p", { id: "attribution-status" }, "Cohort attribution (one shared time/cycle law fitted over the siblings, and the next protocol to run) is not available in this service: ",
        el("code", {}, st.doc.attribution_route), " is not served. The split above is each cell's own single-cell attribution, which a constant-protocol cell cannot pin down."));
      return;
    }
    if ((st.doc.attribution_request.cells || []).length < 2) {
      box.replaceChildren(el("p", { id: "attribution-status" }, "A cohort fit needs at least two siblings with cycles; this cohort has " +
        st.doc.attribution_request.cells.length + ". Add a sibling run under another protocol (fadecast ingest … --meta cohort=" + name + ")."));
      return;
    }
    box.replaceChildren(el("p", { role: "status" }, "Fitting the cohort law (POST " + st.doc.attribution_route + ")…"));
    try {
      const doc = await api(st.doc.attribution_route, { method: "POST", json: st.doc.attribution_request });
      const idf = doc.identifiability || {};
      const law = (doc.cohort || {}).law || {};
      const params = Object.entries(law.parameters || {});
      const next = idf.next_protocol || null;
      const cells = doc.cells || [];
      box.replaceChildren(
        el("p", { id: "next-protocol", class: "readout" }, el("b", {}, "Next protocol: "), idf.advice || "–"),
        next ? el("p", { class: "note" }, "Best candidate: " + next.label + " for " + fmt.num(next.hours) + " h (" + fmt.num(next.cycles) + " cycles): expected 90 % width of the time share " +
          fmt.num(next.expected_time_share_width, 2) + ", now " + fmt.num(next.time_share_width_now, 2) + ".") : null,
        next && next.candidates ? el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Candidate protocols" },
          el("table", { id: "candidates-table" }, el("caption", { class: "note", style: "text-align:left" }, "Candidate sibling protocols, by the expected time-share interval width they would leave (computed from the cohort posterior)"),
            el("thead", {}, el("tr", {}, ["protocol", "cycles", "hours (h)", "expected width"].map((h) => el("th", { scope: "col" }, h)))),
            el("tbody", {}, next.candidates.slice(0, 6).map((c) => el("tr", {}, el("th", { scope: "row" }, c.label),
              el("td", { class: "num" }, fmt.num(c.cycles)), el("td", { class: "num" }, fmt.num(c.hours)), el("td", { class: "num" }, fmt.num(c.expected_time_share_width, 3))))))) : null,
        el("h3", {}, "Shared law"),
        el("p", { class: "note" }, el("code", {}, law.form || "")),
        params.length ? el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Cohort law parameters" },
          el("table", { id: "cohort-law" }, el("caption", { class: "note", style: "text-align:left" }, "Posterior of the shared law's parameters (p05, p50, p95)"),
            el("thead", {}, el("tr", {}, ["parameter", "p05", "p50", "p95"].map((h) => el("th", { scope: "col" }, h)))),
            el("tbody", {}, params.map(([k, q]) => el("tr", {}, el("th", { scope: "row" }, k),
              ["p05", "p50", "p95"].map((x) => el("td", { class: "num" }, fmt.num(q && q[x], 3)))))))) : null);
      // the cohort fit's split beside each cell's own
      const P = await window.FC.plotly();
      const ys = cells.map((c) => c.cell_id);
      const p50 = cells.map((c) => 100 * c.attribution.time_share.p50);
      await P.addTraces("split-plot", { type: "bar", orientation: "h", y: ys, x: p50, name: "cohort fit (p50)", marker: { color: "#0072B2" },
        error_x: { type: "data", symmetric: false, array: cells.map((c, i) => 100 * c.attribution.time_share.p95 - p50[i]),
                   arrayminus: cells.map((c, i) => p50[i] - 100 * c.attribution.time_share.p05), color: "#000" },
        hovertemplate: "%{x:.0f} %<extra>cohort fit</extra>" });
      await P.relayout("split-plot", { showlegend: true, barmode: "group" });
      document.getElementById("split-note").textContent = "Orange: each cell alone (p50, 5–95 %); blue: the cohort fit over all siblings (POST " + st.doc.attribution_route + ").";
    } catch (err) {
      box.replaceChildren(el("p", { class: "error", role: "alert", id: "attribution-status" }, "Cohort attribution failed: " + (err.body && err.body.code ? err.body.code + ": " : "") + err.message));
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const main = document.getElementById("main");
    try {
      const got = await first;
      if (got.err) throw got.err;
      st.doc = got.doc;
      const attr = el("div", { id: "attribution" });
      const toggle = el("button", { type: "button", id: "x-toggle", "aria-pressed": "false", onclick: async (ev) => {
        st.xHours = !st.xHours; ev.target.setAttribute("aria-pressed", String(st.xHours));
        ev.target.textContent = st.xHours ? "x axis: elapsed time (h)" : "x axis: cycle number"; await drawOverlay();
      } }, "x axis: cycle number");
      main.replaceChildren(
        el("p", { class: "note" }, el("a", { href: "/" }, "Cells"), " / cohort " + name),
        el("h1", {}, "Cohort " + name),
        el("p", { class: "sub" }, st.doc.cells.length + " sibling cells: same design, different protocols. Plot against elapsed time and against cycles: fade that lines up in time is time-driven."),
        el("div", { class: "grid" },
          el("section", { class: "card", "aria-labelledby": "ov-title" },
            el("div", { class: "row", style: "justify-content:space-between" }, el("h2", { id: "ov-title" }, "Siblings overlaid"), toggle),
            el("div", { id: "overlay-plot", class: "plot", role: "img", "aria-label": "Retention of every sibling cell" })),
          el("section", { class: "card", "aria-labelledby": "split-title" },
            el("h2", { id: "split-title" }, "Each cell's split"),
            el("div", { id: "split-plot", class: "plot", role: "img", "aria-label": "Time-driven share per cell with 90 % intervals" }),
            el("p", { class: "note", id: "split-note" }, "Single-cell attribution (p50, 5–95 %) at each cell's last cycle."))),
        el("section", { class: "card", "aria-labelledby": "cells-title" }, el("h2", { id: "cells-title" }, "Cells"),
          el("ul", {}, st.doc.cells.map((c) => el("li", {}, el("a", { href: "/cells/" + encodeURIComponent(c.cell_id) }, c.cell_id),
            c.error ? " — " + c.error.code + ": " + c.error.message
                    : " — " + fmt.num(c.hours_per_cycle, 2) + " h/cycle" + (c.c_rate ? ", " + fmt.num(c.c_rate, 2) + " C" : "") + ", advice " + (c.advice ? c.advice.decision : "–"))))),
        el("section", { class: "card", "aria-labelledby": "attr-title" }, el("h2", { id: "attr-title" }, "Cohort attribution and the next protocol"), attr));
      await Promise.all([drawOverlay(), drawSplit()]);
      await attribution(attr);
    } catch (err) { window.FC.showError(main, err); }
    window.FC.markReady();
  });
})();
