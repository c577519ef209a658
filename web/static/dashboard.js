// triolb dashboard: one page that follows the node's /api/v1/stream and shows its state.
//
// The stream says *when* to look ("state": the store changed) and carries the journal
// ("journal": one notable event each). On "state" the page refetches the JSON documents it
// shows, at most once per REFRESH_MIN_MS; journal entries go into the timeline. Everything is
// rendered with textContent, never parsed as HTML, so no value from the API can inject markup.
"use strict";

const API = "/api/v1";
const REFRESH_MIN_MS = 300;
const EVENTS_KEPT = 200;
const EVENTS_FIRST = 100;
const RATE_IDLE_MS = 10000; // counters unchanged this long: the rate is 0
const RECONNECT_MS = 3000; // after a stream the browser gave up on
const NO_BGP_REASON = "bgp not configured"; // appliance/intent.py: nothing to advertise to

const ROLE_TONES = { active: "ok", backup: "info", init: "idle", fault: "bad" };
const SERVICE_TONES = { running: "ok", starting: "warn", backoff: "warn", failed: "bad" };
const HEALTH_TONES = { up: "ok", unknown: "idle", down: "bad" };
const SYNC_TONES = { up: "ok", connecting: "warn", down: "bad" };

const $ = (id) => document.getElementById(id);

// -- DOM helpers ------------------------------------------------------------------------------

/** An element with properties (`dataset` and `attrs` objects are applied) and children. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { dataset = {}, attrs = {}, ...rest } = props;
  Object.assign(node, rest);
  Object.assign(node.dataset, dataset);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function badge(text, tone, field) {
  const props = { className: `badge tone-${tone || "idle"}`, textContent: text };
  if (field) props.dataset = { field };
  return el("span", props);
}

function cell(content, className = "") {
  const td = el("td", { className });
  td.append(content === null || content === undefined ? "–" : content);
  return td;
}

/** Show ``message`` in the section's empty-note (or hide it when null). */
function note(id, message) {
  const node = $(id);
  node.hidden = message === null;
  node.textContent = message || "";
}

// -- formatting -------------------------------------------------------------------------------

function duration(seconds) {
  if (seconds === null || seconds === undefined) return null;
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

function scaled(value, unit) {
  if (value === null || value === undefined) return null;
  const steps = ["", "k", "M", "G", "T"];
  let v = value;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < steps.length - 1) {
    v /= 1000;
    i += 1;
  }
  const digits = i === 0 || v >= 100 ? 0 : 1;
  return `${v.toFixed(digits)} ${steps[i]}${unit}`;
}

