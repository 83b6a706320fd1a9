// pivitals dashboard: polls the primary's JSON API and draws the node grid, the stack view, a
// node's page and their SVG charts; signed in, it asks nodes to run actions and shows the
// results. No dependencies, no build step; served from the primary's binary.

const TOKEN_KEY = 'pivitals.adminToken';
const STATUS = {
  up: 'Up',
  late: 'Late',
  down: 'Down',
  stopped: 'Stopped',
};
// Each status has its own shape as well as its colour and its word.
const ICON = {
  up: [['path', { d: 'M3.5 8.5l3 3 6-7', fill: 'none', stroke: 'currentColor', 'stroke-width': '2.2' }]],
  late: [
    ['circle', { cx: '8', cy: '8', r: '5.8', fill: 'none', stroke: 'currentColor', 'stroke-width': '1.8' }],
    ['path', { d: 'M8 4.6V8l2.4 1.6', fill: 'none', stroke: 'currentColor', 'stroke-width': '1.8' }],
  ],
  down: [['path', { d: 'M4 4l8 8M12 4l-8 8', fill: 'none', stroke: 'currentColor', 'stroke-width': '2.2' }]],
  stopped: [['rect', { x: '4', y: '4', width: '8', height: '8', fill: 'currentColor' }]],
  // Alerts: a bell when firing; pending borrows the clock, resolved the tick.
  firing: [
    ['path', { d: 'M8 1.6a1 1 0 0 1 1 1v.55a4.2 4.2 0 0 1 3.2 4.1v2.9l1.4 2H2.4l1.4-2v-2.9A4.2 4.2 0 0 1 7 3.15V2.6a1 1 0 0 1 1-1z', fill: 'currentColor' }],
    ['path', { d: 'M6.3 13.4a1.75 1.75 0 0 0 3.4 0z', fill: 'currentColor' }],
  ],
};
ICON.pending = ICON.late;
ICON.resolved = ICON.up;
ICON.no_data = ICON.stopped;
const ALERT_STATE = {
  firing: 'Firing',
  pending: 'Pending',
  resolved: 'Resolved',
  no_data: 'No data',
};
const ALERTS_EVERY_MS = 5000;
const SERIES = [
  { key: 'cpu_percent', name: 'CPU', long: 'CPU use', unit: '%', cls: 'cpu', fixed: [0, 100] },
  { key: 'mem_percent', name: 'Memory', long: 'Memory use', unit: '%', cls: 'mem', fixed: [0, 100] },
  { key: 'temp_celsius', name: 'Temp', long: 'Hottest sensor', unit: '°C', cls: 'temp' },
  { key: 'disk_percent', name: 'Disk', long: 'Fullest disk', unit: '%', cls: 'disk', fixed: [0, 100] },
];
// The ranged history's nine series (`/api/v1/nodes/{name}/history?range=R`), one chart each.
const RANGE_SERIES = [
  ...SERIES,
  { key: 'load1', long: 'Load (1 min)', unit: '', cls: 'load' },
  { key: 'net_rx_bytes_per_second', long: 'Network in', unit: 'B/s', cls: 'net' },
  { key: 'net_tx_bytes_per_second', long: 'Network out', unit: 'B/s', cls: 'net' },
  { key: 'disk_read_bytes_per_second', long: 'Disk reads', unit: 'B/s', cls: 'io' },
  { key: 'disk_write_bytes_per_second', long: 'Disk writes', unit: 'B/s', cls: 'io' },
];
const RANGES = { '1h': 'hour', '6h': '6 hours', '24h': '24 hours', '7d': '7 days', '30d': '30 days' };
const DEFAULT_RANGE = '1h';
const SORTS = {
  name: 'Name',
  cpu: 'CPU, busiest first',
  temp: 'Temperature, hottest first',
  disk: 'Disk, fullest first',
  seen: 'Last seen, longest silent first',
};
const FILTERS = { '': 'Any status', up: 'Up', 'not-up': 'Not up', late: 'Late', down: 'Down', stopped: 'Stopped' };

const state = {
  settings: { group_by: 'stack', refresh_seconds: 1, history: { step_seconds: 60, window_seconds: 3600 } },
  nodes: null,
  statuses: new Map(),
  history: new Map(),
  historyAt: 0,
  skewMs: 0,
  cards: new Map(),
  layout: '',
  nodeView: null,
  timer: 0,
  // The last answer of /api/v1/alerts; null while the primary has none (404) or before it.
  alerts: null,
  alertsTimer: 0,
  alertsBusy: false,
  alertsLayout: '',
  busy: false,
  again: false,
  // Signed in with a session cookie (the page never holds the token itself).
  signedIn: false,
  adminEnabled: false,
  actionBars: new Map(),
  racksLayout: '',
  boards: new Map(),
  // The node page's ranged history: which node and range, the answer and when it came.
  ranged: { key: '', body: null, at: 0, busy: false, error: null },
  // The hash without its query, to tell a new page from a changed view of the same one.
  routePath: null,
  gridHash: '#/',
  labelOptions: '',
  install: null,
  // For nodes without a sample since the primary started: the newest point of their ranged
  // history ({ at, values }), read once; null when there is none.
  lastKnown: new Map(),
};

// ---- small DOM helpers -------------------------------------------------------------------

// The SVG namespace, taken from the HTML parser rather than spelled out.
const SVG_NS = (() => {
  const t = document.createElement('template');
  t.innerHTML = '<svg></svg>';
  return t.content.firstElementChild.namespaceURI;
})();

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

const $ = (id) => document.getElementById(id);

// Replaces an element's children, leaving out the empty ones.
function put(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false && c !== ''));
}

function icon(status) {
  return s('svg', { viewBox: '0 0 16 16', 'aria-hidden': 'true', focusable: 'false' },
    (ICON[status] || ICON.stopped).map(([tag, attrs]) => s(tag, attrs)));
}

function badge(status) {
  return h('span', { class: `badge badge-${status}`, 'data-status': status },
    icon(status), h('span', { class: 'badge-text' }, STATUS[status] || status));
}

// ---- formatting --------------------------------------------------------------------------

const NB = '\u00a0';
function num(v, digits) {
  return v.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function fmtValue(v, unit) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (unit === '°C') return `${num(v, 1)}${NB}°C`;
  if (unit === 'B/s') return fmtRate(v);
  if (unit === '') return num(v, 2);
  return `${num(v, v < 10 ? 1 : 0)}${NB}%`;
}
function fmtBytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${num(n, i === 0 || n >= 100 ? 0 : 1)}${NB}${units[i]}`;
}
function fmtDuration(seconds) {
  if (!Number.isFinite(seconds)) return '–';
  const d = Math.floor(seconds / 86400);
  const hr = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d}${NB}d ${hr}${NB}h`;
  if (hr > 0) return `${hr}${NB}h ${m}${NB}min`;
  if (m > 0) return `${m}${NB}min`;
  return `${Math.max(0, Math.floor(seconds))}${NB}s`;
}
function serverNow() {
  return Date.now() + state.skewMs;
}
function fmtAgo(iso) {
  if (!iso) return 'not since the primary started';
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return iso;
  const s = Math.max(0, Math.round((serverNow() - ms) / 1000));
  return s < 2 ? 'just now' : `${fmtDuration(s)} ago`;
}
function percent(part, whole) {
  return whole > 0 ? (part * 100) / whole : null;
}
// A filesystem's use as `df` shows it: used / (used + available), rounded up; older agents
// send no `available_bytes`, then used / total.
function diskPercent(d) {
  if (Number.isFinite(d.available_bytes)) {
    const whole = d.used_bytes + d.available_bytes;
    return whole > 0 ? Math.ceil((d.used_bytes * 100) / whole) : null;
  }
  return percent(d.used_bytes, d.total_bytes);
}
function fmtRate(bytesPerSecond) {
  return Number.isFinite(bytesPerSecond) ? `${fmtBytes(bytesPerSecond)}/s` : '–';
}
// "mean (peak max)" for a fast vital that carries its interval's max.
function withPeak(mean, max, unit) {
  const shown = fmtValue(mean, unit);
  return Number.isFinite(max) && max > mean ? `${shown} (peak ${fmtValue(max, unit)})` : shown;
}
function naturalCompare(a, b) {
  return String(a).localeCompare(String(b), 'en', { numeric: true });
}

// ---- the API -----------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, body) {
    super(`${status}: ${body}`);
    this.status = status;
    this.body = body;
  }
}

async function getJson(path) {
  const res = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  const date = Date.parse(res.headers.get('Date') || '');
  if (Number.isFinite(date)) {
    // The Date header has whole seconds; only follow real clock differences.
    const skew = date + 500 - Date.now();
    if (Math.abs(skew - state.skewMs) > 1500) state.skewMs = skew;
  }
  if (!res.ok) throw new ApiFailure(res.status, await res.text());
  return res.json();
}

async function fetchHistory(name) {
  const known = state.history.get(name) || { points: new Map(), newest: null, interval: 60 };
  const since = known.newest === null ? '' : `?since_ms=${known.newest}`;
  const body = await getJson(`/api/v1/nodes/${encodeURIComponent(name)}/history${since}`);
  for (const p of body.points) {
    known.points.set(p.ts_ms, p);
    if (known.newest === null || p.ts_ms > known.newest) known.newest = p.ts_ms;
  }
  known.interval = body.interval_seconds;
  const horizon = serverNow() - (body.window_seconds + body.step_seconds) * 1000;
  for (const ts of known.points.keys()) if (ts < horizon) known.points.delete(ts);
  state.history.set(name, known);
}

function historyOf(name) {
  const known = state.history.get(name);
  if (!known) return { points: [], interval: 60 };
  return { points: [...known.points.values()].sort((a, b) => a.ts_ms - b.ts_ms), interval: known.interval };
}

