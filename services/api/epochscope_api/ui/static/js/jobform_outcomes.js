// The job form's checkpoints (which rounds' weights are kept) and stop_when (end training early), both judged on a
// round metric: the built-in ones, or a grader's pass rate or mean score.

import { clear, h } from "./dom.js";
import { field, num, numberInput } from "./jobform_fields.js";

const BUILT_IN_METRICS = ["validator_pass_rate", "mean_exact_match", "mean_f1", "mean_rouge_l"];

function metricLabel(metric) {
  const match = /^grader_(pass_rate|mean):(.+)$/.exec(metric);
  if (match) return `${match[2]}: ${match[1] === "mean" ? "mean score" : "pass rate"}`;
  return metric.replace(/_/g, " ");
}

function metricSelect() {
  return h("select", {}, BUILT_IN_METRICS.map((metric) => h("option", { value: metric }, metricLabel(metric))));
}

// `graderNames()` lists the form's graders, whose metrics join the built-in ones.
export function outcomesPanel({ graderNames }) {
  const mode = h("select", {}, [["none", "None"], ["every_round", "Every round"], ["best", "The best rounds"]].map(([value, label]) => h("option", { value }, label)));
  const checkpointMetric = metricSelect();
  const keep = numberInput({ min: 1, max: 100, step: 1, value: 1, inputmode: "numeric" });
  const stopRule = h("select", {}, [["none", "Never: train every epoch"], ["threshold", "When a metric reaches a threshold"], ["patience", "When a metric stops improving"]].map(([value, label]) => h("option", { value }, label)));
  const stopMetric = metricSelect();
  const threshold = numberInput({ min: 0, max: 1, step: 0.05, value: 0.9 });
  const rounds = numberInput({ min: 1, max: 1000, step: 1, value: 1, inputmode: "numeric" });
  const patience = numberInput({ min: 1, max: 1000, step: 1, value: 2, inputmode: "numeric" });

  const element = h(
    "div",
    { class: "outcomes" },
    h(
      "fieldset",
      { class: "grid-3", dataset: { loc: "predictions.checkpoints" } },
      h("legend", {}, "Checkpoints"),
      field({ id: "checkpoint-mode", loc: "predictions.checkpoints.mode", label: "Keep weights of", control: mode }),
      field({ id: "checkpoint-metric", loc: "predictions.checkpoints.metric", label: "Best by", control: checkpointMetric }),
      field({ id: "checkpoint-keep", loc: "predictions.checkpoints.keep", label: "How many best", control: keep }),
      h("p", { class: "field-error", id: "checkpoints-error", hidden: true }),
    ),
    h(
      "fieldset",
      { class: "grid-3", dataset: { loc: "predictions.stop_when" } },
      h("legend", {}, "Stop early"),
      field({ id: "stop-rule", label: "Stop training", control: stopRule }),
      field({ id: "stop-metric", loc: "predictions.stop_when.metric", label: "Judged by", control: stopMetric }),
      field({ id: "stop-threshold", loc: "predictions.stop_when.threshold", label: "Threshold", control: threshold }),
      field({ id: "stop-rounds", loc: "predictions.stop_when.rounds", label: "Rounds in a row at it", control: rounds }),
      field({ id: "stop-patience", loc: "predictions.stop_when.patience", label: "Rounds without improvement", control: patience }),
      h("p", { class: "field-error", id: "stop-when-error", hidden: true }),
    ),
  );

  // The metric selects follow the graders, keeping each choice while its grader exists.
  function syncMetrics() {
    const graders = graderNames().flatMap((name) => [`grader_pass_rate:${name}`, `grader_mean:${name}`]);
    for (const select of [checkpointMetric, stopMetric]) {
      const chosen = select.value;
      clear(select, [...BUILT_IN_METRICS, ...graders].map((metric) => h("option", { value: metric }, metricLabel(metric))));
      if (chosen && ![...select.options].some((option) => option.value === chosen)) select.append(h("option", { value: chosen }, metricLabel(chosen)));
      select.value = chosen || BUILT_IN_METRICS[0];
    }
  }

  function sync() {
    syncMetrics();
    checkpointMetric.disabled = keep.disabled = mode.value !== "best";
    stopMetric.disabled = stopRule.value === "none";
    threshold.disabled = rounds.disabled = stopRule.value !== "threshold";
    patience.disabled = stopRule.value !== "patience";
  }

  function checkpoints() {
    return { mode: mode.value, metric: checkpointMetric.value, keep: num(keep) };
  }

  function stopWhen() {
    if (stopRule.value === "none") return null;
    if (stopRule.value === "threshold") return { metric: stopMetric.value, threshold: num(threshold), rounds: num(rounds) };
    return { metric: stopMetric.value, patience: num(patience) };
  }

  function setMetric(select, metric) {
    if (![...select.options].some((option) => option.value === metric)) select.append(h("option", { value: metric }, metricLabel(metric)));
    select.value = metric;
  }

  function fill(predictions) {
    const saved = predictions.checkpoints ?? {};
    mode.value = saved.mode ?? "none";
    setMetric(checkpointMetric, saved.metric ?? BUILT_IN_METRICS[0]);
    keep.value = String(saved.keep ?? 1);
    const stop = predictions.stop_when;
    stopRule.value = !stop ? "none" : stop.threshold != null ? "threshold" : "patience";
    if (stop) {
      setMetric(stopMetric, stop.metric);
      if (stop.threshold != null) threshold.value = String(stop.threshold);
      rounds.value = String(stop.rounds ?? 1);
      if (stop.patience != null) patience.value = String(stop.patience);
    }
    sync();
  }

  sync();
  return { element, sync, checkpoints, stopWhen, fill };
}
