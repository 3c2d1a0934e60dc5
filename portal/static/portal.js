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

  function heartbeat(main) {
    var url = main.getAttribute("data-heartbeat");
    var token = main.getAttribute("data-csrf");
    var interval = parseInt(main.getAttribute("data-interval"), 10) * 1000;
    var lost = document.getElementById("connection-lost");

    function show(fields) {
      Object.keys(fields).forEach(function (name) {
        document.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { el.textContent = fields[name]; });
      });
    }
    function beat() {
      fetch(url, {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "X-CSRF-Token": token, "Accept": "application/json" }
      }).then(function (response) {
        if (!response.ok) { throw new Error("heartbeat " + response.status); }
        return response.json();
      }).then(function (state) {
        lost.hidden = true;
        if (!state.open) { window.location.reload(); return; }  // the server renders the "ended" page
        show(state.fields);
        interval = (state.next_heartbeat_s || interval / 1000) * 1000;
        window.setTimeout(beat, interval);
      }).catch(function () {
        lost.hidden = false;
        window.setTimeout(beat, Math.min(interval, 5000));
      });
    }
    window.setTimeout(beat, interval);
  }

  // RADIUS mode: the credentials go on to the NAS's login page at once (the button is the no-JS way).
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) { form.submit(); });
  document.querySelectorAll("[data-check-digit]").forEach(watchCardNumber);
  document.querySelectorAll("[data-show-pin]").forEach(offerShowPin);
  var main = document.querySelector("main[data-heartbeat]");
  if (main) { heartbeat(main); }
}());
