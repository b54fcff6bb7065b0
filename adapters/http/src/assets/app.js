// Halyard operator console. Plain JavaScript, no dependencies: it reads
// /api/v1 in JSON and follows /api/v1/events (server-sent events).
'use strict';

const API = '/api/v1';
const state = {
  classes: {},          // class name -> metadata (attributes, operations)
  objects: new Map(),   // name -> object (JSON form)
  tree: [],
  selected: null,
  series: new Map(),    // "name|attr" -> [[t, v], ...]
  alarms: [],
  jobs: new Map(),
  collapsed: new Set(),   // tree nodes the operator folded
  folded: false,          // large trees start folded below the third level
};
const SERIES_POINTS = 90;

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
};

// ---- credentials -------------------------------------------------------
function creds() {
  try { return JSON.parse(sessionStorage.getItem('halyard-creds') || 'null'); } catch { return null; }
}
function authHeader() {
  const c = creds();
  if (!c) return {};
  if (!c.user) return { Authorization: 'Bearer ' + c.secret };
  return { Authorization: 'Basic ' + btoa(c.user + ':' + c.secret) };
}
function showWho() {
  const c = creds();
  $('#login').classList.toggle('hidden', !!c);
  $('#whoami').classList.toggle('hidden', !c);
  $('#whoami-name').textContent = c ? (c.user || 'token') : '';
}

async function api(path, opts = {}) {
  // X-Requested-With: the console signs in with its own form, so a 401
  // must not bring up the browser's Basic dialog.
  const headers = Object.assign({ Accept: 'application/json', 'X-Requested-With': 'halyard-console' }, authHeader(), opts.headers || {});
  const r = await fetch(API + path, Object.assign({}, opts, { headers }));
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { error: { message: text } }; }
  if (!r.ok) {
    const e = new Error((body && body.error && body.error.message) || r.statusText);
    e.status = r.status;
    throw e;
  }
  return body;
}

function toast(msg, error = false) {
  const t = $('#toast');
  t.textContent = msg;
  t.className = 'toast' + (error ? ' error' : '');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add('hidden'), error ? 6000 : 3000);
}

