// The admin panel's only script: it calls the admin API with the session cookie and the page's
// CSRF token, and shows the API's own messages next to the fields they are about.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

/** Calls the admin API; answers {status, body}. A lost session sends the browser to sign in. */
async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
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
    show(verdict, "");
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

  const save = async (body) => {
    const saved = await api("PUT", "/v1/admin/insights/connection", body);
    if (saved.status !== 200) {
      if (!markFields(form, saved.body?.error)) show(formError, errorMessage(saved.body, "Saving failed."));
      return false;
    }
    location.reload();
    return true;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFields(form);
    show(formError, "");
    show(verdict, "");
    saveAnyway.hidden = true;
    const body = request();
    const button = document.getElementById("connect");
    button.disabled = true;
    show(verdict, "Testing the connection…");
    try {
      const tested = await api("POST", "/v1/admin/insights/connection/test", body);
      if (tested.status !== 200) {
        show(verdict, "");
        if (!markFields(form, tested.body?.error)) show(formError, errorMessage(tested.body, "The test failed."));
        return;
      }
      verdict.dataset.code = tested.body.code;
      if (tested.body.code === "ok") {
        show(verdict, "Connection works. Saving…");
        await save(body);
      } else {
        show(verdict, tested.body.message);
        saveAnyway.hidden = false;
      }
    } finally {
      button.disabled = false;
    }
  });
  saveAnyway.addEventListener("click", () => save(request()));

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
  const refresh = async () => {
    const r = await api("GET", "/v1/admin/insights/connection");
    if (r.status !== 200) return;
    const { status, summary } = r.body;
    state.dataset.state = status.state;
    document.getElementById("kafka-state-label").textContent = summary.label;
    document.getElementById("kafka-state-sentence").textContent = summary.sentence;
    document.getElementById("kafka-error").textContent = status.last_error ?? "";
    document.getElementById("kafka-error-detail").hidden = !status.last_error;
    for (const key of ["delivered", "waiting", "dropped"]) {
      document.getElementById(key).textContent = String(status[key]);
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
    document.getElementById("new-key-value").textContent = r.body.key;
    document.getElementById("new-key").hidden = false;
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
insightsSwitches();
apiKeys();
