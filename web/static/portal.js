// New notifications without reloading: ask this user's portal (same origin, same session) every 15 s.
// Everything works without it; it only updates the unread badge and announces what is new.
(function () {
  "use strict";
  var badge = document.getElementById("unread-count");
  var live = document.getElementById("live");
  if (!badge || !window.fetch) { return; }
  var url = badge.getAttribute("data-poll");
  var seen = null;
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "accept": "application/json" } })
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
  poll();
  setInterval(poll, 15000);
})();