// ---- helpers over metadata ---------------------------------------------
const enc = encodeURIComponent;
const objPath = (name) => name.split('/').map(enc).join('/');
const leaf = (name) => name.split('/').pop();
function attrMeta(cls, yang) {
  const c = state.classes[cls];
  return c ? c.attributes.find((a) => a['yang-name'] === yang) : undefined;
}
function isStatistic(a) { return a.measure === 'counter' || a.measure === 'gauge'; }
function pillFor(attr, value) {
  if (attr === 'availability-state') return el('span', { class: 'pill av-' + value, 'data-attr': attr, text: value });
  if (attr === 'admin-state') return el('span', { class: 'pill ad-' + value, 'data-attr': attr, text: value });
  if (attr === 'oper-state') return el('span', { class: 'pill op-' + value, 'data-attr': attr, text: value });
  if (attr === 'severity') return el('span', { class: 'pill sv-' + value, 'data-attr': attr, text: value });
  if (value === 'true' || value === 'false') return el('span', { class: 'pill flag-' + value, 'data-attr': attr, text: (value === 'false' ? 'no ' : '') + attr });
  return el('span', { class: 'pill', 'data-attr': attr, text: value });
}
const STATE_ORDER = ['availability-state', 'oper-state', 'admin-state'];
function sortedStates(states) {
  return Object.entries(states).sort((a, b) => {
    const ia = STATE_ORDER.indexOf(a[0]), ib = STATE_ORDER.indexOf(b[0]);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
}
function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleTimeString([], { hour12: false });
}

// ---- tree --------------------------------------------------------------
function renderTree() {
  const filter = $('#tree-filter').value.trim().toLowerCase();
  const ul = $('#tree');
  ul.replaceChildren();
  const match = (n) => !filter || n.name.toLowerCase().includes(filter) || n.class.toLowerCase().includes(filter) || n.children.some(match);
  const build = (n) => {
    if (!match(n)) return null;
    const pills = sortedStates(n.states).map(([k, v]) => pillFor(k, v));
    const open = filter || !state.collapsed.has(n.name);
    const caret = el('span', {
      class: 'caret' + (n.children.length ? ' has' : ''),
      text: n.children.length ? (open ? '▾' : '▸') : '',
      title: n.children.length ? `${n.children.length} contained` : undefined,
      onclick: (ev) => {
        if (!n.children.length) return;
        ev.stopPropagation();
        if (state.collapsed.has(n.name)) state.collapsed.delete(n.name); else state.collapsed.add(n.name);
        renderTree();
      },
    });
    const row = el('div', {
      class: 'row' + (state.selected === n.name ? ' selected' : ''),
      'data-name': n.name, 'data-class': n.class, title: n.name,
      onclick: () => select(n.name),
    }, caret, el('span', { class: 'leaf', text: leaf(n.name) }), el('span', { class: 'cls', text: n.class }), el('span', { class: 'pills' }, pills));
    const kids = open ? n.children.map(build).filter(Boolean) : [];
    return el('li', {}, row, kids.length ? el('ul', {}, kids) : null);
  };
  if (!state.folded && state.tree.length) {
    let count = 0;
    const walk = (n, depth) => { count++; n.children.forEach((c) => walk(c, depth + 1)); };
    state.tree.forEach((r) => walk(r, 1));
    if (count > 300) {
      const fold = (n, depth) => { if (depth >= 3 && n.children.length) state.collapsed.add(n.name); n.children.forEach((c) => fold(c, depth + 1)); };
      state.tree.forEach((r) => fold(r, 1));
    }
    state.folded = true;
  }
  for (const r of state.tree) { const li = build(r); if (li) ul.append(li); }
  const root = state.tree[0];
  $('#element').textContent = root ? root.name : '';
}

async function loadTree() {
  const t = await api('/tree');
  state.tree = t.tree;
  renderTree();
}

// ---- detail ------------------------------------------------------------
async function select(name) {
  state.selected = name;
  const parts = name.split('/');
  for (let i = 1; i < parts.length; i++) state.collapsed.delete(parts.slice(0, i).join('/'));
  location.hash = '#' + name;
  renderTree();
  await loadDetail();
}

function sample(o) {
  const now = Date.now();
  for (const [k, v] of Object.entries(o.attributes)) {
    const a = attrMeta(o.class, k);
    if (!a || !isStatistic(a)) continue;
    const key = o.attributes.name + '|' + k;
    const s = state.series.get(key) || [];
    s.push([now, Number(v)]);
    while (s.length > SERIES_POINTS) s.shift();
    state.series.set(key, s);
  }
}

function chart(name, a, unit) {
  const s = state.series.get(name + '|' + a['yang-name']) || [];
  const W = 200, H = 50;
  const svgNS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgNS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  if (s.length) {
    const t0 = s[0][0], t1 = Math.max(s[s.length - 1][0], t0 + 1);
    let lo = Math.min(...s.map((p) => p[1])), hi = Math.max(...s.map((p) => p[1]));
    if (hi === lo) { hi += 1; lo -= 1; }
    const pts = s.map(([t, v]) => [((t - t0) / (t1 - t0)) * W, H - 3 - ((v - lo) / (hi - lo)) * (H - 6)]);
    if (pts.length === 1) pts.push([W, pts[0][1]]);
    const line = document.createElementNS(svgNS, 'polyline');
    line.setAttribute('points', pts.map((p) => p.map((x) => x.toFixed(1)).join(',')).join(' '));
    const area = document.createElementNS(svgNS, 'path');
    area.setAttribute('class', 'area');
    area.setAttribute('d', `M${pts[0][0]},${H} ` + pts.map((p) => `L${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(' ') + ` L${pts[pts.length - 1][0]},${H} Z`);
    svg.append(area, line);
  }
  const last = s.length ? s[s.length - 1][1] : '';
  return el('div', { class: 'chart', 'data-attr': a['yang-name'] },
    el('div', { class: 'ch-head' }, el('span', { text: a['yang-name'] + (a.measure === 'counter' ? ' (counter)' : '') }),
      el('span', { class: 'ch-val', text: `${last}${unit ? ' ' + unit : ''}` })), svg);
}

async function loadDetail() {
  const name = state.selected;
  const box = $('#detail');
  if (!name) return;
  let o;
  try { o = await api('/objects/' + objPath(name)); } catch (e) {
    box.replaceChildren(el('p', { class: 'muted', text: `${name}: ${e.message}` }));
    return;
  }
  if (state.selected !== name) return;
  state.objects.set(name, o);
  sample(o);
  const meta = state.classes[o.class] || { attributes: [], operations: [] };
  const states = meta.attributes.filter((a) => a.metric && (a.type === 'enumeration' || a.type === 'boolean') && o.attributes[a['yang-name']] !== undefined);
  const stats = meta.attributes.filter(isStatistic);
  const rows = meta.attributes.filter((a) => !isStatistic(a)).map((a) => {
    const v = o.attributes[a['yang-name']];
    const isRef = a.reference && typeof v === 'string' && v.includes('=');
    return el('tr', { class: a.writable ? 'writable' : '', title: a.description },
      el('td', { text: a['yang-name'] }),
      el('td', { class: typeof v === 'number' ? 'num' : '' }, isRef ? el('a', { class: 'link', text: v, onclick: () => select(v) }) : (v === undefined ? el('span', { class: 'muted', text: '—' }) : String(v) + (a.units ? ' ' + a.units : ''))));
  });
  const ops = meta.operations.filter((m) => may(o.class, m.name)).map((m) => el('button', {
    'data-op': m.name, title: m.description,
    class: /Lock|Fault|Restart|Reset/.test(m.name) && m.name !== 'Unlock' ? 'danger' : '',
    onclick: () => confirmOp(name, m),
  }, m.name.replace(/([a-z])([A-Z])/g, '$1 $2')));
  box.replaceChildren(...[
    el('div', { class: 'title' }, el('h3', { id: 'detail-name', text: name }), el('span', { class: 'muted', text: `${o.class} · index ${o.index}` })),
    el('div', { class: 'states', id: 'detail-states' }, states.map((a) => pillFor(a['yang-name'], String(o.attributes[a['yang-name']])))),
    ops.length ? el('div', { class: 'ops', id: 'ops' }, ops) : null,
    stats.length ? el('div', { class: 'charts', id: 'charts' }, stats.map((a) => chart(name, a, a.units))) : null,
    el('table', { class: 'grid attrs' }, el('tbody', {}, rows)),
  // replaceChildren would show a left-out part as the text "null".
  ].filter(Boolean));
}

// ---- operations and jobs -----------------------------------------------
function confirmOp(target, m) {
  const modal = $('#modal');
  $('#modal-title').textContent = `${m.name} ${leaf(target)}?`;
  $('#modal-text').textContent = `${m.description} Target: ${target}.`;
  const params = $('#modal-params');
  params.replaceChildren(...m.parameters.map((p) => el('div', {},
    el('label', { for: 'param-' + p['yang-name'], text: `${p['yang-name']} — ${p.description}` }),
    el('input', { id: 'param-' + p['yang-name'], name: p['yang-name'] }))));
  modal.classList.remove('hidden');
  const ok = $('#confirm-ok');
  ok.focus();
  const form = $('#modal-form');
  const close = () => { modal.classList.add('hidden'); form.onsubmit = null; };
  $('#confirm-cancel').onclick = close;
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const args = {};
    for (const i of params.querySelectorAll('input')) if (i.value !== '') args[i.name] = i.value;
    close();
    await runOp(target, m.name, args);
  };
}

async function runOp(target, op, args) {
  try {
    const j = await api(`/objects/${objPath(target)}/operations/${enc(op)}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(args || {}),
    });
    trackJob(j);
  } catch (e) {
    toast(`${op} on ${target}: ${e.message}${e.status === 401 ? ' — sign in first' : ''}`, true);
  }
}

function renderJob(j) {
  let row = document.querySelector(`.job[data-job="${CSS.escape(j.job)}"]`);
  if (!row) {
    row = el('div', { class: 'job', 'data-job': j.job }, el('span', { class: 'what' }), el('div', { class: 'bar' }, el('span')), el('span', { class: 'state' }));
    $('#jobs').prepend(row);
    while ($('#jobs').children.length > 8) $('#jobs').lastChild.remove();
  }
  row.className = 'job ' + j.state;
  row.querySelector('.what').textContent = `${j.operation} ${j.target} — ${j.detail}`;
  const pct = j['steps-total'] ? Math.round((100 * j['steps-done']) / j['steps-total']) : (j.finished ? 100 : 5);
  row.querySelector('.bar span').style.width = pct + '%';
  row.querySelector('.state').textContent = j.state;
}

async function trackJob(j) {
  renderJob(j);
  while (!j.finished) {
    // A long poll: the server answers when the job moves on.
    try { j = await api('/jobs/' + objPath(j.job) + '?wait=15000'); } catch (e) { toast(`job ${j.job}: ${e.message}`, true); return; }
    renderJob(j);
  }
  toast(`${j.operation} ${j.target}: ${j.state}`);
  refreshSoon();
}

// ---- alarms ------------------------------------------------------------
async function loadAlarms() {
  const [list, sum] = await Promise.all([api('/alarms'), api('/alarms/summary')]);
  const before = new Set(state.alarms.map((a) => a.attributes.name));
  state.alarms = list.objects;
  const showAcked = $('#show-acked').checked;
  const rank = { critical: 0, major: 1, minor: 2, warning: 3, indeterminate: 4, cleared: 5 };
  const rows = state.alarms
    .filter((a) => showAcked || !(a.attributes.acknowledged || a.attributes.shelf))
    .sort((a, b) => (!!a.attributes.shelf - !!b.attributes.shelf) || (rank[a.attributes.severity] - rank[b.attributes.severity]) || String(b.attributes['raised-at'] || '').localeCompare(String(a.attributes['raised-at'] || '')))
    .map((a) => {
      const x = a.attributes;
      // A shelved alarm (ietf-alarms shelving) is shown muted, last, with its shelf.
      const shelf = x.shelf ? String(x.shelf).split('=').pop() : '';
      const acked = !!x.acknowledged || !!shelf;
      return el('tr', { 'data-alarm': x.name, class: (acked ? 'acked' : '') + (before.size && !before.has(x.name) ? ' fresh' : '') },
        el('td', { class: 'sev' }, el('span', { class: 'sev ' + x.severity, text: x.severity })),
        el('td', {}, el('a', { class: 'link', text: x.resource || '', onclick: () => x.resource && select(x.resource) })),
        el('td', { title: x['additional-text'] || '', text: [x['probable-cause'], x['specific-problem']].filter(Boolean).join(': ') }),
        el('td', { class: 'num', text: fmtTime(x['raised-at']) }),
        el('td', { class: 'alarm-actions' },
          shelf ? el('span', { class: 'muted small shelved', text: 'shelved: ' + shelf })
            : acked ? el('span', { class: 'muted small ack-by', text: '✓ ' + (x['acknowledged-by'] || '') })
            : may('Alarm', 'Acknowledge') ? el('button', { class: 'ack', onclick: () => ack(x.name) }, 'Ack') : null,
          x['operator-state'] && x['operator-state'] !== 'none' && x['operator-state'] !== 'ack'
            ? el('span', { class: 'muted small op-state', text: x['operator-state'] }) : null,
          may('Alarm', 'SetOperatorState') ? el('button', { class: 'more', title: 'Operator state and shelving', onclick: () => alarmActions(x) }, '⋯') : null));
    });
  $('#alarms tbody').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No alarms.' }))]));
  $('#summary').replaceChildren(...sum.severities.map((s) => el('span', {
    class: 'chip ' + s.severity + (s.active ? ' on' : ''), 'data-severity': s.severity,
    title: `${s.active} active, ${s.unacknowledged} unacknowledged`,
  }, `${s.severity} ${s.active}` + (s.unacknowledged ? ` (${s.unacknowledged})` : ''))));
}

async function ack(name) {
  try {
    const j = await api(`/alarms/${objPath(name)}/acknowledge`, { method: 'POST' });
    trackJob(j);
  } catch (e) {
    toast(`acknowledge ${name}: ${e.message}${e.status === 401 ? ' — sign in first' : ''}`, true);
  }
}

// A small form in the modal: `fields` are [name, label, options|null];
// `onOk` gets the values by name.
function dialog(title, text, fields, onOk, okText = 'Confirm') {
  const modal = $('#modal');
  $('#modal-title').textContent = title;
  $('#modal-text').textContent = text;
  $('#modal-params').replaceChildren(...fields.map(([name, label, options]) => el('div', {},
    el('label', { for: 'param-' + name, text: label }),
    options ? el('select', { id: 'param-' + name, name }, options.map((o) => el('option', { value: o, text: o })))
      : el('input', { id: 'param-' + name, name }))));
  $('#confirm-ok').textContent = okText;
  modal.classList.remove('hidden');
  const form = $('#modal-form');
  const close = () => { modal.classList.add('hidden'); form.onsubmit = null; $('#confirm-ok').textContent = 'Confirm'; };
  $('#confirm-cancel').onclick = close;
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const v = {};
    for (const i of $('#modal-params').querySelectorAll('input, select')) v[i.name] = i.value;
    close();
    await onOk(v);
  };
}

