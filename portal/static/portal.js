/* The portal's only script (the page works without it): check digits, "show PIN", and the heartbeat. */
(function () {
  "use strict";

  // Damm's quasigroup (as in rlm_hotspot/core/cardcode.py): catches every single-digit typo and every
  // swap of adjacent digits before the form is sent.
  var DAMM = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2], [7, 0, 9, 2, 1, 5, 4, 8, 6, 3], [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6], [6, 1, 2, 3, 0, 4, 5, 9, 7, 8], [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4], [8, 9, 4, 5, 3, 6, 2, 0, 1, 7], [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0]
  ];
  var MIN_DIGITS = 6, MAX_DIGITS = 20;

  function cardNumberLooksRight(text) {
    var digits = text.replace(/[\s.\-]/g, "");
    if (!/^[0-9]+$/.test(digits) || digits.length < MIN_DIGITS || digits.length > MAX_DIGITS) { return false; }
    var interim = 0;
    for (var i = 0; i < digits.length; i++) { interim = DAMM[interim][digits.charCodeAt(i) - 48]; }
    return interim === 0;
  }

  function watchCardNumber(input) {
    var problem = document.getElementById(input.id + "-problem");
    function show(wrong) {
      problem.hidden = !wrong;
      input.setAttribute("aria-invalid", wrong ? "true" : "false");
    }
    input.addEventListener("blur", function () { if (input.value.trim()) { show(!cardNumberLooksRight(input.value)); } });
    input.addEventListener("input", function () { if (cardNumberLooksRight(input.value)) { show(false); } });
    input.form.addEventListener("submit", function (event) {
      if (input.value.trim() && !cardNumberLooksRight(input.value)) {
        event.preventDefault();
        show(true);
        input.focus();
      }
    });
  }

  function offerShowPin(box) {
    var pin = document.getElementById(box.getAttribute("data-show-pin"));
    box.parentNode.hidden = false;
    box.addEventListener("change", function () { pin.type = box.checked ? "text" : "password"; });
  }

  // The status page is the session's keepalive. It beats every N s, and says what happens to it (Page
  // Lifecycle): "hidden" when it goes to the background (a phone may freeze it: the hotspot then keeps the
  // session for its longer hidden grace), "visible" when it is back, "closed" when it is closed (the
  // session ends a few seconds later, unless a page of it speaks again: a reload, another tab).
  function heartbeat(main) {
    var url = main.getAttribute("data-heartbeat");
    var stateUrl = main.getAttribute("data-page-state");
    var token = main.getAttribute("data-csrf");
    var interval = parseInt(main.getAttribute("data-interval"), 10) * 1000;
    var lost = document.getElementById("connection-lost");
    var timer = null;
    var moving = false;  // this page's own link or form is taking the guest to the next portal page
    var gone = false;  // pagehide has said what became of the page: a later "hidden" must not undo it
    var tabs = window.BroadcastChannel ? new BroadcastChannel("hotspot-status") : null;

    function show(fields) {
      Object.keys(fields).forEach(function (name) {
        document.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { el.textContent = fields[name]; });
      });
    }
    function beatIn(ms) {
      window.clearTimeout(timer);
      timer = window.setTimeout(beat, ms);
    }
    function ask(target, body) {
      fetch(target, {
        method: "POST", credentials: "same-origin", cache: "no-store", body: body,
        headers: { "X-CSRF-Token": token, "Accept": "application/json" }
      }).then(function (response) {
        if (!response.ok) { throw new Error("heartbeat " + response.status); }
        return response.json();
      }).then(function (state) {
        lost.hidden = true;
        if (!state.open) { window.location.reload(); return; }  // the server renders the "ended" page
        show(state.fields);
        interval = (state.next_heartbeat_s || interval / 1000) * 1000;
        beatIn(interval);
      }).catch(function () {
        lost.hidden = false;
        beatIn(Math.min(interval, 5000));
      });
    }
    function beat() { ask(url, null); }
    function say(state) {  // a beacon still leaves a page that is being hidden or closed
      var body = new URLSearchParams({ state: state, csrf_token: token });
      if (!(navigator.sendBeacon && navigator.sendBeacon(stateUrl, body))) {
        fetch(stateUrl, { method: "POST", credentials: "same-origin", body: body, keepalive: true }).catch(function () {});
      }
    }

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") { if (!gone) { say("hidden"); } return; }
      ask(stateUrl, new URLSearchParams({ state: "visible" }));  // back: at once, the numbers may be old
    });
    window.addEventListener("pagehide", function (event) {
      gone = true;
      if (moving) { return; }
      say(event.persisted ? "hidden" : "closed");  // persisted: kept in the back/forward cache, may return
      if (tabs) { tabs.postMessage("closed"); }
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) { moving = gone = false; ask(stateUrl, new URLSearchParams({ state: "visible" })); }
    });
    document.addEventListener("submit", function (event) { moving = moving || !event.defaultPrevented; });
    document.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("a[href]") : null;
      if (link && !event.defaultPrevented && link.target !== "_blank" && link.origin === window.location.origin) {
        moving = true;
      }
    });
    // Another status page of this browser was closed: speak, so that its "closed" does not end the session.
    if (tabs) { tabs.onmessage = function () { beatIn(1000); }; }
    // A page that replaced one (a reload) speaks soon: the old page's "closed" arrives after this page's load.
    beatIn(Math.min(interval, 2000));
  }

  // RADIUS mode: the credentials go on to the NAS's login page at once (the button is the no-JS way).
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) { form.submit(); });
  document.querySelectorAll("[data-check-digit]").forEach(watchCardNumber);
  document.querySelectorAll("[data-show-pin]").forEach(offerShowPin);
  var main = document.querySelector("main[data-heartbeat]");
  if (main) { heartbeat(main); }
}());
