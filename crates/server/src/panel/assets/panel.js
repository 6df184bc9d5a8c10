// The admin panel's only script: it calls the admin API with the session cookie and the page's
// CSRF token, and shows the API's own messages next to the fields they are about.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

/**
 * Calls the admin API; answers {status, body}. A lost session sends the browser to sign in.
 * `background` marks a request the person did not make (the status poll): it does not keep the
 * session alive.
 */
async function api(method, url, body, background = false) {
  const init = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
  if (background) init.headers["X-Insights-Background"] = "1";
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (response.status === 401) {
    location.assign("/admin/sign-in?next=" + encodeURIComponent(location.pathname));
    throw new Error("signed out");
  }
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
  return { status: response.status, body: parsed };
}

function show(el, text) {
  if (!el) return;
  el.textContent = text;
  el.hidden = !text;
}

/** Sets the text of a live region, which stays in the page (hiding it would silence it). */
function say(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}

function pageError(text) {
  show(document.getElementById("page-error"), text);
}

function errorMessage(body, fallback) {
  return body?.error?.message ?? fallback;
}

/** Marks each invalid field with the API's message; answers whether any field was marked. */
function markFields(form, error) {
  const fields = error?.fields?.length ? error.fields
    : error?.field ? [{ field: error.field, message: error.message }] : [];
  let marked = false;
  for (const f of fields) {
    const slot = document.getElementById("error-" + f.field);
    if (!slot) continue;
    show(slot, f.message);
    const input = form.querySelector(`[name="${f.field}"]`);
    input?.setAttribute("aria-invalid", "true");
    if (!marked) input?.focus();
    marked = true;
  }
  return marked;
}

function clearFields(form) {
  for (const slot of form.querySelectorAll(".field-error")) show(slot, "");
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

// ---- Insights: the connection ----

function connectionForm() {
  const dialog = document.getElementById("connection-dialog");
  const form = document.getElementById("connection-form");
  if (!dialog || !form) return;
  const sasl = document.getElementById("sasl-fields");
  const verdict = document.getElementById("verdict");
  const saveAnyway = document.getElementById("save-anyway");
  const formError = form.querySelector("#form-error");

  const type = () => form.querySelector('input[name="connection_type"]:checked')?.value ?? "";
  const syncType = () => {
    const encrypted = type() === "sasl_scram_tls";
    sasl.hidden = !encrypted;
    for (const el of sasl.querySelectorAll("input, select, textarea")) el.disabled = !encrypted;
  };
  for (const radio of form.querySelectorAll('input[name="connection_type"]')) {
    radio.addEventListener("change", syncType);
  }
  syncType();

  document.getElementById("ca_file")?.addEventListener("change", async (event) => {
    const file = event.target.files?.[0];
    if (file) form.elements.ca_certificate.value = await file.text();
  });

  document.getElementById("open-connection")?.addEventListener("click", () => {
    clearFields(form);
    say(verdict, "");
    delete verdict.dataset.code;
    show(formError, "");
    saveAnyway.hidden = true;
    dialog.showModal();
  });
  document.getElementById("cancel-connection")?.addEventListener("click", () => dialog.close());

  const request = () => {
    const body = {
      topic: form.elements.topic.value.trim(),
      brokers: form.elements.brokers.value.trim(),
      connection_type: type(),
    };
    if (body.connection_type === "sasl_scram_tls") {
      body.sasl_mechanism = form.elements.sasl_mechanism.value;
      body.username = form.elements.username.value;
      // An empty password keeps the stored one: it is left out, never sent back.
      if (form.elements.password.value !== "") body.password = form.elements.password.value;
      body.ca_certificate = form.elements.ca_certificate.value;
    }
    return body;
  };

  const buttons = [document.getElementById("connect"), saveAnyway];
  const busy = (on) => { for (const b of buttons) b.disabled = on; };

  const save = async (body) => {
    const saved = await api("PUT", "/v1/admin/insights/connection", body);
    if (saved.status !== 200) {
      if (!markFields(form, saved.body?.error)) show(formError, errorMessage(saved.body, "Saving failed."));
      return;
    }
    // Shown after the reload (e.g. "a single broker is a single point of failure").
    if (saved.body.warnings?.length) sessionStorage.setItem("connection-warnings", saved.body.warnings.join(" "));
    location.reload();
  };

  // A verdict is about the values tested: once they change, only Connect (test again) is offered.
  form.addEventListener("input", () => { saveAnyway.hidden = true; });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFields(form);
    show(formError, "");
    saveAnyway.hidden = true;
    const body = request();
    busy(true);
    delete verdict.dataset.code;
    say(verdict, "Testing the connection…");
    try {
      const tested = await api("POST", "/v1/admin/insights/connection/test", body);
      if (tested.status !== 200) {
        say(verdict, "");
        if (!markFields(form, tested.body?.error)) show(formError, errorMessage(tested.body, "The test failed."));
        return;
      }
      verdict.dataset.code = tested.body.code;
      if (tested.body.code === "ok") {
        say(verdict, "Connection works. Saving…");
        await save(body);
      } else {
        say(verdict, tested.body.message);
        saveAnyway.hidden = false;
      }
    } catch (e) {
      say(verdict, "");
      show(formError, "The server could not be reached: " + e.message);
    } finally {
      busy(false);
    }
  });
  saveAnyway.addEventListener("click", async () => {
    busy(true);
    try {
      await save(request());
    } catch (e) {
      show(formError, "The server could not be reached: " + e.message);
    } finally {
      busy(false);
    }
  });

  const warnings = sessionStorage.getItem("connection-warnings");
  if (warnings) {
    sessionStorage.removeItem("connection-warnings");
    show(document.getElementById("connection-warnings"), warnings);
  }

  document.getElementById("disconnect")?.addEventListener("click", async () => {
    if (!confirm("Disconnect from Kafka? Payloads waiting now stay on disk until their delivery window ends.")) return;
    const r = await api("DELETE", "/v1/admin/insights/connection");
    if (r.status === 204) location.reload();
    else pageError(errorMessage(r.body, "Disconnecting failed."));
  });
}

