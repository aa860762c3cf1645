// Line charts drawn as inline SVG: no chart library, nothing fetched.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 240;
const PAD = { left: 52, right: 16, top: 14, bottom: 38 };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value != null) el.setAttribute(key, String(value));
  }
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

function niceTicks(min, max, count = 5) {
  if (min === max) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  const span = max - min;
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((candidate) => span / candidate <= count) ?? raw;
  const start = Math.floor(min / step) * step;
  const ticks = [];
  for (let value = start; value <= max + step * 1e-9; value += step) ticks.push(Number(value.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

function label(value) {
  if (Math.abs(value) >= 1000) return value.toLocaleString("en-US", { maximumFractionDigits: 0 });
  return Number(value.toPrecision(4)).toString();
}

/**
 * A line chart.
 * series: [{ name, color, points: [{ x, y }] }] (points with y == null are skipped)
 * options: { title, xLabel, yLabel, yMin, yMax, formatY, formatX, integerX,
 *            marks: [{ from, to, label }] (x spans shaded behind the lines, each named by its label) }
 */
export function lineChart(series, options = {}) {
  const { title = "", xLabel = "", yLabel = "", formatY = label, formatX = label } = options;
  const all = series.flatMap((line) => line.points.filter((p) => p.y != null && Number.isFinite(p.y)));
  const figure = document.createElement("figure");
  figure.className = "chart";
  if (!all.length) {
    figure.append(Object.assign(document.createElement("p"), { className: "muted", textContent: "No data yet." }));
    return figure;
  }
  let xMin = Math.min(...all.map((p) => p.x));
  let xMax = Math.max(...all.map((p) => p.x));
  if (xMin === xMax) {
    xMin -= 1;
    xMax += 1;
  }
  const yTicks = niceTicks(options.yMin ?? Math.min(...all.map((p) => p.y)), options.yMax ?? Math.max(...all.map((p) => p.y)));
  const yMin = options.yMin ?? yTicks[0];
  const yMax = options.yMax ?? yTicks[yTicks.length - 1];
  const ySpan = yMax - yMin || 1;
  const x = (value) => PAD.left + ((value - xMin) / (xMax - xMin)) * (WIDTH - PAD.left - PAD.right);
  const y = (value) => HEIGHT - PAD.bottom - ((value - yMin) / ySpan) * (HEIGHT - PAD.top - PAD.bottom);

  const summary = series
    .map((line) => {
      const points = line.points.filter((p) => p.y != null);
      const last = points[points.length - 1];
      return last ? `${line.name} ${formatY(last.y)} at ${xLabel} ${formatX(last.x)}` : `${line.name}: no data`;
    })
    .join("; ");
  const svg = s("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-label": `${title}. Latest: ${summary}.`,
    preserveAspectRatio: "xMidYMid meet",
  });
  svg.append(s("title", {}, title));

  const grid = s("g", { class: "grid" });
  for (const tick of yTicks.filter((t) => t >= yMin - 1e-9 && t <= yMax + 1e-9)) {
    grid.append(s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick) }));
    grid.append(s("text", { x: PAD.left - 6, y: y(tick) + 4, "text-anchor": "end" }, formatY(tick)));
  }
  const xTicks = niceTicks(xMin, xMax, 6).filter((t) => t >= xMin && t <= xMax && (!options.integerX || Number.isInteger(t)));
  for (const tick of xTicks) {
    grid.append(s("text", { x: x(tick), y: HEIGHT - PAD.bottom + 16, "text-anchor": "middle" }, formatX(tick)));
  }
  grid.append(s("line", { class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: HEIGHT - PAD.bottom, y2: HEIGHT - PAD.bottom }));
  grid.append(s("text", { class: "axis-label", x: (PAD.left + WIDTH - PAD.right) / 2, y: HEIGHT - 4, "text-anchor": "middle" }, xLabel));
  grid.append(
    s("text", { class: "axis-label", x: 12, y: (PAD.top + HEIGHT - PAD.bottom) / 2, transform: `rotate(-90 12 ${(PAD.top + HEIGHT - PAD.bottom) / 2})`, "text-anchor": "middle" }, yLabel),
  );
  svg.append(grid);

  for (const mark of options.marks ?? []) {
    const left = x(Math.max(xMin, Math.min(mark.from, mark.to)));
    const right = x(Math.min(xMax, Math.max(mark.from, mark.to)));
    svg.append(
      s("rect", { class: "mark", x: left, y: PAD.top, width: Math.max(2, right - left), height: HEIGHT - PAD.top - PAD.bottom }, s("title", {}, mark.label)),
      s("text", { class: "mark-label", x: left + 3, y: PAD.top + 11 }, "⚠"),
    );
  }

  for (const line of series) {
    const points = line.points.filter((p) => p.y != null && Number.isFinite(p.y));
    if (!points.length) continue;
    const group = s("g", { class: "series", "data-series": line.name });
    group.append(
      s("polyline", {
        points: points.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(" "),
        fill: "none",
        stroke: line.color,
        "stroke-width": 2,
        "stroke-dasharray": line.dash,
      }),
    );
    if (points.length <= 60) {
      for (const p of points) {
        group.append(
          s("circle", { cx: x(p.x), cy: y(p.y), r: 3.5, fill: line.color }, s("title", {}, `${line.name}: ${formatY(p.y)} (${xLabel} ${formatX(p.x)})`)),
        );
      }
    }
    svg.append(group);
  }
  figure.append(svg);

  const legend = document.createElement("figcaption");
  legend.className = "legend";
  if (title) legend.append(Object.assign(document.createElement("strong"), { textContent: title }));
  for (const line of series) {
    const item = document.createElement("span");
    item.className = "legend-item";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = line.color;
    item.append(swatch, line.name);
    legend.append(item);
  }
  figure.append(legend);
  return figure;
}
