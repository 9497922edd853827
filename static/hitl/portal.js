/* HITL Portal, every page: live deadline countdowns, the shortcuts help (?), and a tiny
   key-binding helper the queue and review scripts share. No dependencies. */
(function () {
  "use strict";
  var HITL = (window.HITL = window.HITL || {});

  HITL.typing = function (ev) {
    var t = ev.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  };

  HITL.keys = {};
  HITL.bind = function (key, fn) { HITL.keys[key] = fn; };

  function humanize(seconds) {
    var s = Math.floor(Math.abs(seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) {
      var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      return h + "h " + String(m).padStart(2, "0") + "m";
    }
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }
  HITL.humanize = humanize;

  var soonSeconds = 600;
  HITL.tick = function () {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("data-deadline")) - now) / 1000;
      if (isNaN(left)) return;
      var countdown = el.classList.contains("countdown");
      el.classList.toggle("overdue", left <= 0);
      el.classList.toggle("soon", left > 0 && left <= soonSeconds);
      if (left <= 0) el.textContent = "overdue " + humanize(left);
      else el.textContent = humanize(left) + (countdown ? " left" : "");
    });
  };

  function toggleHelp(show) {
    var help = document.getElementById("shortcuts-help");
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
    if (!help.hidden) {
      var btn = help.querySelector("[data-close-help]");
      if (btn) btn.focus();
    }
  }
  HITL.toggleHelp = toggleHelp;

  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { toggleHelp(false); if (HITL.keys.Escape) HITL.keys.Escape(ev); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (HITL.typing(ev)) return;
    if (ev.key === "?") { ev.preventDefault(); toggleHelp(); return; }
    var help = document.getElementById("shortcuts-help");
    if (help && !help.hidden) return;
    var fn = HITL.keys[ev.key];
    if (fn && fn(ev) !== false) ev.preventDefault();
  });

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest("[data-shortcuts-help], [data-close-help]");
    if (t) { ev.preventDefault(); toggleHelp(t.hasAttribute("data-shortcuts-help")); }
    if (ev.target.id === "shortcuts-help") toggleHelp(false);
  });

  document.addEventListener("DOMContentLoaded", function () {
    HITL.tick();
    setInterval(HITL.tick, 1000);
  });
})();

// A secret shown once (a new API token, a rotated webhook secret): selected on focus, for
// copying.
document.addEventListener("focusin", (event) => {
  const field = event.target;
  if (field instanceof HTMLInputElement && field.matches("[data-select-on-focus]")) {
    field.select();
  }
});
