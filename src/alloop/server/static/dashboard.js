// The campaign dashboard: sign in (admin token or project key -> signed cookie), then charts drawn as inline SVG.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const COLORS = ['#2459d6', '#e07a10', '#13875b', '#b42318', '#7a3fc8', '#0e7490'];

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function s(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function num(v, d) { return v === null || v === undefined ? '–' : Number(v).toFixed(d === undefined ? 2 : d); }

  function frame(title, xs, ys, xlabel, ylabel) {
    const W = 440, H = 240, L = 48, R = 12, T = 26, B = 36;
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title, class: 'chart-svg' });
    svg.append(s('text', { x: L, y: 16, 'font-weight': 600 }, title));
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(0, ...ys), y1 = Math.max(...ys) || 1;
    const sx = (x) => L + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => H - B - ((y - y0) / (y1 - y0 || 1)) * (H - T - B);
    svg.append(s('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999' }));
    svg.append(s('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#999' }));
    for (let i = 0; i <= 4; i++) {
      const y = y0 + (i / 4) * (y1 - y0);
      svg.append(s('text', { x: L - 6, y: sy(y) + 4, 'text-anchor': 'end' }, Math.abs(y1) < 10 ? y.toFixed(2) : Math.round(y)));
      svg.append(s('line', { x1: L, y1: sy(y), x2: W - R, y2: sy(y), stroke: '#eee' }));
    }
    svg.append(s('text', { x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle' }, xlabel));
    svg.append(s('text', { x: 12, y: (T + H - B) / 2, transform: `rotate(-90 12 ${(T + H - B) / 2})`, 'text-anchor': 'middle' }, ylabel));
    svg.append(s('text', { x: L, y: H - B + 14 }, x0));
    svg.append(s('text', { x: W - R, y: H - B + 14, 'text-anchor': 'end' }, x1));
    return { svg, sx, sy };
  }

  function lineChart(title, series, xlabel, ylabel) {
    const xs = series.flatMap((q) => q.points.map((p) => p[0]));
    const ys = series.flatMap((q) => q.points.map((p) => p[1]));
    if (!xs.length) return el('p', { class: 'muted' }, title + ': no data yet.');
    const { svg, sx, sy } = frame(title, xs, ys, xlabel, ylabel);
    series.forEach((q, i) => {
      const c = COLORS[i % COLORS.length];
      const d = q.points.map((p, j) => (j ? 'L' : 'M') + sx(p[0]).toFixed(1) + ' ' + sy(p[1]).toFixed(1)).join(' ');
      svg.append(s('path', { d, fill: 'none', stroke: c, 'stroke-width': 2, 'stroke-dasharray': q.dashed ? '5 4' : '', class: 'series' }));
      for (const p of q.points) svg.append(s('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: c, class: 'point point-' + i }));
      svg.append(s('text', { x: 440 - 12 - 120 * i, y: 16, 'text-anchor': 'end', fill: c }, (q.dashed ? '- - ' : '— ') + q.name));
    });
    return svg;
  }

  function barChart(title, bars, ylabel) {
    if (!bars.length) return el('p', { class: 'muted' }, title + ': no data yet.');
    const W = 440, H = 240, L = 48, B = 36, T = 26;
    const max = Math.max(1, ...bars.map((b) => b.value));
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title });
    svg.append(s('text', { x: L, y: 16, 'font-weight': 600 }, title));
    const w = (W - L - 12) / bars.length;
    bars.forEach((b, i) => {
      const h = (b.value / max) * (H - T - B);
      svg.append(s('rect', { x: L + i * w + 3, y: H - B - h, width: Math.max(w - 6, 2), height: h, fill: COLORS[0], class: 'bar' }));
      svg.append(s('text', { x: L + i * w + w / 2, y: H - B + 14, 'text-anchor': 'middle' }, b.name));
      svg.append(s('text', { x: L + i * w + w / 2, y: H - B - h - 3, 'text-anchor': 'middle' }, b.value));
    });
    svg.append(s('text', { x: 12, y: (T + H - B) / 2, transform: `rotate(-90 12 ${(T + H - B) / 2})`, 'text-anchor': 'middle' }, ylabel));
    return svg;
  }

  function table(cols, rows, kind) {
    const t = el('table', { class: kind ? 'grid ' + kind : 'grid' });
    const hr = el('tr');
    for (const c of cols) hr.append(el('th', {}, c));
    t.append(hr);
    for (const r of rows) {
      const tr = el('tr');
      for (const v of r) tr.append(el('td', {}, v === null || v === undefined ? '–' : String(v)));
      t.append(tr);
    }
    return t;
  }

  function curveSeries(metrics) {
    const names = new Set();
    for (const m of metrics) for (const k of Object.keys(m)) if (k !== 'loop' && k !== 'n_labels') names.add(k);
    return [...names].map((name) => ({
      name,
      dashed: /random|baseline/.test(name),
      points: metrics.filter((m) => m[name] !== undefined).map((m) => [m.n_labels !== undefined ? m.n_labels : m.loop, m[name]]),
    }));
  }

  const SOURCE_COLORS = { human: '#2459d6', auto: '#13875b', weak: '#7a3fc8', oracle: '#e07a10' };

  // labels per loop, one stacked bar per loop, one colour per source (human, auto, weak, oracle, …)
  function sourcesChart(rows) {
    const box = el('div', { class: 'chart sources' });
    const title = 'Labels per loop by source';
    if (!rows.length) { box.append(el('p', { class: 'muted' }, title + ': no labels yet.')); return box; }
    const sources = [...new Set(rows.flatMap((r) => Object.keys(r.sources)))].sort();
    const W = 440, H = 240, L = 48, B = 36, T = 40;
    const max = Math.max(1, ...rows.map((r) => Object.values(r.sources).reduce((a, b) => a + b, 0)));
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title });
    svg.append(s('text', { x: L, y: 16, 'font-weight': 600 }, title));
    sources.forEach((src, i) => {
      const c = SOURCE_COLORS[src] || COLORS[(i + 3) % COLORS.length];
      svg.append(s('rect', { x: L + i * 90, y: 24, width: 10, height: 10, fill: c }));
      svg.append(s('text', { x: L + 14 + i * 90, y: 33 }, src));
    });
    const w = (W - L - 12) / rows.length;
    rows.forEach((r, i) => {
      let y = H - B;
      sources.forEach((src, j) => {
        const n = r.sources[src] || 0;
        if (!n) return;
        const h = (n / max) * (H - T - B);
        y -= h;
        const rect = s('rect', { x: L + i * w + 3, y, width: Math.max(w - 6, 2), height: h, fill: SOURCE_COLORS[src] || COLORS[(j + 3) % COLORS.length], class: 'bar source-' + src });
        rect.append(s('title', {}, 'loop ' + r.loop + ': ' + n + ' ' + src));
        svg.append(rect);
      });
      svg.append(s('text', { x: L + i * w + w / 2, y: H - B + 14, 'text-anchor': 'middle' }, r.loop));
    });
    svg.append(s('text', { x: (L + W - 12) / 2, y: H - 6, 'text-anchor': 'middle' }, 'loop'));
    box.append(svg);
    return box;
  }

  // the class chart is drawn by the server (SVG text with every label escaped); parse it as SVG, never as HTML
  function svgFromServer(text) {
    const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    const root = doc.documentElement;
    if (root.nodeName !== 'svg') return el('p', { class: 'error' }, 'The class chart could not be drawn.');
    return document.importNode(root, true);
  }

  function computeSection(c) {
    const out = [el('h3', {}, 'Compute used' + (c.saved ? ' and saved' : ''))];
    if (!c.loops.length) { out.push(el('p', { class: 'muted' }, 'No compute recorded yet.')); return out; }
    const cols = ['loop', 'train CPU s', 'infer CPU s', 'select CPU s', 'records trained', 'records inferred', 'from scratch CPU s'];
    const row = (name, r, scratch) => [name, num(r.train_cpu_s, 3), num(r.infer_cpu_s, 3), num(r.select_cpu_s, 3), r.records_trained, r.records_inferred, num(scratch, 3)];
    const rows = c.loops.map((r) => row(r.loop, r, r.from_scratch_cpu_s));
    rows.push(row('total', c.total, c.saved ? c.saved.baseline_total.cpu_s : null));
    const t = table(cols, rows, 'compute');
    out.push(t);
    if (c.saved) {
      const b = c.saved.baseline_total;
      const x = (v) => (v === null || v === undefined ? '–' : Number(v).toFixed(2) + '×');
      out.push(el('p', { class: 'saved' },
        'From scratch' + (c.saved.estimated ? ' (estimated)' : '') + ': ' + num(b.cpu_s, 3) + ' CPU s, '
        + b.records_trained + ' records trained, ' + b.records_inferred + ' inferred. Saved: CPU ' + x(c.saved.cpu_x)
        + ', training ' + x(c.saved.train_cpu_x) + ', inference ' + x(c.saved.infer_cpu_x) + ' less.'));
    }
    return out;
  }

  function project(p) {
    const card = el('section', { class: 'card project', 'data-project': p.id });
    card.append(el('h2', {}, p.name + ' '), el('p', { class: 'muted' }, p.id + ' · strategy ' + p.strategy + ' · classes ' + p.classes.join(', ')));
    const kpis = el('div', { class: 'kpis' });
    for (const [k, v] of Object.entries(p.counts || {})) kpis.append(el('div', {}, k + ': ' + v));
    kpis.append(el('div', {}, 'loops: ' + p.loops));
    const secs = p.history.reduce((a, h) => a + h.seconds, 0);
    kpis.append(el('div', {}, 'selection compute: ' + secs.toFixed(3) + ' s'));
    const lab = p.labeling;
    if (lab) {
      kpis.append(el('div', {}, 'open tasks: ' + lab.tasks.open), el('div', {}, 'done tasks: ' + lab.tasks.done),
        el('div', {}, 'judgements last hour: ' + lab.judgements_last_hour));
    }
    card.append(kpis);
    const charts = el('div', { class: 'charts' });
    const camp = p.campaign && !p.campaign.error ? p.campaign : null;
    const curve = el('div', { class: 'chart learning-curve' });
    if (camp) {
      const series = [{ name: p.strategy || 'campaign', points: camp.curve }];
      if (camp.baseline.length) series.push({ name: 'random', dashed: true, points: camp.baseline });
      curve.append(lineChart('Learning curve', series, 'labels', camp.metric || 'metric'));
    } else {
      const metrics = lab ? lab.metrics : [];
      const useLabels = metrics.some((m) => m.n_labels !== undefined);
      curve.append(lineChart('Learning curve', curveSeries(metrics), useLabels ? 'labels' : 'loop', 'metric'));
    }
    charts.append(curve);
    if (camp) {
      charts.append(sourcesChart(camp.labels_by_loop));
      const classes = el('div', { class: 'chart classes' });
      classes.append(svgFromServer(camp.classes_svg));
      classes.append(el('p', { class: 'muted small' }, 'predicted: latest inference over ' + camp.n_predicted + ' records'));
      charts.append(classes);
    }
    const perLoop = el('div', { class: 'chart' });
    perLoop.append(barChart('Records selected per loop', p.history.map((h) => ({ name: String(h.loop), value: h.n_selected })), 'records'));
    charts.append(perLoop);
    if (lab && !(camp && lab.labels_by_class.every((b) => !b.count))) {  // no empty chart beside a campaign's
      const dist = el('div', { class: 'chart' });
      dist.append(barChart('Human labels by class', lab.labels_by_class.map((b) => ({ name: String(b.label), value: b.count })), 'judgements'));
      charts.append(dist);
    }
    card.append(charts);
    if (p.campaign && p.campaign.error) card.append(el('p', { class: 'error' }, 'Campaign: ' + p.campaign.error));
    if (camp) {
      card.append(el('p', { class: 'muted small campaign-source' }, camp.source === 'reported'
        ? 'Sources, classes and compute as reported by the campaign after each loop (no directory attached).'
        : 'From the attached campaign directory ' + camp.directory + '.'));
      card.append(...computeSection(camp.compute));
    }
    card.append(el('h3', {}, 'Strategy per loop'));
    card.append(p.history.length
      ? table(['loop', 'strategy', 'why', 'k', 'seconds'], p.history.map((h) => [h.loop, h.strategy, h.reason, h.k, num(h.seconds, 3)]), 'strategy')
      : el('p', { class: 'muted' }, 'No recommendation yet.'));
    if (lab) {
      card.append(el('h3', {}, 'Annotators'));
      card.append(lab.annotators.length
        ? table(['annotator', 'status', 'judgements', 'median s', 'gold accuracy', 'agreement'],
          lab.annotators.map((a) => [a.annotator, a.status, a.judgements, num(a.seconds, 1), num(a.gold_accuracy), num(a.agreement)]))
        : el('p', { class: 'muted' }, 'No annotator yet.'));
    }
    return card;
  }

  async function load() {
    let res;
    try { res = await fetch('/dashboard/data', { cache: 'no-store', credentials: 'same-origin' }); } catch (e) {
      $('projects').replaceChildren(el('p', { class: 'error' }, 'Cannot reach the server.'));
      return;
    }
    if (res.status === 401) {
      $('signin').hidden = false; $('signout').hidden = true; $('projects').replaceChildren(); $('role').textContent = '';
      return;
    }
    const data = await res.json();
    $('signin').hidden = true; $('signout').hidden = false;
    $('role').textContent = data.admin ? 'admin' : 'project';
    const box = $('projects');
    box.replaceChildren();
    if (!data.projects.length) box.append(el('p', { class: 'muted' }, 'No project yet.'));
    for (const p of data.projects) box.append(project(p));
  }

  $('signin').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = $('token').value.trim();
    let res;
    try {
      res = await fetch('/v1/session', { method: 'POST', headers: { Authorization: 'Bearer ' + token }, credentials: 'same-origin' });
    } catch (e) { $('signin-error').textContent = 'Cannot reach the server.'; return; }
    if (!res.ok) { $('signin-error').textContent = 'This is not the admin token or a project key.'; return; }
    $('signin-error').textContent = '';
    $('token').value = '';
    await load();
  });
  $('signout').addEventListener('click', async () => {
    await fetch('/dashboard/signout', { method: 'POST', credentials: 'same-origin' });
    await load();
  });
  load();
})();