// ietf-alarms operator state and shelving, from the alarm panel: the
// alarm's SetOperatorState operation, and an AlarmShelf object for the
// alarm's resource and type (deleted to take the alarm off the shelf).
function alarmActions(x) {
  if (x.shelf) {
    dialog(`Take ${leaf(x.resource || x.name)} off the shelf?`,
      `Deletes the shelf ${x.shelf}: the alarms it holds are listed and announced again.`, [],
      async () => {
        try {
          await api('/objects/' + objPath(x.shelf), { method: 'DELETE' });
          toast(`shelf ${leaf(x.shelf)} deleted`);
          refreshSoon();
        } catch (e) { toast(`unshelve: ${e.message}${e.status === 401 ? ' — sign in first' : ''}`, true); }
      }, 'Unshelve');
    return;
  }
  dialog(`Alarm on ${leaf(x.resource || x.name)}`,
    `${x['probable-cause'] || ''}: set the operator state (with a note), or shelve every ${x['probable-cause'] || ''} alarm of this resource.`,
    [['state', 'operator state', ['ack', 'closed', 'none', 'shelve on a new shelf']], ['text', 'note (why)', null]],
    async (v) => {
      if (v.state !== 'shelve on a new shelf') {
        await runOp(x.name, 'SetOperatorState', { state: v.state, text: v.text });
        return;
      }
      const root = (x.resource || x.name).split('/')[0];
      const shelf = `${root}/alarmshelf=${x['probable-cause'] || 'any'}-${Date.now().toString(36)}`;
      try {
        await api('/objects/' + objPath(shelf), {
          method: 'PUT', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ class: 'AlarmShelf', resource: x.resource || '', 'alarm-type': x['probable-cause'] || '', reason: v.text }),
        });
        toast(`shelved on ${leaf(shelf)}`);
        refreshSoon();
      } catch (e) { toast(`shelve: ${e.message}${e.status === 401 ? ' — sign in first' : ''}`, true); }
    });
}