// ---- polling -----------------------------------------------------------------------------

async function refresh() {
  // One poll at a time: a call during a poll asks for another right after it.
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  clearTimeout(state.timer);
  const began = Date.now();
  try {
    const nodes = await getJson('/api/v1/nodes');
    announceChanges(nodes);
    state.nodes = nodes;
    const names = new Set(nodes.map((n) => n.name));
    for (const name of state.history.keys()) if (!names.has(name)) state.history.delete(name);
    const route = currentRoute();
    const wanted = route.name ? [route.name].filter((n) => names.has(n)) : [...names];
    const stale = Date.now() - state.historyAt >= 5000 || wanted.some((n) => !state.history.has(n));
    if (stale) {
      await Promise.all(wanted.map((n) => fetchHistory(n).catch(() => {})));
      state.historyAt = Date.now();
    }
    $('connection').textContent = '';
    render();
  } catch (e) {
    $('connection').textContent = `Cannot reach the primary (${e.message}); retrying.`;
  } finally {
    // A fixed rate: the time the requests took counts towards the period.
    const wait = state.again ? 0 : state.settings.refresh_seconds * 1000 - (Date.now() - began);
    state.busy = false;
    state.again = false;
    state.timer = setTimeout(refresh, Math.max(100, wait));
  }
}

function announceChanges(nodes) {
  const before = state.statuses;
  const now = new Map(nodes.map((n) => [n.name, n.status]));
  state.statuses = now;
  if (state.nodes === null) return;
  const messages = [];
  for (const [name, status] of now) {
    const was = before.get(name);
    if (was === undefined) messages.push(`${name} joined: ${STATUS[status]}.`);
    else if (was !== status) messages.push(`${name} is now ${STATUS[status]} (was ${STATUS[was]}).`);
  }
  for (const name of before.keys()) if (!now.has(name)) messages.push(`${name} was removed.`);
  messages.forEach(announce);
  // A node going down or coming back usually starts or ends an alert: ask soon (the watcher
  // records a change a check after the API shows it).
  if (messages.length && state.alerts !== null && !state.alertsBusy) {
    clearTimeout(state.alertsTimer);
    state.alertsTimer = setTimeout(pollAlerts, 1500);
  }
}

function announce(text) {
  const box = $('announcer');
  box.append(h('p', {}, text));
  while (box.childElementCount > 5) box.firstElementChild.remove();
}

// ---- alerts ------------------------------------------------------------------------------

// Polled on its own every five seconds; a primary without the endpoint (404) shows nothing.
async function pollAlerts() {
  if (state.alertsBusy) return;
  state.alertsBusy = true;
  clearTimeout(state.alertsTimer);
  try {
    const body = await getJson('/api/v1/alerts');
    const next = {
      firing: newestFirst(body.firing || []),
      pending: newestFirst(body.pending || []),
      resolved: body.resolved || [],
    };
    announceAlerts(state.alerts, next);
    state.alerts = next;
  } catch (e) {
    // Any other failure keeps the last answer: the node poll already says the primary is away.
    if (e instanceof ApiFailure && (e.status === 404 || e.status === 405)) state.alerts = null;
  }
  state.alertsBusy = false;
  render();
  state.alertsTimer = setTimeout(pollAlerts, ALERTS_EVERY_MS);
}

function alertKey(a) {
  return JSON.stringify([a.rule, a.node, a.series || {}]);
}

function sinceMs(a) {
  const ms = Date.parse(a.since || '');
  return Number.isFinite(ms) ? ms : 0;
}

function newestFirst(list) {
  return [...list].sort((a, b) => sinceMs(b) - sinceMs(a));
}

// Tells screen readers about alerts that began or stopped firing since the last poll.
function announceAlerts(before, now) {
  if (before === null) return;
  const was = new Set(before.firing.map(alertKey));
  const is = new Set(now.firing.map(alertKey));
  for (const a of now.firing) if (!was.has(alertKey(a))) announce(`Alert: ${a.message}`);
  for (const a of before.firing) if (!is.has(alertKey(a))) announce(`Alert over: ${a.node} ${a.rule}.`);
}

// A node's alerts: firing and pending (newest first) and its recently resolved ones.
function alertsOf(name) {
  const a = state.alerts;
  if (!a) return { firing: [], pending: [], resolved: [] };
  const mine = (list) => list.filter((x) => x.node === name);
  return { firing: mine(a.firing), pending: mine(a.pending), resolved: mine(a.resolved) };
}

// One alert as a list item: its state (icon and word), the one-line message and a time.
function alertItem(a, { link }) {
  const st = ALERT_STATE[a.state] ? a.state : 'firing';
  const ended = st === 'resolved' || st === 'no_data';
  const at = ended ? a.resolved_at : a.since;
  const when = at ? new Date(at) : null;
  const href = `#/nodes/${encodeURIComponent(a.node)}`;
  return h('li', { class: `alert alert-${st}`, 'data-node': a.node, 'data-rule': a.rule, 'data-state': st },
    h('span', { class: 'alert-state' }, icon(st), ALERT_STATE[st]),
    link ? h('a', { class: 'alert-message', href }, a.message) : h('span', { class: 'alert-message' }, a.message),
    at ? h('span', { class: 'alert-since' }, ended ? 'ended ' : 'began ',
      h('time', { datetime: at, title: when && Number.isFinite(when.getTime()) ? when.toLocaleString() : null }, fmtAgo(at)))
      : null);
}

function renderAlertList(route) {
  const box = $('alerts');
  const a = state.alerts;
  const shown = a && route.name === null ? [...a.firing, ...a.pending] : [];
  box.hidden = shown.length === 0;
  const layout = JSON.stringify(shown.map((x) => [alertKey(x), x.state, x.since, x.message]));
  if (layout === state.alertsLayout) return;
  state.alertsLayout = layout;
  const firing = a ? a.firing.length : 0;
  const pending = a ? a.pending.length : 0;
  $('alerts-tally').textContent = [firing ? `${firing} firing` : '', pending ? `${pending} pending` : '']
    .filter(Boolean).join(', ');
  $('alert-list').replaceChildren(...shown.map((x) => alertItem(x, { link: true })));
}

// The bell on a card: how many alerts fire on the node, the first one's message as its title.
function updateAlertCount(el, node) {
  const { firing } = alertsOf(node.name);
  el.hidden = firing.length === 0;
  const title = firing.length ? firing[0].message : '';
  if (el.dataset.key === `${firing.length}|${title}`) return;
  el.dataset.key = `${firing.length}|${title}`;
  el.dataset.count = String(firing.length);
  el.title = title;
  put(el, icon('firing'), String(firing.length),
    h('span', { class: 'visually-hidden' }, firing.length === 1 ? ' firing alert: ' : ' firing alerts, the first: ', title));
}

function renderNodeAlerts(v, name) {
  v.alertsPanel.hidden = state.alerts === null;
  const mine = alertsOf(name);
  const active = [...mine.firing, ...mine.pending];
  const layout = JSON.stringify([active, mine.resolved].map((l) => l.map((x) => [alertKey(x), x.state, x.since, x.resolved_at, x.message])));
  if (v.alertsLayout === layout) return;
  v.alertsLayout = layout;
  v.alerts.replaceChildren(
    active.length
      ? h('ul', { class: 'alert-list', role: 'list', 'aria-label': 'Firing and pending' }, active.map((x) => alertItem(x, { link: false })))
      : h('p', { class: 'none' }, 'No alert is firing or pending.'),
    h('h4', {}, 'Recently resolved'),
    mine.resolved.length
      ? h('ul', { class: 'alert-list', role: 'list', 'aria-label': 'Recently resolved' }, mine.resolved.map((x) => alertItem(x, { link: false })))
      : h('p', { class: 'none' }, 'None of the last 100 resolved alerts was on this node.'));
}

// ---- routing -----------------------------------------------------------------------------

// `#/nodes/{name}` a node's page, `#stacks` the stack view, anything else the card grid. The
// query after `?` keeps the view, so it can be bookmarked and the back button steps through
// it: `range` on a node's page; `sort`, `status`, `label` and `q` (search) on the grid.
function currentRoute() {
  const [path, query = ''] = location.hash.split('?');
  const p = new URLSearchParams(query);
  const range = RANGES[p.get('range')] ? p.get('range') : DEFAULT_RANGE;
  const find = {
    sort: SORTS[p.get('sort')] ? p.get('sort') : 'name',
    status: FILTERS[p.get('status')] ? p.get('status') : '',
    label: p.get('label') || '',
    q: p.get('q') || '',
  };
  const m = /^#\/nodes\/([^/]+)$/.exec(path);
  if (m) return { path, name: decodeURIComponent(m[1]), view: 'node', range, find };
  return { path, name: null, view: path === '#stacks' ? 'stacks' : 'cards', range, find };
}

function hashOf(route) {
  const p = new URLSearchParams();
  if (route.view === 'node') {
    if (route.range !== DEFAULT_RANGE) p.set('range', route.range);
  } else {
    for (const k of ['sort', 'status', 'label', 'q']) {
      if (route.find[k] && !(k === 'sort' && route.find[k] === 'name')) p.set(k, route.find[k]);
    }
  }
  const path = route.view === 'node' ? `#/nodes/${encodeURIComponent(route.name)}` : route.view === 'stacks' ? '#stacks' : '#/';
  const query = p.toString();
  return query ? `${path}?${query}` : path;
}

// A changed sort or filter is a step in the history; typing a search replaces the last step.
function setFind(change, replace) {
  const route = currentRoute();
  const next = hashOf({ ...route, find: { ...route.find, ...change } });
  if (next === location.hash) return;
  if (replace) {
    history.replaceState(null, '', next);
    render();
  } else {
    location.hash = next;
  }
}

