// The dashboards pages: a new dashboard, and one dashboard's cells drawn with uPlot (vendored,
// /admin/assets/vendor/uplot/) over the series query API. Loaded after panel.js, whose api(),
// show(), pageError(), errorMessage(), markFields() and clearFields() it uses. Everything is
// written with textContent and DOM properties: no markup from data, no inline style (uPlot sets
// element styles through the CSSOM, which the page's CSP allows).
"use strict";

const RANGES = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000 };
const WINDOWS = [10, 30, 60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400];
const PALETTE = ["#2753c9", "#c2410c", "#1d7a46", "#9333ea", "#b3261e", "#0e7490", "#9a6400", "#475569"];
const FIXED_METRICS = ["duration_milliseconds", "insights.executions", "insights.failures"];
const KIND_NAMES = {
  graph: "Graph", single_stat: "Single Stat", graph_single_stat: "Graph + Single Stat",
  gauge: "Gauge", table: "Table of latest payloads",
};
/** Pixels per grid row (CSS `grid-auto-rows` in panel.css says the same). */
const ROW = 72;

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") e.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role") e.setAttribute(k, v);
    else e[k] = v;
  }
  e.append(...children);
  return e;
}

/** `every` as the API writes it (`90` → `1m30s`). */
function duration(seconds) {
  let s = seconds, out = "";
  for (const [unit, len] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    if (s >= len) { out += Math.floor(s / len) + unit; s %= len; }
  }
  return out || "0s";
}

/** Windows for a range: about 150 of them, of a length the rollups serve well. */
function autoEvery(seconds) {
  return duration(WINDOWS.find((w) => w >= seconds / 150) ?? 86400);
}

function formatValue(v, display) {
  if (v === null || v === undefined) return "—";
  const digits = display?.decimals ?? 2;
  const unit = display?.unit ? " " + display.unit : "";
  return v.toFixed(digits) + unit;
}

function colorFor(v, display) {
  let color = "";
  for (const t of display?.thresholds ?? []) if (v !== null && v >= t.value) color = t.color;
  return color;
}

function localInput(date) {
  const d = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

// ---- A new dashboard ----

function newDashboard() {
  const form = document.getElementById("new-dashboard");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFields(form);
    const r = await api("POST", "/v1/admin/dashboards", { name: form.elements.name.value.trim(), cells: [] });
    if (r.status !== 201) {
      if (!markFields(form, r.body?.error)) pageError(errorMessage(r.body, "Creating the dashboard failed."));
      return;
    }
    location.assign("/admin/dashboards/" + encodeURIComponent(r.body.id));
  });
}

// ---- One dashboard ----

