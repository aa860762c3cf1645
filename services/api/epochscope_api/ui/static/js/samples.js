// Prompt / ground-truth tables: a dataset's row preview and the job form's prediction set.

import { expandable, h } from "./dom.js";

// A prompt as text: a string as is, a chat prompt (a list of {role, content}) one "role: content" per message.
export function promptText(prompt) {
  if (prompt == null) return "";
  if (typeof prompt === "string") return prompt;
  if (Array.isArray(prompt)) {
    return prompt
      .map((message) => (message && typeof message === "object" ? `${message.role ?? "?"}: ${textOf(message.content)}` : textOf(message)))
      .join("\n");
  }
  return textOf(prompt);
}

function textOf(value) {
  if (value == null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function truthCell(value, limit) {
  if (value == null || value === "") return h("span", { class: "muted" }, "none");
  return expandable(textOf(value), limit, "ground truth");
}

// A table of rows { line, sample_id?, prompt, ground_truth, format? }; `id` names the table for tests and labels.
export function samplesTable(items, { id, caption, showFormat = false, limit = 140 }) {
  const columns = ["Line", ...(showFormat ? ["Format"] : []), "Prompt", "Ground truth"];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data samples-table", id },
      h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", {}, columns.map((name) => h("th", { scope: "col" }, name)))),
      h(
        "tbody",
        {},
        items.map((item) =>
          h(
            "tr",
            { dataset: { line: item.line ?? "", sampleId: item.sample_id ?? "" } },
            h("td", { class: "num", dataset: { col: "line" } }, item.line ?? "—"),
            showFormat ? h("td", { class: "nowrap", dataset: { col: "format" } }, item.format ?? "—") : null,
            h("td", { class: "text prompt-cell", dataset: { col: "prompt" } }, expandable(promptText(item.prompt), limit, "prompt")),
            h("td", { class: "text", dataset: { col: "ground-truth" } }, truthCell(item.ground_truth, limit)),
          ),
        ),
      ),
    ),
  );
}