function onRouteChange() {
  const route = currentRoute();
  const samePage = route.path === state.routePath;
  state.routePath = route.path;
  if (samePage) {
    render();
    return;
  }
  state.nodeView = null;
  $('node-view').replaceChildren();
  render();
  const target = route.name ? document.querySelector('#node-view h2') : $(route.view === 'stacks' ? 'stacks-title' : 'grid-title');
  if (target && state.nodes !== null) target.focus();
  if (route.name && !state.history.has(route.name)) refresh();
}

// ---- rendering ---------------------------------------------------------------------------

function render() {
  if (state.nodes === null) return;
  renderSummary(state.nodes);
  const route = currentRoute();
  renderAlertList(route);
  $('grid-view').hidden = route.view !== 'cards';
  $('stack-view').hidden = route.view !== 'stacks';
  $('node-view').hidden = route.view !== 'node';
  $('views').hidden = route.view === 'node';
  $('find').hidden = route.view !== 'cards';
  $('add-board').hidden = route.view !== 'cards' || !state.signedIn || !state.install;
  if (route.view === 'cards') state.gridHash = location.hash || '#/';
  for (const [id, view] of [['view-cards', 'cards'], ['view-stacks', 'stacks']]) {
    $(id).setAttribute('href', hashOf({ ...route, view }));
    if (route.view === view) $(id).setAttribute('aria-current', 'page');
    else $(id).removeAttribute('aria-current');
  }
  if (route.view === 'cards') renderGrid(state.nodes);
  else if (route.view === 'stacks') renderStacks(state.nodes);
  else renderNode(route.name);
}

function tally(nodes) {
  const counts = { up: 0, late: 0, down: 0, stopped: 0 };
  for (const n of nodes) counts[n.status] = (counts[n.status] || 0) + 1;
  return counts;
}

function renderSummary(nodes) {
  const counts = tally(nodes);
  const parts = Object.keys(STATUS).filter((k) => counts[k] > 0);
  $('summary').replaceChildren(
    h('span', {}, `${nodes.length} ${nodes.length === 1 ? 'node' : 'nodes'}:`),
    ...parts.map((k) => h('span', { class: `count count-${k}` }, icon(k), `${counts[k]} ${STATUS[k].toLowerCase()}`)),
  );
  const bad = (counts.down || 0) + (counts.late || 0);
  document.title = bad > 0 ? `(${bad}) pivitals` : 'pivitals';
}

function groupsOf(nodes, key) {
  if (!nodes.some((n) => key in n.labels)) return [{ title: null, nodes }];
  const groups = new Map();
  for (const n of nodes) {
    const value = n.labels[key];
    const id = value === undefined ? null : value;
    if (!groups.has(id)) groups.set(id, []);
    groups.get(id).push(n);
  }
  const ids = [...groups.keys()].sort((a, b) => (a === null) - (b === null) || naturalCompare(a, b));
  return ids.map((id) => ({ title: id === null ? 'ungrouped' : `${key} ${id}`, nodes: groups.get(id) }));
}

// ---- finding a board: sort, filter, search -----------------------------------------------

function labelPairs(n) {
  return Object.entries(n.labels || {}).map(([k, v]) => `${k}=${v}`);
}

// What a search matches: the name, every address and MAC, and the labels.
function searchText(n) {
  const i = n.info || {};
  return [n.name, n.primary_ipv4, ...labelPairs(n),
    ...(i.interfaces || []).flatMap((x) => [...(x.ipv4 || []), ...(x.ipv6 || []), x.mac])]
    .filter(Boolean).join(' ').toLowerCase();
}

// Descending for the vitals (the one to look at first), the longest silent first for last
// seen; a node without the value goes last.
const SORT_VALUE = {
  cpu: (n) => latestValues(n).cpu_percent,
  temp: (n) => latestValues(n).temp_celsius,
  disk: (n) => latestValues(n).disk_percent,
  seen: (n) => { const t = Date.parse(n.last_seen || ''); return Number.isFinite(t) ? -t : null; },
};

function findNodes(nodes, find) {
  const words = find.q.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const shown = nodes.filter((n) => (!find.status || (find.status === 'not-up' ? n.status !== 'up' : n.status === find.status))
    && (!find.label || labelPairs(n).includes(find.label))
    && words.every((w) => searchText(n).includes(w)));
  const value = SORT_VALUE[find.sort];
  const keyed = shown.map((n) => [n, value ? value(n) : null]);
  keyed.sort(([a, va], [b, vb]) => {
    if (value) {
      const ka = Number.isFinite(va);
      const kb = Number.isFinite(vb);
      if (ka !== kb) return ka ? -1 : 1;
      if (ka && va !== vb) return vb - va;
    }
    return naturalCompare(a.name, b.name);
  });
  return keyed.map(([n]) => n);
}

function syncFind(nodes, find) {
  const search = $('search');
  if (document.activeElement !== search && search.value !== find.q) search.value = find.q;
  $('sort').value = find.sort;
  $('status-filter').value = find.status;
  const pairs = [...new Set(nodes.flatMap(labelPairs))];
  if (find.label && !pairs.includes(find.label)) pairs.push(find.label);
  pairs.sort(naturalCompare);
  const key = JSON.stringify(pairs);
  if (state.labelOptions !== key) {
    state.labelOptions = key;
    put($('label-filter'), h('option', { value: '' }, 'Any label'), pairs.map((p) => h('option', { value: p }, p)));
  }
  $('label-filter').value = find.label;
}

function renderGrid(all) {
  const { find } = currentRoute();
  syncFind(all, find);
  const nodes = findNodes(all, find);
  const filtered = nodes.length !== all.length;
  $('find-count').textContent = filtered ? `${nodes.length} of ${all.length} shown` : '';
  const key = state.settings.group_by;
  // Sorted by a vital, one list across the groups: the busiest board is the first card.
  const groups = find.sort === 'name' ? groupsOf(nodes, key) : [{ title: null, nodes }];
  const layout = JSON.stringify(groups.map((g) => [g.title, g.nodes.map((n) => n.name)]));
  const names = new Set(all.map((n) => n.name));
  for (const name of state.cards.keys()) if (!names.has(name)) state.cards.delete(name);
  for (const n of nodes) {
    if (!state.cards.has(n.name)) state.cards.set(n.name, makeCard(n.name));
    updateCard(state.cards.get(n.name), n);
  }
  const container = $('groups');
  if (layout !== state.layout) {
    state.layout = layout;
    container.replaceChildren(...groups.map((g, i) => {
      const id = `group-${i}`;
      return h('section', { class: 'group', 'aria-labelledby': g.title ? id : 'grid-title' },
        g.title ? h('h2', { id }, g.title, h('span', { class: 'tally' })) : null,
        h('ul', { class: 'cards', role: 'list' }, g.nodes.map((n) => h('li', {}, state.cards.get(n.name).el))));
    }));
    if (all.length === 0) {
      container.replaceChildren(h('p', { class: 'none' },
        'No node has registered yet. Start an agent with PIVITALS_PRIMARY_URL pointing here.'));
    } else if (nodes.length === 0) {
      container.replaceChildren(h('p', { class: 'none' }, 'No node matches this search and filter.'));
    }
  }
  container.querySelectorAll('section.group').forEach((section, i) => {
    const t = section.querySelector('.tally');
    if (!t || !groups[i]) return;
    const counts = tally(groups[i].nodes);
    const n = groups[i].nodes.length;
    t.textContent = `${n} ${n === 1 ? 'node' : 'nodes'} · ${Object.keys(STATUS)
      .filter((k) => counts[k] > 0).map((k) => `${counts[k]} ${k}`).join(', ')}`;
  });
}

function makeCard(name) {
  const titleId = `card-${name}`;
  const refs = { badge: h('span'), alerts: h('span', { class: 'alert-count', hidden: true }), addr: h('p', { class: 'addr' }), meta: h('p', { class: 'meta' }), rows: {} };
  // CPU, memory and temperature get a sparkline; the fullest disk changes too slowly for one.
  const rows = SERIES.map((m) => {
    const wide = m.key === 'disk_percent';
    const value = h('dd', { class: wide ? 'value wide' : 'value' });
    const spark = wide ? null : h('dd', { class: 'spark' });
    refs.rows[m.key] = { value, spark };
    return h('div', {}, h('dt', {}, m.name), value, spark);
  });
  // Rates over the agent's last interval, summed over interfaces and over disks.
  for (const [key, title] of [['net', 'Net'], ['io', 'Disk I/O']]) {
    const value = h('dd', { class: 'value wide rate', 'data-rate': key });
    refs.rows[key] = { value };
    rows.push(h('div', {}, h('dt', {}, title), value));
  }
  const el = h('article', { class: 'card', 'data-node': name, 'aria-labelledby': titleId },
    h('div', { class: 'card-head' },
      h('h3', { id: titleId }, h('a', { href: `#/nodes/${encodeURIComponent(name)}` }, name)),
      h('span', { class: 'card-badges' }, refs.alerts, refs.badge)),
    h('dl', { class: 'metrics' }, rows),
    refs.addr,
    refs.meta,
    actionBar('node', name));
  return { el, refs };
}