function dashboardView() {
  const grid = document.getElementById("cells");
  if (!grid) return;
  const url = "/v1/admin/dashboards/" + encodeURIComponent(grid.dataset.dashboardId);
  const range = document.getElementById("range");
  const custom = document.getElementById("custom-range");
  const customFrom = document.getElementById("custom-from");
  const customTo = document.getElementById("custom-to");
  const refresh = document.getElementById("refresh");
  const versionFilter = document.getElementById("version-filter");
  const compare = document.getElementById("compare");
  const updated = document.getElementById("updated");
  let dashboard = null;
  /** Charts on the page, resized with it: {u, box, height}. */
  let charts = [];
  let inFlight = false;
  let refreshes = 0;

  /** The range asked for: `from` and `to` as the API takes them, and its length. */
  function span() {
    if (range.value !== "custom") return { from: "-" + range.value, to: "now", seconds: RANGES[range.value] };
    const from = new Date(customFrom.value), to = new Date(customTo.value);
    if (isNaN(from) || isNaN(to) || from >= to) return null;
    return { from: from.toISOString(), to: to.toISOString(), seconds: (to - from) / 1000 };
  }

  /** Reads what a cell shows: series (filtered as the controls say) or payloads. */
  async function load(cell, s) {
    const q = cell.query;
    const version = versionFilter.value;
    if (cell.kind === "table") {
      let u = `/v1/admin/insights/payloads?algorithm=${encodeURIComponent(q.algorithm)}&limit=10`;
      if (version) u += "&version=" + encodeURIComponent(version);
      const r = await api("GET", u, undefined, true);
      if (r.status !== 200) throw new Error(errorMessage(r.body, "The payloads could not be read."));
      return { payloads: r.body };
    }
    const single = cell.kind === "single_stat" || cell.kind === "gauge";
    const every = (single ? q.window : null) ?? q.every ?? autoEvery(s.seconds);
    const params = new URLSearchParams({ algorithm: q.algorithm, metric: q.metric, fn: q.fn ?? "mean", every, from: s.from, to: s.to });
    if (version) params.set("version", version);
    const r = await api("GET", "/v1/admin/insights/series?" + params, undefined, true);
    if (r.status !== 200) throw new Error(errorMessage(r.body, "The series could not be read."));
    let series = r.body.series;
    if (!compare.checked && Array.isArray(q.versions)) series = series.filter((x) => q.versions.includes(x.version));
    return { every: r.body.every, from: r.body.from, to: r.body.to, series };
  }

  /** The latest value of each version when comparing, else of the newest version shown. */
  function stats(cell, data) {
    const shown = compare.checked ? data.series : data.series.slice(-1);
    const box = el("div", { className: "stats" });
    for (const s of shown) {
      const last = s.points[s.points.length - 1];
      const v = last ? last.value : null;
      const value = el("span", { className: "stat-value", text: formatValue(v, cell.display) });
      const color = colorFor(v, cell.display);
      if (color) value.style.color = color;
      const stat = el("p", { className: "stat", "data-version": s.version, "data-value": v === null ? "" : String(v) },
        value, el("span", { className: "stat-version", text: " " + s.version }));
      box.append(stat);
      if (cell.kind === "gauge") {
        box.append(el("meter", { min: cell.display.min, max: cell.display.max, value: v ?? cell.display.min, "aria-label": `${cell.title}, version ${s.version}` }));
      }
    }
    if (!shown.length) box.append(el("p", { className: "stat empty", text: "No data in this range" }));
    return box;
  }

  function graph(box, cell, data, height) {
    const xs = [...new Set(data.series.flatMap((s) => s.points.map((p) => Date.parse(p.time) / 1000)))].sort((a, b) => a - b);
    const points = data.series.reduce((n, s) => n + s.points.length, 0);
    box.setAttribute("role", "img");
    box.setAttribute("aria-label", `${cell.title}: ${cell.query.fn ?? "mean"} of ${cell.query.metric} per ${data.every}, ` +
      `${data.series.length} version${data.series.length === 1 ? "" : "s"}, ${points} point${points === 1 ? "" : "s"}`);
    if (!xs.length) {
      box.append(el("p", { className: "empty", text: "No data in this range" }));
      return;
    }
    const ys = data.series.map((s) => {
      const at = new Map(s.points.map((p) => [Date.parse(p.time) / 1000, p.value]));
      return xs.map((x) => (at.has(x) ? at.get(x) : null));
    });
    const d = cell.display ?? {};
    const opts = {
      width: Math.max(box.clientWidth, 200),
      height,
      series: [{}, ...data.series.map((s, i) => ({
        label: s.version, stroke: PALETTE[i % PALETTE.length], width: 2,
        points: { show: true, size: 5 }, value: (u, v) => formatValue(v, d),
      }))],
      axes: [{}, { values: (u, vals) => vals.map((v) => (d.unit ? v + " " + d.unit : String(v))), size: 60 }],
      // The x axis is the range asked for, so that a few points sit where they belong in it.
      scales: {
        x: { time: true, range: [Date.parse(data.from) / 1000, Date.parse(data.to) / 1000] },
        ...(d.min !== undefined && d.max !== undefined ? { y: { range: [d.min, d.max] } } : {}),
      },
    };
    const u = new uPlot(opts, [xs, ...ys], box);
    charts.push({ u, box, height });
  }

  function numbers(cell, data) {
    const table = el("table");
    table.append(el("caption", { text: cell.title }));
    if (cell.kind === "table") {
      const rows = data.payloads;
      const keys = cell.query.metric
        ? ["time", "algorithm_version", cell.query.metric, "duration_milliseconds"]
        : Object.keys(rows[0] ?? { time: 0, algorithm_version: 0 }).slice(0, 12);
      table.append(el("thead", {}, el("tr", {}, ...keys.map((k) => el("th", { scope: "col", text: k })))));
      table.append(el("tbody", {}, ...rows.map((p) => el("tr", {}, ...keys.map((k) => el("td", { text: p[k] === undefined ? "" : String(p[k]) }))))));
      return table;
    }
    const versions = data.series.map((s) => s.version);
    const byTime = new Map();
    data.series.forEach((s, i) => {
      for (const p of s.points) {
        if (!byTime.has(p.time)) byTime.set(p.time, []);
        byTime.get(p.time)[i] = p;
      }
    });
    table.append(el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Window start" }),
      ...versions.map((v) => el("th", { scope: "col", text: `${v} (count)` })))));
    const body = el("tbody");
    for (const t of [...byTime.keys()].sort()) {
      const row = el("tr", {}, el("th", { scope: "row", text: new Date(t).toLocaleString() }));
      versions.forEach((v, i) => {
        const p = byTime.get(t)[i];
        row.append(p
          ? el("td", { "data-count": String(p.count), "data-value": p.value === null ? "" : String(p.value), text: `${formatValue(p.value, cell.display)} (${p.count})` })
          : el("td", { text: "" }));
      });
      body.append(row);
    }
    table.append(body);
    return table;
  }

  /** Draws `cell` into `box` (a grid cell or the editor's preview). */
  async function draw(box, cell, s, height) {
    box.dataset.state = "loading";
    const content = el("div", { className: "cell-body" });
    try {
      const data = await load(cell, s);
      if (data.every) box.dataset.every = data.every;
      const open = box.querySelector("details")?.open ?? false;
      if (cell.kind === "single_stat" || cell.kind === "gauge" || cell.kind === "graph_single_stat") content.append(stats(cell, data));
      const oldCharts = charts.filter((c) => box.contains(c.box));
      box.querySelector(".cell-body")?.replaceWith(content);
      if (!content.isConnected) box.append(content);
      for (const c of oldCharts) c.u.destroy();
      charts = charts.filter((c) => !oldCharts.includes(c));
      if (cell.kind === "graph" || cell.kind === "graph_single_stat") {
        const chart = el("div", { className: "chart" });
        content.append(chart);
        graph(chart, cell, data, cell.kind === "graph" ? height : height - 56);
      }
      const details = el("details", { open }, el("summary", { text: cell.kind === "table" ? "Latest payloads" : "Numbers as a table" }));
      details.append(el("div", { className: "table-wrap" }, numbers(cell, data)));
      if (cell.kind === "table") details.open = true;
      content.append(details);
      box.dataset.state = "ready";
    } catch (e) {
      content.append(el("p", { className: "form-error", role: "alert", text: e.message }));
      box.querySelector(".cell-body")?.replaceWith(content);
      if (!content.isConnected) box.append(content);
      box.dataset.state = "error";
    }
  }

  function chartHeight(cell) {
    return Math.max(140, cell.position.h * ROW - 90);
  }

  function drawAll() {
    const s = span();
    if (!s) { pageError("Choose a custom range whose start is before its end."); return Promise.resolve(); }
    pageError("");
    return Promise.all([...grid.querySelectorAll(".cell")].map((box) => {
      const cell = dashboard.cells[Number(box.dataset.index)];
      return draw(box, cell, s, chartHeight(cell));
    }));
  }

  /** Lays the cells out on the grid and draws them. */
  function build() {
    for (const c of charts) c.u.destroy();
    charts = [];
    grid.replaceChildren();
    document.getElementById("no-cells").hidden = dashboard.cells.length > 0;
    dashboard.cells.forEach((cell, i) => {
      const title = el("h2", { id: `cell-${i}-title`, text: cell.title });
      const edit = el("button", { type: "button", className: "edit-cell", text: "Edit", "aria-label": `Edit cell ${cell.title}` });
      const remove = el("button", { type: "button", className: "danger remove-cell", text: "Remove", "aria-label": `Remove cell ${cell.title}` });
      edit.addEventListener("click", () => openEditor(i));
      remove.addEventListener("click", () => removeCell(i));
      const box = el("section", { className: "cell", "data-index": String(i), "data-kind": cell.kind, "aria-labelledby": `cell-${i}-title` },
        el("header", {}, title, el("span", { className: "cell-actions" }, edit, remove)));
      box.style.gridColumn = `${cell.position.x + 1} / span ${cell.position.w}`;
      box.style.gridRow = `${cell.position.y + 1} / span ${cell.position.h}`;
      grid.append(box);
    });
    return refreshAll();
  }

  async function refreshAll() {
    if (inFlight || !dashboard) return;
    inFlight = true;
    try {
      await drawAll();
      refreshes += 1;
      grid.dataset.refreshes = String(refreshes);
      say(updated, "Updated " + new Date().toLocaleTimeString());
    } finally {
      inFlight = false;
    }
  }

  async function saveCells(cells) {
    const r = await api("PUT", url, { name: dashboard.name, cells });
    if (r.status === 200) {
      dashboard = r.body;
      document.getElementById("default-notice")?.remove();
    }
    return r;
  }

  async function removeCell(i) {
    if (!confirm(`Remove the cell "${dashboard.cells[i].title}"?`)) return;
    const r = await saveCells(dashboard.cells.filter((_, j) => j !== i));
    if (r.status !== 200) pageError(errorMessage(r.body, "Removing the cell failed."));
    else await build();
  }

  // ---- The cell editor ----

  const dialog = document.getElementById("cell-dialog");
  const form = document.getElementById("cell-form");
  const preview = document.getElementById("cell-preview");
  const f = form.elements;
  let editing = null;
  let titleTyped = false;
  let previewTimer = null;

  async function loadMetrics(algorithm, selected) {
    const select = f.metric;
    select.replaceChildren(el("option", { value: "", text: algorithm ? "Loading…" : "Choose an algorithm first" }));
    if (!algorithm) return;
    const r = await api("GET", "/v1/admin/insights/metrics?algorithm=" + encodeURIComponent(algorithm));
    const seen = new Set();
    if (r.status === 200) for (const v of r.body.versions) for (const m of v.metrics) seen.add(m.metric);
    const reported = [...seen].filter((m) => !FIXED_METRICS.includes(m)).sort();
    select.replaceChildren(el("option", { value: "", text: "Choose a metric" }),
      ...reported.map((m) => el("option", { value: m, text: m })),
      ...FIXED_METRICS.map((m) => el("option", { value: m, text: m })));
    if (selected) {
      if (![...select.options].some((o) => o.value === selected)) select.append(el("option", { value: selected, text: selected }));
      select.value = selected;
    }
    select.dataset.algorithm = algorithm;
  }

  function nextPosition(w) {
    const cells = dashboard.cells;
    const last = cells[cells.length - 1];
    if (last && last.position.x + last.position.w + w <= 12) return { x: last.position.x + last.position.w, y: last.position.y, w, h: 4 };
    const bottom = cells.reduce((m, c) => Math.max(m, c.position.y + c.position.h), 0);
    return { x: 0, y: bottom, w, h: 4 };
  }

  function autoTitle() {
    return f.metric.value ? `${f.metric.value} (${f.fn.value})` : "";
  }

  /** The cell the form describes. */
  function formCell() {
    const old = editing === null ? null : dashboard.cells[editing];
    const w = Number(f.width.value);
    const display = { ...(old?.display ?? {}) };
    for (const k of ["unit", "decimals", "min", "max"]) delete display[k];
    if (f.unit.value.trim()) display.unit = f.unit.value.trim();
    if (f.decimals.value !== "") display.decimals = Number(f.decimals.value);
    if (f.min.value !== "") display.min = Number(f.min.value);
    if (f.max.value !== "") display.max = Number(f.max.value);
    const query = { ...(old?.query ?? {}), algorithm: f.algorithm.value, fn: f.fn.value };
    if (f.metric.value) query.metric = f.metric.value; else delete query.metric;
    if (!query.versions) query.versions = "all";
    let position = old ? { ...old.position, w, x: Math.min(old.position.x, 12 - w) } : nextPosition(w);
    return { title: f.title.value.trim() || autoTitle(), kind: f.kind.value, query, display, position };
  }

  function clearCellErrors() {
    for (const slot of form.querySelectorAll(".field-error")) show(slot, "");
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    show(document.getElementById("cell-form-error"), "");
  }

  const FIELD_OF = {
    title: "title", kind: "kind", "query.algorithm": "algorithm", "query.metric": "metric", "query.fn": "fn",
    "display.unit": "unit", "display.decimals": "decimals", "display.min": "min", "display.max": "max",
  };

  /** Puts the API's errors next to the editor's fields; answers whether any was placed. */
  function markCellErrors(error) {
    const fields = error?.fields?.length ? error.fields : error?.field ? [{ field: error.field, message: error.message }] : [];
    let marked = false;
    for (const e of fields) {
      const name = FIELD_OF[e.field.replace(/^cells\[\d+\]\./, "")];
      const slot = name && document.getElementById("error-cell-" + name);
      if (!slot) continue;
      show(slot, e.message);
      f[name]?.setAttribute("aria-invalid", "true");
      if (!marked) f[name]?.focus();
      marked = true;
    }
    return marked;
  }

  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(drawPreview, 250);
  }

  async function drawPreview() {
    const cell = formCell();
    for (const c of charts.filter((c) => preview.contains(c.box))) c.u.destroy();
    charts = charts.filter((c) => !preview.contains(c.box));
    preview.replaceChildren();
    delete preview.dataset.state;
    if (!cell.query.algorithm || (!cell.query.metric && cell.kind !== "table")) {
      preview.append(el("p", { className: "hint", text: "Choose an algorithm and a metric to see the cell." }));
      return;
    }
    if (cell.kind === "gauge" && (cell.display.min === undefined || cell.display.max === undefined)) {
      preview.append(el("p", { className: "hint", text: "A gauge needs a minimum and a maximum (under Display)." }));
      return;
    }
    const s = span();
    if (!s) return;
    preview.append(el("h3", { className: "preview-title", text: `${cell.title} · ${KIND_NAMES[cell.kind]}` }));
    await draw(preview, cell, s, 220);
  }

  async function openEditor(index) {
    editing = index;
    clearCellErrors();
    const cell = index === null ? null : dashboard.cells[index];
    document.getElementById("cell-dialog-title").textContent = cell ? "Edit cell" : "Add cell";
    f.kind.value = cell?.kind ?? "graph_single_stat";
    f.algorithm.value = cell?.query.algorithm ?? (f.algorithm.options.length === 2 ? f.algorithm.options[1].value : "");
    f.fn.value = cell?.query.fn ?? "mean";
    f.title.value = cell?.title ?? "";
    titleTyped = !!cell;
    f.unit.value = cell?.display?.unit ?? "";
    f.decimals.value = cell?.display?.decimals ?? 2;
    f.min.value = cell?.display?.min ?? "";
    f.max.value = cell?.display?.max ?? "";
    f.width.value = String(cell?.position.w ?? 6);
    if (![...f.width.options].some((o) => o.value === f.width.value)) f.width.append(el("option", { value: f.width.value, text: f.width.value }));
    dialog.showModal();
    await loadMetrics(f.algorithm.value, cell?.query.metric);
    drawPreview();
  }

  f.algorithm.addEventListener("change", async () => {
    await loadMetrics(f.algorithm.value, null);
    if (!titleTyped) f.title.value = autoTitle();
    schedulePreview();
  });
  for (const name of ["kind", "metric", "fn"]) {
    f[name].addEventListener("change", () => {
      if (!titleTyped) f.title.value = autoTitle();
      schedulePreview();
    });
  }
  f.title.addEventListener("input", () => { titleTyped = f.title.value !== ""; schedulePreview(); });
  for (const name of ["unit", "decimals", "min", "max", "width"]) f[name].addEventListener("change", schedulePreview);
  document.getElementById("cancel-cell").addEventListener("click", () => dialog.close());
  document.getElementById("add-cell").addEventListener("click", () => openEditor(null));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearCellErrors();
    const cell = formCell();
    const cells = [...dashboard.cells];
    if (editing === null) cells.push(cell); else cells[editing] = cell;
    const button = document.getElementById("save-cell");
    button.disabled = true;
    try {
      const r = await saveCells(cells);
      if (r.status !== 200) {
        if (!markCellErrors(r.body?.error)) show(document.getElementById("cell-form-error"), errorMessage(r.body, "Saving the cell failed."));
        return;
      }
      dialog.close();
      await build();
    } catch (e) {
      show(document.getElementById("cell-form-error"), "The server could not be reached: " + e.message);
    } finally {
      button.disabled = false;
    }
  });

  // ---- Controls ----

  range.addEventListener("change", () => {
    custom.hidden = range.value !== "custom";
    if (range.value === "custom" && !customFrom.value) {
      const now = new Date();
      customFrom.value = localInput(new Date(now - 3600000));
      customTo.value = localInput(now);
    }
    refreshAll();
  });
  for (const c of [customFrom, customTo, versionFilter, compare]) c.addEventListener("change", refreshAll);
  document.getElementById("refresh-now").addEventListener("click", refreshAll);
  let timer = null;
  refresh.addEventListener("change", () => {
    clearInterval(timer);
    const seconds = Number(refresh.value);
    if (seconds > 0) timer = setInterval(() => { if (!document.hidden) refreshAll().catch(() => {}); }, seconds * 1000);
  });
  document.getElementById("delete-dashboard")?.addEventListener("click", async () => {
    if (!confirm(`Delete the dashboard "${dashboard.name}"?`)) return;
    const r = await api("DELETE", url);
    if (r.status === 204) location.assign("/admin/dashboards");
    else pageError(errorMessage(r.body, "Deleting the dashboard failed."));
  });
  new ResizeObserver(() => {
    for (const c of charts) c.u.setSize({ width: Math.max(c.box.clientWidth, 200), height: c.height });
  }).observe(grid);

  (async () => {
    const r = await api("GET", url);
    if (r.status !== 200) { pageError(errorMessage(r.body, "The dashboard could not be read.")); return; }
    dashboard = r.body;
    await build();
  })();
}

newDashboard();
dashboardView();
