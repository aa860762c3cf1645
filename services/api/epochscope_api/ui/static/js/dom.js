// DOM and formatting helpers. Every text goes through textContent: user data is never parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") el.style.cssText = value; // through the CSSOM: the CSP refuses style attributes
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

const numberFormat = new Intl.NumberFormat("en-US");

export function fmtInt(value) {
  return value == null ? "—" : numberFormat.format(value);
}

export function fmtNum(value, digits = 3) {
  if (value == null || Number.isNaN(value)) return "—";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits });
}

export function fmtPct(value) {
  if (value == null || Number.isNaN(value)) return "—";
  return `${(value * 100).toFixed(1)}%`;
}

export function fmtEpoch(value) {
  if (value == null) return "—";
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

export function fmtUsd(value) {
  if (value == null) return "—";
  return value < 0.01 && value > 0 ? `$${value.toFixed(4)}` : `$${value.toFixed(2)}`;
}

export function fmtSeconds(seconds) {
  if (seconds == null) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = seconds / 60;
  if (minutes < 60) return `${minutes.toFixed(1)} min`;
  return `${(minutes / 60).toFixed(1)} h`;
}

export function fmtDate(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" });
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, "data-status": status }, status);
}

// "3rd in line, about 12 min" for a queued job with a place (null otherwise).
export function queuePlace(job) {
  const n = job.queue_position;
  if (job.status !== "queued" || !n) return null;
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] ?? "th";
  const s = job.estimated_start_seconds;
  const eta = s == null ? "" : s < 60 ? ", starting within a minute" : `, about ${Math.round(s / 60)} min`;
  return `${n}${suffix} in line${eta}`;
}

// A long text cut to `limit` characters; the button shows the rest (and hides it again).
export function expandable(text, limit = 80, label = "text") {
  const full = text ?? "";
  if (full.length <= limit) return h("span", { class: "cell-text" }, full || "—");
  const short = `${full.slice(0, limit).trimEnd()}…`;
  const button = h(
    "button",
    {
      type: "button",
      class: "expander",
      "aria-expanded": "false",
      title: `Show the whole ${label}`,
      onclick: () => {
        const open = button.getAttribute("aria-expanded") === "true";
        button.setAttribute("aria-expanded", String(!open));
        button.title = open ? `Show the whole ${label}` : `Show less of the ${label}`;
        body.textContent = open ? short : full;
      },
    },
  );
  const body = h("span", { class: "cell-text" }, short);
  button.append(body);
  return button;
}

// Parse "#/a/b?x=1" into { parts: ["a", "b"], query: URLSearchParams }.
export function parseHash(hash) {
  const raw = (hash || "").replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}
