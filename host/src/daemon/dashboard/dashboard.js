// The dashboard: the dataflow list with its actions and the workers, and a page per dataflow (#/dataflows/NAME)
// with its runs as a chart, their history and objects, its rejected rows, the next run's preview (and, for a
// Stripe sink, what it would change there) and its configuration, all from the daemon's API.
// Plain JavaScript with no dependencies, built into the binary; it refreshes itself every two seconds.
"use strict";

const REFRESH_MS = 2000;
const $ = (selector) => document.querySelector(selector);
// The dataflow whose page is open, and the run whose objects it shows.
let historyOf = null;
let objectsOf = null;

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

// What each view last showed, as JSON: a view is drawn again only when what it shows changed, so that the
// refresh every two seconds leaves the keyboard's focus where it was.
const shown = new Map();

function changed(view, data) {
  const text = JSON.stringify(data);
  if (shown.get(view) === text) return false;
  shown.set(view, text);
  return true;
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
    } else if (verb === "replay") {
      const done = await api("POST", `/api/dataflows/${name}/replay`);
      const left = done.left ? `; ${done.left} left, which only a new read of their files mends` : "";
      say(`${name}: replay ${done.status}: ${done.went_through} of ${done.retried} rows went through, ${done.rejected_again} rejected again${left}`, done.status !== "succeeded");
      await refreshPage();
      return;
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
  if (!changed("dataflows", [$("#group").value, dataflows])) return;
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
      const name = row.insertCell();
      const link = document.createElement("a");
      link.href = `#/dataflows/${encodeURIComponent(d.name)}`;
      link.textContent = d.name;
      link.title = d.display_name;
      name.appendChild(link);
      cell(row, d.type);
      statusCell(row, d.status);
      if (d.work) {
        const total = d.work.queued + d.work.loading + d.work.done;
        row.cells[2].title = `${d.work.done} of ${total} objects done, ${d.work.loading} loading on ${d.work.workers} workers`;
        row.cells[2].append(` ${d.work.done}/${total}`);
      }
      cell(row, d.tables_count);
      cell(row, when(d.created), "time");
      cell(row, when(d.updated), "time");
      cell(row, when(d.last_refresh), "time");
      cell(row, d.schedule).title = d.next_run ? `next run ${d.next_run}` : "runs only when asked";
      const actions = row.insertCell();
      actions.className = "actions";
      button(actions, "Run", () => act(d.name, "run"));
      button(actions, "Rollback", () => act(d.name, "rollback"));
      button(actions, "Remove", () => act(d.name, "remove"), true);
      button(actions, "Run History", () => { location.hash = `#/dataflows/${encodeURIComponent(d.name)}`; });
    }
  }
}

