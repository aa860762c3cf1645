// A DPO job's metrics per logged step, beside the loss: the implicit rewards of the chosen and rejected answers and
// their margin, and the preference accuracy (the share of pairs whose chosen answer has the higher reward).

import { lineChart } from "./charts.js";
import { h } from "./dom.js";

const COLORS = { chosen: "#16a34a", rejected: "#dc2626", margin: "#2563eb", accuracy: "#9333ea" };

function series(progress, field, name, color, dash) {
  return { name, color, dash, points: progress.filter((p) => p[field] != null).map((p) => ({ x: p.step, y: p[field] })) };
}

export function isPreferenceJob(job) {
  return job?.config?.method?.type === "dpo";
}

export function preferenceCharts(progress) {
  const rewards = [
    series(progress, "chosen_reward", "Chosen reward", COLORS.chosen),
    series(progress, "rejected_reward", "Rejected reward", COLORS.rejected),
    series(progress, "reward_margin", "Margin", COLORS.margin, "5 3"),
  ];
  const accuracy = [series(progress, "reward_accuracy", "Accuracy", COLORS.accuracy)];
  return h(
    "div",
    { class: "preference-charts" },
    lineChart(rewards, { title: "DPO rewards by step", xLabel: "step", yLabel: "reward", integerX: true }),
    lineChart(accuracy, { title: "Preference accuracy by step", xLabel: "step", yLabel: "accuracy", yMin: 0, yMax: 1, integerX: true, formatY: (v) => `${Math.round(v * 100)}%` }),
  );
}
