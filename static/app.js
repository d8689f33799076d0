// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // The employee pages carry their texts translated (web.scriptTexts): a
  // text is looked up by its English words, which it falls back to.
  var texts = {};
  try { texts = JSON.parse((document.getElementById("wb-texts") || {}).textContent || "{}") || {}; } catch (e) { texts = {}; }
  var tr = function (s, v) {
    var out = texts[s] || s;
    return v === undefined ? out : out.replace("%s", v);
  };
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
      if (el) { el.classList.toggle("met", ok); }
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
    b.textContent = tr("Show");
    b.setAttribute("aria-controls", el.id);
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", function () {
      var show = el.type === "password";
      el.type = show ? "text" : "password";
      b.textContent = show ? tr("Hide") : tr("Show");
      b.setAttribute("aria-pressed", show ? "true" : "false");
    });
    el.insertAdjacentElement("afterend", b);
  });
  // Passkeys: a form with data-webauthn ("create" or "get") carries the
  // options the portal made in data-options. Submitting it runs the
  // ceremony and posts the credential's JSON in its "credential" field;
  // without this file the form posts nothing and the portal says why.
  var b64url = {
    dec: function (s) {
      s = s.replace(/-/g, "+").replace(/_/g, "/");
      while (s.length % 4) { s += "="; }
      var bin = atob(s), out = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
      return out.buffer;
    },
    enc: function (buf) {
      var b = new Uint8Array(buf), s = "";
      for (var i = 0; i < b.length; i++) { s += String.fromCharCode(b[i]); }
      return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    }
  };
  var parseOptions = function (kind, o) {
    var PKC = window.PublicKeyCredential;
    if (kind === "create" && PKC.parseCreationOptionsFromJSON) { return PKC.parseCreationOptionsFromJSON(o); }
    if (kind === "get" && PKC.parseRequestOptionsFromJSON) { return PKC.parseRequestOptionsFromJSON(o); }
    o.challenge = b64url.dec(o.challenge);
    if (o.user) { o.user.id = b64url.dec(o.user.id); }
    ["excludeCredentials", "allowCredentials"].forEach(function (k) {
      (o[k] || []).forEach(function (c) { c.id = b64url.dec(c.id); });
    });
    return o;
  };
  var credentialJSON = function (c) {
    if (c.toJSON) { return JSON.stringify(c.toJSON()); }
    var r = c.response, out = { id: c.id, rawId: b64url.enc(c.rawId), type: c.type, response: {
      clientDataJSON: b64url.enc(r.clientDataJSON) }, clientExtensionResults: c.getClientExtensionResults() };
    if (r.attestationObject) {
      out.response.attestationObject = b64url.enc(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    }
    if (r.authenticatorData) {
      out.response.authenticatorData = b64url.enc(r.authenticatorData);
      out.response.signature = b64url.enc(r.signature);
      if (r.userHandle) { out.response.userHandle = b64url.enc(r.userHandle); }
    }
    return JSON.stringify(out);
  };
  document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
    var kind = form.getAttribute("data-webauthn");
    var field = form.querySelector("input[name=credential]");
    var errEl = form.querySelector("[data-webauthn-error]");
    var fail = function (msg) {
      if (errEl) { errEl.textContent = msg; errEl.hidden = false; }
    };
    form.addEventListener("submit", function (ev) {
      if (field.value !== "") { return; }
      ev.preventDefault();
      if (!window.PublicKeyCredential || !navigator.credentials) {
        fail(tr("This browser cannot use passkeys here. Passkeys need a portal address with a name (not an IP address) and https."));
        return;
      }
      var opts;
      try { opts = parseOptions(kind, JSON.parse(form.getAttribute("data-options"))); } catch (e) {
        fail(tr("The passkey request could not be read. Reload the page and try again."));
        return;
      }
      var p = kind === "create" ? navigator.credentials.create({ publicKey: opts }) : navigator.credentials.get({ publicKey: opts });
      p.then(function (cred) {
        field.value = credentialJSON(cred);
        form.submit();
      }, function (e) {
        fail(e && e.name === "NotAllowedError" ? tr("The passkey request was cancelled or timed out. Try again.") :
          tr("Your browser could not use a passkey (%s). Try again, or use another way.", e && e.name ? e.name : "error"));
      });
    });
  });
  // Proof-of-work challenge (services/challenge): after many attempts a
  // step that sends a code or checks an answer needs the number n with
  // SHA-256(salt + n) = challenge. It is solved here at once, in batches
  // through WebCrypto, and its solution goes into every form's "pow" field;
  // a form sent before it is done is sent when it is.
  var powBox = document.querySelector("[data-pow]");
  if (powBox) {
    var powStatus = powBox.querySelector("[data-pow-status]");
    var powFields = document.querySelectorAll("input[data-pow-field]");
    var powSay = function (msg) { if (powStatus) { powStatus.textContent = msg; } };
    var powDone = false, powWaiting = null;
    var hex = function (buf) {
      var b = new Uint8Array(buf), s = "";
      for (var i = 0; i < b.length; i++) { s += (b[i] < 16 ? "0" : "") + b[i].toString(16); }
      return s;
    };
    var powChallenge;
    try { powChallenge = JSON.parse(powBox.getAttribute("data-pow")); } catch (e) { powChallenge = null; }
    if (!powChallenge || !window.crypto || !window.crypto.subtle || !window.TextEncoder) {
      powSay(tr("Your browser cannot do the automatic check this step needs (it needs a current browser and a portal address with https). Try another browser, or contact your helpdesk."));
    } else {
      powSay(tr("Checking your browser automatically before this step. This takes a few seconds…"));
      var enc = new TextEncoder(), batch = 500, powStart = Date.now();
      var found = function (n) {
        var payload = btoa(JSON.stringify({ algorithm: powChallenge.algorithm, challenge: powChallenge.challenge,
          number: n, salt: powChallenge.salt, signature: powChallenge.signature }));
        powFields.forEach(function (f) { f.value = payload; });
        powDone = true;
        powBox.setAttribute("data-pow-done", "true");
        powBox.setAttribute("data-pow-ms", String(Date.now() - powStart));
        powSay(tr("Check done. You can go on."));
        if (powWaiting) { var f = powWaiting; powWaiting = null; f.requestSubmit ? f.requestSubmit() : f.submit(); }
      };
      var run = function (start) {
        if (start > powChallenge.maxnumber) {
          powSay(tr("The automatic check could not finish. Reload the page to try again."));
          return;
        }
        var jobs = [];
        for (var n = start; n < start + batch && n <= powChallenge.maxnumber; n++) {
          jobs.push(crypto.subtle.digest("SHA-256", enc.encode(powChallenge.salt + n)));
        }
        Promise.all(jobs).then(function (sums) {
          for (var i = 0; i < sums.length; i++) {
            if (hex(sums[i]) === powChallenge.challenge) { found(start + i); return; }
          }
          run(start + batch);
        }, function () { powSay(tr("The automatic check could not run in this browser. Try another browser, or contact your helpdesk.")); });
      };
      run(0);
    }
    powFields.forEach(function (f) {
      f.form.addEventListener("submit", function (ev) {
        if (powDone) { return; }
        ev.preventDefault();
        powWaiting = f.form;
        powSay(tr("Almost there: the automatic check is still running, and your request is sent when it is done."));
      });
    });
  }
  // Show times in the viewer's time zone; UTC stays in the title.
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) { el.title = el.textContent; el.textContent = d.toLocaleString(document.documentElement.lang || undefined); }
  });
  // The language switcher: choosing a language is enough.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });
})();