// ---- hardware ----------------------------------------------------------
// The physical view (/api/v1/hardware): each entity with its states and
// its sensors' readings.
async function loadHardware() {
  const hw = await api('/hardware');
  const rows = hw.components || [];
  const readings = new Map();
  for (const c of rows.filter((c) => c.sensor)) {
    const r = readings.get(c.parent) || [];
    r.push(el('span', { class: 'reading' + (c.sensor['oper-status'] === 'ok' ? '' : ' off'), title: c.description, text: `${c.sensor.value} ${c.sensor.units}` }));
    readings.set(c.parent, r);
  }
  const out = rows.filter((c) => !c.sensor).map((c) => el('tr', { 'data-component': c.name, title: [c['model-name'], c['serial-num'] && 'serial ' + c['serial-num'], c['hardware-rev'] && 'rev ' + c['hardware-rev']].filter(Boolean).join(' · ') },
    el('td', {}, el('a', { class: 'link', text: c.alias ? `${leaf(c.name)} (${c.alias})` : leaf(c.name), onclick: () => select(c.name) })),
    el('td', { class: 'small', text: c.class }),
    el('td', {}, pillFor('oper-state', c['oper-state']), (c['alarm-state'] || []).map((a) => el('span', { class: 'pill sv-' + a, text: a }))),
    el('td', { class: 'small' }, readings.get(c.name) || [])));
  $('#hardware tbody').replaceChildren(...(out.length ? out : [el('tr', {}, el('td', { colspan: 4, class: 'muted', text: 'No physical components.' }))]));
}

