// The job form's name and metadata: a name to know the job by, and key/value tags (GET /v1/jobs filters by them).

import { h } from "./dom.js";
import { field } from "./jobform_fields.js";

const MAX_TAGS = 16;

export function aboutPanel() {
  const name = h("input", { type: "text", maxlength: 128, placeholder: "optional", autocomplete: "off" });
  const rows = h("div", { class: "metadata-rows", id: "metadata-rows" });
  const add = h("button", { type: "button", id: "add-metadata" }, "Add a tag");
  let counter = 0;

  function addRow(key = "", value = "") {
    counter += 1;
    const id = `metadata-${counter}`;
    const keyInput = h("input", { type: "text", id: `${id}-key`, value: key, maxlength: 64, autocomplete: "off", "aria-label": "Tag key" });
    const valueInput = h("input", { type: "text", id: `${id}-value`, value, maxlength: 512, autocomplete: "off", "aria-label": "Tag value" });
    const row = h(
      "div",
      { class: "metadata-row", id },
      keyInput,
      valueInput,
      h("button", { type: "button", class: "link", "aria-label": "Remove this tag", onclick: () => { row.remove(); sync(); } }, "Remove"),
    );
    rows.append(row);
    sync();
    return keyInput;
  }

  function sync() {
    add.disabled = rows.children.length >= MAX_TAGS;
  }

  add.addEventListener("click", () => addRow().focus());

  const element = h(
    "fieldset",
    { class: "about" },
    h("legend", {}, "Name and tags"),
    field({ id: "job-name", label: "Job name", loc: "name", control: name }),
    h(
      "div",
      { class: "field", dataset: { loc: "metadata" } },
      h("span", { class: "label" }, "Tags (key: value)"),
      rows,
      add,
      h("p", { class: "help" }, `Up to ${MAX_TAGS}; the jobs list filters by them.`),
      h("p", { class: "field-error", id: "metadata-error", hidden: true }),
    ),
  );

  return {
    element,
    name: () => (name.value.trim() === "" ? null : name.value),
    metadata() {
      const tags = {};
      for (const row of rows.children) {
        const [key, value] = row.querySelectorAll("input");
        if (key.value !== "" || value.value !== "") tags[key.value] = value.value;
      }
      return tags;
    },
    fill(config) {
      name.value = config.name ?? "";
      rows.replaceChildren();
      for (const [key, value] of Object.entries(config.metadata ?? {})) addRow(key, value);
      sync();
    },
  };
}
