/* Model page: the model card (training sources, domain, calibration) and its MLflow run. */
"use strict";
(function () {
  const { el, api, fmt } = window.FC;

  function kv(obj) {
    return el("dl", { class: "kv" }, Object.entries(obj).filter(([, v]) => v !== undefined).map(([k, v]) => [
      el("dt", {}, k), el("dd", {}, v === null ? "–" : (typeof v === "object" ? JSON.stringify(v) : String(v)))]));
  }
  const range = (r) => Array.isArray(r) && r.length === 2 ? fmt.num(r[0], 3) + " – " + fmt.num(r[1], 3) : (r === null || r === undefined ? "–" : String(r));
  const UNITS = { c_rate: "1/h (C)", hours_per_cycle: "h", cycles_seen: "cycles per cell", cycle_index: "cycle",
                  temperature_celsius: "°C", retention: "fraction of reference", reference_capacity_ah: "Ah",
                  history_cycles: "cycles of history" };

  function table(caption, head, rows, id) {
    return el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
      el("table", { id }, el("caption", { class: "note", style: "text-align:left" }, caption),
        el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) => i === 0 ? el("th", { scope: "row" }, c) : el("td", {}, c)))))));
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const main = document.getElementById("main");
    try {
      const m = await api("/v1/views/model");
      const dom = m.training_domain || {};
      const run = m.mlflow || {};
      const conf = m.conformal || {};
      const confRows = Object.entries(conf).filter(([, v]) => v && typeof v === "object" && "scale" in v)
        .map(([k, v]) => [k, fmt.num(v.scale, 3), fmt.num(v.eps, 3), v.n === undefined ? "–" : String(v.n), v.n_cells === undefined ? "–" : String(v.n_cells), v.level === undefined ? "–" : fmt.pct(v.level, 0)]);
      main.replaceChildren(
        el("h1", {}, "Model " + m.name + " v" + m.version),
        el("p", { class: "sub" }, "Created " + fmt.when(m.created_utc) + " · dataset hash " + String(m.dataset_hash || "–").slice(0, 16) + "…"),
        el("div", {},
          el("section", { class: "card", "aria-labelledby": "dom-title" },
            el("h2", { id: "dom-title" }, "Training sources and domain"),
            el("p", {}, "Sources: ", el("b", { id: "model-sources" }, (dom.sources || []).join(", ") || "–"),
              " · " + (dom.n_cells === undefined ? "?" : dom.n_cells) + " training cells · chemistry: " + ((dom.chemistry || []).join(", ") || "not stated")),
            (m.training_data || []).length ? table("Training data (from the card)", ["source", "role", "cells", "chemistry", "split (train/val/calib/test)", "licence", "citation"],
              m.training_data.map((d) => [d.source, d.role || "", String(d.cells === undefined ? "–" : d.cells), d.chemistry || "–",
                d.split ? ["train", "val", "calib", "test"].map((k) => d.split[k] === undefined ? "–" : d.split[k]).join(" / ") : "–",
                d.licence || "–", d.citation || "–"]), "training-data-table") : null,
            table("Ranges seen in training (advice flags a cell outside them)", ["quantity", "range", "unit"],
              Object.entries(dom).filter(([k]) => !["sources", "n_cells", "chemistry"].includes(k)).map(([k, v]) => [k, range(v), UNITS[k] || ""]), "domain-table")),
          el("section", { class: "card", "aria-labelledby": "run-title" },
            el("h2", { id: "run-title" }, "MLflow run"),
            run.run_id ? kv({ "run id": run.run_id, experiment: run.experiment, "run name": run.run_name, status: run.status,
                              started: run.start_time_unix ? new Date(run.start_time_unix * 1000).toISOString() : undefined,
                              registered: run.registered === undefined ? undefined
                                : (run.registered.map((r) => r.name + " v" + r.version + (r.aliases.length ? " @" + r.aliases.join(",") : "")).join("; ") || "not registered"),
                              "tracking store": run.tracking_uri, "open with": run.open_with })
                       : el("p", { class: "note", id: "run-note" }, run.note || "no run recorded"),
            run.run_id && run.note ? el("p", { class: "note", id: "run-note" }, run.note) : null)),
        el("section", { class: "card", "aria-labelledby": "cal-title" },
          el("h2", { id: "cal-title" }, "Calibration"),
          el("p", { class: "note" }, "Split-conformal widening of the model's 5–95 % band, fitted on validation cells (never the cells that picked epochs): band ± scale × (width + eps). The advice widens bands further by " + fmt.num(m.advice_interval_scale, 3) + "× from the measured coverage."),
          table("Conformal constants", ["quantity", "scale", "eps", "points", "cells", "level"], confRows, "conformal-table"),
          Object.keys(m.calibration_metrics || {}).length
            ? table("Measured on validation / test cells", ["metric", "value"], Object.entries(m.calibration_metrics).map(([k, v]) => [k, fmt.num(v, 4)]), "calibration-table")
            : el("p", { class: "note" }, "The card records no coverage figures (a quick model trained outside `fadecast train`).")),
        el("details", { class: "card" }, el("summary", {}, "Features, window and architecture"),
          table("Input features", ["name", "unit", "transform"], (m.features || []).map((f) => [f.name, f.unit || "", f.transform || ""]), "features-table"),
          kv({ window: m.window, quantile_levels: m.quantile_levels, architecture: m.architecture, reference_capacity: m.reference_capacity })));
    } catch (err) { window.FC.showError(main, err); }
    window.FC.markReady();
  });
})();
