// The dashboards pages: a new dashboard, and one dashboard's cells drawn with uPlot (vendored,
// /admin/assets/vendor/uplot/) over the series query API, tables over the payloads API, gauges
// as SVG. The cell editor edits every field of a cell the API takes and puts the API's errors,
// which name the field (`cells[2].display.thresholds[1].value`), next to that field. Loaded
// after panel.js, whose api(), show(), pageError(), errorMessage(), markFields() and
// clearFields() it uses. A graph whose algorithm and metric a threshold check watches also
// shows that check: its thresholds as lines in their level's color, and a mark where a series'
// level changed (`/v1/admin/checks`, `/v1/admin/statuses`). Everything is written with
// textContent and DOM properties: no markup from data, no inline style (uPlot and the stat
// colors set element styles through the CSSOM, and SVG colors are presentation attributes, both
// of which the page's CSP allows).
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
const GRID_COLUMNS = 12;
/** Rows of a table cell (the payloads API's `limit`). */
const TABLE_ROWS = 10;
const MAX_THRESHOLDS = 10;
/** New thresholds' colors, in order: amber, red, then the palette. */
const THRESHOLD_COLORS = ["#e0a000", "#b3261e", ...PALETTE];
/** Keys of a payload a table leaves out (the same in every row, or long and unhelpful). */
const TABLE_SKIP = ["algorithm_name", "algorithm_owner", "session_id"];
/** Operational keys a table shows after the metrics, when the payloads have them. */
const TABLE_TAIL = ["duration_milliseconds", "status", "error_type", "request_id"];
const GRAPH_KINDS = ["graph", "graph_single_stat"];
/** The alerting levels' colors (the Alerts page's). */
const LEVEL_COLORS = { crit: "#b3261e", warn: "#b86e00", info: "#2753c9", ok: "#1d7a46" };
const STAT_KINDS = ["single_stat", "gauge"];

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

/** The color of the highest threshold at or below `v` ("" below every threshold). */
function colorFor(v, display) {
  let color = "";
  for (const t of display?.thresholds ?? []) {
    if (v !== null && v !== undefined && Number.isFinite(t.value) && v >= t.value) color = t.color;
  }
  return color;
}

