// Keeps a page's live region (#live) current: every few seconds, while the tab is visible
// and nobody is typing in it, fetch the same URL with `X-Live: 1` (the server answers with
// only the region) and swap it in when it changed. No other script runs on these pages.
(function () {
  "use strict";
  var region = document.getElementById("live");
  if (!region) { return; }
  var seconds = parseInt(region.getAttribute("data-refresh") || "5", 10);
  var busy = false;
  function editing() {
    var active = document.activeElement;
    return active && region.contains(active) &&
      /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }
  function refresh() {
    if (busy || document.hidden || editing()) { return; }
    busy = true;
    fetch(window.location.href, {
      headers: { "X-Live": "1" }, credentials: "same-origin", cache: "no-store",
      redirect: "error"
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.text();
    }).then(function (html) {
      if (html !== region.innerHTML) { region.innerHTML = html; }
      region.removeAttribute("data-stale");
    }).catch(function () {
      region.setAttribute("data-stale", "true");  // shown by the stylesheet; tried again
    }).then(function () { busy = false; });
  }
  window.setInterval(refresh, Math.max(seconds, 2) * 1000);
})();
