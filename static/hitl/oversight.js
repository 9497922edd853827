/* Oversight charts: each <canvas data-chart="NAME"> is drawn with Chart.js (vendored in
   static/vendor/chartjs) from the JSON in <script id="NAME" type="application/json">, which
   holds the same numbers as the table beside it. */
(function () {
  "use strict";
  var palette = ["#0969da", "#bc4c00", "#1a7f37", "#8250df", "#cf222e", "#9a6700", "#57606a"];
  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || !window.Chart) return;
    var spec = JSON.parse(source.textContent);
    var doughnut = spec.type === "doughnut";
    var datasets = spec.series.map(function (s, i) {
      var color = palette[i % palette.length];
      return {
        label: s.label, data: s.data, spanGaps: true, tension: 0.2,
        borderColor: doughnut ? "#fff" : color,
        backgroundColor: doughnut ? palette : color + (spec.type === "line" ? "33" : "cc"),
      };
    });
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        indexAxis: spec.horizontal ? "y" : "x",
        plugins: { legend: { position: doughnut ? "right" : "bottom" } },
        scales: doughnut ? {} : { y: { beginAtZero: true } },
      },
    });
    canvas.dataset.drawn = "1";
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
