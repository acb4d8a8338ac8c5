// Substance page: one uPlot chart per series, data fetched from
// /substances/<id>/charts/<n>.json. Drag to zoom, double-click to reset; the legend
// shows the date and values under the cursor.
(function () {
  "use strict";
  var root = document.querySelector(".charts");
  if (!root || typeof uPlot === "undefined") { return; }
  var sid = root.getAttribute("data-substance");
  var lang = root.getAttribute("data-lang");
  var L = JSON.parse(root.getAttribute("data-labels"));
  var fmt = new Intl.NumberFormat(lang === "no" ? "nb-NO" : "en-GB", {maximumFractionDigits: 2});
  var dfmt = function (ts) { return new Date(ts * 1000).toISOString().slice(0, 10); };

  function marks(u, xs, colour, dash) {
    var ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.setLineDash(dash.map(function (d) { return d * devicePixelRatio; }));
    xs.forEach(function (x) {
      var px = u.valToPos(x, "x", true);
      if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) { return; }
      ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, top + h); ctx.stroke();
    });
    ctx.restore();
  }

  function draw(fig, d) {
    var el = fig.querySelector(".plot");
    fig.querySelector(".unit").textContent = d.unit;
    var width = Math.max(320, el.clientWidth || 640);
    var v = function (u, x) { return x == null ? "–" : fmt.format(x); };
    var opts = {
      width: width, height: 220,
      scales: {x: {time: true}},
      legend: {live: true},
      cursor: {drag: {x: true, y: false}},
      series: [
        {label: L.date, value: function (u, ts) { return ts == null ? "–" : dfmt(ts); }},
        {label: L.value, stroke: "#1f4e79", width: 1.6, points: {show: true, size: 3}, value: v},
        {label: L.expected, stroke: "#7f7f7f", width: 1.2, dash: [6, 4], value: v},
        {label: L.lo, stroke: "rgba(127,127,127,0.2)", width: 0.5, value: v, show: true},
        {label: L.hi, stroke: "rgba(127,127,127,0.2)", width: 0.5, value: v},
        {label: L.thr, stroke: "#c00000", width: 1, dash: [2, 3], value: v}
      ],
      bands: [{series: [4, 3], fill: "rgba(127,127,127,0.15)"}],
      hooks: {draw: [function (u) {
        marks(u, d.changepoints, "#7030a0", [4, 3]);
        marks(u, d.onsets, "#c00000", []);
        marks(u, d.spikes, "#bf9000", [1, 2]);
      }]}
    };
    var n = d.x.length;
    var pad = function (a) { return a.length ? a : new Array(n).fill(null); };
    new uPlot(opts, [d.x, d.y, pad(d.expected), pad(d.lo), pad(d.hi), pad(d.thr)], el);
    fig.setAttribute("data-points", String(n));
    fig.classList.add("drawn");
  }

  document.querySelectorAll("figure.chart").forEach(function (fig) {
    var n = fig.getAttribute("data-n");
    fetch("/substances/" + encodeURIComponent(sid) + "/charts/" + n + ".json",
          {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (d) { draw(fig, d); })
      .catch(function (e) { fig.querySelector(".plot").textContent = "–"; fig.classList.add("failed"); });
  });
}());