function latestValues(node) {
  const l = node.latest || {};
  const disks = (l.disks || []).map((d) => ({ ...d, pct: diskPercent(d) }))
    .filter((d) => d.pct !== null);
  const fullest = disks.reduce((a, b) => (a === null || b.pct > a.pct ? b : a), null);
  const temps = (l.temperatures || []).map((t) => t.celsius).filter(Number.isFinite);
  return {
    cpu_percent: l.cpu ? l.cpu.usage_percent : null,
    mem_percent: l.memory ? percent(l.memory.used_bytes, l.memory.total_bytes) : null,
    temp_celsius: temps.length ? Math.max(...temps) : null,
    disk_percent: fullest ? fullest.pct : null,
    fullestMount: fullest ? fullest.mount : null,
    load1: l.load ? l.load.one : null,
    net_rx_bytes_per_second: sumOf(l.networks, 'rx_bytes_per_second'),
    net_tx_bytes_per_second: sumOf(l.networks, 'tx_bytes_per_second'),
    disk_read_bytes_per_second: sumOf(l.disk_io, 'read_bytes_per_second'),
    disk_write_bytes_per_second: sumOf(l.disk_io, 'write_bytes_per_second'),
  };
}

// The sum of a rate over interfaces or disks; null before the agent has two samples.
function sumOf(list, key) {
  const rates = (list || []).map((x) => x.rates && x.rates[key]).filter(Number.isFinite);
  return rates.length ? rates.reduce((a, b) => a + b, 0) : null;
}

function updateCard(card, node) {
  const { el, refs } = card;
  el.className = `card status-${node.status}${node.status === 'up' ? '' : ' stale'}`;
  el.dataset.status = node.status;
  if (refs.badge.dataset.status !== node.status) {
    const b = badge(node.status);
    refs.badge.replaceWith(b);
    refs.badge = b;
  }
  updateAlertCount(refs.alerts, node);
  const fromHistory = node.latest ? null : lastKnownOf(node.name);
  const values = fromHistory ? fromHistory.values : latestValues(node);
  const hist = historyOf(node.name);
  for (const m of SERIES) {
    const row = refs.rows[m.key];
    put(row.value, fmtValue(values[m.key], m.unit),
      m.key === 'disk_percent' && values.fullestMount ? h('span', { class: 'detail' }, ` on ${values.fullestMount}`) : null);
    if (row.spark) put(row.spark, sparkline(hist, m));
  }
  put(refs.rows.net.value, `${fmtRate(values.net_rx_bytes_per_second)} in`, h('span', { class: 'detail' }, ' · '),
    `${fmtRate(values.net_tx_bytes_per_second)} out`);
  put(refs.rows.io.value, `${fmtRate(values.disk_read_bytes_per_second)} read`, h('span', { class: 'detail' }, ' · '),
    `${fmtRate(values.disk_write_bytes_per_second)} written`);
  // Redrawn only when the address changes, so a selection (to copy it) survives the polling.
  const addr = addressOf(node);
  const addrKey = JSON.stringify(addr);
  if (refs.addr.dataset.key !== addrKey) {
    refs.addr.dataset.key = addrKey;
    put(refs.addr,
      addr.ipv4 ? h('span', { class: 'ip', 'data-ipv4': addr.ipv4, title: 'IPv4 address' }, addr.ipv4) : null,
      addr.ipv4 ? null : h('span', { class: 'ip none' }, 'no IPv4 address'),
      addr.mac ? h('span', { class: 'mac', title: `MAC address of ${addr.iface}` }, `${addr.iface} ${addr.mac}`) : null);
  }
  const uptime = node.latest && node.latest.uptime_seconds;
  // An offline node keeps its last known values, said so, next to when it was last seen.
  const known = fromHistory ? 'Last known values, from the history' : !node.latest ? 'No sample since the primary started'
    : node.status === 'up' ? '' : 'Last known values';
  put(refs.meta,
    known ? h('strong', { class: 'last-known' }, known) : '',
    fromHistory ? [' (', h('time', { datetime: new Date(fromHistory.at).toISOString() }, fmtAgo(new Date(fromHistory.at).toISOString())), ')'] : '',
    known ? ' · ' : '',
    uptime && !known ? `Uptime ${fmtDuration(uptime)} · ` : '',
    'Last seen ', h('time', { datetime: node.last_seen || '' }, fmtAgo(node.last_seen)),
  );
}

// A node the primary has no sample of (it restarted since) shows the newest point of its
// ranged history, so an offline card is not blank.
function lastKnownOf(name) {
  if (!state.lastKnown.has(name)) {
    state.lastKnown.set(name, null);
    const newest = async (range) => {
      const body = await getJson(`/api/v1/nodes/${encodeURIComponent(name)}/history?range=${range}`);
      const values = {};
      let at = 0;
      for (const [key, list] of Object.entries(body.series || {})) {
        const last = [...list].reverse().find((p) => Number.isFinite(p[1]));
        if (last) {
          values[key] = last[1];
          at = Math.max(at, last[0]);
        }
      }
      return at ? { at, values } : null;
    };
    // The last hour has the finest steps; a node silent for longer is found at 30 days.
    newest('1h').then((found) => found || newest('30d')).then((found) => {
      if (!found) return;
      state.lastKnown.set(name, found);
      render();
    }).catch(() => {});
  }
  return state.lastKnown.get(name);
}

// The address to reach a node by: its primary IPv4 and the MAC of the interface it is on
// (the default route's, else the one holding that address).
function addressOf(node) {
  const i = node.info || {};
  const ifaces = i.interfaces || [];
  const ipv4 = node.primary_ipv4 || null;
  const iface = ifaces.find((x) => x.name === i.default_interface)
    || ifaces.find((x) => ipv4 && (x.ipv4 || []).includes(ipv4)) || null;
  return { ipv4, iface: iface ? iface.name : null, mac: iface ? iface.mac || null : null };
}

// ---- SVG charts --------------------------------------------------------------------------

// Splits points into runs without gaps: a gap is more than three of the node's intervals
// (and more than two history steps) without a point.
function runs(points, key, intervalSeconds) {
  const step = state.settings.history.step_seconds * 1000;
  const gap = Math.max(2.5 * step, 3.5 * intervalSeconds * 1000);
  const out = [];
  let run = [];
  let last = null;
  for (const p of points) {
    const v = p[key];
    if (v === null || v === undefined) continue;
    if (last !== null && p.ts_ms - last > gap) { out.push(run); run = []; }
    run.push([p.ts_ms, v]);
    last = p.ts_ms;
  }
  if (run.length) out.push(run);
  return out;
}

function scale(values, fixed) {
  if (fixed) return fixed;
  if (!values.length) return [20, 80];
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const low = Math.max(0, Math.floor((lo - 5) / 10) * 10);
  return [low, Math.max(low + 20, Math.ceil((hi + 5) / 10) * 10)];
}

