// The pages' JSON API: every request carries the page's session (and its
// token, where the server needs one); an error reply rejects with its message.
"use strict";
window.makeApi = function (session, token) {
  return function api(path, body) {
    const sep = path.includes("?") ? "&" : "?";
    const url = "api/" + path + sep + "session=" + encodeURIComponent(session);
    const headers = { "Content-Type": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    const init = body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) };
    return fetch(url, init).then((r) => r.json().then((data) => {
      if (!r.ok) throw new Error(data.error || r.statusText);
      return data;
    }));
  };
};

// What both pages do around their questions: load the server's info, the
// session's history and first questions, then ask again while the page has
// none and more may come. `hooks`: open() (how many to ask for), empty(),
// setup(info), start(history reply, questions reply), receive(questions
// reply), refresh() (the progress).
window.makePage = function (api, setStatus, hooks) {
  function poll() {
    if (!hooks.empty()) return;
    api("questions?n=" + hooks.open()).then((q) => {
      hooks.receive(q);
      if (hooks.empty() && !q.finished) setTimeout(poll, 1000);
    }).catch(() => setTimeout(poll, 2000));
  }

  function start(historySize) {
    api("info").then((info) => {
      hooks.setup(info);
      return Promise.all([api("history?n=" + historySize), api("questions?n=" + hooks.open())]);
    }).then(([h, q]) => {
      hooks.start(h, q);
      if (hooks.empty() && !q.finished) setTimeout(poll, 1000);
      document.body.dataset.ready = "1";
      hooks.refresh();
    }).catch((e) => setStatus(e.message));
    setInterval(hooks.refresh, 5000);
  }

  return { poll, start };
};
