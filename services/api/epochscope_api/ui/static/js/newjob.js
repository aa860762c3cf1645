// The new job form: a catalog model, uploaded datasets, hyperparameters, the predictions panel, and the live
// estimate with its prediction set. Each part lives in its own jobform_*.js file; this one assembles and submits.

import { api, ApiError, getLimits } from "./api.js";
import { h } from "./dom.js";
import { formErrors } from "./jobform_errors.js";
import { estimatePanel } from "./jobform_estimate.js";
import { field, num, numberInput } from "./jobform_fields.js";
import { predictionsPanel } from "./jobform_predictions.js";
import { sourcePickers } from "./jobform_sources.js";

const MISSING_DATASET = "Choose a training dataset, or upload one on the Datasets page.";

export function newJobView(root, route, { navigate }) {
  let destroyed = false;
  const sources = sourcePickers({ initialDataset: route.query.get("dataset") });
  const predictions = predictionsPanel({ samplesDataset: sources.samplesDataset });

  const epochs = numberInput({ min: 1, max: 100, step: 1, value: 3, inputmode: "numeric" });
  const batchSize = numberInput({ min: 1, max: 1024, step: 1, value: 8, inputmode: "numeric" });
  const learningRate = numberInput({ min: 0, max: 1, step: "any", value: "0.0002" });
  const maxLength = numberInput({ min: 8, max: 32768, step: 1, value: 512, inputmode: "numeric" });
  const evalFraction = numberInput({ min: 0, max: 1, step: "any", placeholder: "none" });
  const loraOn = h("input", { type: "checkbox", role: "switch", checked: true, id: "lora-enabled" });
  const loraR = numberInput({ min: 1, max: 256, step: 1, value: 8, inputmode: "numeric" });
  const loraAlpha = numberInput({ min: 1, step: 1, value: 16, inputmode: "numeric" });
  const submit = h("button", { type: "submit", class: "primary", id: "submit-job" }, "Create job");

  // The config as the form holds it; `forEstimate` leaves the validators out.
  function jobConfig({ forEstimate = false } = {}) {
    const config = {
      model: sources.model.value,
      dataset_id: sources.dataset.value || null,
      num_epochs: num(epochs),
      batch_size: num(batchSize),
      learning_rate: num(learningRate),
      max_length: num(maxLength),
      lora: loraOn.checked ? { r: num(loraR), alpha: num(loraAlpha) } : null,
      predictions: predictions.config({ forEstimate }),
    };
    if (sources.evalDataset.value) config.eval_dataset_id = sources.evalDataset.value;
    const fraction = num(evalFraction);
    if (fraction != null) config.eval_fraction = fraction;
    return config;
  }

  const estimate = estimatePanel({
    getConfig: () => {
      if (!sources.model.value) return { missing: "Choose a model to see the estimate." };
      if (!sources.dataset.value) return { missing: "Choose a training dataset to see the prediction set and the estimate." };
      return jobConfig({ forEstimate: true });
    },
    describeErrors: (list) => errors.describe(list),
  });

  const training = h(
    "fieldset",
    { class: "card" },
    h("legend", {}, "Training"),
    field({ id: "model", label: "Model", loc: "model", control: sources.model, extra: sources.modelDetails }),
    field({ id: "dataset", label: "Training dataset", loc: "dataset_id", control: sources.dataset, extra: sources.datasetNote }),
    h(
      "div",
      { class: "grid-2" },
      field({ id: "num-epochs", label: "Epochs", loc: "num_epochs", control: epochs }),
      field({ id: "batch-size", label: "Batch size", loc: "batch_size", control: batchSize }),
      field({ id: "learning-rate", label: "Learning rate", loc: "learning_rate", control: learningRate }),
      field({ id: "max-length", label: "Max sequence length", loc: "max_length", control: maxLength }),
    ),
    h(
      "div",
      { class: "grid-2" },
      field({ id: "eval-dataset", label: "Eval dataset (optional)", loc: "eval_dataset_id", control: sources.evalDataset, help: "An uploaded eval split." }),
      field({ id: "eval-fraction", label: "Or eval fraction (optional)", loc: "eval_fraction", control: evalFraction, help: "Hold out this fraction of the training data." }),
    ),
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
  );

  const form = h(
    "form",
    { class: "job-form", novalidate: true, "aria-labelledby": "new-job-title" },
    h("h1", { id: "new-job-title" }, "New fine-tuning job"),
  );
  const errors = formErrors(form, {
    keep: [predictions.schemaError, predictions.schemaText],
    validatorIds: predictions.validatorIds,
  });
  form.append(
    errors.element,
    h(
      "div",
      { class: "form-columns" },
      training,
      h(
        "fieldset",
        { class: "card predictions-panel" },
        h("legend", {}, "Predictions"),
        predictions.header,
        predictions.settings,
        h("p", { class: "field-error", id: "predictions-error", dataset: { loc: "predictions" }, hidden: true }),
        estimate.element,
      ),
    ),
    h("div", { class: "actions" }, submit, h("a", { href: "#/jobs", class: "button" }, "Cancel")),
  );
  root.append(form);

  function sync() {
    predictions.sync();
    for (const input of [loraR, loraAlpha]) input.disabled = !loraOn.checked;
  }

  form.addEventListener("input", (event) => {
    sync();
    if (event.target === predictions.schemaText || event.target === predictions.useSchema) predictions.parseSchema();
    if (event.target !== predictions.schemaText) estimate.schedule();
  });
  form.addEventListener("change", () => {
    sync();
    estimate.schedule();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.reset();
    if (predictions.enabled.checked && !predictions.parseSchema().ok) {
      predictions.schemaText.focus();
      return;
    }
    if (!sources.dataset.value) {
      errors.show([{ loc: ["body", "dataset_id"], msg: MISSING_DATASET }], { intro: "One field needs your attention:" });
      return;
    }
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const job = await api("/v1/jobs", { method: "POST", body: jobConfig() });
      navigate(`#/jobs/${job.job_id}`);
    } catch (exc) {
      if (exc instanceof ApiError && exc.fieldErrors.length) errors.show(exc.fieldErrors);
      else errors.showMessage(`Could not create the job: ${exc.message}`);
    } finally {
      submit.disabled = false;
      submit.textContent = "Create job";
    }
  });

  sync();
  Promise.allSettled([
    getLimits().then((limits) => {
      if (!destroyed) predictions.applyLimits(limits);
    }),
    sources.load(),
  ]).then(() => {
    if (!destroyed) estimate.update();
  });
  sources.model.focus();

  return {
    destroy() {
      destroyed = true;
      estimate.destroy();
    },
  };
}