function pathOf(run, x, y) {
  if (run.length === 1) {
    const [t, v] = run[0];
    return `M${(x(t) - 1.5).toFixed(1)} ${y(v).toFixed(1)}h3`;
  }
  return run.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)} ${y(v).toFixed(1)}`).join('');
}

// The time span drawn: the history there is, at least `least` ms, at most the window.
function span(points, now, least) {
  const window = state.settings.history.window_seconds * 1000;
  const first = points.length ? points[0].ts_ms : now;
  return Math.min(window, Math.max(least, now - first));
}

function sparkline(hist, m) {
  const now = serverNow();
  const parts = runs(hist.points, m.key, hist.interval);
  if (!parts.length) return h('span', { class: 'empty' }, 'no recent data');
  const [lo, hi] = scale(parts.flat().map(([, v]) => v), m.fixed);
  // A sparkline fits the history there is (a new node's first minute fills it too).
  const width = span(hist.points, now, 2 * state.settings.history.step_seconds * 1000);
  const x = (t) => ((t - (now - width)) / width) * 100;
  const y = (v) => 23 - ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * 22;
  return s('svg', { viewBox: '0 0 100 24', preserveAspectRatio: 'none', 'aria-hidden': 'true', focusable: 'false' },
    parts.map((run) => s('path', { d: pathOf(run, x, y), class: `line line-${m.cls}`, 'vector-effect': 'non-scaling-stroke' })));
}

// ---- ranged history ----------------------------------------------------------------------

// The node page's history for its range, read again once a step (at least every ten seconds).
async function fetchRanged(name, range) {
  const key = `${name}|${range}`;
  if (state.ranged.key !== key) state.ranged = { key, body: null, at: 0, busy: false, error: null };
  const r = state.ranged;
  const every = Math.max(10000, r.body && r.body.step_seconds ? r.body.step_seconds * 1000 : 0);
  if (r.busy || Date.now() - r.at < every) return;
  r.busy = true;
  try {
    r.body = await getJson(`/api/v1/nodes/${encodeURIComponent(name)}/history?range=${range}`);
    r.error = null;
  } catch (e) {
    r.error = e;
  } finally {
    r.at = Date.now();
    r.busy = false;
  }
  if (state.ranged === r) render();
}

// A primary that answers without `series` keeps no ranged history: its last hour in memory is
// drawn instead (means only, no band).
function rangedData(name, range) {
  const body = state.ranged.key === `${name}|${range}` ? state.ranged.body : null;
  if (body && body.series) return body;
  if (range !== DEFAULT_RANGE || !body) return null;
  const points = historyOf(name).points;
  const now = serverNow();
  const series = {};
  for (const m of RANGE_SERIES) {
    series[m.key] = points.filter((p) => Number.isFinite(p[m.key])).map((p) => [p.ts_ms, p[m.key], null, null]);
  }
  return { range, from_ms: now - 3600000, to_ms: now, step_seconds: state.settings.history.step_seconds, source: 'memory', series };
}

function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((k) => k * p).find((k) => k >= v);
}

function fmtAxis(v, unit) {
  if (unit === 'B/s') return fmtBytes(v).replace('iB', '').replace(NB, '');
  if (unit === '') return num(v, v < 10 ? 1 : 0);
  return String(Math.round(v));
}

function fmtTick(ms, spanMs) {
  const d = new Date(ms);
  if (spanMs > 2 * 86400000) return d.toLocaleDateString('en', { month: 'short', day: 'numeric' });
  return d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
}

// One series over the range: the band from each step's lowest to its highest value (the
// peaks), the mean as a line over it; a gap of more than two and a half steps breaks both.
function rangeChart(data, m) {
  const W = 420;
  const H = 180;
  const L = 40;
  const R = 8;
  const T = 14;
  const B = 24;
  const raw = (data.series && data.series[m.key]) || [];
  const points = raw.filter((p) => Array.isArray(p) && Number.isFinite(p[1]));
  const gap = 2.5 * data.step_seconds * 1000;
  const parts = [];
  for (const p of points) {
    const run = parts[parts.length - 1];
    if (!run || p[0] - run[run.length - 1][0] > gap) parts.push([p]);
    else run.push(p);
  }
  const low = (p) => (Number.isFinite(p[2]) ? Math.min(p[2], p[1]) : p[1]);
  const high = (p) => (Number.isFinite(p[3]) ? Math.max(p[3], p[1]) : p[1]);
  const values = points.flatMap((p) => [low(p), high(p)]);
  let [lo, hi] = [0, 1];
  if (m.fixed) [lo, hi] = m.fixed;
  else if (m.unit === '°C') [lo, hi] = scale(values);
  else hi = niceCeil(values.length ? Math.max(...values) * 1.1 : 1);
  const from = data.from_ms;
  const to = data.to_ms;
  const x = (t) => L + ((t - from) / Math.max(1, to - from)) * (W - L - R);
  const y = (v) => T + (1 - (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * (H - T - B);
  const words = RANGES[data.range] || data.range;
  const label = points.length
    ? `${m.long} over the last ${words}: latest ${fmtValue(points[points.length - 1][1], m.unit)}, lowest ${fmtValue(Math.min(...values), m.unit)}, highest ${fmtValue(Math.max(...values), m.unit)}.`
    : `${m.long}: no data in the last ${words}.`;
  const grid = [];
  for (let i = 0; i <= 4; i += 1) {
    const v = lo + ((hi - lo) * i) / 4;
    grid.push(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    grid.push(s('text', { x: L - 5, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmtAxis(v, m.unit)));
  }
  for (let i = 0; i <= 4; i += 1) {
    const t = from + ((to - from) * i) / 4;
    grid.push(s('line', { x1: x(t), x2: x(t), y1: T, y2: H - B, class: 'grid' }));
    grid.push(s('text', { x: x(t), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'axis' },
      i === 4 ? 'now' : fmtTick(t, to - from)));
  }
  const drawn = parts.map((run) => {
    const hasBand = run.some((p) => high(p) > low(p) || Number.isFinite(p[3]));
    const top = run.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)} ${y(high(p)).toFixed(1)}`).join('');
    const bottom = [...run].reverse().map((p) => `L${x(p[0]).toFixed(1)} ${y(low(p)).toFixed(1)}`).join('');
    const band = run.length > 1 ? `${top}${bottom}Z` : `M${(x(run[0][0]) - 1.5).toFixed(1)} ${y(high(run[0])).toFixed(1)}h3V${y(low(run[0])).toFixed(1)}h-3Z`;
    const line = pathOf(run.map((p) => [p[0], p[1]]), x, y);
    return [hasBand ? s('path', { d: band, class: `band band-${m.cls}` }) : null, s('path', { d: line, class: `line line-${m.cls}` })];
  });
  return s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, 'data-series': m.key, 'data-points': points.length },
    s('title', {}, label),
    grid,
    drawn,
    points.length ? null : s('text', { x: (L + W - R) / 2, y: (T + H - B) / 2, 'text-anchor': 'middle', class: 'axis' }, 'no data in this range'));
}

function rangePicker(route) {
  return h('div', { class: 'ranges', role: 'group', 'aria-label': 'Time range' },
    Object.keys(RANGES).map((r) => h('a', {
      href: hashOf({ ...route, range: r }), 'data-range': r, 'aria-current': r === route.range ? 'true' : null,
    }, r.replace(/(\d+)/, `$1${NB}`))));
}

function sourceText(data) {
  if (!data) return '';
  const step = fmtDuration(data.step_seconds);
  const from = { rollups: "the primary's own rollups", influxdb: 'InfluxDB', memory: "the primary's memory" }[data.source] || data.source;
  return `From ${from}; one point per ${step}, the band from its lowest to its highest value.`;
}

// ---- the node page -----------------------------------------------------------------------

function renderNode(name) {
  const view = $('node-view');
  const node = state.nodes.find((n) => n.name === name);
  if (!node) {
    state.nodeView = null;
    view.replaceChildren(
      h('p', { class: 'back' }, h('a', { href: '#/' }, '← All nodes')),
      h('h2', { class: 'node-title', tabindex: '-1' }, `No node named ${name}`),
      h('p', {}, 'It may have been deregistered.'));
    return;
  }
  if (!state.nodeView || state.nodeView.name !== name) state.nodeView = buildNodeView(name);
  const v = state.nodeView;
  if (v.badge.dataset.status !== node.status) {
    const b = badge(node.status);
    v.badge.replaceWith(b);
    v.badge = b;
  }
  const labels = Object.entries(node.labels);
  put(v.sub,
    'Last seen ', h('time', { datetime: node.last_seen || '' }, fmtAgo(node.last_seen)),
    ` · pushes every ${fmtDuration(node.interval_seconds)}`,
    labels.length ? h('ul', { class: 'chips', 'aria-label': 'Labels' }, labels.map(([k, val]) => h('li', {}, `${k}=${val}`))) : '');
  const route = currentRoute();
  fetchRanged(name, route.range);
  const data = rangedData(name, route.range);
  const values = latestValues(node);
  // Redrawn when new history arrives, not at every poll, so a chart's tooltip stays put.
  const chartsKey = JSON.stringify([route.range, state.ranged.key, state.ranged.at, data && data.source === 'memory' ? state.historyAt : 0]);
  if (v.chartsKey !== chartsKey) {
    v.chartsKey = chartsKey;
    v.ranges.replaceChildren(rangePicker(route));
    const failed = state.ranged.error && !data;
    v.source.textContent = failed ? `The history could not be read: ${state.ranged.error.message}`
      : data ? sourceText(data) : state.ranged.body ? 'This primary keeps no history beyond the last hour.' : 'Loading…';
    v.nowSpans = new Map();
    v.charts.replaceChildren(...(data ? RANGE_SERIES.map((m) => {
      const now = h('span', { class: 'now' });
      v.nowSpans.set(m, now);
      return h('figure', { 'data-series': m.key },
        h('figcaption', {}, `${m.long}${m.unit ? ` (${m.unit})` : ''}`, now), rangeChart(data, m));
    }) : []));
  }
  for (const [m, now] of v.nowSpans) now.textContent = `now ${fmtValue(values[m.key], m.unit)}`;
  // Facts and addresses change rarely: redrawn only then, so a selection survives the polling.
  const infoKey = JSON.stringify([node.info, node.registered_at, node.primary_ipv4]);
  if (v.infoKey !== infoKey) {
    v.infoKey = infoKey;
    v.info.replaceChildren(facts(node));
    v.addrs.replaceChildren(addressesTable(node));
  }
  v.now.replaceChildren(nowFacts(node));
  v.disks.replaceChildren(disksTable(node));
  v.nets.replaceChildren(netsTable(node));
  v.io.replaceChildren(diskIoTable(node));
  v.temps.replaceChildren(tempsTable(node));
  renderNodeAlerts(v, name);
  v.actionsPanel.hidden = !state.signedIn;
  refreshNodeActions(v);
  if (!view.contains(v.root)) view.replaceChildren(v.root);
}

function buildNodeView(name) {
  const panel = (title, body) => h('section', { class: 'panel', 'aria-label': title }, h('h3', {}, title), body);
  const v = {
    name,
    badge: h('span'),
    sub: h('div', { class: 'node-sub' }),
    charts: h('div', { class: 'charts' }),
    ranges: h('div'),
    source: h('p', { class: 'hint source' }),
    chartsKey: '',
    nowSpans: new Map(),
    info: h('div'),
    infoKey: '',
    addrs: h('div', { class: 'table-wrap' }),
    now: h('div'),
    disks: h('div', { class: 'table-wrap' }),
    nets: h('div', { class: 'table-wrap' }),
    io: h('div', { class: 'table-wrap' }),
    temps: h('div', { class: 'table-wrap' }),
    alerts: h('div'),
    alertsLayout: '',
    history: h('div', { class: 'table-wrap' }),
    actionsAt: 0,
    actionsBusy: false,
  };
  v.actionsPanel = panel('Actions', h('div', {}, actionBar('node', name, 'page:'), h('h4', {}, 'Recent actions'), v.history));
  v.alertsPanel = panel('Alerts', v.alerts);
  v.alertsPanel.hidden = true;
  const title = h('h2', { class: 'node-title', tabindex: '-1' }, h('span', {}, name), v.badge);
  v.root = h('div', {},
    h('p', { class: 'back' }, h('a', { href: state.gridHash }, '← All nodes')),
    title,
    v.sub,
    v.alertsPanel,
    panel('History', h('div', {}, v.ranges, v.source, v.charts)),
    panel('Base information', v.info),
    panel('Addresses', v.addrs),
    panel('Now', v.now),
    panel('Disks', v.disks),
    panel('Network interfaces', v.nets),
    panel('Disk I/O', v.io),
    panel('Temperatures', v.temps),
    v.actionsPanel,
    panel('Administration', h('div', { class: 'admin' },
      h('p', {}, 'Deregistering removes the node from the primary; its token stops working at once.'),
      h('button', { type: 'button', class: 'danger', onclick: () => openDeregister(name) }, `Deregister ${name}…`))));
  v.badge = title.lastElementChild;
  return v;
}