/** Keeps the state and counts current without a reload. */
function liveStatus() {
  const state = document.getElementById("kafka-state");
  if (!state) return;
  let inFlight = false;
  const refresh = async () => {
    // Not while the tab is hidden, and never two at once (a slow server would pile them up).
    if (document.hidden || inFlight) return;
    inFlight = true;
    try {
      const r = await api("GET", "/v1/admin/insights/connection", undefined, true);
      if (r.status !== 200) return;
      const { status, summary } = r.body;
      state.dataset.state = status.state;
      // Only what changed is written: the state is a live region, read out on each change.
      say(document.getElementById("kafka-state-label"), summary.label);
      say(document.getElementById("kafka-state-sentence"), summary.sentence);
      say(document.getElementById("kafka-error"), status.last_error ?? "");
      document.getElementById("kafka-error-detail").hidden = !status.last_error;
      for (const key of ["delivered", "waiting", "dropped"]) {
        say(document.getElementById(key), String(status[key]));
      }
    } finally {
      inFlight = false;
    }
  };
  setInterval(() => refresh().catch(() => {}), 2000);
}

// ---- Insights: Datadog ----

function datadogForm() {
  const dialog = document.getElementById("datadog-dialog");
  const form = document.getElementById("datadog-form");
  if (!dialog || !form) return;
  const verdict = document.getElementById("datadog-verdict");
  const formError = document.getElementById("datadog-form-error");
  // `tags[2]` is shown under the tags input, with its number.
  const mark = (error) => {
    const fields = error?.fields?.length ? error.fields
      : error?.field ? [{ field: error.field, message: error.message }] : [];
    const byField = {};
    for (const f of fields) {
      const m = /^tags\[(\d+)\]$/.exec(f.field);
      const name = m ? "tags" : f.field;
      byField[name] = (byField[name] ? byField[name] + " " : "") + (m ? `Tag ${Number(m[1]) + 1}: ` : "") + f.message;
    }
    return markFields(form, { fields: Object.entries(byField).map(([field, message]) => ({ field, message })) });
  };
  const request = () => {
    const body = {
      site: form.elements.site.value,
      metric_prefix: form.elements.metric_prefix.value.trim(),
      tags: form.elements.tags.value.split(",").map((t) => t.trim()).filter((t) => t !== ""),
      legacy_id_tags: form.elements.legacy_id_tags.checked,
    };
    // An empty key keeps the stored one: it is left out, never sent back.
    if (form.elements.api_key.value !== "") body.api_key = form.elements.api_key.value;
    if (form.elements.url.value.trim() !== "") body.url = form.elements.url.value.trim();
    return body;
  };
  const reset = () => { clearFields(form); show(formError, ""); say(verdict, ""); delete verdict.dataset.outcome; };
  document.getElementById("open-datadog")?.addEventListener("click", () => { reset(); dialog.showModal(); });
  document.getElementById("cancel-datadog")?.addEventListener("click", () => dialog.close());
  const buttons = [document.getElementById("test-datadog"), document.getElementById("save-datadog")];
  const busy = (on) => { for (const b of buttons) b.disabled = on; };

  document.getElementById("test-datadog").addEventListener("click", async () => {
    reset();
    busy(true);
    say(verdict, "Checking the API key with Datadog…");
    try {
      const tested = await api("POST", "/v1/admin/insights/datadog/test", request());
      if (tested.status !== 200) {
        say(verdict, "");
        if (!mark(tested.body?.error)) show(formError, errorMessage(tested.body, "The test failed."));
        return;
      }
      verdict.dataset.outcome = tested.body.outcome;
      say(verdict, tested.body.verdict);
    } catch (e) {
      say(verdict, "");
      show(formError, "The server could not be reached: " + e.message);
    } finally {
      busy(false);
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    reset();
    busy(true);
    try {
      const saved = await api("PUT", "/v1/admin/insights/datadog", request());
      if (saved.status !== 200) {
        if (!mark(saved.body?.error)) show(formError, errorMessage(saved.body, "Saving failed."));
        return;
      }
      location.reload();
    } catch (e) {
      show(formError, "The server could not be reached: " + e.message);
    } finally {
      busy(false);
    }
  });

  document.getElementById("remove-datadog")?.addEventListener("click", async () => {
    if (!confirm("Stop sending to Datadog? Payloads waiting now stay on disk until their window ends.")) return;
    const r = await api("DELETE", "/v1/admin/insights/datadog");
    if (r.status === 204) location.reload();
    else pageError(errorMessage(r.body, "Removing the Datadog settings failed."));
  });
}

/** Keeps the Datadog state and counts current without a reload. */
function datadogLiveStatus() {
  const state = document.getElementById("datadog-state");
  if (!state) return;
  let inFlight = false;
  const refresh = async () => {
    if (document.hidden || inFlight) return;
    inFlight = true;
    try {
      const r = await api("GET", "/v1/admin/insights/datadog", undefined, true);
      if (r.status !== 200) return;
      const { status, summary } = r.body;
      state.dataset.state = status.state;
      say(document.getElementById("datadog-state-label"), summary.label);
      say(document.getElementById("datadog-state-sentence"), summary.sentence);
      say(document.getElementById("datadog-error"), status.last_error ?? "");
      document.getElementById("datadog-error-detail").hidden = !status.last_error;
      for (const key of ["delivered", "waiting", "dropped"]) {
        say(document.getElementById("datadog-" + key), String(status[key]));
      }
    } finally {
      inFlight = false;
    }
  };
  setInterval(() => refresh().catch(() => {}), 2000);
}

// ---- Algorithms: the Insights switches ----

function insightsSwitches() {
  for (const input of document.querySelectorAll('input[role="switch"][data-version]')) {
    input.addEventListener("change", async () => {
      const on = input.checked;
      input.disabled = true;
      const url = `/v1/algorithms/${input.dataset.algorithm}/versions/${encodeURIComponent(input.dataset.version)}`;
      try {
        const r = await api("PATCH", url, { settings: { insights_enabled: on } });
        if (r.status !== 200) {
          input.checked = !on;
          pageError(errorMessage(r.body, "The change was not saved."));
        } else {
          input.checked = r.body.settings.insights_enabled;
          pageError("");
        }
      } finally {
        input.disabled = false;
      }
    });
  }
}

// ---- API keys ----

function apiKeys() {
  const form = document.getElementById("create-key");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFields(form);
    const r = await api("POST", "/v1/admin/api-keys", { name: form.elements.name.value });
    if (r.status !== 201) {
      if (!markFields(form, r.body?.error)) pageError(errorMessage(r.body, "Creating the key failed."));
      return;
    }
    form.reset();
    document.getElementById("new-key-notice").hidden = false;
    say(document.getElementById("new-key-value"), r.body.key);
    const row = document.createElement("tr");
    row.dataset.keyId = r.body.id;
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = r.body.name;
    const created = document.createElement("td");
    created.textContent = r.body.created_at;
    const used = document.createElement("td");
    used.textContent = "never";
    const actions = document.createElement("td");
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.className = "danger revoke";
    revoke.dataset.keyId = r.body.id;
    revoke.dataset.keyName = r.body.name;
    revoke.setAttribute("aria-label", "Revoke key " + r.body.name);
    revoke.textContent = "Revoke";
    actions.append(revoke);
    row.append(name, created, used, actions);
    document.querySelector("#keys tbody").append(row);
    document.getElementById("no-keys")?.remove();
  });
  document.getElementById("keys").addEventListener("click", async (event) => {
    const button = event.target.closest("button.revoke");
    if (!button) return;
    if (!confirm(`Revoke the key "${button.dataset.keyName}"? Clients using it get 401 from now on.`)) return;
    const r = await api("DELETE", `/v1/admin/api-keys/${encodeURIComponent(button.dataset.keyId)}`);
    if (r.status === 204) button.closest("tr").remove();
    else pageError(errorMessage(r.body, "Revoking failed."));
  });
}

connectionForm();
liveStatus();
datadogForm();
datadogLiveStatus();
insightsSwitches();
apiKeys();
