// Text-category questions on the teach page (`teach --task textcat`): a
// label question shows its label as a badge; a choice question its options,
// numbered 1-9, the model's choice pre-selected. Number keys toggle an
// option (exclusive labels: select exactly that one). Text only (textContent).
"use strict";
window.makeTextcat = function (optionsEl) {
  let exclusive = false;
  let task = null;
  let selected = new Set();

  function isTextcat(t) { return !!t && (typeof t.label === "string" || Array.isArray(t.options)); }
  function isChoice(t) { return !!t && Array.isArray(t.options); }

  function render() {
    optionsEl.textContent = "";
    if (!isChoice(task)) return;
    task.options.forEach((option, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "option" + (selected.has(option.id) ? " selected" : "");
      b.dataset.id = String(option.id);
      b.setAttribute("aria-pressed", selected.has(option.id) ? "true" : "false");
      const n = document.createElement("kbd");
      n.textContent = i < 9 ? String(i + 1) : "";
      b.appendChild(n);
      b.appendChild(document.createTextNode(" " + (option.text || option.id)));
      b.addEventListener("click", () => toggle(i));
      optionsEl.appendChild(b);
    });
  }

  function toggle(i) {
    if (!isChoice(task) || i >= task.options.length) return;
    const id = task.options[i].id;
    if (exclusive) selected = new Set([id]);
    else if (selected.has(id)) selected.delete(id);
    else selected.add(id);
    render();
  }

  return {
    isTextcat,
    setExclusive(value) { exclusive = !!value; },
    // Show a question (null: none); a choice starts from its `accept`.
    show(t) {
      task = isTextcat(t) ? t : null;
      selected = new Set(isChoice(task) && Array.isArray(task.accept) ? task.accept : []);
      render();
    },
    // The question as answered: a choice with the options selected, in their order.
    answered(t) {
      if (!isChoice(t) || t !== task) return t;
      return Object.assign({}, t, { accept: t.options.map((o) => o.id).filter((id) => selected.has(id)) });
    },
    // A number key on a choice question: toggles its option. RETURNS whether handled.
    key(e) {
      if (!isChoice(task) || !/^[1-9]$/.test(e.key)) return false;
      toggle(Number(e.key) - 1);
      return true;
    },
    // A history line's words: the label, or the options chosen.
    summary(t) {
      if (isChoice(t)) return "[" + (t.accept || []).join(", ") + "]";
      return t.label;
    },
  };
};
