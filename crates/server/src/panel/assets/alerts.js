// The Alerts page: checks with the level of each of their series, notification endpoints (with a
// Test button), notification rules, and the history of level changes and notifications, all
// read from the alerting API and kept current by a poll. The check form's live preview asks
// `POST /v1/admin/checks/preview` what level each recent window would get and draws the
// windows' values with uPlot (vendored), the thresholds as lines and each window's point in its
// level's color. The API's errors name their field (`thresholds[1].min`, `auth.password`); each
// goes to the slot `error-<form>-<field with - for punctuation>`, or that of the nearest
// enclosing field (the row), and marks the control. Loaded after panel.js, whose api(), show(),
// say(), pageError() and errorMessage() it uses. Everything is written with textContent and DOM
// properties: no markup from data, no inline style.
"use strict";

const LEVELS = ["crit", "warn", "info", "ok"];
const LEVEL_COLORS = { crit: "#b3261e", warn: "#b86e00", info: "#2753c9", ok: "#1d7a46" };
const PALETTE = ["#475569", "#9333ea", "#0e7490", "#c2410c", "#2753c9", "#9a6400"];
const FIXED_METRICS = ["duration_milliseconds", "insights.executions", "insights.failures"];
const THRESHOLD_TYPES = { greater: "greater than", lesser: "less than", inside_range: "inside the range", outside_range: "outside the range" };
const TAG_OPS = { equal: "=", not_equal: "≠", regex: "matches", not_regex: "does not match" };
const POLL_SECONDS = 3;
/** How often the check form's preview is asked again (a new window may have ended). */
const PREVIEW_SECONDS = 5;
const HISTORY_ROWS = 50;
/** Runs the preview asks about. */
const PREVIEW_RUNS = 30;

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

/** A level as a colored badge (the color is the page's CSS, by `data-level`). */
function badge(level) {
  return el("span", { className: "level", "data-level": level, text: level });
}

/** A time as the reader's local time, its UTC form as a title. */
function when(iso) {
  if (!iso) return el("span", { text: "—" });
  const d = new Date(iso);
  return el("time", { dateTime: iso, title: iso, text: isNaN(d) ? iso : d.toLocaleString() });
}

/** `1h30m` → 5400 (the API's durations); NaN for anything else. */
function seconds(span) {
  const units = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  const parts = [...String(span).matchAll(/(\d+)([smhdw])/g)];
  return parts.length ? parts.reduce((n, [, k, u]) => n + Number(k) * units[u], 0) : NaN;
}

function number(v) {
  if (v === null || v === undefined) return "—";
  return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(v) : v.toPrecision(4).replace(/\.?0+$/, "");
}

// ---- Errors next to their fields ----

/** `thresholds[1].min` → `thresholds-1-min`: the id form of an API field. */
function idOf(field) {
  return field.replace(/[.[\]]+/g, "-").replace(/-+$/, "");
}

/** The field and every field enclosing it, innermost first (`a[1].b`, `a[1]`, `a`). */
function enclosing(field) {
  const out = [];
  let f = field;
  while (f) {
    out.push(f);
    const shorter = f.replace(/(\.[^.[\]]*|\[\d+\])$/, "");
    if (shorter === f) break;
    f = shorter;
  }
  return out;
}

/**
 * Puts each error the API named next to its field in the form `prefix` (`check`, `endpoint`,
 * `rule`); `control(field)` may say which control a field is. Answers the messages that have
 * no place in the form.
 */
function placeErrors(prefix, error, control = () => null) {
  const fields = error?.fields?.length ? error.fields : error?.field ? [{ field: error.field, message: error.message }] : [];
  const unplaced = [];
  let first = null;
  for (const e of fields) {
    const candidates = enclosing(e.field);
    const slot = candidates.map((f) => document.getElementById(`error-${prefix}-${idOf(f)}`)).find(Boolean);
    if (!slot) { unplaced.push(`${e.field}: ${e.message}`); continue; }
    // Within a row the slot is the row's: say which of its fields the message is about.
    const inner = slot.id === `error-${prefix}-${idOf(e.field)}` ? "" : e.field.slice(e.field.lastIndexOf(".") + 1);
    const message = (inner && !/^\w+\[\d+\]$/.test(inner) ? inner + " " : "") + e.message;
    show(slot, slot.textContent ? slot.textContent + " " + message : message);
    const c = control(e.field) ?? candidates.map((f) => document.getElementById(`${prefix}-${idOf(f)}`)).find(Boolean);
    c?.setAttribute("aria-invalid", "true");
    first ??= c;
  }
  if (!fields.length && error?.message) unplaced.push(error.message);
  first?.focus();
  return unplaced;
}

function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) show(slot, "");
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/** A field's error goes when the field is changed (the API is asked again on save). */
function clearOwnErrors(form) {
  const clear = (event) => {
    const c = event.target;
    if (!c.hasAttribute?.("aria-invalid")) return;
    c.removeAttribute("aria-invalid");
    for (const id of (c.getAttribute("aria-describedby") ?? "").split(" ")) {
      const slot = document.getElementById(id);
      if (slot?.classList.contains("field-error")) show(slot, "");
    }
  };
  form.addEventListener("input", clear);
  form.addEventListener("change", clear);
}

/** A number input's value: undefined when empty, null when it holds no number. */
function numberOf(input) {
  if (input.validity.badInput) return null;
  return input.value === "" ? undefined : Number(input.value);
}

/** Sets `key` of `doc` to the trimmed text of `input`, unless it is empty. */
function text(doc, key, input) {
  const v = input.value.trim();
  if (v !== "") doc[key] = v;
}

function options(select, list, selected) {
  select.replaceChildren(...list.map(([value, label]) => el("option", { value, text: label })));
  if (selected !== undefined) select.value = selected;
}

/** A labelled control for a row (the label wraps it, so it is its accessible name). */
function mini(labelText, control) {
  return el("label", { className: "mini" }, el("span", { text: labelText }), control);
}

/** Shows a list's table when it has rows, its "No … yet" line when not. */
function emptyList(id, rows) {
  document.getElementById(id).closest(".table-wrap").hidden = rows === 0;
  document.getElementById("no-" + id).hidden = rows > 0;
}

