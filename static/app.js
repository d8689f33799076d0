// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Unlock depends on writeback: mirror the server's rule while the admin edits.
  var wbNo = document.getElementById("writeback-no");
  var wbYes = document.getElementById("writeback-yes");
  if (wbNo && wbYes && !wbYes.disabled) {
    var unlock = document.querySelectorAll("input[name=unlock]");
    var note = document.getElementById("unlock-note");
    var sync = function () {
      var off = wbNo.checked;
      unlock.forEach(function (el) {
        el.disabled = off;
        if (off && el.value === "no") { el.checked = true; }
      });
      if (note) { note.hidden = !off; }
    };
    wbNo.addEventListener("change", sync);
    wbYes.addEventListener("change", sync);
  }
  // Directory connection: through writeback agents the direct settings are
  // ignored (saving clears them), so they are hidden while that is chosen.
  // Without this file they stay visible with a note saying so.
  var modeDirect = document.getElementById("mode-direct");
  var modeAgents = document.getElementById("mode-agents");
  var directFields = document.getElementById("direct-fields");
  if (modeDirect && modeAgents && directFields) {
    var directNote = document.getElementById("direct-fields-note");
    var syncMode = function () {
      directFields.hidden = modeAgents.checked;
      if (directNote) { directNote.hidden = modeDirect.checked; }
    };
    modeDirect.addEventListener("change", syncMode);
    modeAgents.addEventListener("change", syncMode);
    syncMode();
  }
  // Confirm destructive buttons that ask for it.
  document.querySelectorAll("[data-confirm]").forEach(function (el) {
    el.addEventListener("click", function (ev) {
      if (!window.confirm(el.getAttribute("data-confirm"))) { ev.preventDefault(); }
    });
  });
  // Password rules: tick each as it is met while the person types. The
  // server checks the same rules again; this only helps.
  var pw = document.querySelector("input[data-rules]");
  var confirmPw = document.getElementById("confirm");
  if (pw) {
    var classes = function (v) {
      var n = 0;
      if (/[a-z]/.test(v)) { n++; }
      if (/[A-Z]/.test(v)) { n++; }
      if (/[0-9]/.test(v)) { n++; }
      if (/[^A-Za-z0-9]/.test(v)) { n++; }
      return n;
    };
    var mark = function (id, ok) {
      var el = document.getElementById(id);
      if (el) { el.classList.toggle("met", ok); el.setAttribute("aria-checked", ok ? "true" : "false"); }
    };
    var check = function () {
      var v = pw.value;
      var len = document.getElementById("rule-length");
      if (len) { mark("rule-length", Array.from(v).length >= parseInt(len.getAttribute("data-min"), 10)); }
      mark("rule-complex", classes(v) >= 3);
      mark("rule-match", v !== "" && confirmPw && confirmPw.value === v);
    };
    pw.addEventListener("input", check);
    if (confirmPw) { confirmPw.addEventListener("input", check); }
  }
  // Show-password toggles for every password field.
  document.querySelectorAll("input[type=password]").forEach(function (el) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "link reveal";
    b.textContent = "Show";
    b.setAttribute("aria-controls", el.id);
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", function () {
      var show = el.type === "password";
      el.type = show ? "text" : "password";
      b.textContent = show ? "Hide" : "Show";
      b.setAttribute("aria-pressed", show ? "true" : "false");
    });
    el.insertAdjacentElement("afterend", b);
  });
  // Show times in the viewer's time zone; UTC stays in the title.
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) { el.title = el.textContent; el.textContent = d.toLocaleString(); }
  });
})();
