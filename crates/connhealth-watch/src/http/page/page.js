'use strict';
// connhealth watch's status page: one page of rows from api/targets, kept live by the
// Server-Sent Events of events. No framework, no build step; every text goes in through
// textContent, never as HTML.
(function () {
  const SHAPES = { up: '▲', down: '▼', unknown: '●' };
  const REFETCH_AFTER_MS = 400; // transitions coalesce on the server; rows refetch at most this often
  const page = { states: [], q: '', labels: '', sort: 'state', offset: 0, limit: 50 };
  let skew = 0; // browser clock minus the daemon's, in seconds
  let rowsByName = new Map();
  let inflight = null;
  let refetchTimer = null;
  let last = null;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const SVGNS = 'http://www.w3.org/2000/svg';
  const svg = (tag, attrs) => {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  };

  // --- the page's address holds its filters, so that a view can be shared -----------
  function readLocation() {
    const p = new URLSearchParams(location.search);
    page.states = (p.get('state') || '').split(',').filter((s) => s in SHAPES);
    page.q = p.get('q') || '';
    page.labels = p.getAll('label').join(' ');
    page.sort = ['state', 'name', 'config'].includes(p.get('sort')) ? p.get('sort') : 'state';
    page.offset = Math.max(0, parseInt(p.get('offset') || '0', 10) || 0);
    const limit = parseInt(p.get('limit') || '50', 10);
    page.limit = [25, 50, 100, 200].includes(limit) ? limit : 50;
  }

  function query(forApi) {
    const p = new URLSearchParams();
    if (page.states.length) p.set('state', page.states.join(','));
    for (const label of labelList()) p.append('label', label);
    if (page.q.trim()) p.set('q', page.q.trim());
    if (page.sort !== 'state' || forApi) p.set('sort', page.sort);
    if (page.offset || forApi) p.set('offset', String(page.offset));
    if (page.limit !== 50 || forApi) p.set('limit', String(page.limit));
    return p.toString();
  }

  function labelList() {
    return page.labels.split(/[\s,]+/).filter((l) => l.includes('='));
  }

  function syncControls() {
    $('q').value = page.q;
    $('label').value = page.labels;
    $('sort').value = page.sort;
    $('limit').value = String(page.limit);
    for (const button of document.querySelectorAll('.state-filter')) {
      button.setAttribute('aria-pressed', String(page.states.includes(button.dataset.state)));
    }
  }

  // --- fetching ---------------------------------------------------------------------
  // `announce`: a load the reader asked for (a filter, a page) says what it found to
  // screen readers; the loads that follow live events do not, or they would never stop.
  async function load(announce) {
    if (inflight) inflight.abort();
    const controller = new AbortController();
    inflight = controller;
    const search = query(false);
    history.replaceState(null, '', search ? '?' + search : location.pathname);
    try {
      const response = await fetch('api/targets?' + query(true), {
        signal: controller.signal,
        headers: { Accept: 'application/json' },
      });
      if (!response.ok) throw new Error(response.status + ' ' + (await response.text()));
      const data = await response.json();
      if (inflight !== controller) return;
      // Past the last page (targets removed, filters narrowed): go to the last one.
      if (data.targets.length === 0 && data.matched > 0 && page.offset > 0) {
        page.offset = Math.max(0, Math.floor((data.matched - 1) / page.limit) * page.limit);
        inflight = null;
        return load(announce);
      }
      last = data;
      render(data, announce === true);
      // For the first-paint benchmark: when the first rows are in the table.
      if (!performance.getEntriesByName('rows', 'mark').length) performance.mark('rows');
    } catch (err) {
      if (err.name === 'AbortError') return;
      showMessage('Cannot load the targets: ' + err.message);
    } finally {
      if (inflight === controller) inflight = null;
    }
  }

  function scheduleRefetch() {
    if (refetchTimer) return;
    refetchTimer = setTimeout(() => {
      refetchTimer = null;
      // A hidden tab catches up when it is shown again.
      if (document.visibilityState === 'hidden') {
        pendingWhileHidden = true;
        return;
      }
      load();
    }, REFETCH_AFTER_MS);
  }
  let pendingWhileHidden = false;
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && pendingWhileHidden) {
      pendingWhileHidden = false;
      load();
    }
  });

  // --- rendering --------------------------------------------------------------------
  const number = new Intl.NumberFormat();

  function render(data, announce) {
    skew = Date.now() / 1000 - data.now.unix;
    $('total').textContent = number.format(data.total);
    $('total-word').textContent = data.total === 1 ? 'target' : 'targets';
    for (const s of Object.keys(SHAPES)) $('count-' + s).textContent = number.format(data.counts[s]);
    const body = $('rows');
    const rows = document.createDocumentFragment();
    const seen = new Map();
    const labels = new Set();
    for (const target of data.targets) {
      const tr = row(target);
      const before = rowsByName.get(target.name);
      if (before && before.dataset.state !== target.state) tr.classList.add('flash');
      seen.set(target.name, tr);
      rows.appendChild(tr);
      for (const [k, v] of Object.entries(target.labels)) labels.add(k + '=' + v);
    }
    if (data.targets.length === 0) {
      const tr = el('tr', 'placeholder');
      const td = el('td', '', data.total === 0
        ? 'No targets are configured: this daemon serves /probe alone.'
        : 'No target matches these filters.');
      td.colSpan = 8;
      tr.appendChild(td);
      rows.appendChild(tr);
    }
    // A keyboard user's focus in a row (a label) survives the rows being replaced.
    const active = document.activeElement;
    const focused = active && body.contains(active) && active.closest('tr[data-name]')
      ? { name: active.closest('tr[data-name]').dataset.name, key: active.dataset.key }
      : null;
    body.replaceChildren(rows);
    rowsByName = seen;
    if (focused) {
      const tr = seen.get(focused.name);
      const again = tr && [...tr.querySelectorAll('[data-key]')].find((n) => n.dataset.key === focused.key);
      if (again) again.focus();
    }
    const list = $('label-list');
    list.replaceChildren(...[...labels].sort().slice(0, 200).map((l) => { const o = el('option'); o.value = l; return o; }));
    const from = data.matched ? data.offset + 1 : 0;
    const to = data.offset + data.targets.length;
    const filtered = data.matched !== data.total ? ' matching (of ' + number.format(data.total) + ')' : '';
    $('range').textContent = number.format(from) + '–' + number.format(to) + ' of ' + number.format(data.matched) + filtered;
    $('first').disabled = $('prev').disabled = data.offset === 0;
    $('next').disabled = to >= data.matched;
    if (announce) {
      $('announce').textContent = number.format(data.matched) + (data.matched === 1 ? ' target matches' : ' targets match') + '; ' + number.format(data.counts.down) + ' down.';
    }
    document.title = (data.counts.down ? '▼ ' + data.counts.down + ' down · ' : '') + 'connhealth · status';
    tickClock();
  }

  function showMessage(text) {
    const tr = el('tr', 'placeholder');
    const td = el('td', '', text);
    td.colSpan = 8;
    tr.appendChild(td);
    $('rows').replaceChildren(tr);
  }

  function pill(state) {
    const span = el('span', 'pill ' + state);
    span.appendChild(el('span', 'shape', SHAPES[state] || '?')).setAttribute('aria-hidden', 'true');
    span.appendChild(el('span', 'word', state));
    return span;
  }

  function row(t) {
    const tr = el('tr', t.state === 'down' ? 'is-down' : '');
    tr.dataset.name = t.name;
    tr.dataset.state = t.state;

    const state = el('td', 'state-cell');
    state.appendChild(pill(t.state));
    const since = el('span', 'for');
    since.dataset.since = String(t.since.unix);
    since.title = 'since ' + new Date(t.since.unix * 1000).toLocaleString();
    state.appendChild(since);
    if (t.muted) {
      const until = t.muted.until ? ' until ' + clock(t.muted.until.unix) : '';
      const text = (t.muted.kind === 'maintenance' ? 'Maintenance' : 'Silenced') + until;
      const mute = el('span', 'mute', text);
      if (t.muted.reason) mute.title = t.muted.reason;
      state.appendChild(mute);
    }
    tr.appendChild(state);

    const target = el('td', 'target-cell');
    target.appendChild(el('div', 'name', t.name));
    const addr = el('div', 'address', t.address !== t.name ? t.address + ' · ' : '');
    addr.appendChild(el('span', 'kind', t.check));
    target.appendChild(addr);
    const entries = Object.entries(t.labels);
    if (entries.length) {
      const chips = el('div', 'labels');
      for (const [k, v] of entries) {
        const chip = el('button', 'chip');
        chip.type = 'button';
        chip.dataset.key = k + '=' + v;
        chip.title = 'Show only ' + k + '=' + v;
        chip.appendChild(el('span', 'k', k + '='));
        chip.appendChild(document.createTextNode(v));
        chip.addEventListener('click', () => addLabel(k + '=' + v));
        chips.appendChild(chip);
      }
      target.appendChild(chips);
    }
    tr.appendChild(target);

    for (const w of ['1h', '24h', '7d']) {
      const v = t.uptime[w];
      const td = el('td', 'num uptime' + (v === null ? ' none' : v < 0.99 ? ' bad' : ''), v === null ? '—' : percent(v));
      td.title = v === null ? 'no checks in this window yet' : 'uptime over ' + w;
      tr.appendChild(td);
    }

    const rtt = el('td', 'num rtt');
    if (t.rtt_seconds === null) {
      rtt.appendChild(el('span', 'none', '—'));
      rtt.title = t.last_check ? 'the last check failed: ' + t.last_check.result : 'not checked yet';
    } else {
      rtt.textContent = duration(t.rtt_seconds);
    }
    tr.appendChild(rtt);

    const hour = el('td', 'hour');
    hour.appendChild(spark(t.last_hour));
    tr.appendChild(hour);

    const transitions = el('td', 'transitions-cell');
    if (t.transitions.length === 0) {
      transitions.appendChild(el('span', 'none small', 'none yet'));
    } else {
      const ul = el('ul', 'transitions');
      for (const x of t.transitions.slice(0, 3)) {
        const li = el('li');
        const to = el('span', 'to ' + x.to);
        to.textContent = (SHAPES[x.to] || '') + ' ' + x.to;
        li.appendChild(to);
        const time = el('time', '', clock(x.at.unix));
        time.dateTime = x.at.rfc3339;
        time.title = new Date(x.at.unix * 1000).toLocaleString();
        li.appendChild(time);
        const why = el('span', 'why', x.why);
        why.title = x.detail ? x.why + ' — ' + x.detail : x.why;
        li.appendChild(why);
        ul.appendChild(li);
      }
      transitions.appendChild(ul);
    }
    tr.appendChild(transitions);
    return tr;
  }

  // The last hour as 60 bars, one a minute, oldest on the left: a success's bar rises
  // with its round trip; a minute with failures hangs below the line, so that a failure
  // reads by shape as well as by colour.
  function spark(minutes) {
    const W = 150, H = 34, MID = 22, SLOT = W / 60;
    const node = svg('svg', { class: 'spark', viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    const nowMinute = Math.floor((Date.now() / 1000 - skew) / 60);
    let max = 0, checked = 0, failing = 0, sum = 0, n = 0;
    for (const m of minutes) {
      if (m.rtt_avg_seconds !== null) { max = Math.max(max, m.rtt_avg_seconds); sum += m.rtt_avg_seconds; n++; }
    }
    node.appendChild(svg('line', { class: 'base', x1: 0, x2: W, y1: MID + 0.5, y2: MID + 0.5 }));
    for (const m of minutes) {
      const slot = 59 - (nowMinute - Math.floor(m.at.unix / 60));
      if (slot < 0 || slot > 59) continue;
      checked++;
      const x = (slot * SLOT + 0.25).toFixed(2);
      const w = (SLOT - 0.5).toFixed(2);
      if (m.rtt_avg_seconds !== null) {
        const h = Math.max(2, (m.rtt_avg_seconds / (max || 1)) * (MID - 2));
        node.appendChild(svg('rect', { class: 'ok', x, y: (MID - h).toFixed(2), width: w, height: h.toFixed(2) }));
      }
      if (m.failures > 0) {
        failing++;
        const h = 3 + 8 * (m.failures / m.checks);
        node.appendChild(svg('rect', { class: 'fail', x, y: MID + 1, width: w, height: h.toFixed(2) }));
      }
    }
    let label = 'Last hour: ';
    label += checked === 0 ? 'no checks yet' : checked + (checked === 1 ? ' minute' : ' minutes') + ' checked, ' +
      (failing ? failing + ' with failures' : 'no failures') +
      (n ? ', mean round trip ' + duration(sum / n) : '');
    node.setAttribute('aria-label', label);
    const title = svg('title');
    title.textContent = label;
    node.prepend(title);
    const wrap = document.createDocumentFragment();
    wrap.appendChild(node);
    const axis = el('div', 'spark-axis');
    axis.setAttribute('aria-hidden', 'true');
    axis.appendChild(el('span', '', '60 min ago'));
    axis.appendChild(el('span', '', 'now'));
    wrap.appendChild(axis);
    return wrap;
  }

  function percent(v) {
    if (v >= 1) return '100%';
    const p = v * 100;
    return (p >= 99.9 ? p.toFixed(2) : p.toFixed(1)) + '%';
  }

  function duration(seconds) {
    if (seconds < 0.001) return (seconds * 1e6).toFixed(0) + ' µs';
    if (seconds < 1) return (seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1) + ' ms';
    return seconds.toFixed(2) + ' s';
  }

  function clock(unix) {
    const d = new Date(unix * 1000);
    const sameDay = new Date().toDateString() === d.toDateString();
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
    return sameDay ? time : d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + time;
  }

  function ago(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
    const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + s + 's';
    return s + 's';
  }

  function tickClock() {
    const now = Date.now() / 1000 - skew;
    for (const node of document.querySelectorAll('[data-since]')) {
      node.textContent = 'for ' + ago(now - parseFloat(node.dataset.since));
    }
  }
  setInterval(tickClock, 1000);

  // --- live events ------------------------------------------------------------------
  function setLive(mode, text) {
    const live = $('live');
    live.dataset.live = mode;
    live.querySelector('.live-text').textContent = text;
  }

  function connect() {
    if (!window.EventSource) {
      setLive('broken', 'Live updates unavailable in this browser');
      return;
    }
    const source = new EventSource('events');
    let opened = false;
    source.onopen = () => {
      setLive('open', 'Live');
      // Whatever happened while the stream was down is in a fresh page of rows.
      if (opened) scheduleRefetch();
      opened = true;
    };
    source.onerror = () => setLive('broken', 'Reconnecting…');
    source.onmessage = (event) => {
      let changes;
      try { changes = JSON.parse(event.data); } catch (_) { return; }
      for (const change of changes) applyChange(change);
      scheduleRefetch();
    };
    source.addEventListener('refetch', () => scheduleRefetch());
  }

  // A transition of a row on screen shows at once; the refetch that follows brings the
  // counts, the order and the rows that now match.
  function applyChange(change) {
    const tr = rowsByName.get(change.target);
    if (!tr) return;
    tr.dataset.state = change.to;
    tr.className = change.to === 'down' ? 'is-down flash' : 'flash';
    const old = tr.querySelector('.pill');
    if (old) old.replaceWith(pill(change.to));
    const since = tr.querySelector('[data-since]');
    if (since) since.dataset.since = String(change.at.unix);
    tickClock();
  }

  // --- controls ---------------------------------------------------------------------
  function debounce(fn, ms) {
    let timer = null;
    return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  function addLabel(label) {
    const labels = labelList();
    if (!labels.includes(label)) labels.push(label);
    page.labels = labels.join(' ');
    page.offset = 0;
    syncControls();
    load(true);
  }

  function init() {
    readLocation();
    syncControls();
    for (const button of document.querySelectorAll('.state-filter')) {
      button.addEventListener('click', () => {
        const s = button.dataset.state;
        page.states = page.states.includes(s) ? page.states.filter((x) => x !== s) : page.states.concat([s]);
        page.offset = 0;
        syncControls();
        load(true);
      });
    }
    const onSearch = debounce(() => { page.offset = 0; load(true); }, 200);
    $('q').addEventListener('input', () => { page.q = $('q').value; onSearch(); });
    $('label').addEventListener('input', () => { page.labels = $('label').value; onSearch(); });
    for (const id of ['q', 'label']) {
      $(id).addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); page.offset = 0; load(true); } });
    }
    $('sort').addEventListener('change', () => { page.sort = $('sort').value; page.offset = 0; load(true); });
    $('limit').addEventListener('change', () => { page.limit = parseInt($('limit').value, 10); page.offset = 0; load(true); });
    $('clear').addEventListener('click', () => {
      Object.assign(page, { states: [], q: '', labels: '', offset: 0 });
      syncControls();
      load(true);
    });
    $('first').addEventListener('click', () => { page.offset = 0; load(true); });
    $('prev').addEventListener('click', () => { page.offset = Math.max(0, page.offset - page.limit); load(true); });
    $('next').addEventListener('click', () => { if (last && page.offset + page.limit < last.matched) { page.offset += page.limit; load(true); } });
    load();
    connect();
  }

  init();
})();
