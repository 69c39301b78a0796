// New notifications and run progress without reloading. The server pushes them (server-sent events on
// <base>/live, same origin, same session); when the stream cannot be held (an old proxy, the server away)
// the page falls back to asking /inbox/poll every 15 s, and tries the stream again later.
// Everything works without this script; it only updates the unread badge, announces what is new, and
// refreshes a routine run's page while the run is under way.
(function () {
  "use strict";
  var badge = document.getElementById("unread-count");
  var live = document.getElementById("live");
  if (!badge || !window.fetch) { return; }
  var pollUrl = badge.getAttribute("data-poll");
  var streamUrl = badge.getAttribute("data-live");
  var seen = null;
  var timer = null;
  var failures = 0;

  function refresh() {
    return fetch(pollUrl, { credentials: "same-origin", headers: { "accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        badge.textContent = String(data.unread);
        badge.hidden = data.unread === 0;
        var ids = data.latest.map(function (n) { return n.id; });
        if (seen !== null) {
          var fresh = data.latest.filter(function (n) { return seen.indexOf(n.id) < 0; });
          if (fresh.length) { live.textContent = fresh.map(function (n) { return n.title; }).join(" · "); }
        }
        seen = ids;
      })
      .catch(function () { /* offline for a moment: the next round tries again */ });
  }

  function startPolling() {
    if (timer === null) { timer = setInterval(refresh, 15000); }
  }

  function stopPolling() {
    if (timer !== null) { clearInterval(timer); timer = null; }
  }

  // A routine run's page (data-run on its card) reloads its card when its run moves.
  var runCard = document.querySelector("[data-run]");
  function runMoved(data) {
    if (!runCard || data.run_id !== runCard.getAttribute("data-run")) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-run]");
        if (fresh) { runCard.replaceWith(fresh); runCard = fresh; }
      })
      .catch(function () { /* the next event tries again */ });
  }

  function connect() {
    if (!window.EventSource || !streamUrl) { startPolling(); return; }
    var source = new EventSource(streamUrl);
    source.onopen = function () { failures = 0; stopPolling(); };
    source.addEventListener("notification", function () { refresh(); });
    source.addEventListener("run", function (e) {
      try { runMoved(JSON.parse(e.data)); } catch (err) { /* not ours */ }
    });
    source.onerror = function () {
      // EventSource retries by itself while the server answers; a refusal (401) or repeated failures
      // close it: poll instead, and try the stream again in a minute.
      failures += 1;
      if (source.readyState === EventSource.CLOSED || failures >= 3) {
        source.close();
        startPolling();
        setTimeout(connect, 60000);
      }
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  refresh();
  connect();
})();
