// The job form's graders: a list the user adds to, removes from and names; each grader type with its options.
// A grader's fields carry their config path (predictions.graders.<index>.<field>) so a 422 lands beside them.

import { clear, h } from "./dom.js";
import { field, num, numberInput } from "./jobform_fields.js";

export const GRADER_TYPES = {
  json_parse: "Valid JSON",
  json_schema: "Matches a JSON Schema",
  string_check: "String check",
  regex: "Regular expression",
  json_field: "JSON field equals the ground truth's",
  text_similarity: "Text similarity",
};
const DEFAULT_THRESHOLD = { text_similarity: 0.5 };
const OPERATIONS = ["equals", "contains", "starts_with", "ends_with"];
const METRICS = ["f1", "exact_match", "rouge_1", "rouge_2", "rouge_l", "bleu", "chrf"];

function select(options, value) {
  return h("select", {}, options.map((option) => h("option", { value: option, selected: option === value }, option.replace(/_/g, " "))));
}

function checkbox(id, label, checked, loc) {
  const input = h("input", { type: "checkbox", id, checked });
  return { input, element: h("div", { class: "field check", dataset: { locField: loc } }, h("label", { for: id }, input, ` ${label}`), h("p", { class: "field-error", id: `${id}-error`, hidden: true })) };
}

// One grader's editor. `id` is unique for the page; `onChange` runs when its name or type changes.
function graderRow(id, initial, { onRemove, onChange }) {
  const name = h("input", { type: "text", value: initial.name ?? "", maxlength: 64, pattern: "[A-Za-z0-9_.\\-]{1,64}", spellcheck: "false" });
  const type = select(Object.keys(GRADER_TYPES), initial.type);
  for (const option of type.options) option.textContent = GRADER_TYPES[option.value];
  const threshold = numberInput({ min: 0, max: 1, step: 0.05, value: initial.threshold ?? DEFAULT_THRESHOLD[initial.type] ?? 1 });
  const referenceField = h("input", { type: "text", value: initial.reference_field ?? "ground_truth", maxlength: 64, spellcheck: "false" });
  const options = h("div", { class: "grader-options" });
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  let read = () => ({});

  function optionField(key, label, control, help) {
    const element = field({ id: `${id}-${key.replace(/_/g, "-")}`, label, control, help });
    element.dataset.locField = key;
    return element;
  }

  // The type's own options, filled from `values` (the initial config, or nothing for a fresh type).
  function renderOptions(values) {
    const kind = type.value;
    if (kind === "json_schema") {
      const schema = h("textarea", { rows: 4, spellcheck: "false", placeholder: '{"type": "object"}' });
      schema.value = values.json_schema ? JSON.stringify(values.json_schema, null, 2) : "";
      clear(options, optionField("json_schema", "JSON Schema", schema));
      read = () => {
        try {
          return { json_schema: JSON.parse(schema.value) };
        } catch {
          return { json_schema: schema.value }; // the server names the field; the user sees it beside the textarea
        }
      };
    } else if (kind === "string_check") {
      const operation = select(OPERATIONS, values.operation ?? "equals");
      const reference = h("input", { type: "text", value: values.reference ?? "", maxlength: 10000 });
      const caseSensitive = checkbox(`${id}-case-sensitive`, "Case sensitive", values.case_sensitive ?? true, "case_sensitive");
      clear(options, optionField("operation", "Operation", operation), optionField("reference", "Reference (optional)", reference, "Empty: the row's reference field."), caseSensitive.element);
      read = () => ({ operation: operation.value, reference: reference.value === "" ? null : reference.value, case_sensitive: caseSensitive.input.checked });
    } else if (kind === "regex") {
      const pattern = h("input", { type: "text", value: values.pattern ?? "", maxlength: 2000, spellcheck: "false" });
      const fullMatch = checkbox(`${id}-full-match`, "Match the whole answer", values.full_match ?? false, "full_match");
      const caseSensitive = checkbox(`${id}-case-sensitive`, "Case sensitive", values.case_sensitive ?? true, "case_sensitive");
      clear(options, optionField("pattern", "Pattern (RE2)", pattern), fullMatch.element, caseSensitive.element);
      read = () => ({ pattern: pattern.value, full_match: fullMatch.input.checked, case_sensitive: caseSensitive.input.checked });
    } else if (kind === "json_field") {
      const path = h("input", { type: "text", value: values.path ?? "", maxlength: 500, placeholder: "booking.city", spellcheck: "false" });
      const caseSensitive = checkbox(`${id}-case-sensitive`, "Case sensitive", values.case_sensitive ?? true, "case_sensitive");
      clear(options, optionField("path", "Field path", path, "Dot-separated keys and list indices."), caseSensitive.element);
      read = () => ({ path: path.value, case_sensitive: caseSensitive.input.checked });
    } else if (kind === "text_similarity") {
      const metric = select(METRICS, values.metric ?? "f1");
      clear(options, optionField("metric", "Metric", metric));
      read = () => ({ metric: metric.value });
    } else {
      clear(options);
      read = () => ({});
    }
  }

  const remove = h("button", { type: "button", class: "link grader-remove", onclick: () => onRemove(row) }, "Remove");
  const element = h(
    "fieldset",
    { class: "grader card-inner", id },
    h("legend", {}, h("span", { class: "grader-title" }, initial.name || "New grader"), " ", remove),
    h(
      "div",
      { class: "grid-2" },
      field({ id: `${id}-name`, label: "Name", control: name, help: "Letters, digits, _ . - (unique in the job)." }),
      field({ id: `${id}-type`, label: "Type", control: type }),
      field({ id: `${id}-threshold`, label: "Passes at score", control: threshold }),
      field({ id: `${id}-reference-field`, label: "Reference field", control: referenceField, help: "The row field it compares with." }),
    ),
    options,
    error,
  );
  for (const [key, control] of [["name", name], ["type", type], ["threshold", threshold], ["reference_field", referenceField]]) {
    control.closest(".field").dataset.locField = key;
  }
  remove.setAttribute("aria-label", `Remove grader ${initial.name || ""}`.trim());

  type.addEventListener("change", () => {
    threshold.value = String(DEFAULT_THRESHOLD[type.value] ?? 1);
    renderOptions({});
    onChange();
  });
  name.addEventListener("input", () => {
    element.querySelector(".grader-title").textContent = name.value || "New grader";
    remove.setAttribute("aria-label", `Remove grader ${name.value}`.trim());
    onChange();
  });
  renderOptions(initial);

  const row = {
    element,
    name: () => name.value,
    config: () => ({ type: type.value, name: name.value, threshold: num(threshold), reference_field: referenceField.value, ...read() }),
    // The row's config paths follow its place in the list.
    renumber(index) {
      element.dataset.loc = `predictions.graders.${index}`;
      for (const holder of element.querySelectorAll("[data-loc-field]")) holder.dataset.loc = `predictions.graders.${index}.${holder.dataset.locField}`;
    },
  };
  return row;
}