// ---- service groups ----------------------------------------------------
async function loadGroups() {
  const [sgs, sis, asgs] = await Promise.all([
    api('/classes/ServiceGroup'), api('/classes/ServiceInstance'), api('/classes/Assignment'),
  ]);
  const comp = (n) => state.flat && state.flat.get(n);
  const out = sgs.objects.map((g) => {
    const gn = g.attributes.name;
    const myS = sis.objects.filter((s) => s.attributes.parent === gn);
    return el('div', { class: 'group', 'data-group': gn },
      el('div', { class: 'g-head' }, el('a', { class: 'link', text: leaf(gn), onclick: () => select(gn) }),
        el('span', { class: 'muted small', text: `${g.attributes['redundancy-model'] || ''} · ${g.attributes['admin-state'] || ''}` })),
      myS.map((s) => el('div', { class: 'si' },
        el('a', { class: 'link', text: leaf(s.attributes.name), onclick: () => select(s.attributes.name) }),
        s.attributes.assigned ? null : el('span', { class: 'pill op-disabled', text: 'unassigned' }),
        asgs.objects.filter((a) => a.attributes.parent === s.attributes.name).map((a) => {
          const c = comp(a.attributes.component);
          const av = c && c.states['availability-state'];
          return el('div', { class: 'asg', 'data-assignment': a.attributes.name },
            el('span', { class: 'pill role-' + a.attributes.role, text: a.attributes.role }),
            el('a', { class: 'link', text: leaf(a.attributes.component || ''), onclick: () => select(a.attributes.component) }),
            av ? pillFor('availability-state', av) : null,
            c && c.states['admin-state'] ? pillFor('admin-state', c.states['admin-state']) : null);
        }))));
  });
  $('#groups').replaceChildren(...(out.length ? out : [el('p', { class: 'muted', text: 'No service groups.' })]));
}

