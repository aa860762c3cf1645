// The job form's errors: each next to its field (by the server's `loc`), and a summary on top that leads to each.

import { clear, h } from "./dom.js";

// The `type` of each grader and method: pydantic puts it in the loc of an error inside that union member.
const UNION_TAGS = new Set(["json_parse", "json_schema", "string_check", "regex", "json_field", "text_similarity", "sft", "grpo", "dpo"]);

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

  // The holder of a config path: a visible element with that data-loc (two methods may share a path) and its error slot.
  function holderAt(path) {
    for (const holder of form.querySelectorAll(`[data-loc="${CSS.escape(path.join("."))}"]`)) {
      if (holder.closest("[hidden]")) continue;
      const error = holder.classList.contains("field-error") ? holder : holder.querySelector(":scope > .field-error");
      if (error) return { error, control: holder.querySelector("input, textarea, select") };
    }
    return null;
  }

  // The error slot for a server `loc`: the field with that exact loc, or the nearest enclosing one. A list's items
  // (graders, rewards) carry their index; pydantic names a union's member (`regex`, `grpo`) after it: skipped.
  function slotFor(loc) {
    const validators = validatorIds();
    let path = loc.slice(loc[0] === "body" ? 1 : 0);
    if (path[0] === "config") path = path.slice(1); // the estimate's body wraps the config
    if (path[0] === "predictions" && path[1] === "validators" && Number.isInteger(path[2]) && validators[path[2]]) {
      const id = validators[path[2]];
      return { error: document.getElementById(`${id}-error`), control: document.getElementById(id) };
    }
    const untagged = path.filter((part, index) => !(UNION_TAGS.has(part) && (Number.isInteger(path[index - 1]) || path[index - 1] === "method")));
    const exact = holderAt(path);
    if (exact) return exact;
    for (const candidate of [untagged, untagged.filter((part) => typeof part === "string")]) {
      for (let length = candidate.length; length > 0; length -= 1) {
        const found = holderAt(candidate.slice(0, length));
        if (found) return found;
      }
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