function dl(pairs) {
  const shown = pairs.filter(([, value]) => value !== null && value !== undefined && value !== '');
  return h('dl', { class: 'facts' }, shown.map(([k, value]) => h('div', {}, h('dt', {}, k), h('dd', {}, value))));
}

function facts(node) {
  const i = node.info || {};
  const addr = addressOf(node);
  return dl([
    ['IPv4 address', addr.ipv4],
    ['MAC address', addr.mac ? `${addr.mac} (${addr.iface})` : null],
    ['Board', i.board_model || 'not a Raspberry Pi (no board model)'],
    ['Board serial', i.board_serial],
    ['Operating system', [i.os, i.os_version].filter(Boolean).join(' ')],
    ['Kernel', i.kernel],
    ['Architecture', i.arch],
    ['CPU', i.cpu_model],
    ['Cores', i.cpu_cores ? String(i.cpu_cores) : null],
    ['RAM', i.memory_total_bytes ? fmtBytes(i.memory_total_bytes) : null],
    ['Swap', i.swap_total_bytes ? fmtBytes(i.swap_total_bytes) : 'none'],
    ['Host name', i.hostname],
    ['Agent version', i.agent_version],
    ['Registered', node.registered_at],
  ]);
}

function nowFacts(node) {
  const l = node.latest;
  if (!l) return h('p', { class: 'none' }, 'No sample since the primary started.');
  const t = l.throttling;
  const flags = t ? [
    t.raw & 1 ? 'under-voltage' : null,
    t.raw & 2 ? 'frequency capped' : null,
    t.raw & 4 ? 'throttled' : null,
    t.raw & 8 ? 'soft temperature limit' : null,
  ].filter(Boolean) : null;
  return dl([
    ['Sample taken', new Date(l.timestamp_ms).toISOString()],
    ['CPU', l.cpu ? `${withPeak(l.cpu.usage_percent, l.cpu.usage_percent_max, '%')}${l.cpu.frequency_mhz ? ` at ${l.cpu.frequency_mhz}${NB}MHz` : ''}` : null],
    ['Load (1, 5, 15 min)', l.load ? [l.load.one, l.load.five, l.load.fifteen].map((x) => num(x, 2)).join(', ')
      + (Number.isFinite(l.load.one_max) && l.load.one_max > l.load.one ? ` (1 min peak ${num(l.load.one_max, 2)})` : '') : null],
    ['Memory', l.memory ? `${fmtBytes(l.memory.used_bytes)} of ${fmtBytes(l.memory.total_bytes)} (${fmtValue(percent(l.memory.used_bytes, l.memory.total_bytes), '%')})`
      + (Number.isFinite(l.memory.used_bytes_max) && l.memory.used_bytes_max > l.memory.used_bytes ? `, peak ${fmtBytes(l.memory.used_bytes_max)}` : '') : null],
    ['Swap', l.swap && l.swap.total_bytes ? `${fmtBytes(l.swap.used_bytes)} of ${fmtBytes(l.swap.total_bytes)}` : null],
    ['Processes', l.process_count !== null && l.process_count !== undefined ? String(l.process_count) : null],
    ['Uptime', l.uptime_seconds ? fmtDuration(l.uptime_seconds) : null],
    ['Throttling', flags ? (flags.length ? flags.join(', ') : `none now (0x${t.raw.toString(16)})`) : null],
    ['Power', powerText(l.power)],
    ['Fan', l.power && Number.isFinite(l.power.fan_rpm) ? `${l.power.fan_rpm}${NB}rpm` : null],
    ['Storage wear', wearText(l.storage_health)],
  ]);
}

function powerText(p) {
  if (!p || p.under_voltage_now === null || p.under_voltage_now === undefined) return null;
  const now = p.under_voltage_now ? 'under-voltage now' : 'supply fine now';
  const seen = p.under_voltage_events
    ? `; ${p.under_voltage_events} under-voltage event${p.under_voltage_events === 1 ? '' : 's'}, ${p.under_voltage_seconds || 0}${NB}s in the last interval`
    : '';
  const sinceBoot = [p.under_voltage_since_boot ? 'under-voltage' : null, p.frequency_capped_since_boot ? 'frequency capped' : null,
    p.throttled_since_boot ? 'throttled' : null, p.soft_temp_limit_since_boot ? 'soft temperature limit' : null].filter(Boolean);
  return `${now}${seen}${sinceBoot.length ? `; since boot: ${sinceBoot.join(', ')}` : ''}`;
}

// eMMC life time estimates are steps of 10 % of the rated life (1: 0–10 % used).
function wearText(devices) {
  const known = (devices || []).filter((d) => Number.isFinite(d.emmc_life_time_a) || Number.isFinite(d.emmc_life_time_b));
  if (!known.length) return null;
  return known.map((d) => {
    const step = Math.max(d.emmc_life_time_a || 0, d.emmc_life_time_b || 0);
    const eol = d.emmc_pre_eol > 1 ? (d.emmc_pre_eol === 2 ? ', reserve blocks at 80 %' : ', reserve blocks nearly gone') : '';
    return `${d.device}: ${step > 10 ? 'past its rated life' : `${(step - 1) * 10}–${step * 10}${NB}% of its rated life used`}${eol}`;
  }).join('; ');
}

function table(caption, head, rows, numeric) {
  if (!rows.length) return h('p', { class: 'none' }, `No ${caption.toLowerCase()} reported.`);
  return h('table', {},
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, head.map((c, i) => h('th', { scope: 'col', class: numeric.includes(i) ? 'num' : null }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) => h(i === 0 ? 'th' : 'td',
      i === 0 ? { scope: 'row' } : { class: numeric.includes(i) ? 'num' : null }, c))))));
}

function disksTable(node) {
  const disks = (node.latest && node.latest.disks) || [];
  return table('Disks', ['Mount', 'Device', 'Type', 'Used', 'Available', 'Size', 'Use'], disks.map((d) => {
    const pct = diskPercent(d);
    return [d.mount, d.device, d.fs_type, fmtBytes(d.used_bytes), fmtBytes(d.available_bytes), fmtBytes(d.total_bytes),
      h('span', {}, pct === null ? '–' : fmtValue(pct, '%'), ' ',
        pct === null ? '' : h('meter', { min: 0, max: 100, low: 80, high: 90, optimum: 0, value: pct.toFixed(1), 'aria-hidden': 'true' }))];
  }), [3, 4, 5]);
}

// Rates over the last interval (counters since boot in the title); a dash right after the
// agent started or the interface was reset.
function netsTable(node) {
  const nets = (node.latest && node.latest.networks) || [];
  const perSecond = (v) => (Number.isFinite(v) ? `${num(v, v < 10 ? 1 : 0)}/s` : '–');
  return table('Network interfaces', ['Interface', 'Receiving', 'Sending', 'Errors in', 'Errors out', 'Dropped in', 'Dropped out'],
    nets.map((n) => {
      const r = n.rates || {};
      return [h('span', { title: `since boot: ${fmtBytes(n.rx_bytes)} received, ${fmtBytes(n.tx_bytes)} sent` }, n.interface),
        fmtRate(r.rx_bytes_per_second), fmtRate(r.tx_bytes_per_second),
        perSecond(r.rx_errors_per_second), perSecond(r.tx_errors_per_second),
        perSecond(r.rx_dropped_per_second), perSecond(r.tx_dropped_per_second)];
    }),
    [1, 2, 3, 4, 5, 6]);
}

function diskIoTable(node) {
  const devices = (node.latest && node.latest.disk_io) || [];
  return table('Disk I/O', ['Device', 'Reading', 'Writing', 'Busy'], devices.map((d) => {
    const r = d.rates || {};
    return [h('span', { title: `since boot: ${fmtBytes(d.read_bytes)} read, ${fmtBytes(d.written_bytes)} written` }, d.device),
      fmtRate(r.read_bytes_per_second), fmtRate(r.write_bytes_per_second), fmtValue(r.busy_percent, '%')];
  }), [1, 2, 3]);
}

// Every interface that is up, the default route's first and marked, with its MAC and
// addresses, one per line (each can be selected and copied on its own).
function addressesTable(node) {
  const i = node.info || {};
  const ifaces = [...(i.interfaces || [])].sort((a, b) =>
    (b.name === i.default_interface) - (a.name === i.default_interface));
  const list = (addrs) => (addrs && addrs.length
    ? h('ul', { class: 'addrs' }, addrs.map((a) => h('li', {}, a))) : '–');
  return table('Addresses', ['Interface', 'MAC', 'IPv4', 'IPv6'], ifaces.map((x) => [
    h('span', {}, x.name, x.name === i.default_interface ? h('span', { class: 'detail' }, ' (default route)') : null),
    x.mac ? h('span', { class: 'mono' }, x.mac) : '–', list(x.ipv4), list(x.ipv6)]), []);
}

function tempsTable(node) {
  const temps = (node.latest && node.latest.temperatures) || [];
  return table('Temperatures', ['Sensor', 'Temperature', 'Peak'],
    temps.map((t) => [t.sensor, fmtValue(t.celsius, '°C'), fmtValue(t.celsius_max, '°C')]), [1, 2]);
}

// ---- sign-in -----------------------------------------------------------------------------

// The admin signs in once; the primary answers with an HttpOnly session cookie, so the token
// is neither kept in the page nor in the browser's storage. Requests that change something
// carry X-Pivitals-Session, which the primary asks of cookie-authorised ones.
const SESSION_HEADERS = { 'Content-Type': 'application/json', Accept: 'application/json', 'X-Pivitals-Session': '1' };

