// The correct view: a whole text, token by token, its entities highlighted;
// the person adds, removes and relabels them. Offsets are code points (the
// server's), tokens come with the task; text is only ever set as textContent.
"use strict";
window.makeEditor = function (textEl, labelsEl, onChange) {
  const COLORS = ["#ffd166", "#9ad1d4", "#f4a3c0", "#b5e48c", "#cdb4db", "#ffb4a2", "#a3c4f3", "#e9c46a", "#c2f0c2"];
  let task = null;
  let spans = [];          // {s, e, label}: tokens s..e-1
  let labels = [];
  let labelIndex = 0;      // the label new spans get
  let selected = -1;       // index in spans of the selected span
  let pending = null;      // {anchor, focus}: a token range chosen by shift+arrows
  let suppressClick = false;
  let scope = "";          // drafts are kept per dataset and session

  function setLabels(list) {
    labels = list.slice(0, 9);
    labelsEl.textContent = "";
    labels.forEach((label, i) => {
      const b = document.createElement("button");
      b.className = "pick-label";
      b.dataset.label = label;
      b.style.borderLeft = "0.6rem solid " + COLORS[i];
      const k = document.createElement("kbd");
      k.textContent = String(i + 1);
      b.appendChild(k);
      b.appendChild(document.createTextNode(" " + label));
      b.addEventListener("click", () => pickLabel(i));
      labelsEl.appendChild(b);
    });
    markLabel();
  }

  function markLabel() {
    labelsEl.querySelectorAll(".pick-label").forEach((b, i) => b.classList.toggle("current", i === labelIndex));
  }

  function load(t) {
    task = t;
    const stored = localStorage.getItem(draftKey());
    const given = stored ? JSON.parse(stored) : t.spans;
    const startOf = new Map(t.tokens.map((tok, i) => [tok.start, i]));
    const endOf = new Map(t.tokens.map((tok, i) => [tok.end, i + 1]));
    spans = [];
    for (const sp of given) {
      const s = sp.s !== undefined ? sp.s : startOf.get(sp.start);
      const e = sp.e !== undefined ? sp.e : endOf.get(sp.end);
      if (s !== undefined && e !== undefined && s < e) spans.push({ s: s, e: e, label: sp.label });
    }
    selected = -1;
    pending = null;
    render();
  }

  function draftKey(t) { return "sbn-draft-" + scope + "-" + (t || task)._task_hash; }

  function changed() {
    localStorage.setItem(draftKey(), JSON.stringify(spans));
    render();
    onChange();
  }

  // The task's spans as the server takes them: code points and tokens.
  function spanDicts() {
    return spans.slice().sort((a, b) => a.s - b.s).map((sp) => ({
      start: task.tokens[sp.s].start, end: task.tokens[sp.e - 1].end,
      token_start: sp.s, token_end: sp.e - 1, label: sp.label,
    }));
  }

  function forget(t) { localStorage.removeItem(draftKey(t)); }

  function render() {
    const chars = Array.from(task.text);
    const toks = task.tokens;
    const byStart = new Map(spans.map((sp, i) => [sp.s, i]));
    textEl.textContent = "";
    let at = 0;       // code point reached
    let i = 0;
    const lo = pending ? Math.min(pending.anchor, pending.focus) : -1;
    const hi = pending ? Math.max(pending.anchor, pending.focus) : -2;
    const put = (parent, k) => {
      if (toks[k].start > at) parent.appendChild(document.createTextNode(chars.slice(at, toks[k].start).join("")));
      const el = document.createElement("span");
      el.className = "tok" + (k >= lo && k <= hi ? " pending" : "");
      el.dataset.i = String(k);
      el.textContent = chars.slice(toks[k].start, toks[k].end).join("");
      parent.appendChild(el);
      at = toks[k].end;
    };
    while (i < toks.length) {
      const n = byStart.get(i);
      if (n === undefined) { put(textEl, i); i++; continue; }
      const sp = spans[n];
      if (toks[i].start > at) textEl.appendChild(document.createTextNode(chars.slice(at, toks[i].start).join("")));
      at = toks[i].start;
      const mark = document.createElement("mark");
      mark.className = "ent" + (n === selected ? " selected" : "");
      mark.dataset.span = String(n);
      mark.dataset.label = sp.label;
      const k = labels.indexOf(sp.label);
      if (k >= 0) mark.style.background = COLORS[k];
      for (let k = sp.s; k < sp.e; k++) put(mark, k);
      const tag = document.createElement("span");
      tag.className = "ent-label";
      tag.textContent = sp.label;
      mark.appendChild(tag);
      textEl.appendChild(mark);
      i = sp.e;
    }
    if (at < chars.length) textEl.appendChild(document.createTextNode(chars.slice(at).join("")));
  }

  // A new span replaces the spans it overlaps (flat entities).
  function addSpan(s, e, label) {
    spans = spans.filter((sp) => sp.e <= s || sp.s >= e);
    spans.push({ s: s, e: e, label: label });
    spans.sort((a, b) => a.s - b.s);
    selected = spans.findIndex((sp) => sp.s === s);
    pending = null;
    changed();
  }

  function removeSpan(n) {
    spans.splice(n, 1);
    selected = -1;
    changed();
  }

  function pickLabel(i) {
    if (i >= labels.length) return;
    labelIndex = i;
    markLabel();
    if (!task) return;
    if (selected >= 0) { spans[selected].label = labels[i]; changed(); }
    else if (pending) addSpan(Math.min(pending.anchor, pending.focus), Math.max(pending.anchor, pending.focus) + 1, labels[i]);
  }

  // The tokens a range covers with at least one character.
  function selectedTokens(range) {
    let first = -1, last = -1;
    textEl.querySelectorAll(".tok").forEach((el) => {
      const r = document.createRange();
      r.selectNodeContents(el);
      if (range.compareBoundaryPoints(Range.START_TO_START, r) > 0) r.setStart(range.startContainer, range.startOffset);
      if (range.compareBoundaryPoints(Range.END_TO_END, r) < 0) r.setEnd(range.endContainer, range.endOffset);
      if (r.toString().length > 0) {
        const k = Number(el.dataset.i);
        if (first < 0) first = k;
        last = k;
      }
    });
    return first < 0 ? null : [first, last + 1];
  }

  document.addEventListener("mouseup", () => {
    if (!task) return;
    const sel = window.getSelection();
    if (!sel.rangeCount || sel.isCollapsed) return;
    const range = sel.getRangeAt(0);
    if (!textEl.contains(range.commonAncestorContainer)) return;
    const tokens = selectedTokens(range);
    sel.removeAllRanges();
    if (!tokens) return;
    suppressClick = true;
    setTimeout(() => { suppressClick = false; }, 0);
    addSpan(tokens[0], tokens[1], labels[labelIndex]);
  });

  textEl.addEventListener("click", (e) => {
    if (!task || suppressClick) return;
    const mark = e.target.closest("mark.ent");
    if (!mark) return;
    const n = Number(mark.dataset.span);
    if (e.target.classList.contains("ent-label")) { selected = selected === n ? -1 : n; render(); }
    else removeSpan(n);
  });

  // Keys of the correct view; RETURNS whether the key was handled.
  function key(e) {
    if (!task) return false;
    if (/^[1-9]$/.test(e.key)) { pickLabel(Number(e.key) - 1); return true; }
    if (e.key === "Delete") { if (selected >= 0) removeSpan(selected); return true; }
    if (e.key === "Escape") { selected = -1; pending = null; render(); return true; }
    if (e.key === "Enter") {
      if (pending) addSpan(Math.min(pending.anchor, pending.focus), Math.max(pending.anchor, pending.focus) + 1, labels[labelIndex]);
      return true;
    }
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const step = e.key === "ArrowRight" ? 1 : -1;
      const last = task.tokens.length - 1;
      if (e.shiftKey) {
        if (!pending) {
          const from = selected >= 0 ? (step > 0 ? spans[selected].e : spans[selected].s - 1) : (step > 0 ? 0 : last);
          const k = Math.max(0, Math.min(last, from));
          pending = { anchor: k, focus: k };
        } else pending.focus = Math.max(0, Math.min(last, pending.focus + step));
        selected = -1;
      } else if (spans.length) {
        selected = selected < 0 ? (step > 0 ? 0 : spans.length - 1) : (selected + step + spans.length) % spans.length;
        pending = null;
      }
      render();
      return true;
    }
    return false;
  }

  return { setLabels: setLabels, setScope: (s) => { scope = s; }, load: load, spanDicts: spanDicts, forget: forget, key: key,
    clear: () => { task = null; } };
};
