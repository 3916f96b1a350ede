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