function alertsPage() {
  const checksTable = document.getElementById("checks");
  if (!checksTable) return;
  const state = { checks: [], endpoints: [], rules: [], unreadableEndpoints: [] };
  /** The last verdict of each endpoint's test, kept across redraws. */
  const verdicts = new Map();
  let inFlight = false;
  /** A read asked for while one was in flight: null, "some" or "all" (with the endpoints). */
  let again = null;

  // ---- Lists ----

  function checkSummary(c) {
    const q = c.query;
    const versions = q.versions?.length ? ` ${q.versions.join(", ")}` : "";
    if (c.kind === "deadman") return `${q.algorithm}${versions}: no payload for ${c.time_since} → ${c.level}; every ${c.every}`;
    const ts = (c.thresholds ?? []).map((t) => t.type === "greater" ? `${t.level} > ${t.value}`
      : t.type === "lesser" ? `${t.level} < ${t.value}`
      : t.type === "inside_range" ? `${t.level} in (${t.min}, ${t.max})` : `${t.level} outside (${t.min}, ${t.max})`);
    return `${q.fn} of ${q.metric} over ${q.window} of ${q.algorithm}${versions}, every ${c.every}: ${ts.join(", ")}`;
  }

  function drawChecks() {
    const body = checksTable.tBodies[0];
    body.replaceChildren(...state.checks.map((c) => {
      const series = el("ul", { className: "series" });
      for (const s of c.series ?? []) {
        const li = el("li", { className: "series-level", "data-level": s.level, "data-series": `${s.algorithm} ${s.version}` },
          badge(s.level), ` ${s.algorithm} ${s.version}`);
        if (s.value !== null && s.value !== undefined) li.append(` = ${number(s.value)}`);
        li.append(" since ", when(s.since));
        if (s.pending_level) li.append(el("span", { className: "hint", text: ` (${s.pending_level} pending)` }));
        series.append(li);
      }
      if (!c.series?.length) series.append(el("li", { className: "hint", text: "not evaluated yet" }));
      const edit = el("button", { type: "button", className: "edit", text: "Edit", "aria-label": `Edit check ${c.name}` });
      const remove = el("button", { type: "button", className: "danger remove", text: "Delete", "aria-label": `Delete check ${c.name}` });
      edit.addEventListener("click", () => openCheck(c));
      remove.addEventListener("click", () => removeThing(`check “${c.name}”`, `/v1/admin/checks/${c.id}`));
      const name = el("th", { scope: "row", text: c.name });
      if (!c.enabled) name.append(el("span", { className: "hint", text: " (off)" }));
      return el("tr", { "data-check-id": c.id, "data-kind": c.kind }, name,
        el("td", { className: "wrap", text: checkSummary(c) }), el("td", {}, series),
        el("td", {}, el("span", { className: "row-actions" }, edit, remove)));
    }));
    emptyList("checks", state.checks.length);
  }

  function endpointWhere(e) {
    switch (e.kind) {
      case "slack": return (e.channel ? e.channel + ", " : "") + (e.url_set ? "webhook URL set" : "no webhook URL");
      case "pagerduty": return `${e.url}${e.routing_key_set ? ", routing key set" : ""}`;
      case "http": return `${e.method} ${e.url_host}${e.headers_set?.length ? `, headers ${e.headers_set.join(", ")}` : ""}${e.auth?.type !== "none" ? `, ${e.auth.type} auth` : ""}`;
      case "email": return `${e.host}:${e.port} → ${(e.to ?? []).join(", ")}`;
      case "alertmanager": return e.url;
      default: return "";
    }
  }

  function drawEndpoints() {
    const body = document.querySelector("#endpoints tbody");
    body.replaceChildren(...state.endpoints.map((e) => {
      const verdict = el("output", { className: "verdict", "aria-live": "polite" });
      const last = verdicts.get(e.id);
      if (last) { verdict.textContent = last.text; verdict.dataset.accepted = String(last.accepted); }
      const test = el("button", { type: "button", className: "test", text: "Test", "aria-label": `Test endpoint ${e.name}` });
      test.addEventListener("click", async () => {
        test.disabled = true;
        delete verdict.dataset.accepted;
        verdict.textContent = "Sending a test message…";
        try {
          const r = await api("POST", `/v1/admin/notification-endpoints/${e.id}/test`);
          const v = r.status === 200 ? { accepted: r.body.accepted, text: (r.body.accepted ? "" : "not accepted: ") + r.body.verdict }
            : { accepted: false, text: errorMessage(r.body, "The test could not be made.") };
          verdicts.set(e.id, v);
          verdict.dataset.accepted = String(v.accepted);
          verdict.textContent = v.text;
        } catch (err) {
          verdict.textContent = "The server could not be reached: " + err.message;
        } finally {
          test.disabled = false;
        }
      });
      const edit = el("button", { type: "button", className: "edit", text: "Edit", "aria-label": `Edit endpoint ${e.name}` });
      const remove = el("button", { type: "button", className: "danger remove", text: "Delete", "aria-label": `Delete endpoint ${e.name}` });
      edit.addEventListener("click", () => openEndpoint(e));
      remove.addEventListener("click", () => removeThing(`endpoint “${e.name}”`, `/v1/admin/notification-endpoints/${e.id}`));
      return el("tr", { "data-endpoint-id": e.id, "data-kind": e.kind }, el("th", { scope: "row", text: e.name }),
        el("td", { text: e.kind }), el("td", { className: "wrap", text: endpointWhere(e) }),
        el("td", {}, el("span", { className: "row-actions" }, test, verdict)),
        el("td", {}, el("span", { className: "row-actions" }, edit, remove)));
    }));
    emptyList("endpoints", state.endpoints.length);
  }

  /** Stored documents the server cannot read back (`unreadable` in each list): each with why,
   * and what mends it: an endpoint saved again (its form, secrets typed anew), or a delete. */
  function drawUnreadable(items) {
    const box = document.getElementById("unreadable");
    box.querySelector("ul").replaceChildren(...items.map(([what, base, u]) => {
      const name = u.name ?? u.id;
      const actions = el("span", { className: "row-actions" });
      if (what === "endpoint") {
        const edit = el("button", { type: "button", className: "edit", text: "Edit", "aria-label": `Edit endpoint ${name}` });
        edit.addEventListener("click", () => openEndpoint({ id: u.id, name: u.name ?? "", kind: u.kind ?? "slack" }));
        actions.append(edit);
      }
      const remove = el("button", { type: "button", className: "danger remove", text: "Delete", "aria-label": `Delete ${what} ${name}` });
      remove.addEventListener("click", () => removeThing(`${what} “${name}”`, `${base}/${u.id}`));
      actions.append(remove);
      return el("li", { "data-unreadable-id": u.id }, el("strong", { text: `${what} “${name}”` }), ` (${u.kind ?? "unknown kind"}): ${u.error} `, actions);
    }));
    box.hidden = items.length === 0;
  }

  const endpointName = (id) => state.endpoints.find((e) => e.id === id)?.name ?? id;
  const checkName = (id) => state.checks.find((c) => c.id === id)?.name ?? id;
  const whenText = (w) => (w.is ? `is ${w.is}` : `${w.from} → ${w.to}`);

  function drawRules() {
    const body = document.querySelector("#rules tbody");
    body.replaceChildren(...state.rules.map((r) => {
      const edit = el("button", { type: "button", className: "edit", text: "Edit", "aria-label": `Edit rule ${r.name}` });
      const remove = el("button", { type: "button", className: "danger remove", text: "Delete", "aria-label": `Delete rule ${r.name}` });
      edit.addEventListener("click", () => openRule(r));
      remove.addEventListener("click", () => removeThing(`rule “${r.name}”`, `/v1/admin/notification-rules/${r.id}`));
      const extra = [r.repeat_every ? `again every ${r.repeat_every}` : "", r.limit ? `at most ${r.limit.count} per ${r.limit.every}` : "",
        ...(r.tags ?? []).map((t) => `${t.key} ${TAG_OPS[t.op] ?? t.op} ${t.value}`)].filter(Boolean).join("; ");
      const name = el("th", { scope: "row", text: r.name });
      if (r.enabled === false) name.append(el("span", { className: "hint", text: " (off)" }));
      return el("tr", { "data-rule-id": r.id }, name,
        el("td", { text: endpointName(r.endpoint) }),
        el("td", { className: "wrap", text: r.checks ? r.checks.map(checkName).join(", ") : "every check" }),
        el("td", { className: "wrap", text: r.when.map(whenText).join(", ") + (extra ? `; ${extra}` : "") }),
        el("td", { className: "num", "data-suppressed": String(r.suppressed ?? 0), text: String(r.suppressed ?? 0) }),
        el("td", {}, el("span", { className: "row-actions" }, edit, remove)));
    }));
    emptyList("rules", state.rules.length);
  }

  function change(from, to) {
    return el("span", { className: "change" }, badge(from), " → ", badge(to));
  }

  function drawStatuses(list) {
    document.querySelector("#statuses tbody").replaceChildren(...list.map((s) => el("tr", { "data-level": s.level, "data-check-id": s.check_id },
      el("td", {}, when(s.time)), el("td", { text: s.check }), el("td", { text: `${s.algorithm} ${s.version}` }),
      el("td", {}, change(s.previous_level, s.level)), el("td", { className: "num", text: number(s.value) }),
      el("td", { className: "wrap", text: s.message }))));
    emptyList("statuses", list.length);
  }

  function drawNotifications(list) {
    document.querySelector("#notifications tbody").replaceChildren(...list.map((n) => el("tr", { "data-state": n.state, "data-level": n.level ?? "", "data-check-id": n.check_id ?? "" },
      el("td", {}, when(n.created)), el("td", { text: n.check ?? "" }), el("td", { text: `${n.algorithm ?? ""} ${n.version ?? ""}` }),
      el("td", {}, n.previous_level && n.level ? change(n.previous_level, n.level) : ""),
      el("td", { text: `${endpointName(n.endpoint_id)} (${n.endpoint_kind})` }),
      el("td", {}, el("span", { className: "n-state", "data-state": n.state, text: n.state }),
        n.next_attempt ? el("span", { className: "hint" }, " next ", when(n.next_attempt)) : ""),
      el("td", { className: "num", text: String(n.attempts) }),
      el("td", { className: "wrap", text: n.last_error ?? "" }))));
    emptyList("notifications", list.length);
  }

  async function get(url, background) {
    const r = await api("GET", url, undefined, background);
    if (r.status !== 200) throw new Error(errorMessage(r.body, `${url} answered ${r.status}.`));
    return r.body;
  }

  /** Reads everything the page shows and draws it; `all` also reads the endpoints. */
  async function refresh(all, background = true) {
    // One read at a time; a change asked for meanwhile (a filter) is read right after it.
    if (inFlight) { again ||= all ? "all" : "some"; return; }
    inFlight = true;
    try {
      // The history as the filters say: one check or all; level changes to one level or any.
      const only = historyCheck.value, level = historyLevel.value;
      const statusQuery = new URLSearchParams({ limit: HISTORY_ROWS });
      const notificationQuery = new URLSearchParams({ limit: HISTORY_ROWS });
      if (only) { statusQuery.set("check", only); notificationQuery.set("check", only); }
      if (level) statusQuery.set("level", level);
      const [checks, rules, statuses, notifications, endpoints] = await Promise.all([
        get("/v1/admin/checks", background), get("/v1/admin/notification-rules", background),
        get("/v1/admin/statuses?" + statusQuery, background), get("/v1/admin/notifications?" + notificationQuery, background),
        all ? get("/v1/admin/notification-endpoints", background) : null,
      ]);
      // What a limit suppressed is on each rule's own view.
      const suppressed = await Promise.all(rules.rules.map((r) => get(`/v1/admin/notification-rules/${r.id}`, background).then((x) => x.suppressed).catch(() => null)));
      state.checks = checks.checks;
      state.rules = rules.rules.map((r, i) => ({ ...r, suppressed: suppressed[i] }));
      if (endpoints) { state.endpoints = endpoints.endpoints; state.unreadableEndpoints = endpoints.unreadable ?? []; drawEndpoints(); }
      drawUnreadable([
        ...(checks.unreadable ?? []).map((u) => ["check", "/v1/admin/checks", u]),
        ...state.unreadableEndpoints.map((u) => ["endpoint", "/v1/admin/notification-endpoints", u]),
        ...(rules.unreadable ?? []).map((u) => ["rule", "/v1/admin/notification-rules", u]),
      ]);
      drawChecks();
      drawRules();
      drawStatuses(statuses.statuses);
      // A notification's level is the one it reports: the level filter applies to both lists.
      drawNotifications(notifications.notifications.filter((n) => !level || n.level === level));
      offerHistoryChecks();
      pageError("");
      checksTable.dataset.refreshes = String(Number(checksTable.dataset.refreshes ?? 0) + 1);
      say(document.getElementById("updated"), "Updated " + new Date().toLocaleTimeString());
    } catch (e) {
      pageError(e.message);
    } finally {
      inFlight = false;
      if (again) {
        const all = again === "all";
        again = null;
        refresh(all, false);
      }
    }
  }

  const historyCheck = document.getElementById("history-check");
  const historyLevel = document.getElementById("history-level");

  /** The filter offers every check; a deleted one stays while it is chosen. */
  function offerHistoryChecks() {
    const chosen = historyCheck.value;
    const list = state.checks.map((c) => [c.id, c.name]);
    if (chosen && !list.some(([id]) => id === chosen)) list.push([chosen, checkName(chosen)]);
    const same = historyCheck.options.length === list.length + 1
      && list.every(([id, name], i) => historyCheck.options[i + 1].value === id && historyCheck.options[i + 1].textContent === name);
    if (!same) options(historyCheck, [["", "Every check"], ...list], chosen);
  }

  for (const f of [historyCheck, historyLevel]) f.addEventListener("change", () => refresh(false, false));

  async function removeThing(what, url) {
    if (!confirm(`Delete the ${what}?`)) return;
    const r = await api("DELETE", url);
    if (r.status !== 204) { pageError(errorMessage(r.body, `Deleting the ${what} failed.`)); return; }
    await refresh(true, false);
  }

  /** Saves `doc` with POST (new) or PUT (`id`); puts the API's errors in the form. */
  async function save(prefix, base, id, doc, control) {
    const form = document.getElementById(`${prefix}-form`);
    const formError = document.getElementById(`${prefix}-form-error`);
    const button = document.getElementById(`save-${prefix}`);
    clearErrors(form);
    button.disabled = true;
    try {
      const r = await api(id ? "PUT" : "POST", id ? `${base}/${id}` : base, doc);
      if (r.status !== 200 && r.status !== 201) {
        const unplaced = placeErrors(prefix, r.body?.error, control);
        if (unplaced.length) show(formError, unplaced.join(" "));
        else if (!r.body?.error) show(formError, `Saving failed (HTTP ${r.status}).`);
        return false;
      }
      document.getElementById(`${prefix}-dialog`).close();
      await refresh(true, false);
      return true;
    } catch (e) {
      show(formError, "The server could not be reached: " + e.message);
      return false;
    } finally {
      button.disabled = false;
    }
  }

  // ---- The check form ----

  const checkDialog = document.getElementById("check-dialog");
  const checkForm = document.getElementById("check-form");
  const cf = checkForm.elements;
  const thresholdRows = document.getElementById("threshold-rows");
  const tagRows = document.getElementById("tag-rows");
  const preview = document.getElementById("check-preview");
  let editingCheck = null;
  let previewTimer = null;
  let previewGeneration = 0;
  let previewChart = null;

  const kind = () => checkForm.querySelector("input[name=kind]:checked")?.value ?? "threshold";

  function syncKind() {
    const k = kind();
    for (const e of checkForm.querySelectorAll(".threshold-only")) e.hidden = k !== "threshold";
    for (const e of checkForm.querySelectorAll(".deadman-only")) e.hidden = k !== "deadman";
  }

  /** The metrics the algorithm (or, for `*`, every algorithm) reported, then the fixed ones. */
  async function loadMetrics(selected) {
    const select = cf.metric;
    const algorithm = cf.algorithm.value;
    select.replaceChildren(el("option", { value: "", text: "Loading…" }));
    const paths = algorithm === "*" ? [...cf.algorithm.options].map((o) => o.value).filter((v) => v !== "*") : [algorithm];
    const seen = new Set();
    await Promise.all(paths.map(async (p) => {
      const r = await api("GET", "/v1/admin/insights/metrics?algorithm=" + encodeURIComponent(p));
      if (r.status === 200) for (const v of r.body.versions) for (const m of v.metrics) seen.add(m.metric);
    }));
    const reported = [...seen].filter((m) => !FIXED_METRICS.includes(m)).sort();
    options(select, [["", "Choose a metric"], ...[...reported, ...FIXED_METRICS].map((m) => [m, m])]);
    if (selected) {
      if (![...select.options].some((o) => o.value === selected)) select.append(el("option", { value: selected, text: selected }));
      select.value = selected;
    }
    select.dataset.algorithm = algorithm;
  }

  function thresholdRow(t) {
    const level = el("select", { className: "t-level" });
    options(level, LEVELS.map((l) => [l, l]), t?.level ?? (["crit", "warn", "info", "ok"][thresholdRows.children.length] ?? "info"));
    const type = el("select", { className: "t-type" });
    options(type, Object.entries(THRESHOLD_TYPES), t?.type ?? "greater");
    const input = (cls, v) => el("input", { type: "number", step: "any", className: cls, value: v ?? "" });
    const value = input("t-value", t?.value), min = input("t-min", t?.min), max = input("t-max", t?.max), recovery = input("t-recovery", t?.recovery);
    const remove = el("button", { type: "button", className: "danger remove-row", text: "Remove" });
    const error = el("p", { className: "field-error", hidden: true });
    const fields = { level, type, value, min, max, recovery };
    const labels = {
      level: mini("Level", level), type: mini("Type", type), value: mini("Value", value),
      min: mini("Min", min), max: mini("Max", max), recovery: mini("Recovery (optional)", recovery),
    };
    const row = el("div", { className: "row-fields threshold-row" }, ...Object.values(labels), remove, error);
    row.fields = fields;
    const sync = () => {
      const range = type.value.endsWith("_range");
      labels.value.hidden = range;
      labels.recovery.hidden = range;
      labels.min.hidden = !range;
      labels.max.hidden = !range;
    };
    type.addEventListener("change", sync);
    sync();
    remove.addEventListener("click", () => {
      row.remove();
      renumber();
      schedulePreview();
      document.getElementById("add-threshold").focus();
    });
    return row;
  }

  function tagRow(key, value) {
    const k = el("input", { className: "tag-key", value: key ?? "", autocomplete: "off", maxLength: 64 });
    const v = el("input", { className: "tag-value", value: value ?? "", autocomplete: "off", maxLength: 256 });
    const remove = el("button", { type: "button", className: "danger remove-row", text: "Remove" });
    const error = el("p", { className: "field-error", hidden: true });
    const row = el("div", { className: "row-fields tag-row" }, mini("Key", k), mini("Value", v), remove, error);
    row.fields = { key: k, value: v };
    remove.addEventListener("click", () => { row.remove(); renumber(); schedulePreview(); });
    return row;
  }

  /** Ids follow the rows' order, as the API's `thresholds[i]` does. */
  function renumberRows(rows, prefix, name, noun) {
    [...rows.children].forEach((row, i) => {
      const error = row.querySelector(".field-error");
      error.id = `error-${prefix}-${name}-${i}`;
      for (const [k, c] of Object.entries(row.fields)) {
        c.id = `${prefix}-${name}-${i}-${k}`;
        c.setAttribute("aria-describedby", error.id);
      }
      row.querySelector(".remove-row").setAttribute("aria-label", `Remove ${noun} ${i + 1}`);
      row.dataset.index = String(i);
    });
  }

  function renumber() {
    renumberRows(thresholdRows, "check", "thresholds", "threshold");
    renumberRows(tagRows, "check", "tags", "tag");
    document.getElementById("add-threshold").disabled = thresholdRows.children.length >= 4;
  }

  /** The check the form describes, as the API takes it. */
  function formCheck() {
    const k = kind();
    const doc = { name: cf.name.value.trim(), kind: k, enabled: cf.enabled.checked, query: { algorithm: cf.algorithm.value } };
    const versions = cf.versions.value.split(",").map((v) => v.trim()).filter(Boolean);
    if (versions.length) doc.query.versions = versions;
    text(doc, "every", cf.every);
    text(doc, "offset", cf.offset);
    text(doc, "message", cf.message);
    const tags = {};
    for (const row of tagRows.children) {
      const key = row.fields.key.value.trim();
      if (key) tags[key] = row.fields.value.value;
    }
    doc.tags = tags;
    if (k === "threshold") {
      if (cf.metric.value) doc.query.metric = cf.metric.value;
      doc.query.fn = cf.fn.value;
      text(doc.query, "window", cf.window);
      doc.thresholds = [...thresholdRows.children].map((row) => {
        const f = row.fields;
        const t = { level: f.level.value, type: f.type.value };
        const keys = f.type.value.endsWith("_range") ? ["min", "max"] : ["value", "recovery"];
        for (const key of keys) {
          const n = numberOf(f[key]);
          if (n !== undefined) t[key] = n;
        }
        return t;
      });
      text(doc, "pending_for", cf.pending_for);
      doc.no_data = cf.no_data.value;
    } else {
      text(doc, "time_since", cf.time_since);
      doc.level = cf.level.value;
    }
    return doc;
  }

  function schedulePreview() {
    clearTimeout(previewTimer);
    // What is shown is about the form as it was: marked until the new answer replaces it.
    if (preview.dataset.state) preview.dataset.state = "stale";
    previewTimer = setTimeout(drawPreview, 400);
  }

  function clearPreview() {
    previewChart?.destroy();
    previewChart = null;
    preview.replaceChildren();
    delete preview.dataset.state;
  }

  async function drawPreview() {
    clearTimeout(previewTimer);
    const generation = ++previewGeneration;
    const doc = formCheck();
    if (doc.kind === "deadman") {
      clearPreview();
      preview.append(el("p", { className: "hint", text: "A deadman check has no windows to preview: it watches for payloads." }));
      return;
    }
    if (!doc.query.metric) {
      clearPreview();
      preview.append(el("p", { className: "hint", text: "Choose a metric to see its recent windows." }));
      return;
    }
    doc.name ||= "preview";
    preview.dataset.state = "loading";
    let r;
    try {
      r = await api("POST", `/v1/admin/checks/preview?runs=${PREVIEW_RUNS}`, doc, true);
    } catch (e) {
      r = { status: 0, body: { error: { message: e.message } } };
    }
    if (generation !== previewGeneration) return;
    clearPreview();
    if (r.status !== 200) {
      const fields = r.body?.error?.fields ?? [];
      preview.append(el("p", { className: "hint", text: "The preview waits for a check the API accepts:" }),
        el("ul", { className: "hint" }, ...(fields.length ? fields : [r.body?.error ?? { message: `HTTP ${r.status}` }])
          .map((f) => el("li", { text: f.field ? `${f.field}: ${f.message}` : f.message }))));
      preview.dataset.state = "invalid";
      return;
    }
    drawWindows(r.body, doc.thresholds ?? []);
    preview.dataset.state = "ready";
  }

  /** The preview's answer: the windows' values as a chart, their levels as a strip and a table. */
  function drawWindows(p, thresholds) {
    const series = p.series;
    const withData = Math.max(0, ...series.map((s) => s.windows.length));
    preview.append(el("p", { className: "hint", text: `The last ${PREVIEW_RUNS} runs (${withData} with data): the ${cf.fn.value} of ${cf.metric.value} over ${p.window}, every ${p.every}. Each point is in the color of the level it would get.` }));
    if (!series.length) {
      preview.append(el("p", { className: "empty", text: "No data in these windows yet." }));
      return;
    }
    const xs = [...new Set(series.flatMap((s) => s.windows.map((w) => Date.parse(w.window_end) / 1000)))].sort((a, b) => a - b);
    const ys = series.map((s) => {
      const at = new Map(s.windows.map((w) => [Date.parse(w.window_end) / 1000, w]));
      return xs.map((x) => at.get(x)?.value ?? null);
    });
    const levels = series.map((s) => {
      const at = new Map(s.windows.map((w) => [Date.parse(w.window_end) / 1000, w.level]));
      return xs.map((x) => at.get(x) ?? null);
    });
    const lines = thresholdLines(thresholds);
    const chart = el("div", { className: "chart", role: "img" });
    const counts = {};
    for (const s of series) for (const w of s.windows) counts[w.level] = (counts[w.level] ?? 0) + 1;
    chart.setAttribute("aria-label", `${cf.fn.value} of ${cf.metric.value} per window, ${series.length} series; windows by level: ` +
      LEVELS.filter((l) => counts[l]).map((l) => `${counts[l]} ${l}`).join(", "));
    chart.dataset.thresholds = lines.map((t) => `${t.level} ${t.value}`).join(", ");
    preview.append(chart);
    const every = seconds(p.every) || 60, now = Date.now() / 1000;
    const values = [...ys.flat().filter((v) => v !== null), ...lines.map((t) => t.value)];
    const lo = Math.min(...values), hi = Math.max(...values);
    const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 1;
    previewChart = new uPlot({
      width: Math.max(chart.clientWidth || preview.clientWidth - 16, 240),
      height: 200,
      series: [{}, ...series.map((s, i) => ({
        label: `${s.algorithm} ${s.version}`, stroke: PALETTE[i % PALETTE.length], width: 1.5, points: { show: false },
        value: (u, v) => number(v),
      }))],
      // The x axis spans the runs asked about, so that a few windows sit where they belong.
      scales: {
        x: { time: true, range: [Math.min(xs[0], now - PREVIEW_RUNS * every), Math.max(xs[xs.length - 1], now)] },
        y: { range: () => [lo - pad, hi + pad] },
      },
      axes: [{}, { size: 50 }],
      hooks: { draw: [(u) => { drawThresholdLines(u, lines); drawLevelPoints(u, levels); }] },
    }, [xs, ...ys], chart);
    // Each series' windows as a strip of levels, oldest first, and as a table.
    for (const s of series) {
      const strip = el("ol", { className: "strip", "aria-label": `Levels of ${s.algorithm} ${s.version}, oldest window first`,
        "data-series": `${s.algorithm} ${s.version}`, "data-levels": s.windows.map((w) => w.level).join(" ") });
      for (const w of s.windows) {
        strip.append(el("li", { className: "level-cell", "data-level": w.level, title: `${w.window_end}: ${number(w.value)} (${w.count}) → ${w.level}`, text: w.level[0] }));
      }
      const table = el("table", {}, el("caption", { text: `${s.algorithm} ${s.version}` }),
        el("thead", {}, el("tr", {}, ...["Window end", "Value", "Count", "Level"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, ...[...s.windows].reverse().map((w) => el("tr", { "data-level": w.level },
          el("td", {}, when(w.window_end)), el("td", { className: "num", text: number(w.value) }),
          el("td", { className: "num", text: String(w.count) }), el("td", {}, badge(w.level))))));
      const details = el("details", {}, el("summary", { text: `${s.algorithm} ${s.version}: windows as a table` }), el("div", { className: "table-wrap" }, table));
      preview.append(el("p", { className: "strip-label", text: `${s.algorithm} ${s.version}` }), strip, details);
    }
  }

  async function openCheck(c) {
    editingCheck = c?.id ?? null;
    clearErrors(checkForm);
    clearPreview();
    document.getElementById("check-dialog-title").textContent = c ? `Edit check “${c.name}”` : "New check";
    cf.name.value = c?.name ?? "";
    cf.enabled.checked = c?.enabled ?? true;
    checkForm.querySelector(`input[name=kind][value=${c?.kind ?? "threshold"}]`).checked = true;
    const algorithm = c?.query.algorithm ?? (cf.algorithm.options.length === 2 ? cf.algorithm.options[1].value : "*");
    if (![...cf.algorithm.options].some((o) => o.value === algorithm)) cf.algorithm.append(el("option", { value: algorithm, text: algorithm }));
    cf.algorithm.value = algorithm;
    cf.versions.value = (c?.query.versions ?? []).join(", ");
    cf.fn.value = c?.query.fn ?? "mean";
    cf.window.value = c?.query.window ?? "1m";
    cf.every.value = c?.every ?? "1m";
    cf.offset.value = c?.offset ?? "0s";
    cf.pending_for.value = c?.pending_for ?? "0s";
    cf.no_data.value = c?.no_data ?? "keep";
    cf.time_since.value = c?.time_since ?? "5m";
    cf.level.value = c?.level ?? "crit";
    cf.message.value = c?.message ?? "";
    thresholdRows.replaceChildren(...(c?.thresholds ?? (c ? [] : [{ level: "crit", type: "greater" }])).map((t) => thresholdRow(t)));
    tagRows.replaceChildren(...Object.entries(c?.tags ?? {}).map(([k, v]) => tagRow(k, v)));
    renumber();
    syncKind();
    checkDialog.showModal();
    await loadMetrics(c?.query.metric);
    checkDialog.dataset.ready = editingCheck ?? "new";
    drawPreview();
  }

  cf.algorithm.addEventListener("change", async () => { await loadMetrics(cf.metric.value); schedulePreview(); });
  for (const radio of checkForm.querySelectorAll("input[name=kind]")) radio.addEventListener("change", () => { syncKind(); schedulePreview(); });
  checkForm.addEventListener("input", schedulePreview);
  checkForm.addEventListener("change", schedulePreview);
  clearOwnErrors(checkForm);
  document.getElementById("add-threshold").addEventListener("click", () => {
    const row = thresholdRow(null);
    thresholdRows.append(row);
    renumber();
    row.fields.level.focus();
    schedulePreview();
  });
  document.getElementById("add-tag").addEventListener("click", () => {
    const row = tagRow();
    tagRows.append(row);
    renumber();
    row.fields.key.focus();
  });
  document.getElementById("new-check").addEventListener("click", () => openCheck(null));
  document.getElementById("cancel-check").addEventListener("click", () => checkDialog.close());
  checkDialog.addEventListener("close", () => {
    delete checkDialog.dataset.ready;
    previewGeneration += 1;
    clearTimeout(previewTimer);
  });
  checkForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const doc = formCheck();
    // A number the browser could not read is refused here, next to its field.
    const bad = doc.thresholds?.flatMap((t, i) => Object.entries(t).filter(([, v]) => v === null).map(([k]) => ({ field: `thresholds[${i}].${k}`, message: "must be a number" }))) ?? [];
    if (bad.length) {
      clearErrors(checkForm);
      placeErrors("check", { fields: bad });
      return;
    }
    await save("check", "/v1/admin/checks", editingCheck, doc, (field) => {
      const m = /^query\.(algorithm|metric|fn|window|versions)/.exec(field);
      if (m) return document.getElementById(`check-query-${m[1]}`);
      if (field === "kind") return document.getElementById("check-kind-threshold");
      return null;
    });
  });

  // ---- The endpoint form ----

  const endpointDialog = document.getElementById("endpoint-dialog");
  const endpointForm = document.getElementById("endpoint-form");
  const ef = endpointForm.elements;
  const headerRows = document.getElementById("header-rows");
  let editingEndpoint = null;

  function syncEndpointKind() {
    for (const fs of endpointForm.querySelectorAll(".kind-fields")) {
      fs.hidden = fs.dataset.kind !== ef.kind.value;
      for (const c of fs.querySelectorAll("input, select, textarea, button")) c.disabled = fs.hidden;
    }
    const auth = ef["auth-type"].value;
    document.getElementById("auth-basic").hidden = auth !== "basic";
    document.getElementById("auth-bearer").hidden = auth !== "bearer";
  }

  function headerRow(name) {
    const n = el("input", { className: "header-name", value: name ?? "", autocomplete: "off", maxLength: 64 });
    const v = el("input", { className: "header-value", type: "password", autocomplete: "off", placeholder: name ? "set (empty keeps it)" : "" });
    const remove = el("button", { type: "button", className: "danger remove-row", text: "Remove" });
    const error = el("p", { className: "field-error", hidden: true });
    const row = el("div", { className: "row-fields header-row" }, mini("Name", n), mini("Value", v), remove, error);
    row.fields = { name: n, value: v };
    remove.addEventListener("click", () => { row.remove(); renumberRows(headerRows, "endpoint", "header", "header"); });
    return row;
  }

  function openEndpoint(e) {
    editingEndpoint = e ?? null;
    clearErrors(endpointForm);
    endpointForm.reset();
    document.getElementById("endpoint-dialog-title").textContent = e ? `Edit endpoint “${e.name}”` : "New endpoint";
    ef.name.value = e?.name ?? "";
    ef.kind.value = e?.kind ?? "slack";
    ef.kind.disabled = !!e;
    const set = {
      url: !!e?.url_set, routing_key: !!e?.routing_key_set, password: !!e?.password_set,
      "auth.password": !!e?.auth?.password_set, "auth.token": !!e?.auth?.token_set,
    };
    for (const b of endpointForm.querySelectorAll(".set-badge")) b.hidden = !set[b.dataset.for];
    for (const input of endpointForm.querySelectorAll("input[type=password]")) {
      input.dataset.placeholder ??= input.placeholder;
      const stored = input.labels?.[0]?.querySelector(".set-badge");
      input.placeholder = stored && !stored.hidden ? "set — leave empty to keep it" : input.dataset.placeholder;
    }
    if (e?.kind === "slack") ef["slack-channel"].value = e.channel ?? "";
    if (e?.kind === "pagerduty") { ef["pagerduty-url"].value = e.url ?? ""; ef["pagerduty-client_url"].value = e.client_url ?? ""; }
    if (e?.kind === "http") {
      ef["http-method"].value = e.method;
      ef["auth-type"].value = e.auth?.type ?? "none";
      ef["auth-username"].value = e.auth?.username ?? "";
      ef["http-body_template"].value = e.body_template ?? "";
    }
    headerRows.replaceChildren(...(e?.headers_set ?? []).map((h) => headerRow(h)));
    renumberRows(headerRows, "endpoint", "header", "header");
    if (e?.kind === "email") {
      ef["email-host"].value = e.host; ef["email-port"].value = e.port; ef["email-tls"].value = e.tls;
      ef["email-username"].value = e.username ?? ""; ef["email-from"].value = e.from; ef["email-to"].value = (e.to ?? []).join(", ");
    }
    if (e?.kind === "alertmanager") ef["alertmanager-url"].value = e.url;
    syncEndpointKind();
    endpointDialog.showModal();
    endpointDialog.dataset.ready = e?.id ?? "new";
  }

  /** The endpoint the form describes; a secret left empty is left out, which keeps it. */
  function formEndpoint() {
    const k = ef.kind.value;
    const doc = { name: ef.name.value.trim(), kind: k };
    const field = (name) => ef[`${k}-${name}`];
    if (k === "slack") { text(doc, "url", field("url")); text(doc, "channel", field("channel")); }
    if (k === "pagerduty") { text(doc, "routing_key", field("routing_key")); text(doc, "url", field("url")); text(doc, "client_url", field("client_url")); }
    if (k === "http") {
      text(doc, "url", field("url"));
      doc.method = field("method").value;
      const rows = [...headerRows.children].map((r) => [r.fields.name.value.trim(), r.fields.value.value]).filter(([n]) => n);
      const stored = editingEndpoint?.headers_set ?? [];
      const unchanged = editingEndpoint && rows.every(([, v]) => v === "") && rows.length === stored.length && rows.every(([n], i) => n === stored[i]);
      if (!unchanged) doc.headers = Object.fromEntries(rows);
      const type = ef["auth-type"].value;
      doc.auth = { type };
      if (type === "basic") { doc.auth.username = ef["auth-username"].value; text(doc.auth, "password", ef["auth-password"]); }
      if (type === "bearer") text(doc.auth, "token", ef["auth-token"]);
      text(doc, "body_template", field("body_template"));
    }
    if (k === "email") {
      text(doc, "host", field("host"));
      const port = numberOf(field("port"));
      if (port !== undefined) doc.port = port;
      doc.tls = field("tls").value;
      text(doc, "username", field("username"));
      text(doc, "password", field("password"));
      text(doc, "from", field("from"));
      doc.to = field("to").value.split(",").map((t) => t.trim()).filter(Boolean);
    }
    if (k === "alertmanager") text(doc, "url", field("url"));
    return doc;
  }

  ef.kind.addEventListener("change", syncEndpointKind);
  ef["auth-type"].addEventListener("change", syncEndpointKind);
  clearOwnErrors(endpointForm);
  document.getElementById("add-header").addEventListener("click", () => {
    const row = headerRow();
    headerRows.append(row);
    renumberRows(headerRows, "endpoint", "header", "header");
    row.fields.name.focus();
  });
  document.getElementById("new-endpoint").addEventListener("click", () => openEndpoint(null));
  document.getElementById("cancel-endpoint").addEventListener("click", () => endpointDialog.close());
  endpointDialog.addEventListener("close", () => delete endpointDialog.dataset.ready);
  endpointForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const k = ef.kind.value;
    await save("endpoint", "/v1/admin/notification-endpoints", editingEndpoint?.id, formEndpoint(), (f) =>
      document.getElementById(`endpoint-${k}-${idOf(f)}`) ?? (f.startsWith("headers") ? document.getElementById("add-header") : null));
  });

  // ---- The rule form ----

  const ruleDialog = document.getElementById("rule-dialog");
  const ruleForm = document.getElementById("rule-form");
  const rf = ruleForm.elements;
  const whenRows = document.getElementById("when-rows");
  const ruleTagRows = document.getElementById("rule-tag-rows");
  const checkList = document.getElementById("rule-check-list");
  let editingRule = null;

  function whenRow(w) {
    const mode = el("select", { className: "w-mode" });
    options(mode, [["change", "changes"], ["is", "is, while it lasts"]], w?.is ? "is" : "change");
    const levelsAny = [["any", "any"], ...LEVELS.map((l) => [l, l])];
    const from = el("select", { className: "w-from" });
    options(from, levelsAny, w?.from ?? "any");
    const to = el("select", { className: "w-to" });
    options(to, levelsAny, w?.to ?? "crit");
    const is = el("select", { className: "w-is" });
    options(is, LEVELS.map((l) => [l, l]), w?.is ?? "crit");
    const remove = el("button", { type: "button", className: "danger remove-row", text: "Remove" });
    const error = el("p", { className: "field-error", hidden: true });
    const labels = { mode: mini("Level", mode), from: mini("From", from), to: mini("To", to), is: mini("Level", is) };
    const row = el("div", { className: "row-fields when-row" }, ...Object.values(labels), remove, error);
    row.fields = { mode, from, to, is };
    const sync = () => {
      labels.from.hidden = labels.to.hidden = mode.value !== "change";
      labels.is.hidden = mode.value !== "is";
    };
    mode.addEventListener("change", sync);
    sync();
    remove.addEventListener("click", () => { row.remove(); renumberRule(); });
    return row;
  }

  function ruleTagRow(t) {
    const key = el("input", { className: "rt-key", value: t?.key ?? "", autocomplete: "off", maxLength: 64 });
    const op = el("select", { className: "rt-op" });
    options(op, Object.entries(TAG_OPS), t?.op ?? "equal");
    const value = el("input", { className: "rt-value", value: t?.value ?? "", autocomplete: "off", maxLength: 256 });
    const remove = el("button", { type: "button", className: "danger remove-row", text: "Remove" });
    const error = el("p", { className: "field-error", hidden: true });
    const row = el("div", { className: "row-fields rule-tag-row" }, mini("Key", key), mini("Comparison", op), mini("Value", value), remove, error);
    row.fields = { key, op, value };
    remove.addEventListener("click", () => { row.remove(); renumberRule(); });
    return row;
  }

  function renumberRule() {
    renumberRows(whenRows, "rule", "when", "condition");
    renumberRows(ruleTagRows, "rule", "tags", "tag condition");
  }

  function openRule(r) {
    editingRule = r?.id ?? null;
    clearErrors(ruleForm);
    document.getElementById("rule-dialog-title").textContent = r ? `Edit rule “${r.name}”` : "New rule";
    rf.name.value = r?.name ?? "";
    rf.enabled.checked = r?.enabled ?? true;
    options(rf.endpoint, [["", "Choose an endpoint"], ...state.endpoints.map((e) => [e.id, `${e.name} (${e.kind})`])], r?.endpoint ?? (state.endpoints.length === 1 ? state.endpoints[0].id : ""));
    const chosen = r?.checks ?? [];
    rf.checks_mode.value = r?.checks ? "some" : "all";
    checkList.replaceChildren(...state.checks.map((c, i) => el("label", { className: "choice", htmlFor: `rule-check-${i}` },
      el("input", { type: "checkbox", id: `rule-check-${i}`, name: "check", value: c.id, checked: chosen.includes(c.id) }), " " + c.name)));
    if (!state.checks.length) checkList.append(el("p", { className: "hint", text: "No check yet." }));
    whenRows.replaceChildren(...(r?.when ?? [{ from: "any", to: "crit" }, { from: "any", to: "ok" }]).map((w) => whenRow(w)));
    ruleTagRows.replaceChildren(...(r?.tags ?? []).map((t) => ruleTagRow(t)));
    renumberRule();
    rf.every.value = r?.every ?? "1m";
    rf.repeat_every.value = r?.repeat_every ?? "";
    rf.limit_count.value = r?.limit?.count ?? "";
    rf.limit_every.value = r?.limit?.every ?? "";
    rf.message.value = r?.message ?? "";
    ruleDialog.showModal();
    ruleDialog.dataset.ready = editingRule ?? "new";
  }

  function formRule() {
    const doc = { name: rf.name.value.trim(), endpoint: rf.endpoint.value, enabled: rf.enabled.checked };
    if (rf.checks_mode.value === "some") doc.checks = [...checkList.querySelectorAll("input[name=check]:checked")].map((c) => c.value);
    text(doc, "every", rf.every);
    doc.when = [...whenRows.children].map((row) => {
      const f = row.fields;
      return f.mode.value === "is" ? { is: f.is.value } : { from: f.from.value, to: f.to.value };
    });
    doc.tags = [...ruleTagRows.children].map((row) => ({ key: row.fields.key.value.trim(), op: row.fields.op.value, value: row.fields.value.value }));
    text(doc, "repeat_every", rf.repeat_every);
    const count = numberOf(rf.limit_count);
    if (count !== undefined || rf.limit_every.value.trim()) {
      doc.limit = {};
      if (count !== undefined) doc.limit.count = count;
      text(doc.limit, "every", rf.limit_every);
    }
    text(doc, "message", rf.message);
    return doc;
  }

  checkList.addEventListener("change", () => { rf.checks_mode.value = "some"; });
  clearOwnErrors(ruleForm);
  document.getElementById("add-when").addEventListener("click", () => {
    const row = whenRow(null);
    whenRows.append(row);
    renumberRule();
    row.fields.mode.focus();
  });
  document.getElementById("add-rule-tag").addEventListener("click", () => {
    const row = ruleTagRow(null);
    ruleTagRows.append(row);
    renumberRule();
    row.fields.key.focus();
  });
  document.getElementById("new-rule").addEventListener("click", () => openRule(null));
  document.getElementById("cancel-rule").addEventListener("click", () => ruleDialog.close());
  ruleDialog.addEventListener("close", () => delete ruleDialog.dataset.ready);
  ruleForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    await save("rule", "/v1/admin/notification-rules", editingRule, formRule(), (f) =>
      /^checks/.test(f) ? document.getElementById("rule-checks-some")
        : /^when\[(\d+)\]\.(from|to|is)$/.test(f) ? document.getElementById(`rule-when-${/\d+/.exec(f)[0]}-${/(from|to|is)$/.exec(f)[0]}`)
          : null);
  });

  // The preview is live: while the form is open, it is asked again as new windows end.
  setInterval(() => {
    if (!document.hidden && checkDialog.open && checkDialog.dataset.ready && ["ready", "invalid"].includes(preview.dataset.state)) {
      drawPreview().catch(() => {});
    }
  }, PREVIEW_SECONDS * 1000);

  new ResizeObserver(() => {
    if (previewChart) previewChart.setSize({ width: Math.max(previewChart.root.parentElement.clientWidth, 240), height: 200 });
  }).observe(preview);

  setInterval(() => { if (!document.hidden) refresh(false).catch(() => {}); }, POLL_SECONDS * 1000);
  refresh(true, false);
}