/** `#rgb` as `#rrggbb` (what a color input holds). */
function longColor(c) {
  return /^#[0-9a-f]{3}$/i.test(c) ? "#" + [...c.slice(1)].map((x) => x + x).join("") : c.toLowerCase();
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element; colors are presentation attributes, which the CSP does not govern. */
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A half-circle arc of radius `r` from fraction `f0` to `f1` of the way from left to right. */
function arc(f0, f1, r) {
  const at = (f) => {
    const a = Math.PI * (1 - f);
    return `${(100 + r * Math.cos(a)).toFixed(2)} ${(100 - r * Math.sin(a)).toFixed(2)}`;
  };
  return `M ${at(f0)} A ${r} ${r} 0 0 1 ${at(f1)}`;
}

/**
 * A gauge of `v` between the cell's min and max: the track, the thresholds' bands around it,
 * the value's arc and number in its threshold's color. Exposed as an ARIA meter named after the
 * cell and the version.
 */
function gauge(cell, v, version) {
  const d = cell.display ?? {};
  const min = d.min, max = d.max;
  const frac = (x) => Math.min(1, Math.max(0, (x - min) / (max - min)));
  const color = colorFor(v, d);
  const text = v === null ? "No data" : formatValue(v, d);
  const box = el("div", {
    className: "gauge", role: "meter", "aria-label": `${cell.title}, version ${version}`,
    "aria-valuemin": String(min), "aria-valuemax": String(max), "aria-valuetext": text,
  });
  if (v !== null) box.setAttribute("aria-valuenow", String(Math.min(max, Math.max(min, v))));
  const pic = svg("svg", { viewBox: "0 0 200 122", "aria-hidden": "true", focusable: "false", class: "gauge-svg" });
  pic.append(svg("path", { d: arc(0, 1, 78), class: "gauge-track", fill: "none", stroke: "#e3e6ec", "stroke-width": 18 }));
  const ts = (d.thresholds ?? []).filter((t) => Number.isFinite(t.value));
  ts.forEach((t, i) => {
    const f0 = frac(t.value), f1 = frac(i + 1 < ts.length ? ts[i + 1].value : max);
    if (f1 > f0) pic.append(svg("path", { d: arc(f0, f1, 94), class: "gauge-band", fill: "none", stroke: t.color, "stroke-width": 5 }));
  });
  if (v !== null && frac(v) > 0) {
    pic.append(svg("path", { d: arc(0, frac(v), 78), class: "gauge-bar", fill: "none", stroke: color || "#2753c9", "stroke-width": 18 }));
  }
  pic.append(svg("text", { x: 100, y: 94, "text-anchor": "middle", class: "gauge-value", fill: color || "currentColor", "font-size": 24, "font-weight": 700 }, v === null ? "—" : text));
  pic.append(svg("text", { x: 22, y: 118, "text-anchor": "middle", class: "gauge-end", fill: "#5b6478", "font-size": 11 }, String(min)));
  pic.append(svg("text", { x: 178, y: 118, "text-anchor": "middle", class: "gauge-end", fill: "#5b6478", "font-size": 11 }, String(max)));
  box.append(pic);
  return box;
}

/**
 * A check over a graph: each threshold as a solid line in its level's color, labelled at the
 * right; each level change as a vertical dotted line in the new level's color, labelled at
 * the top.
 */
function drawChecks(u, lines, marks) {
  if (!lines.length && !marks.length) return;
  const ctx = u.ctx, ratio = uPlot.pxRatio ?? 1, { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.font = `${10 * ratio}px system-ui, sans-serif`;
  ctx.lineWidth = 1.5 * ratio;
  for (const t of lines) {
    const y = u.valToPos(t.value, "y", true);
    if (!(y >= top && y <= top + height)) continue;
    ctx.strokeStyle = ctx.fillStyle = LEVEL_COLORS[t.level] ?? "#000";
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + width, y);
    ctx.stroke();
    const label = `${t.level} ${t.value}`;
    ctx.fillText(label, left + width - ctx.measureText(label).width - 4 * ratio, y - 3 * ratio);
  }
  ctx.setLineDash([2 * ratio, 3 * ratio]);
  for (const m of marks) {
    const x = u.valToPos(m.time, "x", true);
    if (!(x >= left && x <= left + width)) continue;
    ctx.strokeStyle = ctx.fillStyle = LEVEL_COLORS[m.level] ?? "#000";
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    ctx.beginPath();
    ctx.moveTo(x - 4 * ratio, top);
    ctx.lineTo(x + 4 * ratio, top);
    ctx.lineTo(x, top + 6 * ratio);
    ctx.fill();
    ctx.fillText(m.level, x + 5 * ratio, top + 9 * ratio);
  }
  ctx.restore();
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

  /** The versions a cell asks for when the controls leave it to the cell: null for all. */
  function cellVersions(q) {
    if (versionFilter.value) return [versionFilter.value];
    if (compare.checked || !Array.isArray(q.versions)) return null;
    return q.versions;
  }

  /** The checks, read once per refresh however many graphs ask (null: not read yet). */
  let checksRead = null;

  /**
   * The threshold checks watching the cell's algorithm (or every algorithm) and metric: their
   * thresholds as lines, and their level changes in the range as marks, oldest first.
   */
  async function checkOverlay(cell, s) {
    checksRead ??= api("GET", "/v1/admin/checks", undefined, true)
      .then((r) => (r.status === 200 ? r.body.checks : []))
      .catch(() => []);
    const q = cell.query;
    const checks = (await checksRead).filter((c) => c.kind === "threshold" && c.enabled !== false && c.query.metric === q.metric
      && (c.query.algorithm === q.algorithm || c.query.algorithm === "*"));
    const lines = [];
    for (const c of checks) {
      for (const t of c.thresholds ?? []) {
        for (const v of t.type.endsWith("_range") ? [t.min, t.max] : [t.value]) {
          if (Number.isFinite(v)) lines.push({ level: t.level, value: v, check: c.name });
        }
      }
    }
    const marks = [];
    await Promise.all(checks.map(async (c) => {
      const p = new URLSearchParams({ check: c.id, from: s.from, limit: "1000" });
      if (s.to !== "now") p.set("to", s.to);
      const r = await api("GET", "/v1/admin/statuses?" + p, undefined, true).catch(() => null);
      for (const st of r?.status === 200 ? r.body.statuses : []) {
        if (st.algorithm !== q.algorithm) continue;
        marks.push({ time: Date.parse(st.window_end) / 1000, version: st.version, level: st.level, from: st.previous_level, check: c.name });
      }
    }));
    marks.sort((a, b) => a.time - b.time);
    return { lines, marks };
  }

  /** Reads what a cell shows: series (filtered as the controls say) or payloads. */
  async function load(cell, s) {
    const q = cell.query;
    const versions = cellVersions(q);
    if (cell.kind === "table") {
      // The payloads API takes one version: one request per version asked for, merged.
      const lists = await Promise.all((versions ?? [null]).map(async (v) => {
        let u = `/v1/admin/insights/payloads?algorithm=${encodeURIComponent(q.algorithm)}&limit=${TABLE_ROWS}`;
        if (v) u += "&version=" + encodeURIComponent(v);
        const r = await api("GET", u, undefined, true);
        if (r.status !== 200) throw new Error(errorMessage(r.body, "The payloads could not be read."));
        return r.body;
      }));
      const payloads = lists.flat().sort((a, b) => String(b.time).localeCompare(String(a.time))).slice(0, TABLE_ROWS);
      return { payloads };
    }
    const single = STAT_KINDS.includes(cell.kind);
    const every = (single ? q.window : null) ?? q.every ?? autoEvery(s.seconds);
    const params = new URLSearchParams({ algorithm: q.algorithm, metric: q.metric, fn: q.fn ?? "mean", every, from: s.from, to: s.to });
    if (versions?.length === 1) params.set("version", versions[0]);
    const [r, alerts] = await Promise.all([
      api("GET", "/v1/admin/insights/series?" + params, undefined, true),
      GRAPH_KINDS.includes(cell.kind) && q.metric ? checkOverlay(cell, s) : null,
    ]);
    if (r.status !== 200) throw new Error(errorMessage(r.body, "The series could not be read."));
    let series = r.body.series;
    if (versions) series = series.filter((x) => versions.includes(x.version));
    return { every: r.body.every, from: r.body.from, to: r.body.to, series, alerts };
  }

  /** The latest value of each version when comparing, else of the newest version shown. */
  function stats(cell, data) {
    const shown = compare.checked ? data.series : data.series.slice(-1);
    const box = el("div", { className: "stats" });
    for (const s of shown) {
      const last = s.points[s.points.length - 1];
      const v = last ? last.value : null;
      const color = colorFor(v, cell.display);
      const attrs = { "data-version": s.version, "data-value": v === null ? "" : String(v), "data-color": color };
      if (cell.kind === "gauge") {
        box.append(el("div", { className: "stat stat-gauge", ...attrs },
          gauge(cell, v, s.version), el("span", { className: "stat-version", text: s.version })));
        continue;
      }
      const value = el("span", { className: "stat-value", text: formatValue(v, cell.display) });
      if (color) value.style.color = color;
      box.append(el("p", { className: "stat", ...attrs }, value, el("span", { className: "stat-version", text: " " + s.version })));
    }
    if (!shown.length) box.append(el("p", { className: "stat empty", text: "No data in this range" }));
    return box;
  }

  function graph(box, cell, data, height) {
    const xs = [...new Set(data.series.flatMap((s) => s.points.map((p) => Date.parse(p.time) / 1000)))].sort((a, b) => a - b);
    const points = data.series.reduce((n, s) => n + s.points.length, 0);
    // The checks' thresholds, and the level changes of the versions drawn.
    const shownVersions = data.series.map((s) => s.version);
    const checkLines = data.alerts?.lines ?? [];
    const marks = (data.alerts?.marks ?? []).filter((m) => shownVersions.includes(m.version));
    box.setAttribute("role", "img");
    box.setAttribute("aria-label", `${cell.title}: ${cell.query.fn ?? "mean"} of ${cell.query.metric} per ${data.every}, ` +
      `${data.series.length} version${data.series.length === 1 ? "" : "s"}` +
      (data.series.length ? ` (${data.series.map((s) => s.version).join(", ")})` : "") +
      `, ${points} point${points === 1 ? "" : "s"}` +
      (checkLines.length ? `; checked: ${checkLines.map((t) => `${t.level} at ${t.value} (${t.check})`).join(", ")}` : "") +
      (marks.length ? `; level changes: ${marks.map((m) => `${m.version} ${m.from} to ${m.level} at ${new Date(m.time * 1000).toLocaleTimeString()}`).join(", ")}` : ""));
    box.dataset.versions = data.series.map((s) => s.version).join(" ");
    if (data.alerts) {
      box.dataset.checkThresholds = checkLines.map((t) => `${t.level} ${t.value}`).join(", ");
      box.dataset.checkMarks = marks.map((m) => `${m.version} ${m.level}`).join(", ");
    }
    if (!xs.length) {
      box.append(el("p", { className: "empty", text: "No data in this range" }));
      return;
    }
    const ys = data.series.map((s) => {
      const at = new Map(s.points.map((p) => [Date.parse(p.time) / 1000, p.value]));
      return xs.map((x) => (at.has(x) ? at.get(x) : null));
    });
    const d = cell.display ?? {};
    const thresholds = (d.thresholds ?? []).filter((t) => Number.isFinite(t.value));
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
        ...(d.min !== undefined || d.max !== undefined
          ? { y: { range: (u, lo, hi) => { const a = d.min ?? Math.min(lo, d.max - 1), b = d.max ?? Math.max(hi, d.min + 1); return [a, b]; } } }
          // Without a range of its own, the axis reaches the checks' thresholds.
          : checkLines.length ? { y: { range: (u, lo, hi) => {
            const vs = checkLines.map((t) => t.value);
            const a = Math.min(lo ?? Infinity, ...vs), b = Math.max(hi ?? -Infinity, ...vs);
            const pad = (b - a) * 0.08 || Math.abs(b) * 0.1 || 1;
            return [a - pad, b + pad];
          } } } : {}),
      },
      // Each threshold as a dashed line of its color across the plot.
      hooks: {
        draw: [(u) => {
          // The vertical scale drawn, for whoever checks it against the cell's min and max.
          box.dataset.yMin = String(u.scales.y.min);
          box.dataset.yMax = String(u.scales.y.max);
          drawChecks(u, checkLines, marks);
          if (!thresholds.length) return;
          const ctx = u.ctx, ratio = uPlot.pxRatio ?? 1, { left, top, width, height: h } = u.bbox;
          ctx.save();
          ctx.lineWidth = ratio;
          ctx.setLineDash([6 * ratio, 4 * ratio]);
          for (const t of thresholds) {
            const y = u.valToPos(t.value, "y", true);
            if (!(y >= top && y <= top + h)) continue;
            ctx.strokeStyle = t.color;
            ctx.beginPath();
            ctx.moveTo(left, y);
            ctx.lineTo(left + width, y);
            ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
    box.dataset.thresholds = thresholds.map((t) => `${t.value} ${t.color}`).join(", ");
    const u = new uPlot(opts, [xs, ...ys], box);
    charts.push({ u, box, height });
  }

  /** The latest payloads, newest first: time and version, the metrics, then the rest. */
  function payloadTable(cell, rows) {
    if (!rows.length) return el("p", { className: "empty", text: "No payload yet." });
    const m = cell.query.metric;
    let keys;
    if (m) {
      keys = ["time", "algorithm_version", m, ...(m === "duration_milliseconds" ? [] : ["duration_milliseconds"])];
    } else {
      const head = ["time", "algorithm_version"];
      const metrics = [];
      for (const p of rows) {
        for (const k of Object.keys(p)) {
          if (!head.includes(k) && !TABLE_TAIL.includes(k) && !TABLE_SKIP.includes(k) && !metrics.includes(k)) metrics.push(k);
        }
      }
      keys = [...head, ...metrics, ...TABLE_TAIL.filter((k) => rows.some((p) => k in p))];
    }
    const table = el("table", { className: "payloads" });
    table.append(el("caption", { text: `The latest ${rows.length} payload${rows.length === 1 ? "" : "s"}, newest first` }));
    const numericColumn = (k) => rows.every((p) => p[k] === undefined || typeof p[k] === "number");
    table.append(el("thead", {}, el("tr", {}, ...keys.map((k) => el("th", {
      scope: "col", className: k !== "time" && numericColumn(k) ? "num" : "", text: k === "algorithm_version" ? "version" : k,
    })))));
    const formatted = cell.display?.decimals !== undefined || cell.display?.unit;
    const body = el("tbody");
    for (const p of rows) {
      const tr = el("tr", { "data-request-id": String(p.request_id ?? "") });
      for (const k of keys) {
        const raw = p[k];
        const attrs = { "data-key": k, "data-value": raw === undefined ? "" : JSON.stringify(raw) };
        if (k === "time") {
          const when = new Date(String(raw) + "Z");
          tr.append(el("th", { scope: "row", ...attrs }, el("time", {
            dateTime: String(raw) + "Z", title: String(raw) + " UTC", text: isNaN(when) ? String(raw) : when.toLocaleString(),
          })));
          continue;
        }
        const numeric = typeof raw === "number";
        const text = raw === undefined ? "" : numeric && k === m && formatted ? formatValue(raw, cell.display) : String(raw);
        const td = el("td", { ...attrs, className: numeric ? "num" : "", text });
        const color = numeric && k === m ? colorFor(raw, cell.display) : "";
        if (color) td.style.color = color;
        tr.append(td);
      }
      body.append(tr);
    }
    table.append(body);
    return table;
  }

  function numbers(cell, data) {
    const table = el("table");
    table.append(el("caption", { text: cell.title }));
    const versions = data.series.map((s) => s.version);
    const byTime = new Map();
    data.series.forEach((s, i) => {
      for (const p of s.points) {
        if (!byTime.has(p.time)) byTime.set(p.time, []);
        byTime.get(p.time)[i] = p;
      }
    });
    table.append(el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Window start" }),
      ...versions.map((v) => el("th", { scope: "col", "data-version": v, text: `${v} (count)` })))));
    const body = el("tbody");
    for (const t of [...byTime.keys()].sort()) {
      const row = el("tr", {}, el("th", { scope: "row", text: new Date(t).toLocaleString() }));
      versions.forEach((v, i) => {
        const p = byTime.get(t)[i];
        row.append(p
          ? el("td", { "data-version": v, "data-count": String(p.count), "data-value": p.value === null ? "" : String(p.value), text: `${formatValue(p.value, cell.display)} (${p.count})` })
          : el("td", { text: "" }));
      });
      body.append(row);
    }
    table.append(body);
    return table;
  }

  /**
   * Draws `cell` into `box` (a grid cell or the editor's preview). `current` says whether the
   * drawing is still wanted when the data arrives (the preview may have changed meanwhile).
   */
  async function draw(box, cell, s, height, current = () => true) {
    box.dataset.state = "loading";
    const content = el("div", { className: "cell-body" });
    try {
      const data = await load(cell, s);
      if (!current()) return;
      if (data.every) box.dataset.every = data.every;
      const open = box.querySelector("details")?.open ?? false;
      if (STAT_KINDS.includes(cell.kind) || cell.kind === "graph_single_stat") content.append(stats(cell, data));
      const oldCharts = charts.filter((c) => box.contains(c.box));
      box.querySelector(".cell-body")?.replaceWith(content);
      if (!content.isConnected) box.append(content);
      for (const c of oldCharts) c.u.destroy();
      charts = charts.filter((c) => !oldCharts.includes(c));
      if (cell.kind === "table") {
        content.append(el("div", { className: "table-wrap" }, payloadTable(cell, data.payloads)));
      } else {
        if (GRAPH_KINDS.includes(cell.kind)) {
          const chart = el("div", { className: "chart" });
          content.append(chart);
          graph(chart, cell, data, cell.kind === "graph" ? height : height - 56);
        }
        const details = el("details", { open }, el("summary", { text: "Numbers as a table" }));
        details.append(el("div", { className: "table-wrap" }, numbers(cell, data)));
        content.append(details);
      }
      box.dataset.state = "ready";
    } catch (e) {
      if (!current()) return;
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
    // In reading order (row, then column): the order of a phone's single column, of the tab
    // key and of a screen reader; the grid places each cell where its position says.
    const order = dashboard.cells.map((cell, i) => [cell, i])
      .sort(([a, i], [b, j]) => a.position.y - b.position.y || a.position.x - b.position.x || i - j);
    order.forEach(([cell, i]) => {
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
    checksRead = null;
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
  const versionList = document.getElementById("cell-version-list");
  const thresholdRows = document.getElementById("threshold-rows");
  const addThreshold = document.getElementById("add-threshold");
  const f = form.elements;
  let editing = null;
  let titleTyped = false;
  let previewTimer = null;
  let previewGeneration = 0;

  async function loadMetrics(algorithm, selected) {
    const select = f.metric;
    select.replaceChildren(el("option", { value: "", text: algorithm ? "Loading…" : "Choose an algorithm first" }));
    if (!algorithm) return [];
    const r = await api("GET", "/v1/admin/insights/metrics?algorithm=" + encodeURIComponent(algorithm));
    // Another algorithm was chosen meanwhile: its own request fills the list.
    if (f.algorithm.value !== algorithm) return null;
    const seen = new Set();
    const reportedBy = [];
    if (r.status === 200) {
      for (const v of r.body.versions) {
        reportedBy.push(v.version);
        for (const m of v.metrics) seen.add(m.metric);
      }
    }
    const reported = [...seen].filter((m) => !FIXED_METRICS.includes(m)).sort();
    select.replaceChildren(el("option", { value: "", text: f.kind.value === "table" ? "Every key" : "Choose a metric" }),
      ...reported.map((m) => el("option", { value: m, text: m })),
      ...FIXED_METRICS.map((m) => el("option", { value: m, text: m })));
    if (selected) {
      if (![...select.options].some((o) => o.value === selected)) select.append(el("option", { value: selected, text: selected }));
      select.value = selected;
    }
    select.dataset.algorithm = algorithm;
    return reportedBy;
  }

  /** Offers the algorithm's versions (published, or seen in its metrics) and those `chosen`. */
  function offerVersions(algorithm, reportedBy, chosen) {
    const option = [...f.algorithm.options].find((o) => o.value === algorithm);
    const published = (option?.dataset.versions ?? "").split(" ").filter(Boolean);
    const all = [...new Set([...published, ...reportedBy, ...chosen])]
      .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }));
    versionList.replaceChildren(...all.map((v, i) => el("label", { className: "choice", htmlFor: `cell-version-${i}` },
      el("input", { type: "checkbox", id: `cell-version-${i}`, name: "version", value: v, checked: chosen.includes(v) }),
      " " + v)));
    if (!all.length) versionList.append(el("p", { className: "hint", text: "No version yet." }));
  }

  function chosenVersions() {
    return [...versionList.querySelectorAll("input[name=version]:checked")].map((c) => c.value);
  }

  /** One threshold row: its value, its color, a button that removes it, and its error. */
  function thresholdRow(t) {
    const value = el("input", { type: "number", step: "any", className: "threshold-value", value: t?.value ?? "" });
    const color = el("input", { type: "color", className: "threshold-color", value: longColor(t?.color ?? THRESHOLD_COLORS[thresholdRows.children.length % THRESHOLD_COLORS.length]) });
    // A stored `#rgb` stays as it was written unless the color is changed.
    if (t?.color) color.dataset.original = t.color;
    const remove = el("button", { type: "button", className: "danger remove-threshold", text: "Remove" });
    const error = el("p", { className: "field-error", hidden: true });
    const row = el("div", { className: "threshold" }, value, color, remove, error);
    remove.addEventListener("click", () => {
      row.remove();
      renumberThresholds();
      schedulePreview();
      addThreshold.focus();
    });
    value.addEventListener("input", schedulePreview);
    color.addEventListener("input", schedulePreview);
    return row;
  }

  /** Ids and names follow the rows' order, as the API's `display.thresholds[i]` does. */
  function renumberThresholds() {
    [...thresholdRows.children].forEach((row, i) => {
      const [value, color, remove, error] = row.children;
      value.id = `cell-threshold-${i}-value`;
      color.id = `cell-threshold-${i}-color`;
      error.id = `error-cell-threshold-${i}`;
      value.setAttribute("aria-label", `Threshold ${i + 1}: from value`);
      color.setAttribute("aria-label", `Threshold ${i + 1}: color`);
      remove.setAttribute("aria-label", `Remove threshold ${i + 1}`);
      value.setAttribute("aria-describedby", error.id);
      color.setAttribute("aria-describedby", error.id);
    });
    addThreshold.disabled = thresholdRows.children.length >= MAX_THRESHOLDS;
  }

  function setThresholds(list) {
    thresholdRows.replaceChildren();
    for (const t of list) thresholdRows.append(thresholdRow(t));
    renumberThresholds();
  }

  function readThresholds() {
    return [...thresholdRows.children].map((row) => {
      const [value, color] = row.children;
      const original = color.dataset.original;
      return {
        value: value.value === "" ? null : Number(value.value),
        color: original && longColor(original) === color.value ? original : color.value,
      };
    });
  }

  /** Where a new cell goes: right of the last one if that is free, else below every cell. */
  function nextPosition(w) {
    const h = 4;
    const cells = dashboard.cells;
    const free = (p) => cells.every(({ position: o }) =>
      p.x >= o.x + o.w || o.x >= p.x + p.w || p.y >= o.y + o.h || o.y >= p.y + p.h);
    const last = cells[cells.length - 1];
    if (last) {
      const right = { x: last.position.x + last.position.w, y: last.position.y, w, h };
      if (right.x + w <= GRID_COLUMNS && free(right)) return right;
    }
    const bottom = cells.reduce((m, c) => Math.max(m, c.position.y + c.position.h), 0);
    return { x: 0, y: bottom, w, h };
  }

  function autoTitle() {
    if (f.kind.value === "table") return f.algorithm.value ? `Latest payloads of ${f.algorithm.value}` : "";
    return f.metric.value ? `${f.metric.value} (${f.fn.value})` : "";
  }

  /** Shows the fields the kind uses; the others keep what they hold but are not sent. */
  function syncKind() {
    const kind = f.kind.value;
    document.getElementById("fn-field").hidden = kind === "table";
    document.getElementById("every-field").hidden = !GRAPH_KINDS.includes(kind);
    document.getElementById("window-field").hidden = !STAT_KINDS.includes(kind);
    document.getElementById("display-hint").hidden = kind !== "table";
    const empty = f.metric.options[0];
    if (empty?.value === "" && f.metric.dataset.algorithm) empty.textContent = kind === "table" ? "Every key" : "Choose a metric";
    // A gauge cannot be drawn without its ends: show where they are set.
    if (kind === "gauge") document.getElementById("cell-display").open = true;
  }

  /** A number input's value: undefined when empty, NaN when it holds no number. */
  function numberOf(input) {
    if (input.validity.badInput) return NaN;
    return input.value === "" ? undefined : Number(input.value);
  }

  /** The cell the form describes, as the API takes it. */
  function formCell() {
    const kind = f.kind.value;
    const query = { algorithm: f.algorithm.value, fn: f.fn.value };
    if (f.metric.value) query.metric = f.metric.value;
    query.versions = f.versions_mode.value === "some" ? chosenVersions() : "all";
    if (GRAPH_KINDS.includes(kind) && f.every.value.trim()) query.every = f.every.value.trim();
    if (STAT_KINDS.includes(kind) && f.window.value.trim()) query.window = f.window.value.trim();
    const display = {};
    const thresholds = readThresholds();
    if (thresholds.length) display.thresholds = thresholds;
    for (const k of ["min", "max", "decimals"]) {
      const n = numberOf(f[k]);
      if (n !== undefined) display[k] = Number.isNaN(n) ? null : n;
    }
    if (f.unit.value.trim()) display.unit = f.unit.value.trim();
    const position = {};
    for (const k of ["x", "y", "w", "h"]) {
      const n = numberOf(f[k]);
      position[k] = n === undefined || Number.isNaN(n) ? null : n;
    }
    return { title: f.title.value.trim() || autoTitle(), kind, query, display, position };
  }

  /** What the browser can tell before asking the API: numbers that are not numbers. */
  function localErrors() {
    const errors = [];
    const need = (input, field, required, whole) => {
      if (input.closest("[hidden]")) return;
      const n = numberOf(input);
      if (Number.isNaN(n) || (required && n === undefined)) errors.push({ field, message: "must be a number" });
      else if (whole && n !== undefined && !Number.isInteger(n)) errors.push({ field, message: "must be a whole number" });
    };
    need(f.min, "display.min", false, false);
    need(f.max, "display.max", false, false);
    need(f.decimals, "display.decimals", false, true);
    [...thresholdRows.children].forEach((row, i) => need(row.children[0], `display.thresholds[${i}].value`, true, false));
    for (const k of ["x", "y", "w", "h"]) need(f[k], `position.${k}`, true, true);
    return errors;
  }

  function clearCellErrors() {
    for (const slot of form.querySelectorAll(".field-error")) show(slot, "");
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    show(document.getElementById("cell-form-error"), "");
  }

  const FIELD_OF = {
    title: "title", kind: "kind", "query.algorithm": "algorithm", "query.metric": "metric", "query.fn": "fn",
    "query.every": "every", "query.window": "window",
    "display.unit": "unit", "display.decimals": "decimals", "display.min": "min", "display.max": "max",
    "position.x": "x", "position.y": "y", "position.w": "w", "position.h": "h",
  };

  /** The error slot and the control of a field the API named (within the cell). */
  function fieldTarget(field) {
    const t = /^display\.thresholds\[(\d+)\]\.(value|color)$/.exec(field);
    if (t) return { slot: `error-cell-threshold-${t[1]}`, control: `cell-threshold-${t[1]}-${t[2]}` };
    if (field.startsWith("display.thresholds")) return { slot: "error-cell-thresholds", control: "add-threshold" };
    if (field.startsWith("query.versions")) return { slot: "error-cell-versions", control: "cell-versions-some" };
    if (field === "position") return { slot: "error-cell-position", control: "cell-x" };
    const name = FIELD_OF[field];
    return name ? { slot: "error-cell-" + name, control: "cell-" + name } : null;
  }

  /**
   * Puts errors next to the editor's fields (the API's, which name `cells[i].field`, or the
   * browser's, which name `field`); answers the messages that have no field of this cell.
   */
  function markCellErrors(error, index) {
    const fields = error?.fields?.length ? error.fields : error?.field ? [{ field: error.field, message: error.message }] : [];
    const unplaced = [];
    let first = null;
    for (const e of fields) {
      const m = /^cells\[(\d+)\]\.(.+)$/.exec(e.field);
      const inCell = m ? Number(m[1]) === index : !e.field.startsWith("cells") && e.field !== "name";
      const target = inCell && fieldTarget(m ? m[2] : e.field);
      const slot = target && document.getElementById(target.slot);
      if (!slot) { unplaced.push(e.message); continue; }
      // A serde error repeats its path; the slot already says which field it is about.
      const message = e.message.startsWith(e.field + ": ") ? e.message.slice(e.field.length + 2) : e.message;
      show(slot, slot.textContent ? slot.textContent + " " + message : message);
      const control = document.getElementById(target.control);
      control?.setAttribute("aria-invalid", "true");
      for (let d = slot.closest("details"); d; d = d.parentElement?.closest("details")) d.open = true;
      first ??= control;
    }
    first?.focus();
    return unplaced;
  }

  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(drawPreview, 250);
  }

  async function drawPreview() {
    clearTimeout(previewTimer);
    const generation = ++previewGeneration;
    const cell = formCell();
    // Draw what can be drawn of a half-typed cell: thresholds without a value are left out.
    cell.display.thresholds = (cell.display.thresholds ?? []).filter((t) => Number.isFinite(t.value));
    for (const k of ["min", "max", "decimals"]) if (!Number.isFinite(cell.display[k])) delete cell.display[k];
    for (const k of ["x", "y", "w", "h"]) cell.position[k] ??= 0;
    for (const c of charts.filter((c) => preview.contains(c.box))) c.u.destroy();
    charts = charts.filter((c) => !preview.contains(c.box));
    preview.replaceChildren();
    delete preview.dataset.state;
    if (!cell.query.algorithm || (!cell.query.metric && cell.kind !== "table")) {
      preview.append(el("p", { className: "hint", text: "Choose an algorithm and a metric to see the cell." }));
      return;
    }
    if (cell.kind === "gauge" && (cell.display.min === undefined || cell.display.max === undefined || cell.display.min >= cell.display.max)) {
      preview.append(el("p", { className: "hint", text: "A gauge needs a minimum below its maximum (under Display)." }));
      return;
    }
    if (Array.isArray(cell.query.versions) && !cell.query.versions.length) {
      preview.append(el("p", { className: "hint", text: "Choose at least one version." }));
      return;
    }
    const s = span();
    if (!s) return;
    preview.append(el("h3", { className: "preview-title", text: `${cell.title} · ${KIND_NAMES[cell.kind]}` }));
    await draw(preview, cell, s, 220, () => generation === previewGeneration);
  }

  async function openEditor(index) {
    editing = index;
    clearCellErrors();
    const cell = index === null ? null : dashboard.cells[index];
    document.getElementById("cell-dialog-title").textContent = cell ? `Edit cell “${cell.title}”` : "Add cell";
    f.kind.value = cell?.kind ?? "graph_single_stat";
    f.algorithm.value = cell?.query.algorithm ?? (f.algorithm.options.length === 2 ? f.algorithm.options[1].value : "");
    if (cell && f.algorithm.value !== cell.query.algorithm) {
      f.algorithm.append(el("option", { value: cell.query.algorithm, text: cell.query.algorithm }));
      f.algorithm.value = cell.query.algorithm;
    }
    f.fn.value = cell?.query.fn ?? "mean";
    f.title.value = cell?.title ?? "";
    titleTyped = !!cell;
    const chosen = Array.isArray(cell?.query.versions) ? cell.query.versions : [];
    f.versions_mode.value = Array.isArray(cell?.query.versions) ? "some" : "all";
    f.every.value = cell?.query.every ?? "";
    f.window.value = cell?.query.window ?? "";
    const d = cell?.display ?? {};
    f.unit.value = d.unit ?? "";
    f.decimals.value = d.decimals ?? "";
    f.min.value = d.min ?? "";
    f.max.value = d.max ?? "";
    setThresholds(d.thresholds ?? []);
    const p = cell?.position ?? nextPosition(6);
    for (const k of ["x", "y", "w", "h"]) f[k].value = p[k];
    document.getElementById("cell-display").open = !!cell && Object.keys(d).length > 0;
    document.getElementById("cell-placement").open = false;
    offerVersions(f.algorithm.value, [], chosen);
    syncKind();
    dialog.showModal();
    const reportedBy = await loadMetrics(f.algorithm.value, cell?.query.metric);
    if (reportedBy) offerVersions(f.algorithm.value, reportedBy, f.versions_mode.value === "some" ? chosenVersions() : chosen);
    syncKind();
    dialog.dataset.ready = String(index ?? "new");
    drawPreview();
  }

  f.algorithm.addEventListener("change", async () => {
    const reportedBy = await loadMetrics(f.algorithm.value, null);
    if (!reportedBy) return;
    offerVersions(f.algorithm.value, reportedBy, []);
    f.versions_mode.value = "all";
    syncKind();
    if (!titleTyped) f.title.value = autoTitle();
    schedulePreview();
  });
  for (const name of ["kind", "metric", "fn"]) {
    f[name].addEventListener("change", () => {
      if (name === "kind") syncKind();
      if (!titleTyped) f.title.value = autoTitle();
      schedulePreview();
    });
  }
  f.title.addEventListener("input", () => { titleTyped = f.title.value !== ""; schedulePreview(); });
  for (const name of ["unit", "decimals", "min", "max", "every", "window", "x", "y", "w", "h"]) {
    f[name].addEventListener("change", schedulePreview);
    f[name].addEventListener("input", schedulePreview);
  }
  const versionsChanged = () => {
    show(document.getElementById("error-cell-versions"), "");
    document.getElementById("cell-versions-some").removeAttribute("aria-invalid");
    schedulePreview();
  };
  for (const radio of form.querySelectorAll("input[name=versions_mode]")) radio.addEventListener("change", versionsChanged);
  versionList.addEventListener("change", () => {
    // Ticking a version means "only these".
    f.versions_mode.value = "some";
    versionsChanged();
  });
  addThreshold.addEventListener("click", () => {
    const row = thresholdRow(null);
    thresholdRows.append(row);
    renumberThresholds();
    row.children[0].focus();
    document.getElementById("cell-display").open = true;
  });
  // A field's error goes when the field is changed (the API is asked again on save).
  const clearOwnError = (event) => {
    const c = event.target;
    if (!c.hasAttribute?.("aria-invalid")) return;
    c.removeAttribute("aria-invalid");
    for (const id of (c.getAttribute("aria-describedby") ?? "").split(" ")) {
      const slot = document.getElementById(id);
      if (slot?.classList.contains("field-error")) show(slot, "");
    }
  };
  // An overlap is about the four together: changing any of them clears it.
  for (const k of ["x", "y", "w", "h"]) {
    f[k].addEventListener("input", () => {
      const slot = document.getElementById("error-cell-position");
      if (!slot.textContent) return;
      show(slot, "");
      f.x.removeAttribute("aria-invalid");
    });
  }
  form.addEventListener("input", clearOwnError);
  form.addEventListener("change", clearOwnError);
  document.getElementById("cancel-cell").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    delete dialog.dataset.ready;
    previewGeneration += 1;
    clearTimeout(previewTimer);
  });
  document.getElementById("add-cell").addEventListener("click", () => openEditor(null));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearCellErrors();
    const formError = document.getElementById("cell-form-error");
    const local = localErrors();
    if (local.length) {
      const unplaced = markCellErrors({ fields: local }, null);
      if (unplaced.length) show(formError, unplaced.join(" "));
      return;
    }
    const cell = formCell();
    const cells = [...dashboard.cells];
    const index = editing === null ? cells.length : editing;
    cells[index] = cell;
    const button = document.getElementById("save-cell");
    button.disabled = true;
    try {
      const r = await saveCells(cells);
      if (r.status !== 200) {
        const unplaced = markCellErrors(r.body?.error, index);
        if (unplaced.length || !r.body?.error) show(formError, unplaced.length ? unplaced.join(" ") : errorMessage(r.body, "Saving the cell failed."));
        return;
      }
      dialog.close();
      await build();
    } catch (e) {
      show(formError, "The server could not be reached: " + e.message);
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