function millis(value) {
  if (value === null || value === undefined) return null;
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

function fieldText(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// -- rates from successive counters ----------------------------------------------------------

const samples = new Map(); // key -> {t, packets, bytes, pps, bps}

/** Packets/s and bytes/s of a counter pair, from the last sample where it changed. */
function rate(key, packets, bytes, now) {
  const prev = samples.get(key);
  if (!prev || packets < prev.packets || bytes < prev.bytes) {
    samples.set(key, { t: now, packets, bytes, pps: null, bps: null });
    return { pps: null, bps: null };
  }
  if (packets === prev.packets && bytes === prev.bytes) {
    if (now - prev.t >= RATE_IDLE_MS) Object.assign(prev, { pps: 0, bps: 0 });
    return prev;
  }
  const dt = Math.max((now - prev.t) / 1000, 0.001);
  const next = {
    t: now,
    packets,
    bytes,
    pps: (packets - prev.packets) / dt,
    bps: (bytes - prev.bytes) / dt,
  };
  samples.set(key, next);
  return next;
}

// -- fetching ---------------------------------------------------------------------------------

/** {ok, status, body} of a GET; status 0 when the node could not be reached. */
async function getJson(path) {
  try {
    const response = await fetch(API + path, {
      cache: "no-store",
      headers: { Accept: "application/json" },
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { ok: response.ok, status: response.status, body };
  } catch {
    return { ok: false, status: 0, body: null };
  }
}

function problem(result, what) {
  if (result.status === 0) return `${what}: the node does not answer`;
  const reason = result.body && result.body.error ? result.body.error : `HTTP ${result.status}`;
  return `${what}: ${reason}`;
}

// -- sections ---------------------------------------------------------------------------------

function renderNode(result) {
  if (!result.ok) {
    $("node-detail").textContent = problem(result, "node");
    return;
  }
  const node = result.body;
  $("node-name").textContent = node.name;
  document.title = `${node.name} · triolb`;
  const generation = node.config_generation ?? "–";
  $("node-detail").textContent =
    `node id ${node.id} · router id ${node.router_id} · config generation ${generation}`;
  const chips = Object.entries(node.services || {}).map(([name, status]) => {
    const restarts = status.restarts
      ? `, ${status.restarts} restart${status.restarts === 1 ? "" : "s"}`
      : "";
    const chip = badge(`${name}: ${status.state}${restarts}`, SERVICE_TONES[status.state]);
    if (status.last_error) chip.title = status.last_error;
    return el("li", {}, chip);
  });
  $("daemon-services").replaceChildren(...chips);
}

function haRow(group) {
  let priority = String(group.priority);
  if (group.configured_priority !== group.priority) {
    priority += ` (configured ${group.configured_priority})`;
  }
  return el(
    "tr",
    { dataset: { haGroup: group.id } },
    el("th", { scope: "row", textContent: `${group.id} · ${group.interface}` }),
    cell(badge(group.role, ROLE_TONES[group.role], "role")),
    cell(group.state),
    cell(priority),
    cell(group.master_address),
    cell((group.vips || []).join(", ") || null),
    cell(String(group.transitions), "num"),
    cell(group.last_reason, "reason"),
  );
}

function renderHa(result) {
  const groups = result.ok ? result.body.groups || [] : [];
  $("ha-rows").replaceChildren(...groups.map(haRow));
  if (!result.ok) note("ha-empty", problem(result, "HA"));
  else if (!groups.length) note("ha-empty", "No HA groups: this node runs without election.");
  else note("ha-empty", null);
}

function bgpRow(peer) {
  const established = peer.state === "Established";
  const tone = established ? "ok" : peer.state === "Idle" ? "bad" : "warn";
  const received = peer.prefixes_received;
  const accepted = peer.prefixes_accepted;
  const prefixesIn = accepted === received ? String(received) : `${accepted} of ${received}`;
  const name = peer.description ? `${peer.address} (${peer.description})` : peer.address;
  return el(
    "tr",
    { dataset: { bgpPeer: peer.address } },
    el("th", { scope: "row", textContent: name }),
    cell(String(peer.asn)),
    cell(badge(peer.state, tone, "state")),
    cell(established ? duration(peer.uptime_s) : null),
    cell(prefixesIn, "num"),
    cell(String(peer.prefixes_advertised), "num"),
    cell(peer.last_error, "reason"),
  );
}

function renderBgp(result) {
  const peers = result.ok ? result.body.neighbors || [] : [];
  peers.sort((a, b) => a.address.localeCompare(b.address, "en", { numeric: true }));
  $("bgp-rows").replaceChildren(...peers.map(bgpRow));
  if (!result.ok) note("bgp-empty", problem(result, "BGP"));
  else if (!peers.length) note("bgp-empty", "No BGP neighbours: BGP is not configured here.");
  else note("bgp-empty", null);
}

function endpointRow(service, ep, now) {
  const r = rate(`${service.name}/${ep.address}:${ep.port}`, ep.packets, ep.bytes, now);
  return el(
    "tr",
    { dataset: { endpoint: `${ep.address}:${ep.port}` } },
    el("th", { scope: "row", textContent: `${ep.address}:${ep.port}` }),
    cell(ep.state),
    cell(badge(ep.health, HEALTH_TONES[ep.health], "health")),
    cell(millis(ep.latency_ms), "num"),
    cell(scaled(r.pps, "pkt/s"), "num"),
    cell(scaled(r.bps, "B/s"), "num"),
    cell(String(ep.open_connections), "num"),
    cell(String(ep.drops), "num"),
    cell(ep.last_error, "reason"),
  );
}

const ENDPOINT_HEADERS = [
  ["Endpoint", ""],
  ["State", ""],
  ["Health", ""],
  ["Probe latency", "num"],
  ["Packets/s", "num"],
  ["Bytes/s", "num"],
  ["Open conns", "num"],
  ["Drops", "num"],
  ["Last error", ""],
];

/** The route badge's text and tone: advertised, withdrawn (and why), or not applicable. */
function routeState(service) {
  const reason = service.withdrawn_reason;
  if (service.route === "advertised") return ["route advertised", "ok"];
  if (service.route !== "withdrawn") return ["no route intent", "idle"];
  if (reason === NO_BGP_REASON) return ["no BGP route (BGP not configured)", "idle"];
  return [`route withdrawn${reason ? ` (${reason})` : ""}`, "warn"];
}

function serviceBlock(service, now) {
  const [routeText, routeTone] = routeState(service);
  const r = rate(`${service.name}`, service.packets, service.bytes, now);
  const facts = [
    `VIP ${service.vip}:${service.port}/${service.protocol}`,
    service.mode,
    service.selection,
    service.role ? `role ${service.role}` : null,
    `${service.connections} connections`,
    r.pps === null ? null : `${scaled(r.pps, "pkt/s")}, ${scaled(r.bps, "B/s")}`,
  ].filter(Boolean);
  const headers = ENDPOINT_HEADERS.map(([text, className]) =>
    el("th", { scope: "col", className, textContent: text }),
  );
  const table = el(
    "table",
    {},
    el("caption", { className: "sr-only", textContent: `Endpoints of ${service.name}` }),
    el("thead", {}, el("tr", {}, ...headers)),
    el("tbody", {}, ...(service.endpoints || []).map((ep) => endpointRow(service, ep, now))),
  );
  return el(
    "article",
    { className: "service", dataset: { service: service.name } },
    el(
      "h3",
      {},
      el("span", { textContent: service.name }),
      badge(routeText, routeTone, "route"),
      el("span", { className: "meta", textContent: facts.join(" · ") }),
    ),
    table,
  );
}

function renderServices(result) {
  const doc = result.ok ? result.body : null;
  const now = doc && doc.sampled_at ? doc.sampled_at * 1000 : Date.now();
  const services = doc ? doc.services || [] : [];
  $("service-list").replaceChildren(...services.map((s) => serviceBlock(s, now)));
  const notes = [];
  if (!doc) notes.push(problem(result, "Services"));
  else if (!services.length) notes.push("No services are programmed in the dataplane.");
  if (doc && doc.unallocated && doc.unallocated.length) {
    notes.push(`Without an address from their pool: ${doc.unallocated.join(", ")}.`);
  }
  if (doc && doc.errors && doc.errors.length) notes.push(`Errors: ${doc.errors.join("; ")}`);
  note("services-empty", notes.length ? notes.join(" ") : null);
  $("conntrack").textContent = doc ? String(doc.connections) : "– (dataplane not running)";
}

function syncRow(peer) {
  const address = Array.isArray(peer.peer) ? peer.peer.join(":") : String(peer.peer);
  const name = peer.node_id === null ? address : `node ${peer.node_id} · ${address}`;
  return el(
    "tr",
    {},
    el("th", { scope: "row", textContent: name }),
    cell(badge(peer.state, SYNC_TONES[peer.state], "state")),
    cell(millis(peer.lag_s * 1000), "num"),
    cell(String(peer.queue), "num"),
  );
}

function renderSync(result) {
  const running = result.ok && result.body;
  $("sync-table").hidden = !running;
  if (!running) {
    const why =
      result.status === 404 ? "not running on this node" : problem(result, "unavailable");
    $("sync-state").textContent = why;
    $("sync-lag").textContent = "– (no sync)";
    $("sync-rows").replaceChildren();
    return;
  }
  const status = result.body;
  const peers = status.peers || [];
  const up = peers.filter((p) => p.state === "up").length;
  const phase = status.resynced ? "in step" : "joining (resync pending)";
  $("sync-state").textContent = `${phase}, ${up} of ${peers.length} peers up`;
  const lags = peers.map((p) => p.lag_s || 0);
  $("sync-lag").textContent = peers.length ? millis(Math.max(...lags) * 1000) : "– (no peers)";
  $("sync-rows").replaceChildren(...peers.map(syncRow));
}

async function refreshAll() {
  const [node, ha, bgp, services, sync] = await Promise.all(
    ["/node", "/ha", "/bgp/neighbors", "/services", "/sync"].map(getJson),
  );
  renderNode(node);
  renderHa(ha);
  renderBgp(bgp);
  renderServices(services);
  renderSync(sync);
  const reached = [node, ha, bgp, services, sync].some((r) => r.status !== 0);
  if (reached) {
    const now = new Date();
    const stamp = $("updated");
    stamp.dateTime = now.toISOString();
    stamp.textContent = now.toLocaleTimeString([], { hour12: false });
  } else {
    setLink(false);
  }
}

// -- throttled refresh ------------------------------------------------------------------------

const refresher = { running: false, pending: false, last: 0, timer: null };

/** Refetch soon: at most once per REFRESH_MIN_MS, never two at once, none lost. */
function requestRefresh() {
  if (refresher.timer !== null) return;
  if (refresher.running) {
    refresher.pending = true;
    return;
  }
  const wait = Math.max(0, refresher.last + REFRESH_MIN_MS - Date.now());
  refresher.timer = setTimeout(runRefresh, wait);
}

async function runRefresh() {
  refresher.timer = null;
  refresher.running = true;
  refresher.last = Date.now();
  try {
    await refreshAll();
  } finally {
    refresher.running = false;
    if (refresher.pending) {
      refresher.pending = false;
      requestRefresh();
    }
  }
}

// -- timeline ---------------------------------------------------------------------------------

let newestSeq = 0;

function eventItem(entry) {
  const fields = Object.entries(entry.fields || {})
    .map(([k, v]) => `${k}=${fieldText(v)}`)
    .join(" ");
  const item = el(
    "li",
    { dataset: { seq: entry.seq, level: entry.level } },
    el("time", {
      className: "when",
      dateTime: new Date(entry.time * 1000).toISOString(),
      textContent: clock(entry.time),
    }),
    entry.level === "info" ? null : badge(entry.level, entry.level === "warning" ? "warn" : "bad"),
    el("span", { className: "what", textContent: ` ${entry.component}: ${entry.event}` }),
    fields ? el("span", { className: "fields", textContent: fields }) : null,
  );
  return item;
}

/** Put a journal entry in the timeline, newest first; each sequence number once. */
function addEvent(entry) {
  const list = $("events");
  let before = null;
  for (const item of list.children) {
    const seq = Number(item.dataset.seq);
    if (seq === entry.seq) return;
    if (seq < entry.seq) {
      before = item;
      break;
    }
  }
  list.insertBefore(eventItem(entry), before);
  newestSeq = Math.max(newestSeq, entry.seq);
  while (list.children.length > EVENTS_KEPT) list.lastElementChild.remove();
  $("events-empty").hidden = true;
}

async function loadEvents() {
  const result = await getJson(`/events?limit=${EVENTS_FIRST}`);
  if (!result.ok) {
    if (result.status !== 0) note("events-empty", problem(result, "Events"));
    return;
  }
  if (result.body.last_seq < newestSeq) {
    $("events").replaceChildren(); // the daemon restarted: its numbering began again
    newestSeq = 0;
  }
  for (const entry of result.body.events || []) addEvent(entry);
}

// -- the stream -------------------------------------------------------------------------------

function setLink(live) {
  const link = $("link");
  link.className = `pill ${live ? "pill-live" : "pill-offline"}`;
  link.textContent = live ? "live" : "offline — reconnecting…";
  document.body.dataset.link = live ? "live" : "offline";
}

function connect() {
  const source = new EventSource(`${API}/stream`);
  source.addEventListener("open", () => {
    setLink(true);
    requestRefresh();
    loadEvents();
  });
  source.addEventListener("state", () => requestRefresh());
  source.addEventListener("journal", (message) => {
    try {
      addEvent(JSON.parse(message.data));
    } catch {
      // a malformed entry is skipped; the next refetch of /events has it
    }
  });
  source.addEventListener("error", () => {
    setLink(false);
    if (source.readyState === EventSource.CLOSED) {
      // the browser gave up (e.g. an HTTP error): start over after a pause
      source.close();
      setTimeout(connect, RECONNECT_MS);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  requestRefresh();
  connect();
});
