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

  // Forms that change something ask first (no inline handlers: the
  // page's policy forbids them).
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

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

// Labels of a large lineage graph: the server leaves them out (laying out
// thousands of SVG texts takes seconds) and they are drawn here for the
// nodes in view, as the graph scrolls. textContent: never markup.
(function () {
  "use strict";
  var svg = document.getElementById("lineage");
  if (!svg || !svg.querySelector("a.node[data-label]")) return;
  var box = svg.parentNode;
  var nodes = Array.prototype.slice.call(svg.querySelectorAll("a.node[data-label]"));
  var ns = "http://www.w3.org/2000/svg";
  var queued = false;
  function draw() {
    queued = false;
    var x0 = box.scrollLeft - 250, x1 = box.scrollLeft + box.clientWidth + 250;
    var y0 = box.scrollTop - 100, y1 = box.scrollTop + box.clientHeight + 100;
    for (var i = 0; i < nodes.length; i++) {
      var a = nodes[i];
      if (a.getAttribute("data-drawn")) continue;
      var r = a.querySelector("rect");
      var x = +r.getAttribute("x"), y = +r.getAttribute("y");
      if (x < x0 || x > x1 || y < y0 || y > y1) continue;
      var t = document.createElementNS(ns, "text");
      t.setAttribute("x", x + 8);
      t.setAttribute("y", y + 19);
      t.textContent = a.getAttribute("data-label");
      a.appendChild(t);
      a.setAttribute("data-drawn", "1");
    }
  }
  box.addEventListener("scroll", function () {
    if (!queued) { queued = true; requestAnimationFrame(draw); }
  });
  draw();
})();