// ---- refresh and live events -------------------------------------------
function flatten() {
  const m = new Map();
  const walk = (n) => { m.set(n.name, n); n.children.forEach(walk); };
  state.tree.forEach(walk);
  state.flat = m;
}

async function refresh() {
  try {
    await loadTree();
    flatten();
    await Promise.all([loadAlarms(), loadGroups(), loadHardware(), loadDetail()]);
  } catch (e) {
    toast(e.status === 401 ? 'Sign in to see the element (' + e.message + ')' : 'refresh: ' + e.message, true);
  }
}
// Coalesces bursts of events: at most one refresh per second, the first
// one 120 ms after a quiet period.
function refreshSoon() {
  if (refreshSoon.t) { refreshSoon.again = true; return; }
  const since = Date.now() - (refreshSoon.last || 0);
  refreshSoon.t = setTimeout(async () => {
    refreshSoon.last = Date.now();
    refreshSoon.again = false;
    await refresh();
    refreshSoon.t = null;
    // Something changed while the refresh ran: one more.
    if (refreshSoon.again) refreshSoon();
  }, Math.max(120, 1000 - since));
}

function logEvent(kind, d) {
  const ol = $('#events');
  const v = d.values || {};
  const what = v.alarm || v.component || v['service-instance'] || v.node || d.source || '';
  const extra = v.severity
    || [v['admin-state'], v['oper-state'], v['availability-state']].filter(Boolean).join(' / ')
    || v.state || v['to-component'] || '';
  ol.prepend(el('li', { 'data-event': kind }, el('span', { class: 't', text: fmtTime(d.time) }), el('span', { class: 'k', text: kind }), el('span', { text: `${leaf(what)} ${extra}` })));
  while (ol.children.length > 60) ol.lastChild.remove();
}

