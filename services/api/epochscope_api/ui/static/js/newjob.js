// The new job form with its predictions panel and a live cost estimate from POST /v1/predictions/estimate.

import { api, ApiError, getLimits } from "./api.js";
import { clear, debounce, fmtInt, fmtSeconds, fmtUsd, h } from "./dom.js";

const THRESHOLD_KEY = "epochscope.costWarningUsd";
const DEFAULT_THRESHOLD_USD = 1;
const DEFAULT_MODEL = "smollm2-135m-instruct";

// One labelled control, with its help text and an error slot the server's 422s land in.
function field({ id, label, loc, control, help, className = "" }) {
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
    h("p", { class: "field-error", id: `${id}-error`, hidden: true }),
  );
}

function numberInput(attrs) {
  return h("input", { type: "number", inputmode: "decimal", ...attrs });
}

export function newJobView(root, _route, { navigate }) {
  let limits = { max_sample_count: 64, min_step_interval: 10, max_new_tokens: 512, page_max: 500 };
  let estimateSeq = 0;
  let estimateAbort = null;
  let destroyed = false;

  // Training
  const model = h("input", { type: "text", value: DEFAULT_MODEL, required: true, spellcheck: "false" });
  const dataset = h("input", { type: "text", required: true, spellcheck: "false", placeholder: "/data/train.jsonl" });
  const epochs = numberInput({ min: 1, max: 100, step: 1, value: 3, inputmode: "numeric" });
  const batchSize = numberInput({ min: 1, max: 1024, step: 1, value: 8, inputmode: "numeric" });
  const learningRate = numberInput({ min: 0, max: 1, step: "any", value: "0.0002" });
  const maxLength = numberInput({ min: 8, max: 32768, step: 1, value: 512, inputmode: "numeric" });
  const evalFraction = numberInput({ min: 0, max: 1, step: "any", placeholder: "none" });
  const loraOn = h("input", { type: "checkbox", role: "switch", checked: true });
  const loraR = numberInput({ min: 1, max: 256, step: 1, value: 8, inputmode: "numeric" });
  const loraAlpha = numberInput({ min: 1, step: 1, value: 16, inputmode: "numeric" });

  // Predictions
  const enabled = h("input", { type: "checkbox", role: "switch", checked: true });
  const sampleCount = h("input", { type: "range", min: 1, max: limits.max_sample_count, step: 1, value: 8 });
  const sampleCountOut = h("output", { for: "sample-count", id: "sample-count-value", "aria-live": "off" }, "8");
  const frequencyName = "sample-frequency";
  const frequency = ["epoch", "eval", "steps"].map((value) =>
    h("input", { type: "radio", name: frequencyName, id: `frequency-${value}`, value, checked: value === "epoch" }),
  );
  const stepInterval = numberInput({ min: 1, step: 1, value: 50, disabled: true, inputmode: "numeric" });
  const maxNewTokens = numberInput({ min: 1, step: 1, value: 64, inputmode: "numeric" });
  const temperature = numberInput({ min: 0, max: 5, step: 0.05, value: 0 });
  const topP = numberInput({ min: 0.01, max: 1, step: 0.01, value: 1 });
  const seed = numberInput({ step: 1, value: 42, inputmode: "numeric" });
  const samplesPath = h("input", { type: "text", spellcheck: "false", placeholder: "default: the training data" });
  const requireJson = h("input", { type: "checkbox" });
  const useSchema = h("input", { type: "checkbox" });
  const schemaText = h("textarea", {
    rows: 7,
    spellcheck: "false",
    disabled: true,
    placeholder: '{"type": "object", "required": ["answer"]}',
  });
  const schemaError = h("p", { class: "field-error", id: "json-schema-parse-error", role: "alert", hidden: true });

  // Estimate
  const datasetRows = numberInput({ min: 1, step: 1, value: 1000, inputmode: "numeric" });
  const threshold = numberInput({ min: 0, step: 0.01, value: localStorage.getItem(THRESHOLD_KEY) ?? DEFAULT_THRESHOLD_USD });
  const estimateBody = h("dl", { class: "estimate-figures", id: "estimate" });
  const estimateStatus = h("p", { class: "muted", id: "estimate-status" }, "Estimating…");
  const estimateWarning = h("p", { class: "warning", id: "estimate-warning", role: "status", hidden: true });

  const formError = h("div", { class: "form-errors", id: "form-errors", role: "alert", tabindex: "-1", hidden: true });
  const submit = h("button", { type: "submit", class: "primary", id: "submit-job" }, "Create job");

  const predictionsBody = h(
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
      field({ id: "seed", label: "Sampling seed", loc: "predictions.seed", control: seed, help: "Picks which prompts are predicted." }),
      field({ id: "samples-path", label: "Prediction set (JSONL, optional)", loc: "predictions.samples_path", control: samplesPath }),
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
  requireJson.id = "require-json";
  useSchema.id = "use-schema";
  schemaText.id = "json-schema";
  schemaText.setAttribute("aria-describedby", "json-schema-parse-error json-schema-error");
  sampleCount.id = "sample-count";
  sampleCount.setAttribute("aria-describedby", "sample-count-help sample-count-error");
  enabled.id = "predictions-enabled";

  const estimatePanel = h(
    "section",
    { class: "estimate card", "aria-labelledby": "estimate-title" },
    h("h3", { id: "estimate-title" }, "Cost estimate"),
    h(
      "div",
      { class: "grid-2" },
      field({ id: "dataset-rows", label: "Training rows", loc: "dataset_size", control: datasetRows, help: "For the estimate only: rows in the dataset." }),
      field({ id: "cost-threshold", label: "Warn above (USD)", control: threshold, help: "Kept in this browser." }),
    ),
    h("div", { "aria-live": "polite", "aria-atomic": "true" }, estimateBody, estimateStatus, estimateWarning),
  );

  const form = h(
    "form",
    { class: "job-form", novalidate: true, "aria-labelledby": "new-job-title" },
    h("h1", { id: "new-job-title" }, "New fine-tuning job"),
    formError,
    h(
      "div",
      { class: "form-columns" },
      h(
        "fieldset",
        { class: "card" },
        h("legend", {}, "Training"),
        field({ id: "model", label: "Model", loc: "model", control: model, help: "A Hugging Face model id or a local path." }),
        field({ id: "dataset-path", label: "Dataset path", loc: "dataset_path", control: dataset, help: "JSONL on the server: chat `messages` or `prompt`/`completion` rows." }),
        h(
          "div",
          { class: "grid-2" },
          field({ id: "num-epochs", label: "Epochs", loc: "num_epochs", control: epochs }),
          field({ id: "batch-size", label: "Batch size", loc: "batch_size", control: batchSize }),
          field({ id: "learning-rate", label: "Learning rate", loc: "learning_rate", control: learningRate }),
          field({ id: "max-length", label: "Max sequence length", loc: "max_length", control: maxLength }),
        ),
        field({ id: "eval-fraction", label: "Eval fraction (optional)", loc: "eval_fraction", control: evalFraction, help: "Hold out this fraction of the data for evaluation." }),
        h(
          "div",
          { class: "field check", dataset: { loc: "lora" } },
          h("label", { for: "lora-enabled" }, loraOn, " LoRA"),
          h("p", { class: "field-error", id: "lora-enabled-error", hidden: true }),
        ),
        h(
          "div",
          { class: "grid-2", id: "lora-settings" },
          field({ id: "lora-r", label: "LoRA rank (r)", loc: "lora.r", control: loraR }),
          field({ id: "lora-alpha", label: "LoRA alpha", loc: "lora.alpha", control: loraAlpha }),
        ),
      ),
      h(
        "fieldset",
        { class: "card predictions-panel" },
        h("legend", {}, "Predictions"),
        h(
          "div",
          { class: "field check", dataset: { loc: "predictions.enabled" } },
          h("label", { for: "predictions-enabled" }, enabled, " Predict sample prompts while training"),
          h("p", { class: "help" }, "The model being trained answers a fixed set of prompts; watch its answers change epoch by epoch."),
          h("p", { class: "field-error", id: "predictions-enabled-error", hidden: true }),
        ),
        predictionsBody,
        h("p", { class: "field-error", id: "predictions-error", dataset: { loc: "predictions" }, hidden: true }),
        estimatePanel,
      ),
    ),
    h("div", { class: "actions" }, submit, h("a", { href: "#/jobs", class: "button" }, "Cancel")),
  );
  loraOn.id = "lora-enabled";
  root.append(form);

  // ---- state → controls
  function syncControls() {
    predictionsBody.disabled = !enabled.checked;
    stepInterval.disabled = !frequency[2].checked;
    schemaText.disabled = !useSchema.checked;
    for (const input of [loraR, loraAlpha]) input.disabled = !loraOn.checked;
    sampleCountOut.textContent = sampleCount.value;
    sampleCount.setAttribute("aria-valuetext", `${sampleCount.value} samples per round`);
  }

  function selectedFrequency() {
    return frequency.find((radio) => radio.checked)?.value ?? "epoch";
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

  const num = (input) => (input.value.trim() === "" ? null : Number(input.value));

  function predictionsConfig({ forEstimate = false } = {}) {
    if (!enabled.checked) return { enabled: false };
    const validators = [];
    if (requireJson.checked) validators.push({ kind: "json_parse" });
    const schema = parseSchema();
    if (useSchema.checked && schema.ok) validators.push({ kind: "json_schema", json_schema: schema.value });
    const config = {
      enabled: true,
      sample_count: Number(sampleCount.value),
      sample_frequency: selectedFrequency(),
      step_interval: selectedFrequency() === "steps" ? num(stepInterval) : null,
      seed: num(seed),
      max_new_tokens: num(maxNewTokens),
      temperature: num(temperature),
      top_p: num(topP),
      samples_path: samplesPath.value.trim() || null,
      validators: forEstimate ? [] : validators,
    };
    return config;
  }

  function jobConfig() {
    const config = {
      model: model.value.trim(),
      dataset_path: dataset.value.trim(),
      num_epochs: num(epochs),
      batch_size: num(batchSize),
      learning_rate: num(learningRate),
      max_length: num(maxLength),
      lora: loraOn.checked ? { r: num(loraR), alpha: num(loraAlpha) } : null,
      predictions: predictionsConfig(),
    };
    const fraction = num(evalFraction);
    if (fraction != null) config.eval_fraction = fraction;
    return config;
  }

  // ---- errors
  function clearErrors() {
    formError.hidden = true;
    clear(formError);
    for (const el of form.querySelectorAll(".field-error")) {
      if (el !== schemaError) {
        el.hidden = true;
        el.textContent = "";
      }
    }
    for (const el of form.querySelectorAll("[aria-invalid]")) if (el !== schemaText) el.removeAttribute("aria-invalid");
  }

  // The error slot for a server `loc`: the field with that exact loc, or the nearest enclosing one.
  function slotFor(loc) {
    const validators = [...(requireJson.checked ? ["require-json"] : []), ...(useSchema.checked ? ["json-schema"] : [])];
    let path = loc.slice(loc[0] === "body" ? 1 : 0);
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

  // Each error next to its field, and a summary on top listing them all (each one a way to its field).
  function showFieldErrors(errors) {
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
      formError,
      h("p", {}, errors.length === 1 ? "The server rejected one field:" : `The server rejected ${errors.length} fields:`),
      h("ul", {}, summary),
    );
    formError.hidden = false;
    formError.focus();
  }

  // ---- estimate
  async function updateEstimate() {
    const seq = ++estimateSeq;
    estimateAbort?.abort();
    estimateAbort = new AbortController();
    estimateStatus.textContent = "Estimating…";
    const body = {
      predictions: predictionsConfig({ forEstimate: true }),
      num_epochs: num(epochs),
      dataset_size: num(datasetRows),
      batch_size: num(batchSize),
      model: model.value.trim() || null,
    };
    try {
      const estimate = await api("/v1/predictions/estimate", { method: "POST", body, signal: estimateAbort.signal });
      if (seq !== estimateSeq || destroyed) return;
      clear(
        estimateBody,
        [
          ["Rounds", fmtInt(estimate.rounds), "estimate-rounds"],
          ["Predictions", fmtInt(estimate.predictions), "estimate-predictions"],
          ["Tokens (at most)", fmtInt(estimate.tokens), "estimate-tokens"],
          ["Generation time", fmtSeconds(estimate.seconds), "estimate-seconds"],
          ["Price", fmtUsd(estimate.price_usd), "estimate-price"],
        ].map(([term, value, id]) => h("div", {}, h("dt", {}, term), h("dd", { id }, value))),
      );
      estimateStatus.textContent = enabled.checked
        ? `Assumes ${fmtInt(estimate.tokens_per_second)} generated tokens/s for this model.`
        : "Predictions are off: they add no cost.";
      const limit = Number(threshold.value);
      const over = threshold.value !== "" && Number.isFinite(limit) && estimate.price_usd > limit;
      estimateWarning.hidden = !over;
      estimateWarning.textContent = over
        ? `⚠ Estimated predictions cost ${fmtUsd(estimate.price_usd)} is above your warning threshold of ${fmtUsd(limit)}. Fewer samples, fewer rounds or fewer new tokens cost less.`
        : "";
    } catch (exc) {
      if (exc.name === "AbortError" || seq !== estimateSeq || destroyed) return;
      clear(estimateBody);
      estimateWarning.hidden = true;
      const details = exc instanceof ApiError && exc.fieldErrors.length
        ? exc.fieldErrors.map((e) => `${e.loc.filter((p) => p !== "body").join(".")}: ${e.msg.replace(/^Value error, /, "")}`).join("; ")
        : exc.message;
      estimateStatus.textContent = `No estimate for these settings: ${details}`;
    }
  }
  const scheduleEstimate = debounce(updateEstimate, 200);

  form.addEventListener("input", (event) => {
    syncControls();
    if (event.target === schemaText || event.target === useSchema) parseSchema();
    if (event.target === threshold) localStorage.setItem(THRESHOLD_KEY, threshold.value);
    if (event.target !== schemaText) scheduleEstimate();
  });
  form.addEventListener("change", () => {
    syncControls();
    scheduleEstimate();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    if (enabled.checked && !parseSchema().ok) {
      schemaText.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const job = await api("/v1/jobs", { method: "POST", body: jobConfig() });
      navigate(`#/jobs/${job.job_id}`);
    } catch (exc) {
      if (exc instanceof ApiError && exc.fieldErrors.length) showFieldErrors(exc.fieldErrors);
      else {
        clear(formError, h("p", {}, `Could not create the job: ${exc.message}`));
        formError.hidden = false;
        formError.focus();
      }
    } finally {
      submit.disabled = false;
      submit.textContent = "Create job";
    }
  });

  syncControls();
  getLimits()
    .then((serverLimits) => {
      if (destroyed) return;
      limits = serverLimits;
      sampleCount.max = String(limits.max_sample_count);
      if (Number(sampleCount.value) > limits.max_sample_count) sampleCount.value = String(limits.max_sample_count);
      document.getElementById("sample-count-range").textContent = `(1 to ${limits.max_sample_count})`;
      maxNewTokens.max = String(limits.max_new_tokens);
      stepInterval.min = String(limits.min_step_interval);
      stepInterval.closest(".field").querySelector("label").textContent = `N (steps between rounds, at least ${limits.min_step_interval})`;
      syncControls();
    })
    .catch(() => {})
    .finally(updateEstimate);
  model.focus();

  return {
    destroy() {
      destroyed = true;
      scheduleEstimate.cancel();
      estimateAbort?.abort();
    },
  };
}
