/* The review page: shortcuts (j/k next/previous, a approve, r reject, e edit, n answer,
   c claim, s diff layout, u queue), unified/side-by-side diffs, a live original → edited
   diff for "approve with edits" (rendered by the server, the same renderer as the no-script
   confirmation step), and a client-side check that a rejection has a reason. */
(function () {
  "use strict";
  var HITL = window.HITL;

  function $(sel) { return document.querySelector(sel); }

  function setDiffMode(mode) {
    document.body.classList.toggle("diff-mode-split", mode === "split");
    document.querySelectorAll("[data-diff-mode]").forEach(function (b) {
      b.classList.toggle("active", b.getAttribute("data-diff-mode") === mode);
    });
    try { localStorage.setItem("hitl-diff-mode", mode); } catch (e) { /* ignore */ }
  }

  function go(attr) {
    var review = $("#review");
    var url = review && review.getAttribute(attr);
    if (url) window.location.href = url;
  }

  function arm(button) {
    document.querySelectorAll(".button.armed").forEach(function (b) { b.classList.remove("armed"); });
    if (!button) return;
    button.classList.add("armed");
    button.focus();
  }

  function openEdit() {
    var box = $("#edit-box");
    if (!box) return;
    box.open = true;
    var field = box.querySelector("textarea");
    if (field) { field.focus(); }
  }

  var previewTimer = null;
  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, 350);
  }

  function preview() {
    var form = $("#decision-form"), review = $("#review"), out = $("#edit-preview");
    if (!form || !review || !out) return;
    var data = new FormData(form);
    data.delete("outcome");
    fetch(review.getAttribute("data-preview-url"), {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-CSRFToken": data.get("csrfmiddlewaretoken") }
    })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) {
        var confirm = form.querySelector("input[name=confirm]");
        var btn = form.querySelector("button[value=modify]");
        if (res.ok) {
          out.innerHTML = res.body.html;
          if (confirm) confirm.value = res.body.confirm;
          if (btn) btn.textContent = "Approve with these edits";
        } else {
          var msgs = [];
          Object.keys(res.body.errors || {}).forEach(function (k) { msgs = msgs.concat(res.body.errors[k]); });
          out.innerHTML = "";
          var p = document.createElement("p");
          p.className = "field-error";
          p.textContent = msgs.join(" ");
          out.appendChild(p);
          if (confirm) confirm.value = "";
          if (btn) btn.textContent = "Review edits, then approve";
        }
      })
      .catch(function () { /* the server-side confirmation step still shows the diff */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var mode = "unified";
    try { mode = localStorage.getItem("hitl-diff-mode") || "unified"; } catch (e) { /* ignore */ }
    setDiffMode(mode);
    document.querySelectorAll("[data-diff-mode]").forEach(function (b) {
      b.addEventListener("click", function () { setDiffMode(b.getAttribute("data-diff-mode")); });
    });

    var form = $("#decision-form");
    if (form) {
      var clicked = null;
      form.addEventListener("click", function (ev) {
        var b = ev.target.closest("button[name=outcome]");
        if (b) clicked = b.value;
      });
      form.addEventListener("submit", function (ev) {
        var outcome = (ev.submitter && ev.submitter.value) || clicked;
        var comment = form.querySelector("[name=comment]");
        var named = form.querySelector("input[name=reject_option]:checked");  // a named reason
        if (outcome === "reject" && comment && !comment.value.trim() && !named) {
          ev.preventDefault();
          var err = document.getElementById("comment-error");
          if (!err) {
            err = document.createElement("div");
            err.id = "comment-error";
            err.className = "field-error";
            comment.insertAdjacentElement("afterend", err);
          }
          err.textContent = "A rejection needs a reason the agent can act on.";
          comment.focus();
          return;
        }
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
        // Disabled buttons are not submitted: carry the chosen outcome in a hidden field.
        var hidden = document.createElement("input");
        hidden.type = "hidden"; hidden.name = "outcome"; hidden.value = outcome || "";
        form.appendChild(hidden);
      });
      form.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && ev.target.name === "comment") {
          ev.preventDefault();
          var mode = form.getAttribute("data-mode") || "reject";
          var b = form.querySelector("button[value=" + mode + "]");
          if (b) b.click();
        }
      });
      var edit = $("#edit-box");
      if (edit) {
        edit.querySelectorAll("textarea").forEach(function (t) { t.addEventListener("input", schedulePreview); });
        edit.addEventListener("toggle", function () { if (edit.open) schedulePreview(); });
      }
    }

    HITL.bind("j", function () { go("data-next-url"); });
    HITL.bind("k", function () { go("data-prev-url"); });
    HITL.bind("u", function () { go("data-queue-url"); });
    HITL.bind("s", function () { setDiffMode(document.body.classList.contains("diff-mode-split") ? "unified" : "split"); });
    HITL.bind("c", function () { var b = $("[data-shortcut-claim]"); if (b) b.click(); });
    HITL.bind("a", function () {
      var b = form && form.querySelector("button[value=approve]");
      if (b) { form.setAttribute("data-mode", "approve"); arm(b); }
    });
    HITL.bind("r", function () {
      if (!form) return;
      form.setAttribute("data-mode", "reject");
      arm(form.querySelector("button[value=reject]"));
      var c = form.querySelector("[name=comment]");
      if (c) c.focus();
    });
    // Phones: the bar at the bottom of the screen; Reject goes to the reason box first.
    var mobileReject = $("[data-mobile-reject]");
    if (mobileReject && form) {
      mobileReject.addEventListener("click", function (ev) {
        ev.preventDefault();
        form.setAttribute("data-mode", "reject");
        var c = form.querySelector("[name=comment]");
        if (c) { c.scrollIntoView({ block: "center" }); c.focus(); }
      });
    }
    HITL.bind("e", openEdit);
    HITL.bind("n", function () {
      var box = $("#answer-box");
      var f = box && box.querySelector("input, textarea");
      if (f) f.focus();
    });
    HITL.bind("Escape", function () { arm(null); });
  });
})();