function onEvent(kind, data) {
  const live = $('#live');
  if (kind === 'hello') {
    live.className = 'live on';
    $('#live-text').textContent = 'live';
    refreshSoon();
    return;
  }
  if (kind === 'missed') { refreshSoon(); return; }
  let d = {};
  try { d = JSON.parse(data); } catch { /* not JSON: still a change */ }
  logEvent(kind, d);
  refreshSoon();
}

// Server-sent events over fetch rather than EventSource, so the stream
// carries the same Authorization header as every other request (basic or
// bearer); reconnects with Last-Event-ID, and the server replays the gap.
async function connect() {
  if (connect.ctrl) connect.ctrl.abort();
  const ctrl = new AbortController();
  connect.ctrl = ctrl;
  const live = $('#live');
  let lastId = null;
  while (!ctrl.signal.aborted) {
    try {
      const headers = Object.assign({ Accept: 'text/event-stream', 'X-Requested-With': 'halyard-console' }, authHeader());
      if (lastId !== null) headers['Last-Event-ID'] = lastId;
      const r = await fetch(API + '/events', { headers, signal: ctrl.signal, cache: 'no-store' });
      if (!r.ok) throw new Error('events: ' + r.status);
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let kind = 'message', id = null;
          const data = [];
          for (const line of block.split('\n')) {
            if (line === '' || line.startsWith(':')) continue;
            const c = line.indexOf(':');
            const field = c < 0 ? line : line.slice(0, c);
            let v = c < 0 ? '' : line.slice(c + 1);
            if (v.startsWith(' ')) v = v.slice(1);
            if (field === 'event') kind = v;
            else if (field === 'data') data.push(v);
            else if (field === 'id') id = v;
          }
          if (id !== null) lastId = id;
          if (data.length) onEvent(kind, data.join('\n'));
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    live.className = 'live off';
    $('#live-text').textContent = 'reconnecting';
    await new Promise((res) => setTimeout(res, 2000));
  }
}

// ---- rights ------------------------------------------------------------
// What the signed-in user may do (the access rules, as the server says):
// the console shows only those controls. Nobody signed in may do nothing.
state.rights = {};
async function loadRights() {
  try {
    state.rights = creds() ? (await api('/access')).classes || {} : {};
  } catch {
    state.rights = {};
  }
}
function may(cls, op) {
  const r = state.rights[cls];
  return !!(r && r.operations.includes(op));
}

// ---- start -------------------------------------------------------------
async function start() {
  showWho();
  $('#login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const user = $('#login-user').value.trim();
    const secret = $('#login-pass').value;
    if (!secret) return;
    sessionStorage.setItem('halyard-creds', JSON.stringify({ user, secret }));
    $('#login-pass').value = '';
    showWho();
    connect();
    start.meta().then(async () => {
      await loadRights();
      await refresh();
      if (!state.selected && state.tree[0]) await select(state.tree[0].name);
    });
  });
  $('#logout').addEventListener('click', () => { sessionStorage.removeItem('halyard-creds'); state.rights = {}; showWho(); connect(); });
  $('#tree-filter').addEventListener('input', renderTree);
  $('#show-acked').addEventListener('change', () => loadAlarms().catch(() => {}));
  await start.meta();
  await loadRights();
  const fromHash = decodeURIComponent(location.hash.slice(1));
  if (fromHash) state.selected = fromHash;
  await refresh();
  if (!state.selected && state.tree[0]) await select(state.tree[0].name);
  connect();
  // Statistics are sampled for the chart even when nothing is published.
  setInterval(() => { if (state.selected && !document.hidden) loadDetail().catch(() => {}); }, 2000);
}

/// The class metadata; again after signing in when reads need credentials.
start.meta = async () => {
  if (Object.keys(state.classes).length) return;
  try {
    const meta = await api('/classes');
    for (const c of meta.classes) state.classes[c.name] = c;
  } catch (e) {
    toast('cannot read the schema: ' + e.message + (e.status === 401 ? ' — sign in' : ''), true);
  }
};

document.addEventListener('DOMContentLoaded', start);
