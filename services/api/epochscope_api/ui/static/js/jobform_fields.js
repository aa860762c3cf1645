// Building blocks of the job form: a labelled control with its help text and the slot its server errors land in.

import { h } from "./dom.js";

// One labelled control; `loc` is the config path (for example "predictions.seed") the server's 422s name.
export function field({ id, label, loc, control, help, className = "", extra = null }) {
  control.id = id;
  control.name ??= id;
  const described = [help ? `${id}-help` : null, `${id}-error`].filter(Boolean).join(" ");
  control.setAttribute("aria-describedby", described);
  return h(
    "div",
    { class: `field ${className}`, dataset: loc ? { loc } : {} },
    h("label", { for: id }, label),
    control,
    help ? h("p", { class: "help", id: `${id}-help` }, help) : null,
    extra,
    h("p", { class: "field-error", id: `${id}-error`, hidden: true }),
  );
}

export function numberInput(attrs) {
  return h("input", { type: "number", inputmode: "decimal", ...attrs });
}

// The value of a number input, or null when it is empty.
export function num(input) {
  return input.value.trim() === "" ? null : Number(input.value);
}

// "135M", "1.7B": a parameter count as people say it.
export function fmtParameters(count) {
  if (count == null) return "—";
  if (count >= 1e9) return `${(count / 1e9).toFixed(count >= 1e10 ? 0 : 1)}B`;
  if (count >= 1e6) return `${Math.round(count / 1e6)}M`;
  if (count >= 1e3) return `${Math.round(count / 1e3)}K`;
  return String(count);
}
