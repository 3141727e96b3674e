// CrossLogic console: draws charts (uPlot), asks before destructive
// actions, and follows launch logs. Pages work without it, minus charts.
(function () {
  "use strict";

  var palette = ["#2457c5", "#b42318", "#1d7a3a", "#9a6700"];

  function drawCharts() {
    var plots = document.querySelectorAll(".plot[data-chart]");
    plots.forEach(function (el) {
      var src = document.getElementById(el.getAttribute("data-chart"));
      if (!src || typeof uPlot === "undefined") return;
      var d = JSON.parse(src.textContent);
      var data = [d.x].concat(d.series.map(function (s) { return s.values; }));
      var series = [{}].concat(d.series.map(function (s, i) {
        // Sparse series (a few busy minutes) show their points, or a lone
        // value would draw nothing.
        var known = s.values.filter(function (v) { return v != null && v !== 0; }).length;
        return { label: s.label, stroke: palette[i % palette.length], width: 2, spanGaps: false,
                 points: { show: known > 0 && known < 24, size: 6, fill: palette[i % palette.length] },
                 value: function (u, v) { return v == null ? "–" : v.toFixed(2) + " " + d.unit; } };
      }));
      var width = function () { return Math.max(260, el.clientWidth); };
      var plot = new uPlot({ width: width(), height: 200, series: series,
                             axes: [{}, { size: 56, values: function (u, vals) { return vals.map(function (v) { return v == null ? "" : +v.toFixed(2); }); } }],
                             scales: { x: { time: true } } }, data, el);
      el.setAttribute("data-drawn", "1");
      window.addEventListener("resize", function () { plot.setSize({ width: width(), height: 200 }); });
    });
  }

  function confirmForms() {
    document.addEventListener("submit", function (ev) {
      var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
      if (msg && !window.confirm(msg)) ev.preventDefault();
    });
  }

  function followLog() {
    var log = document.getElementById("launch-log");
    if (!log) return;
    var url = log.getAttribute("data-log-url");
    var after = log.getAttribute("data-after") || "0";
    var running = log.getAttribute("data-running") === "true";
    function poll() {
      fetch(url + "?after=" + encodeURIComponent(after), { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (page) {
          var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          page.lines.forEach(function (l) {
            log.appendChild(document.createTextNode(l.at.substring(11, 19) + "  " + l.line + "\n"));
          });
          if (atBottom) log.scrollTop = log.scrollHeight;
          after = String(page.next_cursor);
          running = page.running;
          log.setAttribute("data-running", String(running));
          setTimeout(poll, running ? 1500 : 5000);
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    log.scrollTop = log.scrollHeight;
    setTimeout(poll, running ? 1000 : 5000);
  }

  function followEvents() {
    var feed = document.getElementById("event-feed");
    if (!feed) return;
    var url = feed.getAttribute("data-feed-url");
    var after = feed.getAttribute("data-after") || "0";
    var tones = { info: "good", warning: "warn", critical: "bad" };
    function cell(tr, build) { var td = document.createElement("td"); build(td); tr.appendChild(td); }
    function code(td, text) { var c = document.createElement("code"); c.textContent = text; td.appendChild(c); }
    function row(e) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-seq", e.seq);
      tr.className = "new";
      cell(tr, function (td) { td.textContent = e.created_at.substring(0, 19).replace("T", " ") + " UTC"; });
      cell(tr, function (td) { code(td, e.type); });
      cell(tr, function (td) {
        var b = document.createElement("span"); b.className = "badge " + (tones[e.severity] || "neutral");
        b.textContent = e.severity; td.appendChild(b);
      });
      cell(tr, function (td) {
        if (!e.tenant_id) { td.textContent = "platform"; return; }
        var a = document.createElement("a"); a.href = "/console/tenants/" + e.tenant_id; a.textContent = "tenant"; td.appendChild(a);
      });
      cell(tr, function (td) {
        var text = JSON.stringify(e.data);
        code(td, text.length > 160 ? text.substring(0, 160) + "…" : text);
        td.className = "data";
      });
      return tr;
    }
    function poll() {
      fetch(url + (url.endsWith("?") ? "" : "&") + "after=" + encodeURIComponent(after),
            { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (events) {
          events.forEach(function (e) { feed.insertBefore(row(e), feed.firstChild); after = String(e.seq); });
          setTimeout(poll, 3000);
        })
        .catch(function () { setTimeout(poll, 10000); });
    }
    setTimeout(poll, 3000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    confirmForms();
    followLog();
    followEvents();
  });
})();
