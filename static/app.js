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
  // Confirm destructive buttons that ask for it.
  document.querySelectorAll("[data-confirm]").forEach(function (el) {
    el.addEventListener("click", function (ev) {
      if (!window.confirm(el.getAttribute("data-confirm"))) { ev.preventDefault(); }
    });
  });
  // Show times in the viewer's time zone; UTC stays in the title.
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) { el.title = el.textContent; el.textContent = d.toLocaleString(); }
  });
})();