// The list of graders. `onChange` runs when a grader is added, removed, renamed or retyped.
export function gradersEditor({ onChange = () => {} } = {}) {
  let rows = [];
  let counter = 0;
  const list = h("div", { class: "graders-list", id: "graders-list" });
  const addType = select(Object.keys(GRADER_TYPES), "string_check");
  for (const option of addType.options) option.textContent = GRADER_TYPES[option.value];
  addType.id = "add-grader-type";
  const addButton = h("button", { type: "button", id: "add-grader" }, "Add grader");
  const element = h(
    "fieldset",
    { class: "graders", dataset: { loc: "predictions.graders" } },
    h("legend", {}, "Graders"),
    h("p", { class: "help" }, "Each grader scores every answer in [0, 1]; the rounds, the chart and the predictions table show each by its name."),
    list,
    h("div", { class: "toolbar" }, h("label", { for: "add-grader-type" }, "New grader"), addType, addButton),
    h("p", { class: "field-error", id: "graders-error", hidden: true }),
  );

  function changed() {
    rows.forEach((row, index) => row.renumber(index));
    onChange();
  }

  function add(initial) {
    counter += 1;
    const row = graderRow(`grader-${counter}`, initial, {
      onRemove(target) {
        rows = rows.filter((item) => item !== target);
        target.element.remove();
        changed();
      },
      onChange: changed,
    });
    rows.push(row);
    list.append(row.element);
    changed();
    return row;
  }

  // A fresh name for a new grader of `type`: the type, then type_2, type_3...
  function freshName(type) {
    const taken = new Set(rows.map((row) => row.name()));
    for (let n = 1; ; n += 1) if (!taken.has(n === 1 ? type : `${type}_${n}`)) return n === 1 ? type : `${type}_${n}`;
  }

  addButton.addEventListener("click", () => {
    const row = add({ type: addType.value, name: freshName(addType.value) });
    row.element.querySelector("input").focus();
  });

  return {
    element,
    configs: () => rows.map((row) => row.config()),
    names: () => rows.map((row) => row.name()).filter(Boolean),
    fill(graders) {
      rows = [];
      list.replaceChildren();
      for (const grader of graders ?? []) add(grader);
      changed();
    },
  };
}