async function errorText(res) {
  const body = await res.text();
  try { return JSON.parse(body).error || body; } catch { return body; }
}

async function checkSession() {
  try {
    const body = await getJson('/api/v1/session');
    state.adminEnabled = body.admin_enabled !== false;
    setSignedIn(body.signed_in === true);
  } catch {
    // An older primary without sessions: no sign-in.
    state.adminEnabled = false;
    setSignedIn(false);
  }
}

function setSignedIn(on) {
  const changed = state.signedIn !== on;
  state.signedIn = on;
  $('signin-form').hidden = on || !state.adminEnabled;
  $('signed-in').hidden = !on;
  for (const bar of state.actionBars.values()) {
    bar.el.hidden = !on;
    // What a signed-in admin saw is not left for whoever uses the browser next.
    if (!on) bar.results.replaceChildren();
  }
  if (changed) {
    // The install command holds the enrollment token: read only signed in, dropped at sign-out.
    state.install = null;
    $('install-command').textContent = '';
    if (on) loadInstallCommand();
    render();
  }
}

// "Add a board": the one-line install command, from an admin endpoint; a primary without it
// (404) shows nothing. The token is only ever in this element, never in the URL or storage.
async function loadInstallCommand() {
  try {
    const body = await adminJson('GET', '/api/v1/admin/install-command');
    if (!state.signedIn || typeof body.command !== 'string') return;
    state.install = body.command;
    $('install-command').textContent = body.command;
  } catch {
    state.install = null;
  }
  render();
}

async function signIn(e) {
  e.preventDefault();
  const input = $('signin-token');
  const token = input.value.trim();
  const error = $('signin-error');
  if (!token) {
    input.focus();
    return;
  }
  $('signin-button').disabled = true;
  error.hidden = true;
  try {
    const res = await fetch('/api/v1/session', {
      method: 'POST', headers: SESSION_HEADERS, body: JSON.stringify({ token }), cache: 'no-store',
    });
    if (res.ok) {
      setSignedIn(true);
      announce('Signed in.');
    } else {
      error.textContent = `Refused (${res.status}): ${await errorText(res)}`;
      error.hidden = false;
    }
  } catch (err) {
    error.textContent = `Could not reach the primary: ${err.message}`;
    error.hidden = false;
  } finally {
    input.value = '';
    $('signin-button').disabled = false;
  }
}

async function signOut() {
  try {
    await fetch('/api/v1/session', { method: 'DELETE', headers: SESSION_HEADERS, cache: 'no-store' });
  } catch { /* the cookie is forgotten here either way */ }
  setSignedIn(false);
  announce('Signed out.');
}