/** A check's thresholds as lines: one per value, a range's two ends. */
function thresholdLines(thresholds) {
  const lines = [];
  for (const t of thresholds ?? []) {
    for (const v of t.type?.endsWith("_range") ? [t.min, t.max] : [t.value, t.recovery]) {
      if (Number.isFinite(v)) lines.push({ level: t.level, value: v, recovery: v === t.recovery });
    }
  }
  return lines;
}

/** Draws `lines` across a uPlot chart, dashed, in their level's color. */
function drawThresholdLines(u, lines) {
  const ctx = u.ctx, ratio = uPlot.pxRatio ?? 1, { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.lineWidth = 1.5 * ratio;
  for (const t of lines) {
    const y = u.valToPos(t.value, "y", true);
    if (!(y >= top && y <= top + height)) continue;
    ctx.setLineDash(t.recovery ? [2 * ratio, 3 * ratio] : [6 * ratio, 4 * ratio]);
    ctx.strokeStyle = LEVEL_COLORS[t.level];
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + width, y);
    ctx.stroke();
    ctx.fillStyle = LEVEL_COLORS[t.level];
    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    const label = `${t.level}${t.recovery ? " recovers" : ""} ${t.value}`;
    ctx.fillText(label, left + width - ctx.measureText(label).width - 4 * ratio, y - 3 * ratio);
  }
  ctx.restore();
}

/** Each window's point in the color of the level it gets. */
function drawLevelPoints(u, levels) {
  const ctx = u.ctx, ratio = uPlot.pxRatio ?? 1;
  ctx.save();
  levels.forEach((perX, si) => {
    perX.forEach((level, i) => {
      const v = u.data[si + 1][i];
      if (level === null || v === null) return;
      ctx.fillStyle = LEVEL_COLORS[level];
      ctx.beginPath();
      ctx.arc(u.valToPos(u.data[0][i], "x", true), u.valToPos(v, "y", true), 3.5 * ratio, 0, 2 * Math.PI);
      ctx.fill();
    });
  });
  ctx.restore();
}

alertsPage();
