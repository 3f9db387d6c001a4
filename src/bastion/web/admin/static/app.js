// Bastion admin UI: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = localStorage.getItem("bastion-theme");
  if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);

  function onReady(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  onReady(function () {
    var toggle = document.querySelector("[data-theme-toggle]");
    if (toggle) toggle.addEventListener("click", function () {
      var dark = root.getAttribute("data-theme") === "dark" ||
        (!root.getAttribute("data-theme") && window.matchMedia("(prefers-color-scheme: dark)").matches);
      var next = dark ? "light" : "dark";
      root.setAttribute("data-theme", next);
      localStorage.setItem("bastion-theme", next);
    });

    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (!source || !navigator.clipboard) return;
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          var label = button.textContent; button.textContent = "Copied"; setTimeout(function () { button.textContent = label; }, 1500);
        });
      });
    });

    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });

    var transport = document.querySelector("[data-transport]");
    if (transport) {
      var show = function () {
        document.querySelectorAll("fieldset[data-for]").forEach(function (set) {
          set.hidden = set.getAttribute("data-for").split(" ").indexOf(transport.value) < 0;
        });
      };
      transport.addEventListener("change", show); show();
    }

    var picker = document.querySelector("[data-picker]");
    if (picker) setupPicker(picker);
  });

  // The item picker: searches the catalog page by page; the selection lives in the textareas the
  // form submits (one gateway name per line), so it survives searches, pages and kind switches.
  function setupPicker(picker) {
    var ui = picker.querySelector(".picker-ui");
    var kind = picker.querySelector("[data-pick-kind]");
    var q = picker.querySelector("[data-pick-q]");
    var list = picker.querySelector("[data-pick-results]");
    var pageLabel = picker.querySelector("[data-pick-page]");
    var count = picker.querySelector("[data-pick-count]");
    var offset = 0, total = 0, limit = 25, timer = null;
    ui.hidden = false;

    function store(k) { return picker.querySelector('[data-pick-store="' + k + '"]'); }
    function selected(k) {
      return store(k).value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
    }
    function setSelected(k, names) { store(k).value = names.join("\n"); updateCount(); }
    function updateCount() {
      count.textContent = ["tools", "prompts", "resources"].reduce(function (n, k) { return n + selected(k).length; }, 0);
    }

    function load() {
      var url = "/admin/picker?" + new URLSearchParams({ kind: kind.value, q: q.value, offset: String(offset) });
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
        total = data.total; limit = data.limit;
        var chosen = selected(kind.value);
        list.textContent = "";
        data.items.forEach(function (item) {
          var li = document.createElement("li");
          var label = document.createElement("label");
          var box = document.createElement("input");
          box.type = "checkbox"; box.value = item.name; box.checked = chosen.indexOf(item.name) >= 0;
          box.addEventListener("change", function () {
            var names = selected(kind.value).filter(function (n) { return n !== item.name; });
            if (box.checked) names.push(item.name);
            setSelected(kind.value, names);
          });
          label.appendChild(box);
          label.appendChild(document.createTextNode(" " + item.name));
          var small = document.createElement("small");
          small.textContent = item.upstream + (item.description ? " — " + item.description : "");
          label.appendChild(small);
          li.appendChild(label);
          list.appendChild(li);
        });
        if (!data.items.length) { var none = document.createElement("li"); none.textContent = "Nothing matches."; list.appendChild(none); }
        pageLabel.textContent = total ? (offset + 1) + "–" + Math.min(offset + limit, total) + " of " + total : "";
      });
    }

    q.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(function () { offset = 0; load(); }, 200); });
    kind.addEventListener("change", function () { offset = 0; load(); });
    picker.querySelector("[data-pick-prev]").addEventListener("click", function () { if (offset > 0) { offset = Math.max(0, offset - limit); load(); } });
    picker.querySelector("[data-pick-next]").addEventListener("click", function () { if (offset + limit < total) { offset += limit; load(); } });
    ["tools", "prompts", "resources"].forEach(function (k) { store(k).addEventListener("input", updateCount); });
    updateCount(); load();
  }
})();
