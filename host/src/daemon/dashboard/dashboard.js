// The dashboard: the dataflow list with its actions, the workers, and a dataflow's run history and rejected
// rows, from the daemon's API.
// Plain JavaScript with no dependencies, built into the binary; it refreshes itself every two seconds.
"use strict";

const REFRESH_MS = 2000;
const $ = (selector) => document.querySelector(selector);
let historyOf = null;

const tokenInput = $("#token");
tokenInput.value = sessionStorage.getItem("sluice-token") || "";
tokenInput.addEventListener("change", () => sessionStorage.setItem("sluice-token", tokenInput.value));

function say(text, isError) {
  const message = $("#message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

async function api(method, path) {
  const headers = { "X-Requested-With": "sluice-dashboard" };
  if (tokenInput.value) headers.Authorization = "Bearer " + tokenInput.value;
  const response = await fetch(path, { method, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.status + " " + response.statusText);
  return body;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined || text === "" ? "—" : String(text);
  if (className) td.className = className;
  return td;
}

// RFC 3339 times from the API, shown shorter: "2026-12-01 17:17:44 UTC".
function when(time) {
  return time ? time.replace("T", " ").replace("Z", " UTC") : null;
}

function statusCell(row, status) {
  const td = row.insertCell();
  const badge = document.createElement("span");
  badge.className = "status";
  badge.dataset.status = status;
  badge.textContent = status;
  td.appendChild(badge);
}

function button(td, label, action, danger) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (danger) b.className = "danger";
  b.addEventListener("click", action);
  td.appendChild(b);
}

async function act(name, verb) {
  try {
    if (verb === "run") {
      await api("POST", `/api/dataflows/${name}/run`);
      say(`${name}: run queued`);
    } else if (verb === "rollback") {
      if (!confirm(`Roll ${name} back to before its newest run?`)) return;
      const done = await api("POST", `/api/dataflows/${name}/rollback`);
      say(`${name}: rolled back run ${done.rolled_back_run} (${done.rows_removed} rows removed)`);
    } else if (verb === "remove") {
      if (!confirm(`Remove ${name}? All its tables and its history are deleted.`)) return;
      const done = await api("DELETE", `/api/dataflows/${name}`);
      say(`${name}: removed (${done.rows_removed} rows)`);
    }
  } catch (error) {
    say(`${name}: ${error.message}`, true);
  }
  refresh();
}

function renderDataflows(dataflows) {
  const body = $("#dataflows tbody");
  body.replaceChildren();
  const key = $("#group").value;
  const groups = new Map();
  for (const d of dataflows) {
    const group = key ? d[key] : "";
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(d);
  }
  for (const [group, members] of [...groups].sort()) {
    if (key) {
      const header = body.insertRow();
      header.className = "group";
      const th = document.createElement("th");
      th.colSpan = 9;
      th.textContent = `${group} (${members.length})`;
      header.appendChild(th);
    }
    for (const d of members) {
      const row = body.insertRow();
      row.dataset.name = d.name;
      cell(row, d.name).title = d.display_name;
      cell(row, d.type);
      statusCell(row, d.status);
      if (d.work) {
        const total = d.work.queued + d.work.loading + d.work.done;
        row.cells[2].title = `${d.work.done} of ${total} objects done, ${d.work.loading} loading on ${d.work.workers} workers`;
        row.cells[2].append(` ${d.work.done}/${total}`);
      }
      cell(row, d.tables_count);
      cell(row, when(d.created));
      cell(row, when(d.updated));
      cell(row, when(d.last_refresh));
      cell(row, d.schedule).title = d.next_run ? `next run ${d.next_run}` : "runs only when asked";
      const actions = row.insertCell();
      actions.className = "actions";
      button(actions, "Run", () => act(d.name, "run"));
      button(actions, "Rollback", () => act(d.name, "rollback"));
      button(actions, "Remove", () => act(d.name, "remove"), true);
      button(actions, "Run History", () => showHistory(d.name));
    }
  }
}

async function showHistory(name) {
  if (historyOf !== name) {
    $("#reject-run").value = "";
    $("#reject-reason").value = "";
  }
  historyOf = name;
  $("#history").hidden = false;
  $("#history-name").textContent = name;
  await refreshHistory();
}

async function refreshHistory() {
  if (!historyOf) return;
  const runs = await api("GET", `/api/dataflows/${historyOf}/runs`);
  const body = $("#runs tbody");
  body.replaceChildren();
  for (const r of runs) {
    const row = body.insertRow();
    cell(row, r.recorded ? r.run : "not recorded yet");
    cell(row, when(r.started));
    cell(row, r.duration_seconds === null ? null : `${r.duration_seconds.toFixed(2)} s`);
    statusCell(row, r.status);
    cell(row, r.failed_objects ? `${r.objects} (${r.failed_objects} failed)` : r.objects);
    cell(row, r.rows_written);
    cell(row, r.rows_rejected);
    cell(row, r.error, "error");
  }
  if (runs.length === 0) cell(body.insertRow(), "no runs yet").colSpan = 8;
  offerRuns(runs.filter((r) => r.recorded).map((r) => r.run));
  await refreshRejects();
}

// The runs the rejected rows can be narrowed to, keeping the one chosen.
function offerRuns(runs) {
  const select = $("#reject-run");
  const chosen = select.value;
  select.replaceChildren(new Option("all runs", ""), ...runs.map((run) => new Option(`run ${run}`, String(run))));
  select.value = runs.map(String).includes(chosen) ? chosen : "";
}

// The dataflow's rejected rows, as the run and reason filters narrow them. Their raw text is the data itself,
// so the API serves them as it does writes: with the API token where the daemon has one.
async function refreshRejects() {
  const query = new URLSearchParams();
  if ($("#reject-run").value) query.set("run", $("#reject-run").value);
  if ($("#reject-reason").value.trim()) query.set("reason", $("#reject-reason").value.trim());
  const body = $("#rejects tbody");
  let rejects;
  try {
    rejects = await api("GET", `/api/dataflows/${historyOf}/rejects?${query}`);
  } catch (error) {
    body.replaceChildren();
    cell(body.insertRow(), `rejected rows not shown: ${error.message}`, "error").colSpan = 6;
    return;
  }
  body.replaceChildren();
  for (const r of rejects) {
    const row = body.insertRow();
    cell(row, r.run_id);
    cell(row, r.table);
    cell(row, r.object);
    cell(row, r.line);
    cell(row, r.reason, "reason");
    cell(row, r.raw, "raw");
  }
  if (rejects.length === 0) cell(body.insertRow(), "no rejected rows").colSpan = 6;
}

// The workers sharing runs through a PostgreSQL state store; the section stays hidden without any.
function renderWorkers(workers) {
  $("#workers").hidden = workers.length === 0;
  const body = $("#worker-list tbody");
  body.replaceChildren();
  for (const w of workers) {
    const row = body.insertRow();
    cell(row, w.id);
    cell(row, w.host);
    cell(row, w.pid);
    cell(row, `${Math.round(w.heartbeat_age_seconds)} s ago${w.alive ? "" : " (gone)"}`).title = when(w.last_heartbeat);
    cell(row, w.loading.join(", "));
  }
}

async function refreshHealth() {
  const response = await fetch("/healthz");
  const health = await response.json();
  const badge = $("#health");
  badge.dataset.status = health.status;
  badge.textContent = health.status === "ok" ? "healthy" : health.status;
  badge.title = health.problems.join("\n");
}

async function refresh() {
  try {
    renderDataflows(await api("GET", "/api/dataflows"));
    renderWorkers(await api("GET", "/api/workers"));
    await refreshHistory();
    await refreshHealth();
  } catch (error) {
    say(error.message, true);
  }
}

$("#group").addEventListener("change", refresh);
$("#history-close").addEventListener("click", () => { historyOf = null; $("#history").hidden = true; });
$("#reject-run").addEventListener("change", refreshRejects);
$("#reject-reason").addEventListener("input", refreshRejects);
refresh();
setInterval(refresh, REFRESH_MS);
