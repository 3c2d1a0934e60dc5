// Progressive enhancements only: every page works without this file.
(function () {
  "use strict";
  // "Online now": the table is fetched again every 10 seconds and replaced in place.
  var online = document.getElementById("online");
  if (online && online.dataset.refresh) {
    window.setInterval(function () {
      fetch(online.dataset.refresh, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok || r.redirected) { throw new Error(r.status); } return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("online");
          if (fresh) { online.replaceChildren.apply(online, Array.from(fresh.childNodes)); }
        })
        .catch(function () { /* keep what is shown; the next try may succeed */ });
    }, 10000);
  }
  // The receipt's Print button.
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
