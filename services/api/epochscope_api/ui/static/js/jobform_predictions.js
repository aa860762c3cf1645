// The job form's predictions panel: which prompts, how often, how to generate, and the older validators (graders,
// checkpoints and stop_when have their own modules).

import { h } from "./dom.js";
import { field, num, numberInput } from "./jobform_fields.js";

// `samplesDataset` is the prediction-set select (filled by the source pickers).
export function predictionsPanel({ samplesDataset }) {
  const enabled = h("input", { type: "checkbox", role: "switch", checked: true, id: "predictions-enabled" });
  const sampleCount = h("input", { type: "range", min: 1, max: 64, step: 1, value: 8, id: "sample-count" });
  const sampleCountOut = h("output", { for: "sample-count", id: "sample-count-value", "aria-live": "off" }, "8");
  const frequency = ["epoch", "eval", "steps"].map((value) =>
    h("input", { type: "radio", name: "sample-frequency", id: `frequency-${value}`, value, checked: value === "epoch" }),
  );
  const stepInterval = numberInput({ min: 1, step: 1, value: 50, disabled: true, inputmode: "numeric" });
  const maxNewTokens = numberInput({ min: 1, step: 1, value: 64, inputmode: "numeric" });
  const temperature = numberInput({ min: 0, max: 5, step: 0.05, value: 0 });
  const topP = numberInput({ min: 0.01, max: 1, step: 0.01, value: 1 });
  const seed = numberInput({ step: 1, value: 42, inputmode: "numeric" });
  const baselineRound = h("input", { type: "checkbox", id: "baseline-round", checked: true });
  const background = h("input", { type: "checkbox", id: "background" });
  const requireJson = h("input", { type: "checkbox", id: "require-json" });
  const useSchema = h("input", { type: "checkbox", id: "use-schema" });
  const schemaText = h("textarea", {
    rows: 7,
    id: "json-schema",
    spellcheck: "false",
    disabled: true,
    placeholder: '{"type": "object", "required": ["answer"]}',
    "aria-describedby": "json-schema-parse-error json-schema-error",
  });
  const schemaError = h("p", { class: "field-error", id: "json-schema-parse-error", role: "alert", hidden: true });
  sampleCount.setAttribute("aria-describedby", "sample-count-help sample-count-error");

  const settings = h(
    "fieldset",
    { class: "predictions-settings", id: "predictions-settings" },
    h("legend", { class: "sr-only" }, "Prediction settings"),
    h(
      "div",
      { class: "field", dataset: { loc: "predictions.sample_count" } },
      h("label", { for: "sample-count" }, "Sample count ", h("span", { class: "muted", id: "sample-count-range" })),
      h("div", { class: "slider" }, sampleCount, sampleCountOut),
      h("p", { class: "help", id: "sample-count-help" }, "Prompts answered in every round: the same seeded set each time."),
      h("p", { class: "field-error", id: "sample-count-error", hidden: true }),
    ),
    h(
      "fieldset",
      { class: "field radios", dataset: { loc: "predictions.sample_frequency" }, "aria-describedby": "sample-frequency-error" },
      h("legend", {}, "Frequency"),
      h("label", { for: "frequency-epoch" }, frequency[0], " At the end of every epoch"),
      h("label", { for: "frequency-eval" }, frequency[1], " At every evaluation (needs an eval split)"),
      h("label", { for: "frequency-steps" }, frequency[2], " Every N steps"),
      h("p", { class: "field-error", id: "sample-frequency-error", hidden: true }),
    ),
    field({ id: "step-interval", label: "N (steps between rounds)", loc: "predictions.step_interval", control: stepInterval, className: "indent" }),
    h(
      "div",
      { class: "grid-3" },
      field({ id: "max-new-tokens", label: "Max new tokens", loc: "predictions.max_new_tokens", control: maxNewTokens }),
      field({ id: "temperature", label: "Temperature", loc: "predictions.temperature", control: temperature, help: "0 means greedy decoding." }),
      field({ id: "top-p", label: "Top-p", loc: "predictions.top_p", control: topP }),
    ),
    h(
      "div",
      { class: "grid-2" },
      field({ id: "samples-dataset", label: "Prediction set (optional)", loc: "predictions.samples_dataset_id", control: samplesDataset, help: "Draw the prompts from another dataset." }),
      field({ id: "seed", label: "Sampling seed", loc: "predictions.seed", control: seed, help: "Picks which prompts are predicted." }),
    ),
    h(
      "div",
      { class: "grid-2" },
      h(
        "div",
        { class: "field check", dataset: { loc: "predictions.baseline_round" } },
        h("label", { for: "baseline-round" }, baselineRound, " Predict once before training (baseline)"),
        h("p", { class: "field-error", id: "baseline-round-error", hidden: true }),
      ),
      h(
        "div",
        { class: "field check", dataset: { loc: "predictions.background" } },
        h("label", { for: "background" }, background, " Generate in the background while training goes on"),
        h("p", { class: "field-error", id: "background-error", hidden: true }),
      ),
    ),
    h(
      "fieldset",
      { class: "validators", dataset: { loc: "predictions.validators" } },
      h("legend", {}, "Validators"),
      h(
        "div",
        { class: "field check", id: "validator-json-field" },
        h("label", { for: "require-json" }, requireJson, " Require valid JSON"),
        h("p", { class: "field-error", id: "require-json-error", hidden: true }),
      ),
      h(
        "div",
        { class: "field check", id: "validator-schema-field" },
        h("label", { for: "use-schema" }, useSchema, " Match a JSON Schema"),
        h("label", { for: "json-schema", class: "sub-label" }, "JSON Schema"),
        schemaText,
        schemaError,
        h("p", { class: "field-error", id: "json-schema-error", hidden: true }),
      ),
      h("p", { class: "field-error", id: "validators-error", hidden: true }),
    ),
  );

  const header = h(
    "div",
    { class: "field check", dataset: { loc: "predictions.enabled" } },
    h("label", { for: "predictions-enabled" }, enabled, " Predict sample prompts while training"),
    h("p", { class: "help" }, "The model being trained answers a fixed set of prompts; watch its answers change epoch by epoch."),
    h("p", { class: "field-error", id: "predictions-enabled-error", hidden: true }),
  );

  function selectedFrequency() {
    return frequency.find((radio) => radio.checked)?.value ?? "epoch";
  }

  function sync() {
    settings.disabled = !enabled.checked;
    stepInterval.disabled = !frequency[2].checked;
    schemaText.disabled = !useSchema.checked;
    sampleCountOut.textContent = sampleCount.value;
    sampleCount.setAttribute("aria-valuetext", `${sampleCount.value} samples per round`);
  }

  // Parse the schema textarea; show the parse error inline. Returns { ok, value }.
  function parseSchema() {
    schemaError.hidden = true;
    schemaText.removeAttribute("aria-invalid");
    if (!useSchema.checked) return { ok: true, value: null };
    const text = schemaText.value.trim();
    let message = null;
    let value = null;
    if (!text) message = "Enter a JSON Schema, or untick “Match a JSON Schema”.";
    else {
      try {
        value = JSON.parse(text);
        if (value === null || typeof value !== "object" || Array.isArray(value)) message = "A JSON Schema is a JSON object ({…}).";
      } catch (exc) {
        message = `Not valid JSON: ${exc.message}`;
      }
    }
    if (message) {
      schemaError.textContent = message;
      schemaError.hidden = false;
      schemaText.setAttribute("aria-invalid", "true");
      return { ok: false, value: null };
    }
    return { ok: true, value };
  }

  // The predictions config; the estimate leaves the validators out (they cost nothing, and a half-typed
  // schema must not block the estimate).
  function config({ forEstimate = false } = {}) {
    if (!enabled.checked) return { enabled: false };
    const validators = [];
    if (requireJson.checked) validators.push({ kind: "json_parse" });
    const schema = parseSchema();
    if (useSchema.checked && schema.ok) validators.push({ kind: "json_schema", json_schema: schema.value });
    const frequencyValue = selectedFrequency();
    return {
      enabled: true,
      sample_count: Number(sampleCount.value),
      sample_frequency: frequencyValue,
      step_interval: frequencyValue === "steps" ? num(stepInterval) : null,
      samples_dataset_id: samplesDataset.value || null,
      seed: num(seed),
      max_new_tokens: num(maxNewTokens),
      temperature: num(temperature),
      top_p: num(topP),
      baseline_round: baselineRound.checked,
      background: background.checked,
      validators: forEstimate ? [] : validators,
    };
  }

  // A stored config's predictions settings (a stored config has graders, never validators).
  function fill(predictions) {
    enabled.checked = predictions.enabled;
    sampleCount.value = String(predictions.sample_count);
    for (const radio of frequency) radio.checked = radio.value === predictions.sample_frequency;
    if (predictions.step_interval != null) stepInterval.value = String(predictions.step_interval);
    samplesDataset.value = predictions.samples_dataset_id ?? "";
    seed.value = String(predictions.seed);
    maxNewTokens.value = String(predictions.max_new_tokens);
    temperature.value = String(predictions.temperature);
    topP.value = String(predictions.top_p);
    baselineRound.checked = predictions.baseline_round ?? true;
    background.checked = predictions.background ?? false;
    sync();
  }

  // The server's limits: the slider's range, the token cap, the smallest step interval.
  function applyLimits(limits) {
    sampleCount.max = String(limits.max_sample_count);
    if (Number(sampleCount.value) > limits.max_sample_count) sampleCount.value = String(limits.max_sample_count);
    document.getElementById("sample-count-range").textContent = `(1 to ${limits.max_sample_count})`;
    maxNewTokens.max = String(limits.max_new_tokens);
    stepInterval.min = String(limits.min_step_interval);
    stepInterval.closest(".field").querySelector("label").textContent = `N (steps between rounds, at least ${limits.min_step_interval})`;
    sync();
  }

  // Error slots of the validators, in the order the config lists them (the server's loc names an index).
  function validatorIds() {
    return [...(requireJson.checked ? ["require-json"] : []), ...(useSchema.checked ? ["json-schema"] : [])];
  }

  return {
    header,
    settings,
    enabled,
    schemaText,
    schemaError,
    useSchema,
    sync,
    parseSchema,
    config,
    fill,
    applyLimits,
    validatorIds,
  };
}
