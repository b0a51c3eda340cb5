/* Cells page: every registered cell (sortable, filterable) and a drag-and-drop upload. */
"use strict";
(function () {
  const { el, api, fmt, token, config } = window.FC;
  const state = { rows: [], sort: { key: "updated_at", dir: -1 }, filter: "", advice: "", fresh: null };
  const COLS = [
    { key: "cell_id", label: "Cell", get: (r) => r.cell_id },
    { key: "cohort", label: "Cohort", get: (r) => r.cohort || "" },
    { key: "last_cycle_index", label: "Last cycle", num: true, get: (r) => r.last_cycle_index },
    { key: "retention", label: "Retention", num: true, get: (r) => r.retention },
    { key: "eol", label: "Predicted EOL, cycle p50 (p05–p95)", num: true,
      get: (r) => (r.end_of_life && r.end_of_life.cycle_index) ? r.end_of_life.cycle_index.p50 : null },
    { key: "advice", label: "Advice", get: (r) => r.advice ? r.advice.decision : (r.error ? "error" : "") },
    { key: "updated_at", label: "Last updated", get: (r) => r.updated_at || "" },
  ];

  function eolText(r) {
    const e = r.end_of_life;
    if (!e) return r.error || r.pending ? "–" : "beyond horizon";
    const c = e.cycle_index, cens = e.censored || {};
    return fmt.num(c.p50) + " (" + fmt.num(c.p05) + "–" + fmt.num(c.p95) + (cens.p95 ? "+" : "") + ")";
  }

  function cellLink(id) { return el("a", { href: "/cells/" + encodeURIComponent(id) }, id); }

  function renderRows(tbody, status) {
    const q = state.filter.toLowerCase();
    let rows = state.rows.filter((r) => {
      if (state.advice && (r.advice ? r.advice.decision : "error") !== state.advice) return false;
      if (!q) return true;
      return [r.cell_id, r.cohort, r.chemistry, r.advice && r.advice.decision]
        .some((v) => v && String(v).toLowerCase().includes(q));
    });
    const col = COLS.find((c) => c.key === state.sort.key);
    rows = rows.slice().sort((a, b) => {
      const x = col.get(a), y = col.get(b);
      if (x === y) return 0;
      if (x === null || x === undefined || x === "") return 1;
      if (y === null || y === undefined || y === "") return -1;
      return (x < y ? -1 : 1) * state.sort.dir;
    });
    tbody.replaceChildren(...rows.map((r) => el("tr", { class: r.cell_id === state.fresh ? "fresh" : null, "data-cell": r.cell_id },
      el("th", { scope: "row" }, cellLink(r.cell_id)),
      el("td", {}, r.cohort ? el("a", { href: "/cohorts/" + encodeURIComponent(r.cohort) }, r.cohort) : "–"),
      el("td", { class: "num" }, fmt.num(r.last_cycle_index)),
      el("td", { class: "num" }, fmt.pct(r.retention)),
      el("td", { class: "num" }, eolText(r)),
      el("td", {}, r.advice
        ? [el("span", { class: "badge " + r.advice.decision }, r.advice.decision), " ",
           el("span", { class: "note" }, r.advice.reason)]
        : (r.error ? el("span", { class: "note" }, r.error.code + ": " + r.error.message)
                   : (r.pending ? el("span", { class: "note" }, "computing…") : "–"))),
      el("td", {}, fmt.when(r.updated_at)))));
    status.textContent = rows.length + " of " + state.rows.length + " cells shown";
  }

  function table() {
    const tbody = el("tbody");
    const status = el("p", { class: "note", role: "status", "aria-live": "polite" });
    const heads = COLS.map((c) => {
      const th = el("th", { scope: "col", class: c.num ? "num" : null, "aria-sort": "none" });
      th.append(el("button", { type: "button", onclick: () => {
        state.sort = { key: c.key, dir: state.sort.key === c.key ? -state.sort.dir : (c.num ? -1 : 1) };
        paintHeads(); renderRows(tbody, status);
      } }, c.label));
      return th;
    });
    function paintHeads() {
      COLS.forEach((c, i) => heads[i].setAttribute("aria-sort", state.sort.key === c.key
        ? (state.sort.dir > 0 ? "ascending" : "descending") : "none"));
    }
    paintHeads();
    const search = el("input", { type: "search", id: "cell-filter", placeholder: "cell, cohort, chemistry…",
      oninput: (e) => { state.filter = e.target.value; renderRows(tbody, status); } });
    const adviceSel = el("select", { id: "advice-filter", onchange: (e) => { state.advice = e.target.value; renderRows(tbody, status); } },
      el("option", { value: "" }, "any"), el("option", { value: "stop" }, "stop"),
      el("option", { value: "continue" }, "continue"), el("option", { value: "error" }, "no forecast"));
    const refresh = el("button", { type: "button", id: "cells-refresh", onclick: () => state.reload && state.reload() }, "Refresh");
    const section = el("section", { class: "card", "aria-labelledby": "cells-title" },
      el("h2", { id: "cells-title" }, "Registered cells"),
      el("div", { class: "row" },
        el("div", {}, el("label", { for: "cell-filter" }, "Filter"), search),
        el("div", {}, el("label", { for: "advice-filter" }, "Advice"), adviceSel),
        el("div", {}, refresh, el("span", { class: "note", id: "cells-when" }))),
      status,
      el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Cells table (scrolls sideways)" },
        el("table", { id: "cells-table" },
          el("caption", { class: "note", style: "text-align:left" },
            "Retention = median of the last 3 discharge capacities / reference. EOL = 80 % of the reference; “+” = the upper bound lies beyond the forecast horizon. Advice assumes the plan in each cell's page (metadata planned_cycles, else twice the cycles run so far)."),
          el("thead", {}, el("tr", {}, heads)), tbody)));
    return { section, refresh: () => renderRows(tbody, status) };
  }

  function uploader(onDone) {
    const input = el("input", { type: "file", id: "upload-file", class: "visually-hidden" });
    input.style.cssText = "position:absolute;width:1px;height:1px;opacity:0;overflow:hidden";
    input.tabIndex = -1;
    const choose = el("button", { type: "button", id: "upload-choose", onclick: () => input.click() }, "Choose a cycler file…");
    const fileName = el("span", { id: "upload-name", class: "note" }, "no file chosen");
    const cellId = el("input", { type: "text", id: "upload-cell", required: true, pattern: "[A-Za-z0-9_.\\-]+", maxlength: "128",
                                 autocomplete: "off", "aria-describedby": "upload-cell-help" });
    const go = el("button", { type: "submit", class: "primary", id: "upload-go", disabled: true }, "Upload");
    const bar = el("progress", { id: "upload-progress", max: "100", value: "0", "aria-label": "Upload progress" });
    const msg = el("div", { id: "upload-status", role: "status", "aria-live": "polite" });
    const drop = el("div", { class: "drop", id: "drop-zone" },
      el("p", {}, "Drop a cycler export here (any format ", el("code", {}, "fadecast ingest"), " reads), or ", choose, " ", fileName));
    let file = null;

    function pick(f) {
      file = f;
      fileName.textContent = f ? f.name + " (" + (f.size / 1e6).toFixed(2) + " MB)" : "no file chosen";
      if (f && !cellId.value) cellId.value = f.name.replace(/\.[^.]+$/, "").replace(/[^A-Za-z0-9_.\-]+/g, "_").replace(/^[._]+|[._]+$/g, "").slice(0, 128);
      go.disabled = !f;
    }
    input.addEventListener("change", () => pick(input.files[0] || null));
    for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
    for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); if (e.dataTransfer.files.length) pick(e.dataTransfer.files[0]); });

    function send(f, id) {
      return new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", "/v1/cells/" + encodeURIComponent(id) + "/samples?filename=" + encodeURIComponent(f.name));
        xhr.setRequestHeader("Content-Type", "application/octet-stream");
        if (token.get()) xhr.setRequestHeader("Authorization", "Bearer " + token.get());
        xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
        xhr.onload = () => { let body = null; try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; } resolve({ status: xhr.status, body }); };
        xhr.onerror = () => resolve({ status: 0, body: { message: "the connection failed" } });
        xhr.send(f);
      });
    }

    const form = el("form", { id: "upload-form", novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      if (!file) return;
      if (!cellId.checkValidity()) { msg.replaceChildren(el("p", { class: "error", role: "alert" }, "Cell id: letters, digits, '_', '.', '-' only.")); cellId.focus(); return; }
      if (config.auth.write === "token" && !token.get()) {
        if (!await token.ask("Uploading needs a write token on this service.")) { msg.textContent = "Upload cancelled: no write token."; return; }
      }
      go.disabled = true; bar.value = 0;
      msg.textContent = "Uploading " + file.name + "…";
      let res = await send(file, cellId.value);
      if ((res.status === 401 || res.status === 403) && await token.ask("The service refused the upload (" + res.status + "): give a write token.")) {
        bar.value = 0; res = await send(file, cellId.value);
      }
      go.disabled = false;
      if (res.status === 201) {
        bar.value = 100;
        const w = res.body.warnings || [];
        msg.replaceChildren(
          el("p", {}, "Stored ", el("a", { href: "/cells/" + encodeURIComponent(res.body.cell_id) }, res.body.cell_id),
             " (" + (res.body.format_name || "?") + ", " + (res.body.bytes / 1e6).toFixed(2) + " MB), " + w.length + " ingest warning(s)" + (w.length ? ":" : ".")),
          w.length ? el("ul", { class: "warnings", id: "upload-warnings" }, w.map((x) => el("li", {}, el("code", {}, x.code), ": ", x.message))) : null);
        onDone(res.body.cell_id);
      } else {
        const b = res.body || {};
        msg.replaceChildren(el("p", { class: "error", role: "alert" }, (b.code ? b.code + ": " : "") + (b.message || "upload failed (HTTP " + res.status + ")")));
      }
    } },
      drop, input,
      el("div", { class: "row" },
        el("div", {}, el("label", { for: "upload-cell" }, "Cell id"), cellId,
           el("div", { id: "upload-cell-help", class: "note" }, "Rows are added to this cell (created if new).")),
        el("div", {}, go)),
      el("div", { style: "margin-top:.6rem" }, bar), msg);
    return el("section", { class: "card", "aria-labelledby": "upload-title" },
      el("h2", { id: "upload-title" }, "Add data"),
      config.auth.write === "token" ? el("p", { class: "note", id: "upload-auth" }, "Writing is protected on this service: the page asks for a write token before uploading.") : null,
      config.auth.write === "disabled" ? el("p", { class: "error", id: "upload-auth" }, "Uploads are disabled on this service: no write token is configured (start it with FADECAST_SERVE_WRITE_TOKEN set). Use fadecast ingest on the server instead.") : null,
      form);
  }

  /* Rows the service has not computed yet come back "pending": ask again until none is. */
  async function load(t) {
    let doc = await api("/v1/cells");
    state.rows = doc.cells; t.refresh();
    while (doc.pending > 0) {
      document.getElementById("cells-when").textContent = " computing forecasts: " + doc.pending + " cell(s) to go…";
      doc = await api("/v1/cells");
      state.rows = doc.cells; t.refresh();
    }
    document.getElementById("cells-when").textContent = " as of " + new Date().toLocaleTimeString();
    return doc;
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const main = document.getElementById("main");
    const t = table();
    const head = el("div", {}, el("h1", {}, "Cells"),
      el("p", { class: "sub", id: "model-line" }, "Forecasts and advice from the loaded model."));
    main.replaceChildren(head, uploader(async (id) => { state.fresh = id; await load(t); }), t.section);
    state.reload = () => load(t).catch((err) => window.FC.showError(t.section, err));
    // running tests keep adding cycles (fadecast follow): refresh while the page is in view
    setInterval(() => { if (document.visibilityState === "visible") state.reload(); }, 60000);
    try {
      const doc = await load(t);
      document.getElementById("model-line").textContent = "Forecasts and advice by model " + doc.model.name + " v" + doc.model.version + ".";
    } catch (err) { window.FC.showError(t.section, err); }
    window.FC.markReady();
  });
})();
