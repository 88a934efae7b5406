"use strict";
// The Fabric dashboard. Polls this gateway's JSON (health, nodes, devices, jobs, and the selected job's timeline, a
// Chrome trace-event document) and draws it. Nothing is fetched from anywhere else. Every element that shows a value
// carries it in data-* attributes too, so that a test (or a script) can read the page back.
//
// What a reader finds (values as the gateway's JSON has them; Fabric.Tests/Gateway/DashboardBrowserTests.cs reads them):
//   body[data-loaded]        the sections drawn at least once, sorted: "devices jobs nodes timeline"
//   p.error[data-error]      a section whose last request failed, with the sentence
//   #self span[data-self-node, data-status, data-jobs]
//   tr.node-row[data-node, data-address, data-status, data-reachable, data-devices, data-gateway]
//   span.removed-node[data-removed-node, data-address, data-reason, data-at-ms]
//   div.device[data-device, data-node, data-status, data-kind, data-memory-used, data-memory-total, data-utilization,
//              data-queue-depth, data-contexts, data-exports, data-imports, data-submissions, data-failed-submissions, data-resets]
//   tr.job-row[data-job, data-name, data-status, data-done, data-total, data-runs], in it div.stage[data-stage, data-tasks, data-completed]
//   svg.timeline[data-timeline-job, data-attempts, data-start-us, data-end-us]; beside it [data-attempts], [data-node-losses]
//     and span.legend-item[data-outcome, data-count]
//   rect.attempt[data-task, data-attempt, data-stage, data-node, data-device, data-outcome, data-recomputation, data-ts, data-dur,
//                data-error]: one per attempt (a complete event of the timeline)
//   g.marker[data-marker (the instant's name), data-label (as drawn), data-category, data-ts]: one per instant event

const POLL_MS = 1500;
const SPARK_SAMPLES = 60;
const SVG_NS = "http://www.w3.org/2000/svg";

// Attempt outcomes (the timeline's "cat"): colour and legend label. A recomputation is a completed attempt drawn hatched.
const OUTCOMES = {
  completed: { color: "#3fb950", label: "completed" },
  recomputation: { color: "#39c5cf", label: "recomputation" },
  running: { color: "#58a6ff", label: "running" },
  failed: { color: "#f85149", label: "failed" },
  nodelost: { color: "#db6d28", label: "node lost" },
  runlost: { color: "#d29922", label: "job's node lost" },
  handedoff: { color: "#a371f7", label: "handed off" },
  abandoned: { color: "#6e7681", label: "abandoned" },
};
const MARKERS = { nodelost: "#f85149", runlost: "#d29922", job: "#8b949e" };

const state = {
  chosen: new URLSearchParams(location.search).get("job"), // the job picked by a click or named by ?job=
  shown: null, // the job whose timeline is drawn
  timeline: null, // its last document
  timelineError: null,
  nodes: null,
  jobs: [],
  utilization: new Map(), // device name → its recent utilization samples
  loaded: new Set(),
};

// ---------------------------------------------------------------------------------------------------------- helpers

function fill(e, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on") && typeof value === "function") e.addEventListener(key.slice(2), value);
    else e.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    e.append(child instanceof Node ? child : String(child));
  }
  return e;
}
const el = (tag, attrs, ...children) => fill(document.createElement(tag), attrs, children);
const svg = (tag, attrs, ...children) => fill(document.createElementNS(SVG_NS, tag), attrs, children);
/** Replaces a container's children; null, undefined and false stand for nothing (replaceChildren would write "null"). */
const show = (container, ...children) => {
  container.replaceChildren();
  return fill(container, {}, children);
};

function round(x, digits) {
  const f = 10 ** digits;
  return String(Math.round(x * f) / f);
}

/** Bytes as the CLI writes them: 12 MiB, 1.5 GiB, 640 B. */
function bytes(n) {
  for (const [size, unit] of [[2 ** 30, "GiB"], [2 ** 20, "MiB"], [2 ** 10, "KiB"]])
    if (n >= size) return `${round(n / size, 2)} ${unit}`;
  return `${n} B`;
}

