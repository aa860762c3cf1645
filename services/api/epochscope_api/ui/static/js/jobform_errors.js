// The job form's errors: each next to its field (by the server's `loc`), and a summary on top that leads to each.

import { clear, h } from "./dom.js";

export function formErrors(form, { keep = [], validatorIds = () => [] } = {}) {
  const summaryBox = h("div", { class: "form-errors", id: "form-errors", role: "alert", tabindex: "-1", hidden: true });

  function reset() {
    summaryBox.hidden = true;
    clear(summaryBox);
    for (const el of form.querySelectorAll(".field-error")) {
      if (keep.includes(el)) continue;
      el.hidden = true;
      el.textContent = "";
    }
    for (const el of form.querySelectorAll("[aria-invalid]")) if (!keep.includes(el)) el.removeAttribute("aria-invalid");
  }

  // The error slot for a server `loc`: the field with that exact loc, or the nearest enclosing one.
  function slotFor(loc) {
    const validators = validatorIds();
    let path = loc.slice(loc[0] === "body" ? 1 : 0);
    if (path[0] === "config") path = path.slice(1); // the estimate's body wraps the config
    if (path[0] === "predictions" && path[1] === "validators" && Number.isInteger(path[2]) && validators[path[2]]) {
      const id = validators[path[2]];
      return { error: document.getElementById(`${id}-error`), control: document.getElementById(id) };
    }
    path = path.filter((part) => typeof part === "string");
    while (path.length) {
      const holder = form.querySelector(`[data-loc="${CSS.escape(path.join("."))}"]`);
      if (holder) {
        const error = holder.classList.contains("field-error") ? holder : holder.querySelector(":scope > .field-error");
        const control = holder.querySelector("input, textarea, select");
        if (error) return { error, control };
      }
      path = path.slice(0, -1);
    }
    return { error: null, control: null };
  }

  // FastAPI's list of { loc, msg }; `intro` overrides the summary's first line.
  function show(errors, { intro } = {}) {
    const summary = [];
    for (const item of errors) {
      const { error, control } = slotFor(item.loc || []);
      const text = item.msg.replace(/^Value error, /, "");
      const where = (item.loc || []).filter((part) => part !== "body").join(".") || "request";
      if (error) {
        error.textContent = error.textContent ? `${error.textContent} ${text}` : text;
        error.hidden = false;
        control?.setAttribute("aria-invalid", "true");
      }
      const name = control?.labels?.[0]?.textContent.trim() || where;
      summary.push(
        control
          ? h("li", {}, h("button", { type: "button", class: "link", onclick: () => control.focus() }, `${name}: ${text}`))
          : h("li", {}, `${name}: ${text}`),
      );
    }
    clear(
      summaryBox,
      h("p", {}, intro ?? (errors.length === 1 ? "The server rejected one field:" : `The server rejected ${errors.length} fields:`)),
      h("ul", {}, summary),
    );
    summaryBox.hidden = false;
    summaryBox.focus();
  }

  function showMessage(text) {
    clear(summaryBox, h("p", {}, text));
    summaryBox.hidden = false;
    summaryBox.focus();
  }

  // One line per error, for places with no field to point at (the estimate's status).
  function describe(errors) {
    return errors.map((e) => `${(e.loc || []).filter((p) => p !== "body" && p !== "config").join(".")}: ${e.msg.replace(/^Value error, /, "")}`).join("; ");
  }

  return { element: summaryBox, reset, show, showMessage, describe };
}
