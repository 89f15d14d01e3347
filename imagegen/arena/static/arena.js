// imagegen arena: progress while both images run, keyboard votes (1-4), copy a request.
// No framework and no build step; the page works without it (it reloads itself instead).
(function () {
  "use strict";

  function poll(pair) {
    fetch(pair.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        update(s);
        if (!s.finished) { setTimeout(function () { poll(pair); }, 300); }
        else if (pair.dataset.finished !== "true") {
          // Names, costs and the "next" form come with the finished page (a re-run, or a failure).
          if (!s.votable) { window.location.reload(); }
          pair.dataset.finished = "true";
        }
      })
      .catch(function () { setTimeout(function () { poll(pair); }, 1000); });
  }

  function update(s) {
    s.slots.forEach(function (slot) {
      var panel = document.querySelector('[data-slot="' + slot.side + '"]');
      if (!panel) { return; }
      var bar = panel.querySelector("progress");
      var stage = panel.querySelector(".stage");
      if (stage) { stage.textContent = slot.error ? "failed" : slot.label; }
      if (bar) {
        if (slot.total) { bar.max = slot.total; bar.value = slot.step; }
        if (slot.image_url || slot.error) { bar.hidden = true; }
      }
      if (slot.image_url && !panel.querySelector("img.result")) {
        var img = new Image();
        img.className = "result";
        img.alt = slot.side + " image";
        img.src = slot.image_url;
        panel.querySelector(".frame").replaceChildren(img);
      }
    });
    if (s.votable) {
      document.querySelectorAll("#votes button").forEach(function (b) { b.disabled = false; });
      document.body.classList.add("votable");
    }
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var t = e.target;
    if (t && t.matches && t.matches("input, textarea, select")) { return; }
    var button = document.querySelector('#votes button[data-key="' + e.key + '"]');
    if (button && !button.disabled) { e.preventDefault(); button.click(); }
  });

  document.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("button.copy") : null;
    if (!button) { return; }
    var source = document.getElementById(button.dataset.copyTarget);
    if (!source) { return; }
    var text = source.textContent;
    function done() { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy request"; }, 1500); }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else { fallback(text); done(); }
  });

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (err) { /* nothing more to try */ }
    area.remove();
  }

  document.addEventListener("submit", function (e) {
    var button = e.target.querySelector("button[type=submit]");
    if (button) { setTimeout(function () { button.disabled = true; }, 0); }
  });

  var pair = document.getElementById("pair");
  if (pair && pair.dataset.finished !== "true") { poll(pair); }
})();