const percent = (fraction) => `${Math.round(fraction * 100)}%`;

/** A duration in microseconds, in the unit that reads best. */
function duration(us) {
  const abs = Math.abs(us);
  if (abs < 1000) return `${Math.round(us)} µs`;
  if (abs < 1e6) return `${round(us / 1000, abs < 1e4 ? 2 : 1)} ms`;
  const s = us / 1e6;
  if (Math.abs(s) < 120) return `${round(s, Math.abs(s) < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(s / 60);
  return `${minutes} min ${Math.round(s - 60 * minutes)} s`;
}

function ago(atMs) {
  const s = Math.max(0, (Date.now() - atMs) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${round(s / 3600, 1)} h ago`;
}

const clock = (date) => date.toLocaleTimeString([], { hour12: false });

/** A device id as the gateway writes it ({node, index}) → its name, n1/dev0. */
const deviceName = (id) => (typeof id === "string" ? id : `${id.node}/dev${id.index}`);

const pill = (text, tone, attrs) => el("span", { class: `pill tone-${tone}`, ...attrs }, text);

function bar(fraction, tone, title) {
  const clamped = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  return el("div", { class: `bar tone-${tone}`, title }, el("div", { class: "fill", style: `width:${(clamped * 100).toFixed(1)}%` }));
}

function memberTone(status, reachable) {
  if (!reachable) return "bad";
  switch (status) {
    case "Up": return "ok";
    case "Joining": case "WeaklyUp": return "busy";
    case "Leaving": case "Exiting": return "warn";
    default: return "bad";
  }
}

function deviceTone(status) {
  switch (status) {
    case "Operational": return "ok";
    case "InReset": return "warn";
    case "Malfunction": return "bad";
    default: return "off";
  }
}

function jobTone(status) {
  switch (status) {
    case "Completed": return "ok";
    case "Running": case "Submitted": case "Pending": return "info";
    case "Failed": return "bad";
    case "Cancelled": return "warn";
    default: return "off";
  }
}