// An admin call with the session cookie; a 401 means the session ended.
async function adminJson(method, path, body) {
  const res = await fetch(path, {
    method, headers: SESSION_HEADERS, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) setSignedIn(false);
  if (!res.ok) throw new ApiFailure(res.status, await errorText(res));
  return res.json();
}

// ---- actions -----------------------------------------------------------------------------

const STACK_LABEL = 'stack';
const POSITION_LABEL = 'position';
const FINAL = new Set(['done', 'failed', 'refused', 'accepted', 'timed_out', 'expired']);
const POWER = { reboot: 'Reboot', shutdown: 'Shut down' };
const OUTPUT_LINES = 4;
const OUTPUT_CHARS = 240;

// A bar of buttons and its results for one target, kept across redraws: `kind` is 'node' or
// 'stack'; `place` tells apart the card's bar from the node page's.
function actionBar(kind, value, place = '') {
  const key = `${place}${kind}:${value}`;
  const known = state.actionBars.get(key);
  if (known) return known.el;
  const label = kind === 'stack' ? `stack ${value}` : value;
  const bar = { kind, value, label, results: h('div', { class: 'action-results' }) };
  const button = (action, text) => h('button', {
    type: 'button', 'data-action': action, class: POWER[action] ? 'power' : null, onclick: () => askAction(bar, action),
  }, text);
  const name = h('input', {
    type: 'text', class: 'run-name', 'aria-label': `Action to run on ${label}`, placeholder: 'action',
    maxlength: 64, spellcheck: 'false', autocomplete: 'off',
  });
  const run = h('form', {
    class: 'run',
    onsubmit: (e) => {
      e.preventDefault();
      const action = name.value.trim();
      if (action) askAction(bar, action);
    },
  }, name, h('button', { type: 'submit', 'data-action': 'run' }, 'Run'));
  bar.el = h('div', { class: 'actions', 'data-target': `${kind}:${value}`, hidden: !state.signedIn },
    h('div', { class: 'action-buttons', role: 'group', 'aria-label': `Actions on ${label}` },
      button('ping', 'Ping'), button('reboot', 'Reboot…'), button('shutdown', 'Shut down…'),
      h('button', { type: 'button', 'data-action': 'update', onclick: () => runUpdate(bar) },
        kind === 'stack' ? 'Update agents' : 'Update agent'), run),
    bar.results);
  state.actionBars.set(key, bar);
  return bar.el;
}

function targetNames(bar) {
  if (bar.kind === 'node') return [bar.value];
  return (state.nodes || []).filter((n) => n.labels[STACK_LABEL] === bar.value).sort(byPosition).map((n) => n.name);
}

let confirming = null;

function askAction(bar, action) {
  if (!POWER[action]) {
    runAction(bar, action);
    return;
  }
  confirming = { bar, action };
  const names = targetNames(bar);
  $('action-confirm-title').textContent = `${POWER[action]} ${bar.kind === 'stack'
    ? `the ${names.length} ${names.length === 1 ? 'node' : 'nodes'} of ${bar.label}` : bar.label}?`;
  put($('action-confirm-nodes'), names.map((n) => h('li', {}, n)));
  $('action-confirm-ok').textContent = `${POWER[action]} ${names.join(', ')}`;
  $('action-confirm').showModal();
  $('action-confirm-cancel').focus();
}

function confirmAction() {
  $('action-confirm').close();
  if (confirming) runAction(confirming.bar, confirming.action);
  confirming = null;
}

async function runAction(bar, action) {
  const body = { action, by: 'dashboard' };
  if (bar.kind === 'stack') body.labels = { [STACK_LABEL]: bar.value };
  else body.nodes = [bar.value];
  const box = h('div', { class: 'action-result', 'data-action': action, 'data-state': 'asking' },
    h('p', { class: 'action-head' }, `${action} on ${bar.label}: asking…`));
  bar.results.prepend(box);
  while (bar.results.childElementCount > 3) bar.results.lastElementChild.remove();
  try {
    const created = await adminJson('POST', '/api/v1/actions', body);
    box.dataset.id = created.id;
    box.dataset.state = 'running';
    for (;;) {
      const shown = await adminJson('GET', `/api/v1/actions/${encodeURIComponent(created.id)}`);
      showResults(box, bar, shown);
      if (shown.results.every((r) => FINAL.has(r.state))) break;
      await new Promise((resolve) => { setTimeout(resolve, 500); });
      if (!state.signedIn || !box.isConnected) return;
    }
    box.dataset.state = 'final';
    announce(`${action} on ${bar.label}: ${box.querySelector('.tally').textContent}`);
    if (state.nodeView) state.nodeView.actionsAt = 0;
  } catch (e) {
    box.dataset.state = 'error';
    put(box, h('p', { class: 'error' }, `${action} on ${bar.label}: ${e instanceof ApiFailure ? `refused (${e.status}): ${e.body}` : e.message}`));
  }
}

// "Update agents": a rollout (POST /api/v1/updates) over the bar's node or stack, one node at
// a time, its progress shown in place like an action's results.
async function runUpdate(bar) {
  const body = { by: 'dashboard', max_parallel: 1 };
  if (bar.kind === 'stack') body.labels = { [STACK_LABEL]: bar.value };
  else body.nodes = [bar.value];
  const box = h('div', { class: 'action-result', 'data-action': 'update', 'data-state': 'asking' },
    h('p', { class: 'action-head' }, `update on ${bar.label}: asking…`));
  bar.results.prepend(box);
  while (bar.results.childElementCount > 3) bar.results.lastElementChild.remove();
  try {
    const created = await adminJson('POST', '/api/v1/updates', body);
    box.dataset.id = created.id;
    box.dataset.state = 'running';
    for (;;) {
      const shown = await adminJson('GET', `/api/v1/updates/${encodeURIComponent(created.id)}`);
      const counts = new Map();
      for (const n of shown.nodes) counts.set(n.state, (counts.get(n.state) || 0) + 1);
      put(box,
        h('p', { class: 'action-head' }, h('strong', {}, 'update'), ` on ${bar.label} (${shown.state}) `,
          h('span', { class: 'tally' }, [...counts].map(([k, n]) => `${n} ${k.replace('_', ' ')}`).join(', '))),
        h('table', { class: 'action-table' },
          h('thead', {}, h('tr', {}, ['Node', 'State', 'Detail'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, shown.nodes.map((n) => h('tr', { 'data-node': n.node, 'data-state': n.state },
            h('th', { scope: 'row' }, n.node),
            h('td', { class: `state state-${n.state}` }, n.state.replace('_', ' ')),
            h('td', {}, outputOf({ output: n.message || n.running || '' })))))));
      if (shown.state !== 'running') break;
      await new Promise((resolve) => { setTimeout(resolve, 1000); });
      if (!state.signedIn || !box.isConnected) return;
    }
    box.dataset.state = 'final';
    announce(`update on ${bar.label}: ${box.querySelector('.tally').textContent}`);
  } catch (e) {
    box.dataset.state = 'error';
    put(box, h('p', { class: 'error' }, `update on ${bar.label}: ${e instanceof ApiFailure ? `refused (${e.status}): ${e.body}` : e.message}`));
  }
}

function showResults(box, bar, shown) {
  const counts = new Map();
  for (const r of shown.results) counts.set(r.state, (counts.get(r.state) || 0) + 1);
  put(box,
    h('p', { class: 'action-head' }, h('strong', {}, shown.action), ` on ${bar.label} `,
      h('span', { class: 'tally' }, [...counts].map(([k, n]) => `${n} ${k}`).join(', '))),
    h('table', { class: 'action-table' },
      h('thead', {}, h('tr', {}, ['Node', 'State', 'Exit', 'Output'].map((c, i) => h('th', { scope: 'col', class: i === 2 ? 'num' : null }, c)))),
      h('tbody', {}, shown.results.map((r) => h('tr', { 'data-node': r.node, 'data-state': r.state },
        h('th', { scope: 'row' }, r.node),
        h('td', { class: `state state-${r.state}` }, r.state.replace('_', ' ')),
        h('td', { class: 'num' }, r.exit_code === null || r.exit_code === undefined ? '–' : String(r.exit_code)),
        h('td', {}, outputOf(r)))))));
}

// The first lines of the output (else the node's or primary's message).
function outputOf(r) {
  const text = (r.output || '').trimEnd() || r.message || '';
  if (!text) return '';
  const lines = text.split('\n');
  let shown = lines.slice(0, OUTPUT_LINES).join('\n');
  const more = lines.length > OUTPUT_LINES || r.truncated || shown.length > OUTPUT_CHARS;
  if (shown.length > OUTPUT_CHARS) shown = shown.slice(0, OUTPUT_CHARS);
  return h('pre', { class: 'output', title: text.slice(0, 4000) }, more ? `${shown}…` : shown);
}

// The node page's list of the node's recent actions, read at most every five seconds.
async function refreshNodeActions(v) {
  if (!state.signedIn || v.actionsBusy || Date.now() - v.actionsAt < 5000) return;
  v.actionsBusy = true;
  try {
    const list = await adminJson('GET', `/api/v1/actions?node=${encodeURIComponent(v.name)}`);
    v.actionsAt = Date.now();
    put(v.history, list.length
      ? h('ul', { class: 'action-history', role: 'list' }, list.slice(0, 20).map((a) => {
        const st = a.states[v.name] || '';
        return h('li', { 'data-action': a.action, 'data-state': st },
          h('strong', {}, a.action), ` ${st.replace('_', ' ')} · `, h('time', { datetime: a.created_at || '' }, fmtAgo(a.created_at)));
      }))
      : h('p', { class: 'none' }, 'No action on this node since the primary started.'));
  } catch { /* shown again at the next try */ } finally {
    v.actionsBusy = false;
  }
}

// ---- the stack view ----------------------------------------------------------------------

function positionOf(n) {
  const p = Number.parseFloat(n.labels[POSITION_LABEL]);
  return Number.isFinite(p) ? p : Infinity;
}

function byPosition(a, b) {
  return positionOf(a) - positionOf(b) || naturalCompare(a.name, b.name);
}

// Stacks side by side (label `stack`, natural order, the unstacked last), each board in its
// place (label `position`, then name), coloured by status as a rack's lights would be.
function renderStacks(nodes) {
  const racks = new Map();
  for (const n of nodes) {
    const id = n.labels[STACK_LABEL] ?? null;
    if (!racks.has(id)) racks.set(id, []);
    racks.get(id).push(n);
  }
  const ids = [...racks.keys()].sort((a, b) => (a === null) - (b === null) || naturalCompare(a, b));
  for (const list of racks.values()) list.sort(byPosition);
  const layout = JSON.stringify(ids.map((id) => [id, racks.get(id).map((n) => n.name)]));
  const container = $('racks');
  if (layout !== state.racksLayout) {
    state.racksLayout = layout;
    state.boards = new Map();
    container.replaceChildren(...ids.map((id) => {
      const title = id === null ? 'unstacked' : `stack ${id}`;
      return h('section', { class: 'rack', 'data-stack': id ?? '', 'aria-label': title },
        h('h2', {}, title, h('span', { class: 'tally' })),
        h('ol', { class: 'rack-slots', role: 'list' }, racks.get(id).map((n) => {
          const board = makeBoard(n.name);
          state.boards.set(n.name, board);
          return h('li', {}, board.el);
        })),
        id === null ? null : actionBar('stack', id));
    }));
    if (!nodes.length) container.replaceChildren(h('p', { class: 'none' }, 'No node has registered yet.'));
  }
  for (const n of nodes) {
    const board = state.boards.get(n.name);
    if (board) updateBoard(board, n);
  }
  container.querySelectorAll('section.rack').forEach((section, i) => {
    const list = racks.get(ids[i]) || [];
    const counts = tally(list);
    section.querySelector('.tally').textContent = Object.keys(STATUS).filter((k) => counts[k] > 0)
      .map((k) => `${counts[k]} ${k}`).join(', ');
  });
}

function makeBoard(name) {
  const refs = { badge: h('span'), slot: h('span', { class: 'slot' }), values: h('span', { class: 'board-values' }) };
  const el = h('article', { class: 'board', 'data-node': name },
    h('span', { class: 'led', 'aria-hidden': 'true' }),
    refs.slot,
    h('a', { class: 'board-name', href: `#/nodes/${encodeURIComponent(name)}` }, name),
    refs.values,
    refs.badge);
  return { el, refs };
}

function updateBoard(board, node) {
  const { el, refs } = board;
  el.className = `board status-${node.status}`;
  el.dataset.status = node.status;
  if (refs.badge.dataset.status !== node.status) {
    const b = badge(node.status);
    refs.badge.replaceWith(b);
    refs.badge = b;
  }
  const position = node.labels[POSITION_LABEL];
  refs.slot.textContent = position === undefined ? '·' : position;
  refs.slot.title = position === undefined ? 'no position label' : `position ${position}`;
  const v = latestValues(node);
  refs.values.textContent = `CPU ${fmtValue(v.cpu_percent, '%')} · ${fmtValue(v.temp_celsius, '°C')}`;
}

// ---- deregistering -----------------------------------------------------------------------

let deregistering = null;

function openDeregister(name) {
  deregistering = name;
  $('confirm-node').textContent = name;
  const input = $('admin-token');
  input.value = state.signedIn ? '' : sessionStorage.getItem(TOKEN_KEY) || '';
  $('token-field').hidden = state.signedIn;
  $('confirm-error').hidden = true;
  $('confirm').showModal();
  (input.value ? $('confirm-cancel') : input).focus();
}

function showError(text, body) {
  const box = $('confirm-error');
  put(box, text, body ? h('code', {}, body) : '');
  box.hidden = false;
}

async function confirmDeregister() {
  const name = deregistering;
  const token = $('admin-token').value.trim();
  if (!token && !state.signedIn) {
    showError('Type the admin token first.');
    $('admin-token').focus();
    return;
  }
  if (!state.signedIn) sessionStorage.setItem(TOKEN_KEY, token);
  const ok = $('confirm-ok');
  ok.disabled = true;
  try {
    const res = await fetch(`/api/v1/nodes/${encodeURIComponent(name)}`, {
      method: 'DELETE',
      headers: state.signedIn ? SESSION_HEADERS : { Authorization: `Bearer ${token}` },
    });
    if (res.ok) {
      $('confirm').close();
      announce(`${name} was deregistered.`);
      location.hash = '#/';
      await refresh();
      return;
    }
    const body = await res.text();
    let message = body;
    try { message = JSON.parse(body).error || body; } catch { /* not JSON: show it as it is */ }
    showError(`The primary refused (${res.status}): ${message}`, body);
  } catch (e) {
    showError(`Could not reach the primary: ${e.message}`);
  } finally {
    ok.disabled = false;
  }
}

// ---- start -------------------------------------------------------------------------------

async function start() {
  $('confirm-cancel').addEventListener('click', () => $('confirm').close());
  $('confirm-ok').addEventListener('click', confirmDeregister);
  $('admin-token').addEventListener('keydown', (e) => { if (e.key === 'Enter') confirmDeregister(); });
  $('signin-form').addEventListener('submit', signIn);
  $('signout-button').addEventListener('click', signOut);
  $('action-confirm-cancel').addEventListener('click', () => $('action-confirm').close());
  $('action-confirm-ok').addEventListener('click', confirmAction);
  $('find').addEventListener('submit', (e) => e.preventDefault());
  $('search').addEventListener('input', (e) => setFind({ q: e.target.value }, true));
  $('sort').addEventListener('change', (e) => setFind({ sort: e.target.value }));
  $('status-filter').addEventListener('change', (e) => setFind({ status: e.target.value }));
  $('label-filter').addEventListener('change', (e) => setFind({ label: e.target.value }));
  put($('sort'), Object.entries(SORTS).map(([k, t]) => h('option', { value: k }, t)));
  put($('status-filter'), Object.entries(FILTERS).map(([k, t]) => h('option', { value: k }, t)));
  state.routePath = currentRoute().path;
  window.addEventListener('hashchange', onRouteChange);
  try {
    state.settings = await getJson('/api/v1/dashboard');
  } catch { /* the defaults match the primary's */ }
  $('version').textContent = state.settings.version ? `v${state.settings.version}` : '';
  $('refresh').textContent = String(state.settings.refresh_seconds);
  // Keep "last seen" moving between polls.
  setInterval(() => document.querySelectorAll('time[datetime]').forEach((t) => {
    if (t.getAttribute('datetime')) t.textContent = fmtAgo(t.getAttribute('datetime'));
  }), 1000);
  await checkSession();
  pollAlerts();
  await refresh();
}

start();
