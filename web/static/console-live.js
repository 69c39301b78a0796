// A routine run's page in the staff console: the server pushes the tenant's run progress (server-sent
// events on <tenant>/live); each event about this run has htmx fetch the progress block again. While the
// stream is open the block's two-second poll stands down (its trigger's filter reads window.backofficeLive);
// when the stream fails, the poll takes over again.
(function () {
  "use strict";
  var block = document.getElementById("run-progress");
  if (!block || !window.EventSource || !window.htmx) { return; }
  var url = block.getAttribute("data-live");
  var run = block.getAttribute("data-run");
  if (!url || !run) { return; }
  var source = new EventSource(url);
  source.onopen = function () { window.backofficeLive = true; };
  source.onerror = function () { window.backofficeLive = false; };  // EventSource reconnects by itself
  source.addEventListener("run", function (e) {
    var data;
    try { data = JSON.parse(e.data); } catch (err) { return; }
    var current = document.getElementById("run-progress");  // swapped by htmx: look it up each time
    if (current && data.run_id === run && current.hasAttribute("hx-get")) { window.htmx.trigger(current, "live"); }
    if (data.finished) { source.close(); window.backofficeLive = false; }
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