/** GET a JSON document of this gateway; a refusal throws its sentence (the problem document's code and message). */
async function getJson(path, { acceptStatus = [] } = {}) {
  const response = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
  if (!response.ok && !acceptStatus.includes(response.status)) {
    let sentence = `${response.status} ${response.statusText}`.trim();
    try {
      const problem = await response.json();
      if (problem && problem.message) sentence = `${problem.code}: ${problem.message}`;
    } catch { /* not a problem document */ }
    const error = new Error(`GET /${path}: ${sentence}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function markLoaded(section) {
  state.loaded.add(section);
  document.body.dataset.loaded = [...state.loaded].sort().join(" ");
}

function showError(container, error) {
  const old = container.querySelector(":scope > .error");
  if (old) old.remove();
  if (error) container.prepend(el("p", { class: "error", "data-error": error.message }, error.message));
}

// ---------------------------------------------------------------------------------------------------------- header

function renderHealth(health) {
  const self = document.getElementById("self");
  self.replaceChildren(
    el("span", { "data-self-node": health.node, "data-status": health.status, "data-jobs": health.jobs },
      el("b", {}, health.node), " · ", health.address, " · ", pill(health.status, memberTone(health.status, true)),
      " ", pill(`jobs ${health.jobs}`, health.jobs === "ready" ? "ok" : "warn")));
  self.classList.remove("muted");
}

function renderSummary(devices) {
  const nodes = state.nodes ? state.nodes.nodes : [];
  const up = nodes.filter((n) => n.status === "Up" && n.reachable).length;
  const running = state.jobs.filter((j) => j.status === "Running").length;
  const used = devices ? devices.reduce((s, d) => s + d.memoryUsed, 0) : 0;
  const total = devices ? devices.reduce((s, d) => s + d.memoryTotal, 0) : 0;
  const figure = (value, label, attrs) => el("span", { class: "figure", ...attrs }, el("b", {}, value), el("span", { class: "muted" }, label));
  document.getElementById("summary").replaceChildren(
    figure(`${up}/${nodes.length}`, "nodes up", { "data-up": up, "data-members": nodes.length }),
    figure(devices ? devices.length : 0, "devices"),
    figure(`${bytes(used)}`, `of ${bytes(total)} used`),
    figure(running, running === 1 ? "job running" : "jobs running", { "data-running": running }));
}

function renderPulse(errors) {
  const pulse = document.getElementById("pulse");
  pulse.dataset.state = errors.length ? "error" : "ok";
  pulse.title = errors.map((e) => e.message).join("\n");
  document.getElementById("pulse-text").textContent = errors.length
    ? `${errors.length} request(s) failed · ${clock(new Date())}` : `updated ${clock(new Date())}`;
}

// ---------------------------------------------------------------------------------------------------------- nodes

function renderNodes(list) {
  const container = document.getElementById("nodes");
  const rows = list.nodes.map((n) => el("tr", {
    class: "node-row", "data-node": n.node, "data-address": n.address, "data-status": n.status,
    "data-reachable": n.reachable, "data-devices": n.devices, "data-gateway": n.gateway ?? "",
  },
  el("td", {}, el("span", { class: `dot tone-${memberTone(n.status, n.reachable)}` }), el("b", {}, n.node || "(unnamed)"),
    n.node === list.self ? el("span", { class: "tag" }, "this node") : null),
  el("td", { class: "mono muted" }, n.address.replace(/^akka\.tcp:\/\//, "")),
  el("td", {}, pill(n.status, memberTone(n.status, true))),
  el("td", {}, n.reachable ? el("span", { class: "tone-ok" }, "reachable") : el("span", { class: "tone-bad" }, "unreachable")),
  el("td", { class: "num" }, n.devices),
  el("td", { class: "mono" }, n.gateway ? el("a", { href: `${n.gateway}/` }, n.gateway.replace(/^https?:\/\//, "")) : el("span", { class: "muted" }, "—"))));
  const removed = (list.removed || []).map((r) => el("span", {
    class: "removed-node", "data-removed-node": r.node, "data-address": r.address, "data-reason": r.reason, "data-at-ms": r.atMs,
    title: `${r.address}: ${r.reason} at ${new Date(r.atMs).toLocaleString()}`,
  }, `${r.node || r.address} · ${r.reason} ${ago(r.atMs)}`));
  show(container,
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "node"), el("th", {}, "address"), el("th", {}, "status"),
      el("th", {}, "reachable"), el("th", { class: "num" }, "devices"), el("th", {}, "gateway"))), el("tbody", {}, rows)),
    removed.length ? el("div", { class: "removed" }, el("span", {}, "removed recently:"), removed) : null);
}

// ---------------------------------------------------------------------------------------------------------- devices

function sparkline(samples) {
  const width = SPARK_SAMPLES - 1;
  const points = samples.map((v, i) => `${(width - (samples.length - 1 - i)).toFixed(0)},${(1 - Math.max(0, Math.min(1, v))).toFixed(3)}`);
  const first = width - (samples.length - 1);
  return svg("svg", { class: "spark", viewBox: `0 0 ${width} 1`, preserveAspectRatio: "none", "data-samples": samples.length },
    svg("line", { x1: 0, y1: 1, x2: width, y2: 1, stroke: "#30363d", "stroke-width": 1, "vector-effect": "non-scaling-stroke" }),
    samples.length > 1 ? [
      svg("polygon", { points: `${first},1 ${points.join(" ")} ${width},1`, fill: "rgba(57,197,207,0.18)" }),
      svg("polyline", { points: points.join(" "), fill: "none", stroke: "#39c5cf", "stroke-width": 1.5, "vector-effect": "non-scaling-stroke" }),
    ] : null);
}

function deviceCard(d) {
  const name = deviceName(d.id);
  const samples = state.utilization.get(name) || [];
  samples.push(d.utilization);
  while (samples.length > SPARK_SAMPLES) samples.shift();
  state.utilization.set(name, samples);
  const memory = d.memoryTotal > 0 ? d.memoryUsed / d.memoryTotal : 0;
  const memoryTone = memory < 0.7 ? "ok" : memory < 0.9 ? "warn" : "bad";
  const tone = deviceTone(d.status);
  const stat = (label, value, attrs) => el("div", attrs, el("dt", {}, label), el("dd", {}, value));
  return el("div", {
    class: `device state-${tone}`, "data-device": name, "data-node": d.id.node, "data-status": d.status, "data-kind": d.kind,
    "data-memory-used": d.memoryUsed, "data-memory-total": d.memoryTotal, "data-utilization": d.utilization,
    "data-queue-depth": d.queueDepth, "data-contexts": d.openContexts, "data-exports": d.exports, "data-imports": d.imports,
    "data-submissions": d.completedSubmissions, "data-failed-submissions": d.failedSubmissions, "data-resets": d.resets,
  },
  el("div", { class: "device-head" }, el("span", { class: "device-name mono" }, name), el("span", { class: "muted" }, d.kind),
    pill(d.resetting && d.status === "Operational" ? "resetting" : d.status, tone)),
  el("div", { class: "meter" }, el("span", { class: "meter-label" }, "MEM"),
    bar(memory, memoryTone, `largest free block ${bytes(d.largestFree)}, fragmentation ${percent(d.fragmentation)}, ${d.allocations} allocation(s)`),
    el("span", { class: "meter-value", "data-memory-used": d.memoryUsed, "data-memory-total": d.memoryTotal },
      `${bytes(d.memoryUsed)} / ${bytes(d.memoryTotal)} `, el("span", { class: "muted" }, `(${percent(memory)})`))),
  el("div", { class: "meter" }, el("span", { class: "meter-label" }, "UTIL"), bar(d.utilization, "busy", `utilization over the last interval`),
    el("span", { class: "meter-value", "data-utilization": d.utilization }, percent(d.utilization),
      el("span", { class: "muted" }, ` · queue ${d.queueDepth}`))),
  sparkline(samples),
  el("dl", { class: "stats" },
    stat("contexts", d.openContexts), stat("exports", d.exports), stat("imports", d.imports),
    stat("submitted", d.completedSubmissions), stat("failed", d.failedSubmissions), stat("waiters", d.waiters)),
  d.failure ? el("div", { class: "failure" }, d.failure) : null);
}

function renderDevices(devices) {
  const byNode = new Map();
  for (const d of devices) {
    const node = d.id.node;
    if (!byNode.has(node)) byNode.set(node, []);
    byNode.get(node).push(d);
  }
  const members = new Map((state.nodes ? state.nodes.nodes : []).map((n) => [n.node, n]));
  const nodes = [...byNode.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const groups = nodes.map((node) => {
    const member = members.get(node);
    const list = byNode.get(node).sort((a, b) => a.id.index - b.id.index);
    const used = list.reduce((s, d) => s + d.memoryUsed, 0);
    const total = list.reduce((s, d) => s + d.memoryTotal, 0);
    return el("div", { class: "device-group", "data-device-node": node },
      el("div", { class: "device-group-head" }, `node ${node}`,
        el("span", { class: "muted" }, `${list.length} device(s) · ${bytes(used)} / ${bytes(total)}`),
        member ? pill(member.reachable ? member.status : "unreachable", memberTone(member.status, member.reachable)) : pill("not a member", "off")),
      el("div", { class: "devices" }, list.map(deviceCard)));
  });
  document.getElementById("devices").replaceChildren(
    groups.length ? el("div", { class: "device-groups" }, groups) : el("p", { class: "empty" }, "no device has been registered yet"));
}

// ---------------------------------------------------------------------------------------------------------- jobs

const byNewest = (a, b) => String(b.submittedAt ?? "").localeCompare(String(a.submittedAt ?? "")) || a.jobId.localeCompare(b.jobId);

function selectJob(jobId) {
  state.chosen = jobId;
  history.replaceState(null, "", `?job=${encodeURIComponent(jobId)}`);
  renderJobs(state.jobs);
  refreshTimeline();
}

function renderJobs(jobs) {
  const sorted = [...jobs].sort(byNewest);
  const shown = sorted.slice(0, 30);
  const selected = jobToShow();
  const rows = shown.map((j) => {
    const ended = j.finishedAt ? new Date(j.finishedAt) : null;
    const started = j.submittedAt ? new Date(j.submittedAt) : null;
    const took = started ? ((ended ?? new Date()) - started) * 1000 : null;
    const stages = (j.stages || []).map((s) => el("div", {
      class: "stage", "data-stage": s.stage, "data-tasks": s.tasks, "data-completed": s.completed,
      title: `stage ${s.stage + 1}: ${s.completed} of ${s.tasks} task(s) completed`,
    }, bar(s.tasks ? s.completed / s.tasks : 0, s.completed === s.tasks ? "ok" : "info"), el("div", { class: "stage-label" }, `${s.completed}/${s.tasks}`)));
    return el("tr", {
      class: `job-row${j.jobId === selected ? " selected" : ""}`, "data-job": j.jobId, "data-name": j.name, "data-status": j.status,
      "data-done": j.completedTasks, "data-total": j.tasks, "data-runs": j.runs, onclick: () => selectJob(j.jobId), title: j.error ?? "",
    },
    el("td", { class: "job-id" }, j.jobId),
    el("td", {}, j.name),
    el("td", {}, pill(j.status, jobTone(j.status))),
    el("td", {}, el("div", { class: "progress" }, bar(j.tasks ? j.completedTasks / j.tasks : 0, jobTone(j.status)),
      el("span", { class: "num", "data-done": j.completedTasks, "data-total": j.tasks }, `${j.completedTasks}/${j.tasks}`))),
    el("td", {}, el("div", { class: "stages" }, stages)),
    el("td", { class: "num" }, j.runs),
    el("td", { class: "muted" }, started ? clock(started) : "—"),
    el("td", { class: "num" }, took === null ? "—" : duration(took)));
  });
  show(document.getElementById("jobs"),
    shown.length
      ? el("table", {}, el("thead", {}, el("tr", {}, ["job", "name", "status", "done", "stages"].map((h) => el("th", {}, h)),
        el("th", { class: "num" }, "runs"), el("th", {}, "submitted"), el("th", { class: "num" }, "took"))), el("tbody", {}, rows))
      : el("p", { class: "empty" }, "no job has been submitted yet: fabric submit job.json"),
    sorted.length > shown.length ? el("div", { class: "more" }, `and ${sorted.length - shown.length} older job(s)`) : null);
}

/** The job whose timeline to draw: the one chosen, else the newest running one, else the newest. */
function jobToShow() {
  if (state.chosen) return state.chosen;
  const sorted = [...state.jobs].sort(byNewest);
  const job = sorted.find((j) => j.status === "Running") ?? sorted[0];
  return job ? job.jobId : null;
}

// ---------------------------------------------------------------------------------------------------------- timeline

/** Rows of a trace-event document: its processes (nodes) in order, each with its threads (devices) in order. */
function timelineRows(events) {
  const processes = new Map();
  const process = (pid) => {
    if (!processes.has(pid)) processes.set(pid, { pid, name: `process ${pid}`, sort: pid, threads: new Map() });
    return processes.get(pid);
  };
  const thread = (pid, tid) => {
    const p = process(pid);
    if (!p.threads.has(tid)) p.threads.set(tid, { pid, tid, name: `thread ${tid}`, sort: tid });
    return p.threads.get(tid);
  };
  for (const e of events) {
    if (e.ph === "M" && e.name === "process_name") process(e.pid).name = e.args.name;
    else if (e.ph === "M" && e.name === "process_sort_index") process(e.pid).sort = e.args.sort_index;
    else if (e.ph === "M" && e.name === "thread_name") thread(e.pid, e.tid).name = e.args.name;
    else if (e.ph === "M" && e.name === "thread_sort_index") thread(e.pid, e.tid).sort = e.args.sort_index;
    else if (e.ph === "X") thread(e.pid, e.tid);
  }
  return [...processes.values()].sort((a, b) => a.sort - b.sort)
    .map((p) => ({ ...p, threads: [...p.threads.values()].sort((a, b) => a.sort - b.sort) }));
}

/** Round tick steps (1, 2, 5 × 10^k µs) so that about <paramref name="count"/> fit the span. */
function tickStep(span, count) {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function renderTimeline(doc, jobId) {
  const container = document.getElementById("timeline");
  const other = doc.otherData || {};
  const events = doc.traceEvents || [];
  const attempts = events.filter((e) => e.ph === "X");
  const instants = events.filter((e) => e.ph === "i");
  const rows = timelineRows(events);
  document.getElementById("timeline-title").textContent = `job ${other.jobId ?? jobId}${other.name ? ` · ${other.name}` : ""}`;

  const outcomeOf = (e) => (e.args && e.args.recomputation && e.cat === "completed" ? "recomputation" : e.cat);
  const counts = new Map();
  for (const e of attempts) counts.set(outcomeOf(e), (counts.get(outcomeOf(e)) || 0) + 1);
  const finished = instants.find((e) => e.name === "finished");
  const end = Math.max(1, ...attempts.map((e) => e.ts + e.dur), ...instants.map((e) => e.ts));
  const start = Math.min(0, ...attempts.map((e) => e.ts));

  const fact = (label, value, attrs) => el("span", { class: "fact", ...attrs }, el("span", { class: "muted" }, `${label} `), el("b", {}, value));
  const facts = el("div", { class: "timeline-facts" },
    other.status ? pill(other.status, jobTone(other.status), { "data-status": other.status }) : null,
    fact("tasks", `${other.completedTasks ?? "?"}/${other.tasks ?? "?"}`),
    fact("attempts", attempts.length, { "data-attempts": attempts.length }),
    fact("recomputations", other.recomputations ?? counts.get("recomputation") ?? 0),
    fact("node losses", other.nodeLosses ?? 0, { "data-node-losses": other.nodeLosses ?? 0 }),
    fact(finished ? "took" : "running for", duration(finished ? finished.ts : end)),
    other.error ? el("span", { class: "tone-bad" }, other.error) : null,
    el("div", { class: "legend" }, Object.entries(OUTCOMES).filter(([k]) => counts.has(k) || k === "completed").map(([k, o]) =>
      el("span", { class: "legend-item", "data-outcome": k, "data-count": counts.get(k) || 0 },
        el("span", { class: "swatch", style: k === "recomputation" ? `background: repeating-linear-gradient(45deg, ${o.color} 0 3px, #1b6f75 3px 6px)` : `background:${o.color}` }),
        `${o.label} ${counts.get(k) || 0}`))));

  if (attempts.length === 0) {
    container.replaceChildren(facts, el("p", { class: "empty" }, "no attempt has started yet"));
    return;
  }

  const gutter = 150, right = 16, top = 22, rowHeight = 22, barHeight = 14, groupHeight = 20, axisHeight = 24;
  const width = Math.max(640, container.clientWidth - 24);
  const height = top + rows.reduce((h, p) => h + groupHeight + p.threads.length * rowHeight, 0) + axisHeight;
  const x = (ts) => gutter + ((ts - start) / (end - start)) * (width - gutter - right);
  const bottom = height - axisHeight;

  const picture = svg("svg", {
    class: "timeline", width, height, viewBox: `0 0 ${width} ${height}`, "data-timeline-job": other.jobId ?? jobId,
    "data-attempts": attempts.length, "data-start-us": start, "data-end-us": end,
  });
  picture.append(svg("defs", {}, svg("pattern", { id: "recomputation", patternUnits: "userSpaceOnUse", width: 6, height: 6, patternTransform: "rotate(45)" },
    svg("rect", { width: 6, height: 6, fill: OUTCOMES.recomputation.color }), svg("rect", { width: 3, height: 6, fill: "#1b6f75" }))));

  // Rows: a band per node with its name, then a row per device.
  const rowY = new Map();
  let y = top;
  for (const p of rows) {
    picture.append(svg("rect", { class: "group-band", x: 0, y, width, height: groupHeight }),
      svg("text", { class: "group-label", x: 8, y: y + 14, "data-row-node": p.name }, p.name));
    y += groupHeight;
    p.threads.forEach((t, i) => {
      rowY.set(`${t.pid}/${t.tid}`, y);
      if (i % 2 === 1) picture.append(svg("rect", { class: "band", x: 0, y, width, height: rowHeight }));
      picture.append(svg("text", { class: "row-label", x: 18, y: y + 15, "data-row-device": t.name, "data-pid": t.pid, "data-tid": t.tid }, t.name));
      y += rowHeight;
    });
  }

  // The time axis: grid lines through the rows, labels below.
  const step = tickStep(end - start, Math.max(4, Math.floor((width - gutter) / 110)));
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
    picture.append(svg("line", { class: "grid", x1: x(t), y1: top, x2: x(t), y2: bottom }),
      svg("text", { class: "axis-label", x: x(t), y: bottom + 15, "text-anchor": "middle", "data-tick-us": t }, t === 0 ? "0" : duration(t)));
  }
  picture.append(svg("line", { x1: gutter, y1: bottom, x2: width - right, y2: bottom, stroke: "#30363d" }));

  // Attempts: one bar each.
  const names = new Map(rows.flatMap((p) => p.threads.map((t) => [`${t.pid}/${t.tid}`, { device: t.name, node: p.name.replace(/^node /, "") }])));
  for (const e of attempts) {
    const key = `${e.pid}/${e.tid}`;
    const row = rowY.get(key);
    const where = names.get(key);
    const args = e.args || {};
    const outcome = outcomeOf(e);
    const x0 = x(e.ts), w = Math.max(2, x(e.ts + e.dur) - x0);
    const title = `${args.task ?? e.name} · attempt ${args.attempt} · stage ${(args.stage ?? 0) + 1}\n` +
      `${where.device} · ${args.outcome ?? e.cat}${args.recomputation ? " (recomputation)" : ""}\n` +
      `${duration(e.ts)} → ${duration(e.ts + e.dur)} (${duration(e.dur)})${args.error ? `\n${args.error}` : ""}`;
    picture.append(svg("rect", {
      class: "attempt", x: x0.toFixed(2), y: row + (rowHeight - barHeight) / 2, width: w.toFixed(2), height: barHeight, rx: 2,
      fill: outcome === "recomputation" ? "url(#recomputation)" : (OUTCOMES[outcome] || OUTCOMES.abandoned).color,
      "data-task": args.task ?? e.name, "data-attempt": args.attempt, "data-stage": args.stage, "data-device": where.device, "data-node": where.node,
      "data-outcome": args.outcome ?? e.cat, "data-recomputation": Boolean(args.recomputation), "data-ts": e.ts, "data-dur": e.dur,
      "data-error": args.error,
    }, svg("title", {}, title)));
    const label = args.task ?? e.name;
    if (w > label.length * 6.2 + 8)
      picture.append(svg("text", { class: "bar-label", x: x0 + 4, y: row + rowHeight / 2 + 3.5 }, label));
  }

  // Instants: node losses (red), the job's node lost (amber), submitted and finished (grey), as vertical markers.
  // A label that would run past the right edge ends at its marker; one that would overlap the previous takes the other lane.
  let lastLabelEnd = -Infinity, lane = 0;
  for (const e of [...instants].sort((a, b) => a.ts - b.ts)) {
    const color = MARKERS[e.cat] || MARKERS.job;
    const mx = x(e.ts);
    const label = markerLabel(e);
    const labelWidth = label.length * 6 + 8;
    const anchorEnd = mx + labelWidth > width - right;
    const from = anchorEnd ? mx - labelWidth : mx;
    lane = from < lastLabelEnd ? (lane + 1) % 2 : 0;
    picture.append(svg("g", { class: "marker", "data-marker": e.name, "data-label": label, "data-category": e.cat, "data-ts": e.ts },
      svg("line", { class: "marker-line", x1: mx, y1: top - 4, x2: mx, y2: bottom, stroke: color }),
      svg("text", { class: "marker-label", x: anchorEnd ? mx - 4 : mx + 4, y: 10 + lane * 10, fill: color, "text-anchor": anchorEnd ? "end" : "start" }, label),
      svg("title", {}, `${e.name} at ${duration(e.ts)}${e.args && e.args.attempts ? ` (${e.args.attempts} attempt(s) lost)` : ""}`)));
    lastLabelEnd = from + labelWidth;
  }
  container.replaceChildren(facts, picture);
}