// The page of the dataflow the address names (#/dataflows/NAME), or the list.
async function route() {
  const match = location.hash.match(/^#\/dataflows\/(.+)$/);
  const name = match ? decodeURIComponent(match[1]) : null;
  $("#list").hidden = name !== null;
  $("#page").hidden = name === null;
  if (name === historyOf) return;
  historyOf = name;
  objectsOf = null;
  $("#objects-section").hidden = true;
  $("#reject-run").value = "";
  $("#reject-reason").value = "";
  for (const id of ["#preview-objects", "#preview-records", "#diff"]) $(id).hidden = true;
  if (name === null) return;
  $("#page-name").textContent = name;
  document.title = `Sluice — ${name}`;
  $("#page-name").focus();
  await refreshPage();
}

// The page's head and configuration, then its runs.
async function refreshPage() {
  if (!historyOf) return;
  const detail = await api("GET", `/api/dataflows/${encodeURIComponent(historyOf)}`);
  const status = $("#page-status");
  status.replaceChildren();
  const badge = document.createElement("span");
  badge.className = "status";
  badge.dataset.status = detail.dataflow.status;
  badge.textContent = detail.dataflow.status;
  status.appendChild(badge);
  $("#page-type").textContent = `${detail.dataflow.type} · ${detail.dataflow.schedule}`;
  $("#config").textContent = detail.config || "(the configuration file could not be read)";
  $("#diff-section").hidden = detail.sink !== "stripe";
  await refreshHistory();
}

async function refreshHistory() {
  if (!historyOf) return;
  const runs = await api("GET", `/api/dataflows/${encodeURIComponent(historyOf)}/runs`);
  if (changed("runs", [historyOf, runs])) drawRuns(runs);
  await refreshObjects();
  await refreshRejects();
}

function drawRuns(runs) {
  const body = $("#runs tbody");
  body.replaceChildren();
  for (const r of runs) {
    const row = body.insertRow();
    cell(row, r.recorded ? r.run : "not recorded yet");
    cell(row, when(r.started), "time");
    cell(row, r.duration_seconds === null ? null : `${r.duration_seconds.toFixed(2)} s`);
    statusCell(row, r.status);
    cell(row, r.failed_objects ? `${r.objects} (${r.failed_objects} failed)` : r.objects);
    cell(row, r.rows_written);
    cell(row, r.rows_rejected);
    cell(row, r.error, "error");
    const actions = row.insertCell();
    if (r.recorded) button(actions, "Objects", () => showObjects(r.run));
  }
  if (runs.length === 0) cell(body.insertRow(), "no runs yet").colSpan = 9;
  drawChart(runs.filter((r) => r.recorded).reverse());
  offerRuns(runs.filter((r) => r.recorded).map((r) => r.run));
}

const SVG = "http://www.w3.org/2000/svg";

function svg(parent, tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  parent.appendChild(element);
  return element;
}

// The runs, oldest left: a bar per run for its rows written, coloured by status (a failed run marked ✕, a
// partial one !), and a line through the runs' durations, each on its own scale.
function drawChart(runs) {
  const chart = $("#chart");
  chart.replaceChildren();
  if (runs.length === 0) {
    chart.textContent = "no runs yet";
    return;
  }
  const [width, height, top, bottom, left, right] = [1000, 180, 16, 24, 48, 48];
  const plot = { w: width - left - right, h: height - top - bottom };
  const maxRows = Math.max(1, ...runs.map((r) => r.rows_written));
  const maxSeconds = Math.max(0.001, ...runs.map((r) => r.duration_seconds || 0));
  const slot = plot.w / runs.length;
  const root = svg(chart, "svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", width: "100%",
    "aria-label": `${runs.length} runs: rows written and duration per run, oldest first`,
  });
  svg(root, "line", { x1: left, y1: top + plot.h, x2: left + plot.w, y2: top + plot.h, class: "axis" });
  svg(root, "text", { x: left - 6, y: top + 4, "text-anchor": "end", class: "scale" }, maxRows.toLocaleString());
  svg(root, "text", { x: left - 6, y: top + plot.h, "text-anchor": "end", class: "scale" }, "0");
  const longest = maxSeconds >= 1 ? `${maxSeconds.toFixed(2)} s` : `${(maxSeconds * 1000).toFixed(1)} ms`;
  svg(root, "text", { x: left + plot.w + 6, y: top + 4, class: "scale" }, longest);
  const points = [];
  runs.forEach((r, i) => {
    const x = left + i * slot;
    const barHeight = (r.rows_written / maxRows) * plot.h;
    const barWidth = Math.max(1, Math.min(slot * 0.7, 48));
    const bar = svg(root, "rect", {
      x: x + (slot - barWidth) / 2, y: top + plot.h - barHeight, width: barWidth, height: Math.max(barHeight, 1),
      class: "bar", "data-status": r.status, "data-run": r.run,
    });
    svg(bar, "title", {}, `run ${r.run}: ${r.status}, ${r.rows_written} rows, ${r.rows_rejected} rejected, ` +
      `${(r.duration_seconds || 0).toFixed(2)} s`);
    const mark = { failed: "✕", partial: "!" }[r.status];
    if (mark) {
      svg(root, "text", { x: x + slot / 2, y: top + plot.h - barHeight - 4, "text-anchor": "middle",
        class: "mark", "data-status": r.status }, mark);
    }
    if (runs.length <= 30 || i % Math.ceil(runs.length / 30) === 0) {
      svg(root, "text", { x: x + slot / 2, y: height - 6, "text-anchor": "middle", class: "scale" }, String(r.run));
    }
    points.push(`${x + slot / 2},${top + plot.h - ((r.duration_seconds || 0) / maxSeconds) * plot.h}`);
  });
  svg(root, "polyline", { points: points.join(" "), class: "duration" });
}

async function showObjects(run) {
  objectsOf = run;
  await refreshObjects();
  $("#objects-title").scrollIntoView({ block: "nearest" });
}

// The objects of the run chosen in Run History: status, rows, rejects and error of each.
async function refreshObjects() {
  if (objectsOf === null) return;
  const objects = await api("GET", `/api/dataflows/${encodeURIComponent(historyOf)}/runs/${objectsOf}`);
  $("#objects-section").hidden = false;
  if (!changed("objects", [historyOf, objectsOf, objects])) return;
  $("#objects-run").textContent = objectsOf;
  const body = $("#objects tbody");
  body.replaceChildren();
  for (const o of objects) {
    const row = body.insertRow();
    cell(row, o.key, "key");
    statusCell(row, o.status);
    cell(row, o.rows);
    cell(row, o.rejected);
    cell(row, o.error, "error");
  }
  if (objects.length === 0) cell(body.insertRow(), "no object of this run is recorded as its own (a replay, or objects a later run took again)").colSpan = 5;
}

