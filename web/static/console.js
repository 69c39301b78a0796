// Staff console keyboard: "/" focuses the search; "g" then "o" / "c" go to the overview / companies.
// Everything works without this file; it only adds shortcuts.
(function () {
  "use strict";
  var pending = null;
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "/") {
      var search = document.querySelector("[data-search]");
      if (search) { event.preventDefault(); search.focus(); search.select(); }
      return;
    }
    if (pending === "g") {
      pending = null;
      var to = { o: "/staff/", c: "/staff/tenants", p: "/staff/people", f: "/staff/feedback", a: "/staff/audit" }[event.key];
      if (to) { event.preventDefault(); window.location.assign(to); }
      return;
    }
    if (event.key === "g") { pending = "g"; setTimeout(function () { pending = null; }, 1200); }
  });
})();
