// The new job form: name and tags, a catalog model and uploaded datasets, hyperparameters, the method, the
// predictions panel with its graders, checkpoints and stop_when, and the live estimate with its prediction set. Each
// part lives in its own jobform_*.js file; this one assembles, fills from another job ("New job from this one") and
// submits.

import { api, ApiError, getLimits } from "./api.js";
import { h, shortId } from "./dom.js";
import { aboutPanel } from "./jobform_about.js";
import { formErrors } from "./jobform_errors.js";
import { estimatePanel } from "./jobform_estimate.js";
import { gradersEditor } from "./jobform_graders.js";
import { methodPanel } from "./jobform_method.js";
import { outcomesPanel } from "./jobform_outcomes.js";
import { predictionsPanel } from "./jobform_predictions.js";
import { sourcePickers } from "./jobform_sources.js";
import { trainingPanel } from "./jobform_training.js";
import { tryItBox } from "./jobform_tryit.js";

const MISSING_DATASET = "Choose a training dataset, or upload one on the Datasets page.";

export function newJobView(root, route, { navigate }) {
  let destroyed = false;
  const fromJob = route.query.get("from");
  const sources = sourcePickers({ initialDataset: route.query.get("dataset") });
  const training = trainingPanel({ sources });
  const about = aboutPanel();
  const predictions = predictionsPanel({ samplesDataset: sources.samplesDataset });
  const graders = gradersEditor({ onChange: () => sync() });
  const method = methodPanel({ graderNames: graders.names });
  const outcomes = outcomesPanel({ graderNames: graders.names });
  const tryIt = tryItBox({ graders, describeErrors: (list) => errors.describe(list) });
  predictions.settings.append(outcomes.element);
  const submit = h("button", { type: "submit", class: "primary", id: "submit-job" }, "Create job");
  const cloneNote = h("p", { class: "help", id: "clone-note", role: "status", hidden: !fromJob });

  // The predictions config: graders travel even with predictions off (a GRPO reward names them).
  function predictionsConfig({ forEstimate }) {
    const part = { ...predictions.config({ forEstimate }), graders: graders.configs() };
    if (!predictions.enabled.checked) return part;
    return { ...part, checkpoints: outcomes.checkpoints(), stop_when: outcomes.stopWhen() };
  }

  // The config as the form holds it; `forEstimate` leaves the validators out.
  function jobConfig({ forEstimate = false } = {}) {
    const config = { ...training.config(), method: method.config(), predictions: predictionsConfig({ forEstimate }) };
    const name = about.name();
    if (name != null) config.name = name;
    config.metadata = about.metadata();
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

  const form = h(
    "form",
    { class: "job-form", novalidate: true, "aria-labelledby": "new-job-title" },
    h("h1", { id: "new-job-title" }, "New fine-tuning job"),
    cloneNote,
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
      h("div", {}, training.element, h("div", { class: "card" }, method.element), h("div", { class: "card" }, about.element)),
      h(
        "fieldset",
        { class: "card predictions-panel" },
        h("legend", {}, "Predictions"),
        predictions.header,
        predictions.settings,
        graders.element,
        tryIt.element,
        h("p", { class: "field-error", id: "predictions-error", dataset: { loc: "predictions" }, hidden: true }),
        estimate.element,
      ),
    ),
    h("div", { class: "actions" }, submit, h("a", { href: "#/jobs", class: "button" }, "Cancel")),
  );
  root.append(form);

  function sync() {
    predictions.sync();
    training.sync();
    method.sync();
    outcomes.sync();
    tryIt.sync();
  }

  form.addEventListener("input", (event) => {
    sync();
    if (event.target === predictions.schemaText || event.target === predictions.useSchema) predictions.parseSchema();
    if (event.target !== predictions.schemaText && !tryIt.element.contains(event.target)) estimate.schedule();
  });
  form.addEventListener("change", (event) => {
    sync();
    if (!tryIt.element.contains(event.target)) estimate.schedule();
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

  // "New job from this one": every setting of that job, once the selects hold the catalog and the datasets.
  async function fillFrom(jobId) {
    try {
      const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
      if (destroyed) return;
      const config = job.config;
      graders.fill(config.predictions.graders);
      method.fill(config.method);
      outcomes.fill(config.predictions);
      training.fill(config);
      predictions.fill(config.predictions);
      about.fill(config);
      cloneNote.textContent = `Filled from job ${job.name ?? shortId(job.job_id)}: change what you want, then create the new job.`;
      sync();
    } catch (exc) {
      cloneNote.textContent = `Could not read job ${jobId}: ${exc.message}`;
    }
  }

  sync();
  Promise.allSettled([
    getLimits().then((limits) => {
      if (destroyed) return;
      predictions.applyLimits(limits);
      method.applyLimits(limits);
    }),
    sources.load(),
  ])
    .then(() => (fromJob && !destroyed ? fillFrom(fromJob) : null))
    .then(() => {
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