// What the next run would take and its first records; read when asked, as it lists the source.
async function loadPreview() {
  const name = historyOf;
  $("#preview-summary").textContent = "listing…";
  try {
    const preview = await api("GET", `/api/dataflows/${encodeURIComponent(name)}/preview`);
    const body = $("#preview-objects tbody");
    body.replaceChildren();
    if (preview.tables) {
      $("#preview-summary").textContent = `${preview.tables.length} Stripe tables`;
      for (const t of preview.tables) {
        const row = body.insertRow();
        cell(row, `${t.object} ─► ${t.table}`, "key");
        cell(row, `${t.in_stripe} in Stripe`);
        cell(row, t.rows === null ? "never loaded" : `${t.rows} rows now`);
        cell(row, `${t.to_list} to list`);
      }
      $("#preview-objects").hidden = false;
      return;
    }
    $("#preview-summary").textContent = `${preview.listed} objects listed, ${preview.objects.length} in the window`;
    for (const o of preview.objects) {
      const row = body.insertRow();
      cell(row, o.key, "key");
      cell(row, `${o.size.toLocaleString()} B`);
      cell(row, when(o.last_modified), "time");
      cell(row, o.decision);
    }
    $("#preview-objects").hidden = preview.objects.length === 0;
    const sample = preview.sample;
    const records = $("#preview-records");
    records.hidden = !sample;
    if (sample) {
      const lines = [`First records of ${sample.key}:`, ...sample.records.map((r) => JSON.stringify(r)),
        ...sample.rejects.map((r) => `rejected: line ${r.line}: ${r.reason}`)];
      if (sample.error) lines.push(`error: ${sample.error}`);
      records.textContent = lines.join("\n");
    }
  } catch (error) {
    $("#preview-summary").textContent = `not shown: ${error.message}`;
  }
}

// For a Stripe sink: each record the next run would send, as a create, an update (old ─► new per field)
// or unchanged.
async function loadDiff() {
  $("#diff-summary").textContent = "reading from Stripe…";
  try {
    const diff = await api("GET", `/api/dataflows/${encodeURIComponent(historyOf)}/diff`);
    const count = (action) => diff.records.filter((r) => r.action === action).length;
    $("#diff-summary").textContent = `${count("create")} to create, ${count("update")} to update, ` +
      `${count("unchanged")} unchanged, ${diff.rejects.length} rejected` + (diff.capped ? " (the first records only)" : "");
    const body = $("#diff tbody");
    body.replaceChildren();
    for (const r of diff.records) {
      const row = body.insertRow();
      row.dataset.action = r.action;
      cell(row, r.action);
      cell(row, r.object, "key");
      cell(row, r.line);
      cell(row, r.external_id);
      cell(row, r.stripe_id);
      cell(row, r.changes.map((c) => `${c.field}: ${c.old ?? "(unset)"} ─► ${c.new}${c.create_only ? " (create only)" : ""}`).join("\n"), "changes");
    }
    $("#diff").hidden = diff.records.length === 0;
  } catch (error) {
    $("#diff-summary").textContent = `not shown: ${error.message}`;
  }
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
    rejects = await api("GET", `/api/dataflows/${encodeURIComponent(historyOf)}/rejects?${query}`);
  } catch (error) {
    shown.delete("rejects");
    body.replaceChildren();
    cell(body.insertRow(), `rejected rows not shown: ${error.message}`, "error").colSpan = 7;
    return;
  }
  if (!changed("rejects", [historyOf, query.toString(), rejects])) return;
  body.replaceChildren();
  for (const r of rejects) {
    const row = body.insertRow();
    cell(row, r.run_id);
    cell(row, r.table);
    cell(row, r.object);
    cell(row, r.line);
    cell(row, r.stage);
    cell(row, r.reason, "reason");
    cell(row, r.raw, "raw");
  }
  if (rejects.length === 0) cell(body.insertRow(), "no rejected rows").colSpan = 7;
}

// The workers sharing runs through a PostgreSQL state store; the section stays hidden without any.
function renderWorkers(workers) {
  $("#workers").hidden = workers.length === 0;
  if (!changed("workers", workers.map((w) => ({ ...w, heartbeat_age_seconds: Math.round(w.heartbeat_age_seconds) })))) return;
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
    await refreshPage();
    await refreshHealth();
  } catch (error) {
    say(error.message, true);
  }
}

$("#group").addEventListener("change", refresh);
$("#reject-run").addEventListener("change", refreshRejects);
$("#reject-reason").addEventListener("input", refreshRejects);
$("#replay").addEventListener("click", () => act(historyOf, "replay"));
$("#page-run").addEventListener("click", () => act(historyOf, "run"));
$("#page-rollback").addEventListener("click", () => act(historyOf, "rollback"));
$("#preview-load").addEventListener("click", loadPreview);
$("#diff-load").addEventListener("click", loadDiff);
window.addEventListener("hashchange", () => route().catch((error) => say(error.message, true)));
route().then(refresh);
setInterval(refresh, REFRESH_MS);
