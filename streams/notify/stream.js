  // ---- streams/notify/stream.js, included by console.html and board.html (Jinja): the
  // words both show, the session, authorised requests, the task stream read with fetch().
  // The page defines CFG, KEY, state ({session, lastId, ctl, watchdog, attempt, retry,
  // retryTimer, skew, snapshot, tasks}), $, streamUrl(), keep, onTask, onSnapshot, SIGNED_IN,
  // refused(status, message) and showBoard().
  // ---- the words both pages show ----
  const STATUS = {dispatched: '待接收', acknowledged: '已接收', in_progress: '处置中',
                  completed: '已完成', rejected: '已退回', cancelled: '已撤销'};
  const FINAL = new Set(['completed', 'rejected', 'cancelled']);
  const RANK = {I: 0, II: 1, III: 2, IV: 3};
  const ENTRY = {
    alarm_received: '收到报警', incident_opened: '事件立案', playbook_matched: '匹配预案',
    task_dispatched: '派发任务', task_acknowledged: '确认接收', task_started: '开始处置',
    task_completed: '处置完成', task_rejected: '任务退回', task_progress: '续报',
    task_cancelled: '任务撤销', incident_contained: '险情控制', task_overdue: '任务超时',
    escalated: '升级督办', level_changed: '等级调整', incident_confirmed: '确认警情',
    incident_merged: '事件合并', incident_reopened: '事件重开', incident_closed: '事件关闭',
    delivery_failed: '推送失败', reporter_feedback: '反馈报警人', task_reassigned: '任务转派',
    whistle_blown: '吹哨报到'};
  const KIND = {smoke: '烟感报警', heat: '温感报警', flame: '火焰探测', gas: '燃气泄漏',
    electrical: '电气火灾监控', manual_call_point: '手动报警按钮', fire_report: '群众火情报告',
    power_trip: '供电跳闸', hazmat: '危化品', water_leak: '漏水', structural: '结构险情', other: '其他'};
  const CONFIRMATION = {unconfirmed: '待核实', confirmed: '已确认', false_alarm: '误报'};

  // ---- session: the token and the name, for this tab only (sessionStorage KEY) ----
  function loadSession() {
    try { return JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch (e) { return null; }
  }
  function saveSession(s) {
    state.session = s;
    try { s ? sessionStorage.setItem(KEY, JSON.stringify(s)) : sessionStorage.removeItem(KEY); } catch (e) { /* private mode */ }
  }
  const token = () => (state.session && state.session.token) || '';
  const now = () => Date.now() + state.skew;

  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    if (token()) h.Authorization = 'Bearer ' + token();
    return h;
  }
  async function errorText(resp) {
    try {
      const body = await resp.json();
      const where = (body.details || []).map((d) => (d.loc || []).join('.') + ': ' + d.msg).join('; ');
      return body.error + (where && where !== body.error ? ' (' + where + ')' : '');
    } catch (e) { return 'HTTP ' + resp.status; }
  }

  // ---- the stream: fetch + a reader, SSE parsed here (EventSource cannot send a token) ----
  function setConn(kind, text) {
    $('conn').dataset.state = kind;
    $('conn-text').textContent = text || {connecting: '连接中…', online: '在线', reconnecting: '重连中…',
                                          offline: '未连接'}[kind];
  }
  function stopStream() {
    clearTimeout(state.retryTimer); clearTimeout(state.watchdog);
    if (state.ctl) { const c = state.ctl; state.ctl = null; c.abort(); }
  }
  async function connect() {
    stopStream();
    const ctl = new AbortController();
    state.ctl = ctl;
    if ($('conn').dataset.state !== 'reconnecting') setConn('connecting');
    const headers = authHeaders({Accept: 'text/event-stream'});
    if (state.lastId) headers['Last-Event-ID'] = state.lastId;
    try {
      const resp = await fetch(streamUrl(), {headers, signal: ctl.signal, cache: 'no-store',
                                             credentials: 'omit'});
      if (resp.status === 401 || resp.status === 403) {
        const msg = await errorText(resp);
        if (state.ctl === ctl) refused(resp.status, msg);
        return;
      }
      if (resp.status === 400) state.lastId = null;  // a cursor this stream cannot read
      if (!resp.ok || !resp.body) throw new Error('HTTP ' + resp.status + ': ' + await errorText(resp));
      const date = Date.parse(resp.headers.get('Date') || '');
      if (!isNaN(date)) state.skew = Math.abs(date - Date.now()) > 3000 ? date - Date.now() : 0;
      showBoard();
      await read(resp.body.getReader(), ctl);
    } catch (e) {
      if (state.ctl !== ctl) return;  // stopped on purpose
      console.warn('stream:', e);
    }
    if (state.ctl === ctl) reconnectLater();
  }
  function reconnectLater() {
    state.ctl = null;
    const base = Math.min(10000, Math.max(state.retry, 1000 * 2 ** state.attempt));
    state.attempt += 1;
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    setConn('reconnecting');
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(connect, delay);
  }
  function armWatchdog(ctl) {  // a silent line is a dead line: the server pings every CFG.ping s
    clearTimeout(state.watchdog);
    state.watchdog = setTimeout(() => { if (state.ctl === ctl) ctl.abort(); },
                                Math.max(10, 3 * CFG.ping) * 1000);
  }
  async function read(reader, ctl) {
    const decoder = new TextDecoder('utf-8');
    let buf = '';
    let ev = {type: '', data: [], id: null};
    armWatchdog(ctl);
    for (;;) {
      const {value, done} = await reader.read();
      if (done || state.ctl !== ctl) return;
      armWatchdog(ctl);
      buf += decoder.decode(value, {stream: true});
      let hold = '';
      if (buf.endsWith('\r')) { hold = '\r'; buf = buf.slice(0, -1); }  // maybe half of \r\n
      const lines = buf.split(/\r\n|\r|\n/);
      buf = lines.pop() + hold;
      for (const line of lines) {
        if (line === '') {
          if (ev.data.length || ev.type) handle(ev.type || 'message', ev.data.join('\n'), ev.id);
          ev = {type: '', data: [], id: null};
        } else if (line[0] !== ':') {  // ':' starts a comment (": ping")
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          let val = c < 0 ? '' : line.slice(c + 1);
          if (val[0] === ' ') val = val.slice(1);
          if (field === 'event') ev.type = val;
          else if (field === 'data') ev.data.push(val);
          else if (field === 'id' && !val.includes('\0')) ev.id = val;
          else if (field === 'retry' && /^\d+$/.test(val)) state.retry = +val;
        }
      }
    }
  }
  function hms(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return '';
    const p = (n) => String(n).padStart(2, '0');
    const t = p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
    return d.toDateString() === new Date().toDateString() ? t : (d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + t;
  }
  // a phone that slept or lost its network: try at once rather than after the backoff
  const wake = () => { if (!state.ctl && $('conn').dataset.state === 'reconnecting') { state.attempt = 0; connect(); } };
  window.addEventListener('online', wake);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) wake(); });

  // ---- the stream's events: a snapshot between reset and ready, then each task live ----
  // (the page's keep(task), onTask(task), onSnapshot(tasks by id))
  function handle(type, data, id) {
    if (type === 'reset') {
      state.snapshot = new Map();  // drop what we hold once the snapshot is in (at ready)
      state.lastId = null;         // our cursor meant what we dropped
      return;
    }
    if (type === 'task') {
      let task;
      try { task = JSON.parse(data); } catch (e) { console.warn('bad task event', e); return; }
      if (keep(task)) {
        if (state.snapshot) keepNewest(state.snapshot, task);
        else onTask(task);
      }
    } else if (type === 'ready') {
      if (state.snapshot) {
        const fresh = state.snapshot;
        state.snapshot = null;
        for (const [tid, t] of state.tasks) if (fresh.has(tid)) keepNewest(fresh, t);
        onSnapshot(fresh);
      }
      state.attempt = 0;
      setConn('online');
    }
    if (id !== null) state.lastId = id;
  }
  function keepNewest(map, task) {
    const held = map.get(task.task_id);
    if (held && held.revision >= task.revision) return false;  // seen already (at least once)
    map.set(task.task_id, task);
    return true;
  }
  // ---- the sign-in: what shows only when signed in (the page's SIGNED_IN) hides ----
  function showSignIn(error, status) {
    setConn('offline');
    for (const part of SIGNED_IN) $(part).hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = error || '';
    $('signin-error').dataset.status = status || '';
    $('by').value = (state.session && state.session.by) || '';
    $('token').value = '';
    $('token').focus();
  }
