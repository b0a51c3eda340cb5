/* fadecast pages: shared helpers (config, API calls with the access token, plots, formatting).
   No framework, no CDN: plotly.js is loaded on demand from /static/vendor/plotly-basic.min.js,
   plotly's own basic bundle (scatter, bar, pie), kept in static/vendor. */
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("config").textContent);
  const TOKEN_KEY = "fadecast-token";
  // Okabe–Ito: distinguishable with the common colour-vision deficiencies.
  const C = { black: "#000000", orange: "#E69F00", sky: "#56B4E9", green: "#009E73",
              yellow: "#F0E442", blue: "#0072B2", vermillion: "#D55E00", purple: "#CC79A7" };
  const SERIES = [C.blue, C.orange, C.green, C.vermillion, C.purple, C.sky, C.black, C.yellow];
  const perf = { start: performance.now() };
  window.__fadecast = perf;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const token = {
    get() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
    set(v) { if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY); },
    /* Ask for the token in a modal dialog; resolves true when one was given. */
    ask(why) {
      const dlg = document.getElementById("token-dialog");
      const input = document.getElementById("token-input");
      document.getElementById("token-why").textContent = why ||
        "Give the access token of this service (kept in this browser tab only).";
      input.value = token.get();
      return new Promise((resolve) => {
        dlg.addEventListener("close", function onClose() {
          dlg.removeEventListener("close", onClose);
          if (dlg.returnValue === "ok" && input.value.trim()) { token.set(input.value.trim()); resolve(true); }
          else { if (dlg.returnValue === "clear") token.set(""); resolve(false); }
        });
        dlg.showModal();
        input.focus();
      });
    },
  };

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    const t = token.get();
    if (t) h.Authorization = "Bearer " + t;
    return h;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || ("HTTP " + status));
      this.status = status; this.body = body || {};
    }
  }

  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || "GET", headers: headers(opts.headers), signal: opts.signal };
    if (opts.json !== undefined) {
      init.body = JSON.stringify(opts.json);
      init.headers["Content-Type"] = "application/json";
    }
    let resp = await fetch(path, init);
    if ((resp.status === 401 || resp.status === 403) && !opts.noRetry) {
      if (await token.ask("This service needs an access token to read this (answer " + resp.status + ").")) {
        return api(path, Object.assign({}, opts, { noRetry: true }));
      }
    }
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) throw new ApiError(resp.status, body);
    return body;
  }

  let plotlyPromise = null;
  function plotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotlyPromise) {
      plotlyPromise = new Promise((resolve, reject) => {
        const s = el("script", { src: "/static/vendor/plotly-basic.min.js" });
        s.onload = () => resolve(window.Plotly);
        s.onerror = () => reject(new Error("could not load /static/vendor/plotly-basic.min.js"));
        document.head.append(s);
      });
    }
    return plotlyPromise;
  }

  const narrow = () => window.matchMedia("(max-width: 900px)").matches;

  function layout(xTitle, yTitle, extra) {
    return Object.assign({
      margin: { l: 64, r: 16, t: 8, b: 48 },
      // exponents as powers of ten, never SI letters ("10f", "2µ") that read like units
      xaxis: { title: { text: xTitle }, zeroline: false, automargin: true, exponentformat: "power" },
      yaxis: { title: { text: yTitle }, zeroline: false, automargin: true, exponentformat: "power" },
      legend: narrow() ? { orientation: "h", y: -0.3 } : { orientation: "h", y: 1.12 },
      hovermode: "x unified",
      font: { family: "system-ui, sans-serif", size: 13 },
      paper_bgcolor: "#fff", plot_bgcolor: "#fff",
    }, extra || {});
  }
  const plotConfig = { responsive: true, displaylogo: false,
                       modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  /* A shaded band (p05–p95) as two traces: the upper edge, then the lower edge filled up to it. */
  function band(x, lo, hi, name, color, group) {
    return [
      { x, y: hi, type: "scatter", mode: "lines", line: { width: 0 }, name: name + " p95",
        legendgroup: group, showlegend: false, hoverinfo: "skip" },
      { x, y: lo, type: "scatter", mode: "lines", line: { width: 0 }, fill: "tonexty",
        fillcolor: color, name: name, legendgroup: group, hoverinfo: "skip" },
    ];
  }

  const fmt = {
    num(v, d) { return v === null || v === undefined || !isFinite(v) ? "–" : Number(v).toFixed(d === undefined ? 0 : d); },
    pct(v, d) { return v === null || v === undefined || !isFinite(v) ? "–" : (100 * v).toFixed(d === undefined ? 1 : d) + " %"; },
    /* "p50 (p05–p95)"; a missing bound lies beyond the forecast ("beyond"). */
    q(q, d) {
      if (!q || q.p50 === null || q.p50 === undefined) return "–";
      const b = (v) => v === null || v === undefined ? "beyond" : fmt.num(v, d);
      return fmt.num(q.p50, d) + " (" + b(q.p05) + "–" + b(q.p95) + ")";
    },
    when(iso) {
      if (!iso) return "–";
      const t = new Date(iso);
      return isNaN(t) ? iso : t.toISOString().replace("T", " ").slice(0, 16) + " UTC";
    },
  };

  /* Capacity unit: mAh for small (lab) cells, Ah otherwise. */
  function capUnit(refAh) { return refAh < 0.5 ? { name: "mAh", k: 1000 } : { name: "Ah", k: 1 }; }

  function showError(where, err) {
    const msg = err && err.body && err.body.code ? err.body.code + ": " + err.message : String(err && err.message || err);
    where.replaceChildren(el("p", { class: "error", role: "alert" }, msg));
  }

  function markReady() {
    perf.readyMs = performance.now();
    document.body.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === config.page) a.setAttribute("aria-current", "page");
    }
    const tb = document.getElementById("token-button");
    const label = () => { tb.textContent = token.get() ? "Access token ✓" : "Access token…"; };
    label();
    tb.addEventListener("click", async () => { await token.ask(); label(); });
  });

  window.FC = { config, C, SERIES, el, api, ApiError, token, plotly, layout, plotConfig, band,
                fmt, capUnit, showError, markReady, perf, narrow };
})();
