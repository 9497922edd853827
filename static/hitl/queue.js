/* The queue page: j/k to move, o/Enter to open, / to search, and live updates: poll a tiny
   fingerprint endpoint; when it moves, refetch this page and swap the table in place. */
(function () {
  "use strict";
  var HITL = window.HITL;
  var selected = -1;

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#result_list tbody tr")); }

  function select(i) {
    var all = rows();
    if (!all.length) return;
    selected = Math.max(0, Math.min(all.length - 1, i));
    all.forEach(function (r, n) { r.classList.toggle("kb-selected", n === selected); });
    all[selected].scrollIntoView({ block: "nearest" });
    try { sessionStorage.setItem("hitl-queue-sel", String(selected)); } catch (e) { /* private mode */ }
  }

  function open() {
    var r = rows()[selected];
    var a = r && r.querySelector("a.cp-title");
    if (a) window.location.href = a.href;
  }

  HITL.bind("j", function () { select(selected + 1); });
  HITL.bind("k", function () { select(selected - 1); });
  HITL.bind("o", open);
  HITL.bind("Enter", function () {
    var focused = document.activeElement;
    if (selected < 0 || (focused && focused !== document.body)) return false;  // native Enter
    open();
  });
  HITL.bind("/", function () { var s = document.getElementById("searchbar"); if (s) s.focus(); });

  function ids(root) {
    var out = {};
    root.querySelectorAll("#result_list [data-cp]").forEach(function (a) { out[a.getAttribute("data-cp")] = true; });
    return out;
  }

  function refresh(bar) {
    return fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var before = ids(document);
        ["#changelist-form", "#queue-bar"].forEach(function (sel) {
          var fresh = doc.querySelector(sel), cur = document.querySelector(sel);
          if (fresh && cur) cur.replaceWith(fresh);
        });
        var added = 0;
        document.querySelectorAll("#result_list [data-cp]").forEach(function (a) {
          if (!before[a.getAttribute("data-cp")]) { a.closest("tr").classList.add("is-new"); added++; }
        });
        if (selected >= 0) select(selected);
        HITL.tick();
        var live = document.getElementById("queue-live");
        if (live) live.textContent = added ? added + " new item" + (added > 1 ? "s" : "") + " · updated " + new Date().toLocaleTimeString() : "Updated " + new Date().toLocaleTimeString();
        return document.getElementById("queue-bar");
      });
  }

  function poll(bar) {
    var url = bar.getAttribute("data-poll-url");
    var seq = bar.getAttribute("data-poll-seq");
    var every = parseInt(bar.getAttribute("data-poll-seconds") || "15", 10) * 1000;
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (data && String(data.seq) !== String(seq)) {
            seq = String(data.seq);
            return refresh(bar);
          }
        })
        .catch(function () { /* offline for a moment: try again next tick */ })
        .then(function () { busy = false; });
    }, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var bar = document.getElementById("queue-bar");
    if (bar) poll(bar);
    var saved = -1;
    try { saved = parseInt(sessionStorage.getItem("hitl-queue-sel") || "-1", 10); } catch (e) { /* ignore */ }
    if (saved >= 0 && rows().length) select(Math.min(saved, rows().length - 1));
  });
})();