/**
 * A marker's label: its name, except that the job's node lost is named as a member (n3) when this gateway knows the
 * address — a member or a node removed lately — and by its address without akka.tcp:// otherwise.
 */
function markerLabel(e) {
  if (e.cat !== "runlost" || !e.args || !e.args.node) return e.name;
  const list = state.nodes || { nodes: [], removed: [] };
  const known = [...list.nodes, ...(list.removed || [])].find((n) => n.address === e.args.node && n.node);
  return `job's node ${known ? known.node : e.args.node.replace(/^akka\.tcp:\/\//, "")} lost`;
}

async function refreshTimeline() {
  const jobId = jobToShow();
  const container = document.getElementById("timeline");
  if (!jobId) {
    state.shown = null;
    container.replaceChildren(el("p", { class: "empty" }, "no job yet: the timeline of the job you click shows here"));
    markLoaded("timeline");
    return null;
  }
  // An ended job's timeline does not change: drawn once, it is not asked again.
  if (state.shown === jobId && state.timeline && state.timeline.otherData && state.timeline.otherData.finishedAt) return null;
  try {
    const doc = await getJson(`jobs/${encodeURIComponent(jobId)}/timeline`);
    if (jobToShow() !== jobId) return null; // another job was picked meanwhile
    state.shown = jobId;
    state.timeline = doc;
    renderTimeline(doc, jobId);
    markLoaded("timeline");
    return null;
  } catch (error) {
    if (state.shown !== jobId) {
      state.shown = jobId;
      state.timeline = null;
      document.getElementById("timeline-title").textContent = `job ${jobId}`;
      container.replaceChildren();
    }
    showError(container, error);
    return error;
  }
}

// ---------------------------------------------------------------------------------------------------------- polling

async function poll() {
  const [health, nodes, devices, jobs] = await Promise.allSettled([
    getJson("health", { acceptStatus: [503] }), getJson("nodes"), getJson("devices"), getJson("jobs?tasks=false")]);
  const errors = [];
  const section = (result, id, name, render) => {
    const container = document.getElementById(id);
    if (result.status === "fulfilled") {
      render(result.value);
      showError(container, null);
      markLoaded(name);
    } else {
      errors.push(result.reason);
      showError(container, result.reason);
    }
  };
  if (health.status === "fulfilled") renderHealth(health.value); else errors.push(health.reason);
  section(nodes, "nodes", "nodes", (list) => { state.nodes = list; renderNodes(list); });
  section(jobs, "jobs", "jobs", (list) => { state.jobs = list; renderJobs(list); });
  section(devices, "devices", "devices", renderDevices);
  renderSummary(devices.status === "fulfilled" ? devices.value : null);
  const timelineError = await refreshTimeline();
  if (timelineError) errors.push(timelineError);
  renderPulse(errors);
  setTimeout(poll, POLL_MS);
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (state.timeline) renderTimeline(state.timeline, state.shown); }, 150);
});

poll();
