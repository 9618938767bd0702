// The labeling page: sign in with an annotator token, answer leased tasks, keep answers across lost connections.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const KEY = 'alloop_annotator_token';
  let token = sessionStorage.getItem(KEY);
  let task = null;        // the task on screen
  let shownAt = 0;        // performance.now() when it appeared
  let leaseEnd = 0;       // performance.now() when its lease runs out
  let pending = null;     // an answer not yet acknowledged by the server
  let retries = 0;
  let retryTimer = null;
  let heartbeat = null;

  async function api(method, path, body) {
    const opts = { method, headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts); // rejects when the connection is lost
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return { status: res.status, ok: res.ok, data };
  }

  function show(id, on) { $(id).hidden = !on; }
  function banner(text) { $('banner').textContent = text || ''; show('banner', !!text); }
  function fmt(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  async function signIn(candidate) {
    token = candidate;
    let res;
    try { res = await api('GET', '/v1/annotate/me'); } catch (e) {
      $('signin-error').textContent = 'Cannot reach the server; check the connection and try again.';
      return;
    }
    if (!res.ok) {
      token = null;
      sessionStorage.removeItem(KEY);
      show('signin', true); show('work', false);
      $('signin-error').textContent = res.status === 401 || res.status === 403
        ? 'This token is not a valid annotator token. Ask the project owner for yours.'
        : 'Sign-in failed (' + res.status + ').';
      return;
    }
    sessionStorage.setItem(KEY, token);
    $('signin-error').textContent = '';
    $('who').textContent = res.data.annotator + ' · ' + res.data.project_id;
    show('signin', false); show('work', true); show('signout', true);
    clearInterval(heartbeat);
    heartbeat = setInterval(() => { api('POST', '/v1/annotate/heartbeat').catch(() => {}); }, 30000);
    await loadNext();
  }

  function progress(p) {
    if (!p) return;
    $('done-today').textContent = p.done_today;
    $('remaining').textContent = p.remaining;
  }

  async function loadNext() {
    let res;
    try { res = await api('POST', '/v1/annotate/next'); } catch (e) {
      banner('Connection lost; trying again…');
      clearTimeout(retryTimer);
      retryTimer = setTimeout(loadNext, 2000);
      return;
    }
    if (!res.ok) { banner((res.data && res.data.detail) || ('Error ' + res.status)); return; }
    banner('');
    progress(res.data.progress);
    render(res.data.task);
  }

  function render(t) {
    task = t;
    show('expired-box', false);
    if (!t) { show('task', false); show('empty', true); return; }
    show('empty', false); show('task', true);
    $('rid').textContent = JSON.stringify(t.rid);
    $('text').textContent = t.text || '';
    show('text', !!t.text);
    const row = $('row');
    row.replaceChildren();
    if (t.row) {
      for (const [k, v] of Object.entries(t.row)) {
        const tr = document.createElement('tr');
        const th = document.createElement('th'); th.textContent = k;
        const td = document.createElement('td'); td.textContent = v === null ? '' : String(v);
        tr.append(th, td); row.append(tr);
      }
    }
    show('row', !!t.row);
    const img = $('image');
    if (img.src) { URL.revokeObjectURL(img.src); img.removeAttribute('src'); }
    show('image', false);
    if (t.image) loadImage(t.task_id);
    const sug = $('suggestion');
    if (t.suggestion !== null && t.suggestion !== undefined) {
      sug.textContent = 'Model suggestion (pre-annotation): ' + String(t.suggestion) + ' — check it before you accept it.';
      show('suggestion', true);
    } else { show('suggestion', false); }
    const labels = $('labels');
    labels.replaceChildren();
    t.choices.forEach((c, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('aria-label', String(c));
      if (i < 9) {
        const k = document.createElement('kbd'); k.textContent = String(i + 1); k.setAttribute('aria-hidden', 'true');
        b.append(k);
        b.setAttribute('aria-keyshortcuts', String(i + 1));
      }
      b.append(document.createTextNode(String(c)));
      if (t.suggestion !== null && t.suggestion !== undefined && String(t.suggestion) === String(c)) b.classList.add('suggested');
      b.addEventListener('click', () => answer({ label: c }));
      labels.append(b);
    });
    enable(true);
    shownAt = performance.now();
    leaseEnd = shownAt + t.expires_in * 1000;
  }

  async function loadImage(taskId) {
    try {
      const res = await fetch('/v1/annotate/tasks/' + taskId + '/content', { headers: { Authorization: 'Bearer ' + token } });
      if (!res.ok || !task || task.task_id !== taskId) return;
      $('image').src = URL.createObjectURL(await res.blob());
      show('image', true);
    } catch (e) { /* the retry of the answer handles lost connections */ }
  }

  function enable(on) {
    for (const b of $('labels').querySelectorAll('button')) b.disabled = !on;
    $('skip').disabled = !on;
  }

  function answer(what) {
    if (!task || pending) return;
    pending = { task_id: task.task_id, seconds: (performance.now() - shownAt) / 1000, ...what };
    enable(false);
    retries = 0;
    send();
  }

  async function send() {
    clearTimeout(retryTimer);
    if (!pending) return;
    const p = pending;
    const path = '/v1/annotate/tasks/' + p.task_id + (p.skip ? '/skip' : '/submit');
    let res;
    try {
      res = await api('POST', path, p.skip ? undefined : { label: p.label, seconds: p.seconds });
    } catch (e) {
      retries += 1;
      const what = p.skip ? 'Your skip' : 'Your answer “' + String(p.label) + '”';
      banner('Connection lost. ' + what + ' is kept and will be sent again when the connection is back (try ' + retries + ')…');
      retryTimer = setTimeout(send, Math.min(1000 * 2 ** (retries - 1), 8000));
      return;
    }
    pending = null;
    banner('');
    if (res.ok) { progress(res.data); await loadNext(); return; }
    if (res.status === 409 && res.data && res.data.error === 'LeaseExpiredError') { expired(res.data.detail); return; }
    if (res.status === 401 || res.status === 403) { signOutLocal('Your token is no longer valid.'); return; }
    banner((res.data && res.data.detail) || ('The server answered ' + res.status + '.'));
    enable(true);
  }

  function expired(detail) {
    task = null;
    show('task', false);
    $('expired').textContent = detail || 'Your lease on this task expired: it went back to the queue and nothing was recorded for it.';
    show('expired-box', true);
  }

  function tick() {
    if (!task) { $('timer').textContent = '0:00'; $('lease-left').textContent = '–'; return; }
    const now = performance.now();
    $('timer').textContent = fmt((now - shownAt) / 1000);
    $('lease-left').textContent = fmt((leaseEnd - now) / 1000);
    if (now > leaseEnd && !pending) {
      expired('Your lease on this task expired while the page was open: it went back to the queue and nothing was recorded for it.');
    }
  }

  function signOutLocal(message) {
    token = null; task = null; pending = null;
    sessionStorage.removeItem(KEY);
    clearInterval(heartbeat);
    show('work', false); show('signin', true); show('signout', false);
    $('who').textContent = '';
    $('signin-error').textContent = message || '';
  }

  document.addEventListener('keydown', (ev) => {
    if (!task || pending || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target && ['INPUT', 'TEXTAREA'].includes(ev.target.tagName)) return;
    if (ev.key >= '1' && ev.key <= '9') {
      const i = Number(ev.key) - 1;
      if (i < task.choices.length) { ev.preventDefault(); answer({ label: task.choices[i] }); }
    } else if (ev.key === '0' || ev.key === 's' || ev.key === 'S') {
      ev.preventDefault(); answer({ skip: true });
    }
  });
  $('skip').addEventListener('click', () => answer({ skip: true }));
  $('again').addEventListener('click', loadNext);
  $('renew').addEventListener('click', loadNext);
  $('signin').addEventListener('submit', (ev) => { ev.preventDefault(); signIn($('token').value.trim()); });
  $('signout').addEventListener('click', async () => {
    try { await api('POST', '/v1/annotate/signout'); } catch (e) { /* offline: sign out locally anyway */ }
    signOutLocal('');
  });
  window.addEventListener('online', () => { if (pending) { retries = 0; send(); } });
  setInterval(tick, 250);
  if (token) signIn(token);
})();
