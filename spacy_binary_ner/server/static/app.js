// The teach page: one question at a time; answers are sent as they are given.
// A question whose `complete` lists labels is a whole text to correct
// (correct.js); in teach, `e` turns the question into one. A question with a
// `label` or `options` is about text categories (textcat.js).
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const session = params.get("session") || "default";
  const token = params.get("token");
  let OPEN = 5;          // questions kept in the page (fewer to correct: updates show sooner)
  const HISTORY = 10;    // answers shown (and changeable)
  let queue = [];        // open questions, queue[0] is shown
  let history = [];      // latest answers, newest first
  let current = null;
  let sending = 0;
  let finished = false;
  let keySeq = 0;
  const keyBase = session + "-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8);
  const $ = (id) => document.getElementById(id);
  const isCorrection = (task) => Array.isArray(task.complete);
  const editor = window.makeEditor($("text"), $("labels"), () => {});
  const textcat = window.makeTextcat($("options"));
  const api = window.makeApi(session, token);
  // No question right now but more to come: ask again (pageLoop.poll).
  const pageLoop = window.makePage(api, (message) => setStatus(message), {
    open: () => OPEN,
    empty: () => !queue.length,
    setup: (info) => {
      $("dataset").textContent = info.dataset;
      $("command").textContent = info.view;
      editor.setLabels(info.labels);
      editor.setScope(info.dataset + "-" + session);
      if (info.view === "correct") OPEN = 2;
      textcat.setExclusive(info.exclusive);
      // The score on --eval's gold texts: accuracy for exclusive categories, else macro-F1.
      if (info.view === "textcat") $("p-f1-name").textContent = info.exclusive ? "accuracy" : "macro-F1";
    },
    start: (h, q) => {
      history = h.answers;
      renderHistory();
      merge(q.tasks);
      finished = q.finished;
      show();
    },
    receive: (q) => { finished = q.finished; merge(q.tasks); show(); },
    refresh: () => refreshProgress(),
  });


  // Offsets are in characters (code points); JavaScript strings count UTF-16
  // units, so split into code points before slicing.
  function renderText(el, text, span) {
    const chars = Array.from(text);
    el.textContent = "";
    el.appendChild(document.createTextNode(chars.slice(0, span.start).join("")));
    const mark = document.createElement("mark");
    mark.textContent = chars.slice(span.start, span.end).join("");
    el.appendChild(mark);
    el.appendChild(document.createTextNode(chars.slice(span.end).join("")));
  }

  function show() {
    current = queue.length ? queue[0] : null;
    const text = $("text");
    textcat.show(current);
    if (!current) {
      editor.clear();
      text.textContent = finished ? "No more questions: every text of the source was asked." : "Waiting for questions…";
      $("label").textContent = ""; $("score").textContent = ""; $("source").textContent = "";
      text.dataset.taskHash = "";
      return;
    }
    text.dataset.taskHash = String(current._task_hash);
    const meta = current.meta || {};
    document.body.dataset.view = isCorrection(current) ? "correct" : textcat.isTextcat(current) ? "textcat" : "teach";
    if (isCorrection(current)) {
      editor.load(current);
      $("label").textContent = "";
      $("score").textContent = "";
      $("source").textContent = meta.source === "silver" ? "consistent with the answers given" : "the model's entities";
      return;
    }
    editor.clear();
    if (textcat.isTextcat(current)) {
      text.textContent = current.text;
      $("label").textContent = current.label || "";
      $("score").textContent = meta.score === undefined ? "" : "p = " + Number(meta.score).toFixed(2);
      $("source").textContent = "";
      return;
    }
    const span = current.spans[0];
    renderText(text, current.text, span);
    $("label").textContent = span.label;
    $("score").textContent = meta.score === undefined ? "" : "p = " + Number(meta.score).toFixed(2);
    $("source").textContent = meta.source ? "proposed by the " + meta.source : "";
  }

  function renderHistory() {
    const list = $("history");
    list.textContent = "";
    for (const task of history.slice(0, HISTORY)) {
      const li = document.createElement("li");
      li.dataset.taskHash = String(task._task_hash);
      const answer = document.createElement("span");
      answer.className = "answer " + task.answer;
      answer.textContent = task.answer;
      li.appendChild(answer);
      const chars = Array.from(task.text);
      const snippet = document.createElement("span");
      if (textcat.isTextcat(task)) {
        snippet.textContent = chars.slice(0, 20).join("") + (chars.length > 20 ? "… " : " ") +
          "(" + textcat.summary(task) + ") ";
      } else if (isCorrection(task)) {
        const n = task.spans.length;
        snippet.textContent = chars.slice(0, 20).join("") + (chars.length > 20 ? "… " : " ") +
          "(" + n + (n === 1 ? " entity) " : " entities) ");
      } else {
        const span = task.spans[0];
        snippet.textContent = chars.slice(span.start, span.end).join("") + " (" + span.label + ") ";
      }
      li.appendChild(snippet);
      for (const choice of ["accept", "reject", "ignore"]) {
        if (choice === task.answer) continue;
        const b = document.createElement("button");
        b.textContent = choice;
        b.className = "change-" + choice;
        b.addEventListener("click", () => send(task, choice, true));
        li.appendChild(b);
      }
      list.appendChild(li);
    }
  }

  function setStatus(message) { $("status").textContent = message || ""; }

  function merge(tasks) {
    const seen = new Set(queue.map((t) => t._task_hash));
    for (const t of tasks) if (!seen.has(t._task_hash)) { queue.push(t); seen.add(t._task_hash); }
  }

  function send(task, answer, isCorrection) {
    const body = Object.assign({}, task, { answer: answer, key: keyBase + "-" + (keySeq++) });
    history = history.filter((t) => t._task_hash !== task._task_hash);
    history.unshift(body);
    renderHistory();
    sending++;
    return api("answers?next=" + OPEN, { answers: [body] }).then((data) => {
      sending--;
      setStatus("");
      // The server's open questions for this session, minus what is answered.
      const answered = new Set(history.map((t) => t._task_hash));
      const open = (data.tasks || []).filter((t) => !answered.has(t._task_hash));
      const shown = current && !answered.has(current._task_hash) ? [current] : [];
      queue = shown;
      merge(open);
      if (!current || answered.has(current._task_hash) || !isCorrection) show();
      finished = data.finished;
      if (!queue.length && !finished) setTimeout(pageLoop.poll, 1000);
      refreshProgress();
    }).catch((err) => { sending--; setStatus("not saved: " + err.message + " (answer again)"); });
  }

  function answer(choice) {
    if (!current) return;
    let task = current;
    if (isCorrection(task)) {
      task = Object.assign({}, task, { spans: editor.spanDicts() });
      editor.forget(current);
    }
    task = textcat.answered(task);
    queue.shift();
    show();
    send(task, choice, false);
  }

  function undo() {
    if (!history.length) return;
    const last = history.shift();
    renderHistory();
    const task = Object.assign({}, last);
    delete task.answer; delete task.key;
    queue = queue.filter((t) => t._task_hash !== task._task_hash);
    queue.unshift(task);
    show();
  }

  // The question as a correction of its whole text (the model's entities
  // and its span), shown in its place.
  function correctIt() {
    if (!current || isCorrection(current) || textcat.isTextcat(current)) return;
    const question = current;
    api("correction", { task: question }).then((data) => {
      const i = queue.indexOf(question);
      if (i < 0) return;
      queue[i] = data.task;
      if (i === 0) show();
    }).catch((err) => setStatus("cannot correct: " + err.message));
  }

  function refreshProgress() {
    return api("progress").then((p) => {
      $("p-session").textContent = p.session_answers;
      $("p-dataset").textContent = p.dataset_answers;
      $("p-accept").textContent = p.accept_rate === null ? "-" : Math.round(100 * p.accept_rate) + "%";
      $("p-loss").textContent = p.loss === null ? "-" : p.loss.toFixed(3);
      $("p-f1").textContent = p.f1 === null ? "-" : p.f1.toFixed(3);
      // With --answers-per-question N: how many questions have 1, ..., N answers.
      $("p-answers").hidden = !(p.answers_per_question > 1);
      $("p-by-answers").textContent = Object.entries(p.questions_by_answers || {})
        .map(([n, count]) => n + ": " + count).join(", ");
      if (p.error) setStatus("server: " + p.error);
    }).catch(() => {});
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (current && isCorrection(current) && editor.key(e)) { e.preventDefault(); return; }
    if (textcat.key(e)) { e.preventDefault(); return; }
    if (e.key === "e") { correctIt(); e.preventDefault(); }
    else if (e.key === "a") { answer("accept"); e.preventDefault(); }
    else if (e.key === "x") { answer("reject"); e.preventDefault(); }
    else if (e.key === " ") { answer("ignore"); e.preventDefault(); }
    else if (e.key === "Backspace") { undo(); e.preventDefault(); }
  });
  $("accept").addEventListener("click", () => answer("accept"));
  $("reject").addEventListener("click", () => answer("reject"));
  $("ignore").addEventListener("click", () => answer("ignore"));
  $("undo").addEventListener("click", undo);
  $("session-name").textContent = "session " + session;

  pageLoop.start(HISTORY);
})();
