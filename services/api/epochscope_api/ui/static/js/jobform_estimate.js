// The job form's estimate (POST /v1/predictions/estimate): the whole job (training, prediction rounds, their share
// of the time) and the exact prediction set the job will use (prompt and ground truth), refreshed as the config
// changes.

import { api, ApiError } from "./api.js";
import { clear, debounce, fmtInt, fmtSeconds, fmtUsd, h } from "./dom.js";
import { field, numberInput } from "./jobform_fields.js";
import { samplesTable } from "./samples.js";

const THRESHOLD_KEY = "epochscope.costWarningUsd";
const DEFAULT_THRESHOLD_USD = 1;

// `getConfig()` returns the job config to estimate, or { missing: "why" } when there is nothing to estimate yet.
// `describeErrors(list)` turns a 422's detail list into one line.
export function estimatePanel({ getConfig, describeErrors }) {
  let seq = 0;
  let abort = null;
  let destroyed = false;

  const threshold = numberInput({ min: 0, step: 0.01, value: localStorage.getItem(THRESHOLD_KEY) ?? DEFAULT_THRESHOLD_USD });
  const figures = h("dl", { class: "estimate-figures", id: "estimate" });
  const jobFigures = h("dl", { class: "estimate-figures", id: "estimate-job" });
  const status = h("p", { class: "muted", id: "estimate-status" }, "Estimating…");
  const warning = h("p", { class: "warning", id: "estimate-warning", role: "status", hidden: true });
  const samplesBox = h("div", { id: "prediction-set-box" });
  const samplesNote = h("p", { class: "help", id: "prediction-set-note" });

  const element = h(
    "section",
    { class: "estimate card", "aria-labelledby": "estimate-title" },
    h("h3", { id: "estimate-title" }, "Cost estimate"),
    field({ id: "cost-threshold", label: "Warn above (USD)", control: threshold, help: "Kept in this browser.", className: "threshold" }),
    h(
      "div",
      { "aria-live": "polite", "aria-atomic": "true" },
      h("h4", {}, "Whole job"),
      jobFigures,
      h("h4", {}, "Prediction rounds"),
      figures,
      status,
      warning,
    ),
    h(
      "section",
      { class: "prediction-set", "aria-labelledby": "prediction-set-title" },
      h("h3", { id: "prediction-set-title" }, "Prediction set"),
      samplesNote,
      samplesBox,
    ),
  );
  threshold.addEventListener("input", () => localStorage.setItem(THRESHOLD_KEY, threshold.value));

  function nothing(text) {
    clear(figures);
    clear(jobFigures);
    clear(samplesBox);
    samplesNote.textContent = "";
    warning.hidden = true;
    status.textContent = text;
  }

  function render(estimate, predictionsOn) {
    const training = estimate.training;
    const generating = training.generated_tokens > 0;
    clear(
      jobFigures,
      [
        ["Training steps", fmtInt(training.steps), "training-steps"],
        [training.token_basis === "dataset" ? "Training tokens" : "Training tokens (at most: no token counts)", fmtInt(training.train_tokens), "training-tokens"],
        ...(generating
          ? [
              ["Generated per step (at most)", fmtInt(training.generated_tokens_per_step), "training-generated-per-step"],
              ["Generated in training (at most)", fmtInt(training.generated_tokens), "training-generated"],
            ]
          : []),
        ["Training time", fmtSeconds(training.seconds), "training-seconds"],
        ["Job time", fmtSeconds(estimate.total_seconds), "total-seconds"],
        ["Job price", fmtUsd(estimate.total_price_usd), "total-price"],
        ["Predictions' share", `${(estimate.predictions_share * 100).toFixed(estimate.predictions_share < 0.01 ? 1 : 0)}% of this job's time`, "predictions-share"],
      ].map(([term, value, id]) => h("div", {}, h("dt", {}, term), h("dd", { id: `estimate-${id}` }, value))),
    );
    clear(
      figures,
      [
        ["Rounds", fmtInt(estimate.rounds), "rounds"],
        ["Predictions", fmtInt(estimate.predictions), "predictions"],
        ["Prompt tokens", fmtInt(estimate.prompt_tokens), "prompt-tokens"],
        ["Generated tokens (at most)", fmtInt(estimate.generated_tokens), "generated-tokens"],
        ["Generation time", fmtSeconds(estimate.seconds), "seconds"],
        ["Price", fmtUsd(estimate.price_usd), "price"],
      ].map(([term, value, id]) => h("div", {}, h("dt", {}, term), h("dd", { id: `estimate-${id}` }, value))),
    );
    const rates = `Assumes ${fmtInt(training.train_tokens_per_second)} training tokens/s and ${fmtInt(estimate.tokens_per_second)} generated tokens/s for this model.`;
    status.textContent = predictionsOn ? rates : `${rates} Predictions are off: they add no cost.`;
    const limit = Number(threshold.value);
    const over = threshold.value !== "" && Number.isFinite(limit) && estimate.total_price_usd > limit;
    warning.hidden = !over;
    warning.textContent = over
      ? `⚠ Estimated job cost ${fmtUsd(estimate.total_price_usd)} (predictions ${fmtUsd(estimate.price_usd)}) is above your warning threshold of ${fmtUsd(limit)}. Fewer epochs or steps, fewer samples, fewer rounds or fewer new tokens cost less.`
      : "";
    const samples = predictionsOn ? estimate.samples ?? [] : [];
    samplesNote.textContent = predictionsOn
      ? `The ${samples.length} prompt${samples.length === 1 ? "" : "s"} the model answers in every round, with the ground truth its answers are scored against.`
      : "";
    clear(samplesBox, samples.length ? samplesTable(samples, { id: "prediction-set", caption: "The prediction set: prompts and ground truth", limit: 110 }) : null);
  }

  async function update() {
    const mySeq = ++seq;
    abort?.abort();
    const config = getConfig();
    if (config.missing) {
      nothing(config.missing);
      return;
    }
    abort = new AbortController();
    status.textContent = "Estimating…";
    try {
      const estimate = await api("/v1/predictions/estimate", { method: "POST", body: { config }, signal: abort.signal });
      if (mySeq !== seq || destroyed) return;
      render(estimate, config.predictions.enabled);
    } catch (exc) {
      if (exc.name === "AbortError" || mySeq !== seq || destroyed) return;
      const details = exc instanceof ApiError && exc.fieldErrors.length ? describeErrors(exc.fieldErrors) : exc.message;
      nothing(`No estimate for these settings: ${details}`);
    }
  }

  const schedule = debounce(update, 250);

  return {
    element,
    threshold,
    update,
    schedule,
    destroy() {
      destroyed = true;
      schedule.cancel();
      abort?.abort();
    },
  };
}
