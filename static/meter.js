// The strength meter under new-password fields (web.Meter). Progressive
// enhancement only: the server checks every rule again, and the page works
// without this file. It needs static/zxcvbn.js (loaded before it) for the
// strength estimate and the common passwords.
//
// The banned-password check is services/banned's Checker, line for line:
// keep the two in step (normalisation, term lengths, scoring).
(function () {
  "use strict";
  var Z = window.WritebackZxcvbn;
  var boxes = document.querySelectorAll("[data-meter]");
  if (!Z || boxes.length === 0) { return; }

  var MIN_POINTS = 5, MIN_TERM = 3, MIN_INNER = 4, MIN_FUZZY = 6;
  var subs = { "0": "o", "1": "l", "!": "l", "|": "l", "i": "l", "3": "e", "4": "a", "@": "a", "$": "s", "5": "s", "7": "t", "+": "t", "8": "b" };
  var letter = /\p{L}/u, digit = /\p{Nd}/u, alnum = /[\p{L}\p{Nd}]+/gu;
  var chars = function (s) { return Array.from(s); };
  var norm = function (rs) { return rs.map(function (c) { return subs[c] || c; }); };
  var normalize = function (s) { return norm(chars(s.toLowerCase())).join(""); };

  // A list of terms as banned.NewList makes it.
  var List = function (terms) {
    this.set = new Set(); this.byLen = {}; this.inner = [];
    for (var i = 0; i < terms.length; i++) {
      var n = chars(normalize(terms[i].trim()));
      if (n.length < MIN_TERM) { continue; }
      var s = n.join("");
      if (this.set.has(s)) { continue; }
      this.set.add(s);
      if (n.length >= MIN_FUZZY - 1) { (this.byLen[n.length] = this.byLen[n.length] || []).push(n); }
      if (n.length >= MIN_INNER) { this.inner.push(n); }
    }
    this.inner.sort(function (a, b) { return b.length - a.length; });
  };
  var oneEdit = function (a, b) {
    var d = a.length - b.length;
    if (d < -1 || d > 1) { return false; }
    var i = 0, j = 0, edits = 0;
    while (i < a.length && j < b.length) {
      if (a[i] === b[j]) { i++; j++; continue; }
      if (++edits > 1) { return false; }
      if (a.length > b.length) { i++; } else if (a.length < b.length) { j++; } else { i++; j++; }
    }
    return edits + (a.length - i) + (b.length - j) <= 1;
  };
  List.prototype.has = function (n) {
    if (this.set.has(n.join(""))) { return true; }
    if (n.length < MIN_FUZZY) { return false; }
    for (var k = n.length - 1; k <= n.length + 1; k++) {
      var ts = this.byLen[k] || [];
      for (var i = 0; i < ts.length; i++) { if (oneEdit(n, ts[i])) { return true; } }
    }
    return false;
  };
  // The organisation's terms as the page carries them: hashes (see
  // banned.ClientRules), found exactly, by the hashes of the pieces of the
  // password computed beforehand (known).
  var Hashed = function (salt, hashes) { this.salt = salt; this.set = new Set(hashes); };
  Hashed.prototype.has = function (n, known) { return this.set.has(known[n.join("")]); };

  var common = new List(Z.passwords || []);

  var cls = function (c) { return letter.test(c) ? "a" : digit.test(c) ? "d" : "o"; };
  var points = function (rest) {
    var p = 0;
    for (var i = 0; i < rest.length;) {
      var k = cls(rest[i]), j = i + 1;
      while (j < rest.length && cls(rest[j]) === k) { j++; }
      var n = j - i;
      if (k === "a") { p += n; } else if (k === "d" && (n <= 4 || common.set.has(norm(rest.slice(i, j)).join("")))) { p++; } else if (k === "d") { p += n; } else if (n <= 2) { p++; } else { p += n; }
      i = j;
    }
    return p;
  };
  var cores = function (raw) {
    var i = 0, j = raw.length;
    while (i < raw.length && !letter.test(raw[i])) { i++; }
    while (j > i && !letter.test(raw[j - 1])) { j--; }
    var out = [[0, raw.length]];
    [[i, raw.length], [0, j], [i, j]].forEach(function (sp) {
      if (sp[0] < sp[1] && !out.some(function (o) { return o[0] === sp[0] && o[1] === sp[1]; })) { out.push(sp); }
    });
    return out;
  };
  // inner finds terms inside the password, longest first and without
  // overlap, and tells whether what is left scores below MIN_POINTS.
  var inner = function (raw, n, terms, has) {
    var used = raw.map(function () { return false; }), found = 0;
    terms.forEach(function (len, ti) {
      for (var at = 0; at + len <= n.length;) {
        var piece = n.slice(at, at + len);
        if (!has(piece, ti) || used.slice(at, at + len).indexOf(true) >= 0) { at++; continue; }
        for (var k = at; k < at + len; k++) { used[k] = true; }
        found++;
        at += len;
      }
    });
    if (found === 0) { return false; }
    var score = found;
    for (var i = 0; i < raw.length;) {
      if (used[i]) { i++; continue; }
      var j = i;
      while (j < raw.length && !used[j]) { j++; }
      score += points(raw.slice(i, j));
      i = j;
    }
    return score < MIN_POINTS;
  };
  var personalTerms = function (values) {
    var out = [];
    values.forEach(function (v) {
      v = (v || "").trim();
      if (v === "") { return; }
      var at = v.lastIndexOf("@");
      if (at > 0) { v = v.slice(0, at); }
      var k = v.indexOf("\\");
      if (k >= 0) { v = v.slice(k + 1); }
      var words = v.match(alnum) || [];
      out.push(words.join(""));
      out = out.concat(words);
    });
    return out;
  };

  var sha = function (s) {
    return crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)).then(function (buf) {
      var b = new Uint8Array(buf), h = "";
      for (var i = 0; i < b.length; i++) { h += (b[i] < 16 ? "0" : "") + b[i].toString(16); }
      return h;
    });
  };
  // hashes computes the hashes of every piece of n the organisation's
  // terms could be: the cores and every run of MIN_TERM to 64 characters.
  var hashes = function (custom, n) {
    var known = {}, jobs = [];
    if (!custom || !window.crypto || !crypto.subtle) { return Promise.resolve(known); }
    for (var i = 0; i < n.length; i++) {
      for (var j = i + MIN_TERM; j <= Math.min(n.length, i + 64); j++) {
        (function (s) {
          if (s in known) { return; }
          known[s] = "";
          jobs.push(sha(custom.salt + s).then(function (h) { known[s] = h; }));
        })(n.slice(i, j).join(""));
      }
    }
    return Promise.all(jobs).then(function () { return known; });
  };

  // check resolves to the rule that refuses password ("personal",
  // "custom", "common") or "" — banned.Checker.Check.
  var check = function (password, personal, custom, useCommon) {
    var raw = chars(password.toLowerCase());
    if (raw.length === 0) { return Promise.resolve(""); }
    var n = norm(raw);
    var mine = new List(personalTerms(personal));
    return hashes(custom, n).then(function (known) {
      var lists = [["personal", mine], ["custom", custom], ["common", useCommon ? common : null]];
      var spans = cores(raw);
      for (var s = 0; s < spans.length; s++) {
        var sp = spans[s], core = n.slice(sp[0], sp[1]);
        if (core.length < MIN_TERM) { continue; }
        for (var l = 0; l < lists.length; l++) {
          var list = lists[l][1];
          if (list && list.has(core, known) && 1 + points(raw.slice(0, sp[0])) + points(raw.slice(sp[1])) < MIN_POINTS) {
            return lists[l][0];
          }
        }
      }
      var lens = mine.inner.map(function (t) { return t.length; });
      if (inner(raw, n, lens, function (piece, ti) { return piece.join("") === mine.inner[ti].join(""); })) { return "personal"; }
      if (custom) {
        var all = [];
        for (var k = Math.min(64, n.length); k >= MIN_INNER; k--) { all.push(k); }
        if (inner(raw, n, all, function (piece) { return custom.set.has(known[piece.join("")]); })) { return "custom"; }
      }
      return "";
    });
  };

  // For the tests that hold this check against the server's (hashes: the
  // organisation's terms as banned.ClientRules gives them).
  window.WritebackBannedCheck = function (password, personal, useCommon, salt, hashes) {
    return check(password, personal, hashes && hashes.length ? new Hashed(salt, hashes) : null, useCommon);
  };

  // The page's texts in its language (web.scriptTexts), by their English
  // words, which they fall back to.
  var texts = {};
  try { texts = JSON.parse((document.getElementById("wb-texts") || {}).textContent || "{}") || {}; } catch (e) { texts = {}; }
  var tr = function (s) { return texts[s] || s; };
  // zxcvbn's own tips are English only (the bundle has no other language):
  // on a page in another language the meter shows no tip.
  var lang = (document.documentElement.lang || "en").toLowerCase();
  var tips = lang === "en" || lang.indexOf("en-") === 0;
  var messages = {
    common: tr("Too easy to guess: it is, or is close to, a password many people use."),
    custom: tr("It contains a word your organisation does not allow in passwords."),
    personal: tr("Too close to your name, your user name or your organisation's name.")
  };
  var strengths = ["Very weak", "Weak", "Fair", "Good", "Strong"].map(tr);

  boxes.forEach(function (box) {
    var input = document.getElementById(box.getAttribute("data-meter"));
    if (!input) { return; }
    var parse = function (name) { try { return JSON.parse(box.getAttribute(name) || "null") || []; } catch (e) { return []; } };
    var personal = parse("data-personal");
    var hashed = parse("data-custom");
    var custom = hashed.length ? new Hashed(box.getAttribute("data-salt") || "", hashed) : null;
    var useCommon = box.hasAttribute("data-common");
    var extra = document.getElementById(box.getAttribute("data-personal-field") || "");
    var bannedEl = box.querySelector("[data-meter-banned]");
    var bannedText = bannedEl ? bannedEl.textContent : "";
    var minEl = box.querySelector("[data-meter-min]");
    var bar = box.querySelector("[data-meter-bar]");
    var meter = bar.querySelector("meter");
    var label = bar.querySelector("[data-meter-label]");
    var seq = 0;
    var set = function (el, state, text) {
      el.classList.remove("static", "met", "unmet");
      if (state) { el.classList.add(state); }
      if (text !== undefined) { el.textContent = text; }
    };
    var update = function () {
      var v = input.value, mine = personal.slice();
      if (extra && extra.value) { mine.push(extra.value); }
      if (minEl) { set(minEl, chars(v).length >= parseInt(minEl.getAttribute("data-meter-min"), 10) ? "met" : ""); }
      if (v === "") {
        bar.hidden = true;
        if (bannedEl) { set(bannedEl, "static", bannedText); }
        return;
      }
      var r = Z.check(v, mine);
      bar.hidden = false;
      meter.value = r.score;
      var tip = tips && r.feedback && (r.feedback.warning || (r.feedback.suggestions || [])[0]);
      label.textContent = tr("Strength: %s").replace("%s", strengths[r.score]) + (tip ? ". " + tip : "");
      if (!bannedEl) { return; }
      var mySeq = ++seq;
      check(v, mine, custom, useCommon).then(function (rule) {
        if (mySeq !== seq) { return; } // a later keystroke wins
        if (rule) {
          set(bannedEl, "unmet", messages[rule]);
          bannedEl.setAttribute("data-rule", rule);
        } else {
          set(bannedEl, "met", bannedText);
          bannedEl.removeAttribute("data-rule");
        }
      });
    };
    input.addEventListener("input", update);
    if (extra) { extra.addEventListener("input", update); }
    update();
  });
})();
