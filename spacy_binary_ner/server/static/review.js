// The review page: one task at a time, the versions its sessions gave; the
// reviewer picks one (number keys or a click) and confirms it (a). Offsets
// are code points; text is only ever set as textContent.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const session = params.get("session") || "default";
  const token = params.get("token");
  const OPEN = 3;
  const HISTORY = 10;
  let queue = [];      // open tasks, queue[0] is shown
  let history = [];    // latest choices, newest first (tasks with `version`)
  let current = null;
  let selected = 0;
  let finished = false;
  let keySeq = 0;
  const keyBase = session + "-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8);
  const $ = (id) => document.getElementById(id);

  const api = window.makeApi(session, token);
  function received(q) {
    finished = q.finished;
    take(q.tasks);
    selected = queue.length ? queue[0].selected : 0;
    show();
  }
  const pageLoop = window.makePage(api, (message) => setStatus(message), {
    open: () => OPEN,
    empty: () => !queue.length,
    setup: (info) => { $("dataset").textContent = info.dataset; },
    start: (h, q) => { history = h.answers; renderHistory(); received(q); },
    receive: received,
    refresh: () => refreshProgress(),
  });

  // The text with spans marked, each followed by its label.
  function renderSpans(el, text, spans) {
    const chars = Array.from(text);
    el.textContent = "";
    let at = 0;
    for (const span of spans.slice().sort((a, b) => a.start - b.start)) {
      el.appendChild(document.createTextNode(chars.slice(at, span.start).join("")));
      const mark = document.createElement("mark");
      mark.textContent = chars.slice(span.start, span.end).join("");
      const label = document.createElement("span");
      label.className = "ent-label";
      label.textContent = span.label;
      mark.appendChild(label);
      el.appendChild(mark);
      at = Math.max(at, span.end);
    }
    el.appendChild(document.createTextNode(chars.slice(at).join("")));
  }

  function show() {
    current = queue.length ? queue[0] : null;
    const list = $("versions");
    list.textContent = "";
    if (!current) {
      $("text").textContent = finished ? "Nothing left to review." : "Waiting for tasks…";
      $("text").dataset.taskHash = "";
      $("kind").textContent = "";
      return;
    }
    $("text").dataset.taskHash = String(current._task_hash);
    const binary = current.kind === "task";
    if (binary) renderSpans($("text"), current.text, current.versions[0].spans);
    else $("text").textContent = current.text;
    $("kind").textContent = binary ? "answers to this question" : "corrections of this text";
    current.versions.forEach((version, i) => {
      const li = document.createElement("li");
      li.dataset.index = String(i);
      li.classList.toggle("selected", i === selected);
      const k = document.createElement("kbd");
      k.textContent = String(i + 1);
      li.appendChild(k);
      const answer = document.createElement("span");
      answer.className = "answer " + version.answer;
      answer.textContent = " " + version.answer + " ";
      li.appendChild(answer);
      const who = document.createElement("span");
      who.className = "sessions";
      who.textContent = version.sessions.join(", ");
      li.appendChild(who);
      if (!binary) {
        const p = document.createElement("p");
        p.className = "version-text";
        renderSpans(p, current.text, version.spans);
        li.appendChild(p);
      }
      li.addEventListener("click", () => pick(i));
      list.appendChild(li);
    });
  }

  function pick(i) {
    if (!current || i >= current.versions.length) return;
    selected = i;
    $("versions").querySelectorAll("li").forEach((li, j) => li.classList.toggle("selected", j === i));
  }

  function renderHistory() {
    const list = $("history");
    list.textContent = "";
    for (const item of history.slice(0, HISTORY)) {
      const li = document.createElement("li");
      li.dataset.taskHash = String(item._task_hash);
      li.dataset.version = String(item.version);
      const version = item.versions[item.version];
      const answer = document.createElement("span");
      answer.className = "answer " + version.answer;
      answer.textContent = version.answer;
      li.appendChild(answer);
      const chars = Array.from(item.text);
      li.appendChild(document.createTextNode(
        chars.slice(0, 30).join("") + (chars.length > 30 ? "… " : " ") + "(" + version.sessions.join(", ") + ")"));
      list.appendChild(li);
    }
  }

  function setStatus(message) { $("status").textContent = message || ""; }

  function take(tasks) {
    const chosen = new Set(history.map((t) => t._task_hash));
    const seen = new Set(queue.map((t) => t._task_hash));
    for (const t of tasks) {
      if (!seen.has(t._task_hash) && !chosen.has(t._task_hash)) { queue.push(t); seen.add(t._task_hash); }
    }
  }

  function confirm() {
    if (!current) return;
    const item = Object.assign({}, current, { version: selected });
    queue.shift();
    history = history.filter((t) => t._task_hash !== item._task_hash);
    history.unshift(item);
    renderHistory();
    selected = queue.length ? queue[0].selected : 0;
    show();
    const body = { _task_hash: item._task_hash, version: item.version, key: keyBase + "-" + (keySeq++) };
    api("answers?next=" + OPEN, { answers: [body] }).then((data) => {
      setStatus("");
      const before = current;
      take(data.tasks || []);
      finished = data.finished;
      if (!before) { selected = queue.length ? queue[0].selected : 0; show(); }
      if (!queue.length && !finished) setTimeout(pageLoop.poll, 1000);
      refreshProgress();
    }).catch((err) => setStatus("not saved: " + err.message + " (choose again)"));
  }

  function undo() {
    if (!history.length) return;
    const item = history.shift();
    renderHistory();
    queue = queue.filter((t) => t._task_hash !== item._task_hash);
    queue.unshift(item);
    selected = item.version;
    show();
  }

  function refreshProgress() {
    return api("progress").then((p) => {
      $("p-session").textContent = p.session_answers;
      $("p-reviewed").textContent = p.reviewed;
      $("p-total").textContent = p.to_review;
      $("p-agreed").textContent = p.agreed;
    }).catch(() => {});
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (/^[1-9]$/.test(e.key)) { pick(Number(e.key) - 1); e.preventDefault(); }
    else if (e.key === "a") { confirm(); e.preventDefault(); }
    else if (e.key === "Backspace") { undo(); e.preventDefault(); }
  });
  $("accept").addEventListener("click", confirm);
  $("undo").addEventListener("click", undo);
  $("session-name").textContent = "session " + session;

  pageLoop.start(HISTORY);
})();
