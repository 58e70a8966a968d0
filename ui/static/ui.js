// ckpt UI: live refresh of the parts of a page marked data-live, and
// on-demand verification of checkpoints. No framework, no build step.
(function () {
  "use strict";
  var body = document.body;
  var every = parseInt(body.getAttribute("data-refresh"), 10) || 2000;
  var token = body.getAttribute("data-token") || "";
  var results = {}; // verification results by sequence number, kept across refreshes

  function showResults(root) {
    var spans = root.querySelectorAll("[data-result]");
    for (var i = 0; i < spans.length; i++) {
      var r = results[spans[i].getAttribute("data-result")];
      if (r) {
        spans[i].textContent = r.text;
        spans[i].className = "verify-result " + r.cls;
      }
    }
  }

  var live = document.querySelector("[data-live]");
  if (live) {
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      fetch(location.href, { headers: { "X-CKPT-Fragment": "1" }, cache: "no-store", credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null) {
            live.innerHTML = html;
            showResults(live);
            live.setAttribute("data-updated", String(Date.now()));
          }
        })
        .catch(function () { /* the server is restarting; try again next time */ })
        .then(function () { busy = false; });
    }, every);
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button[data-verify]") : null;
    if (!b) return;
    var seq = b.getAttribute("data-verify");
    results[seq] = { text: "verifying…", cls: "" };
    showResults(document);
    var form = new URLSearchParams();
    form.set("seq", seq);
    fetch(b.getAttribute("data-url"), {
      method: "POST", body: form, credentials: "same-origin",
      headers: { "X-CKPT-Token": token, "Accept": "application/json" }
    })
      .then(function (r) { return r.json(); })
      .then(function (j) {
        results[seq] = j.ok ? { text: "✓ " + j.message + " (" + j.took + ")", cls: "ok" } : { text: "✗ " + (j.message || j.error), cls: "bad" };
        showResults(document);
      })
      .catch(function (e) {
        results[seq] = { text: "✗ " + e, cls: "bad" };
        showResults(document);
      });
  });
})();
