// A GRPO job's rollouts: each reward component's mean per step on a chart (a `reward_divergence` warning shaded on
// it), and a step slider over the completions each training step generated, with their rewards and advantages.

import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { clear, expandable, fmtNum, h } from "./dom.js";
import { downloadExport, exportButtons } from "./export.js";

const COLORS = ["#dc2626", "#0d9488", "#ca8a04", "#4f46e5", "#db2777", "#65a30d", "#7c3aed", "#0284c7"];
const TOTAL_COLOR = "#111827";
const MAX_PAGES = 20; // pages of one step's rollouts read at most (each bounded by the server)

/** The reward components' names, in the job's order. */
export function rewardNames(config) {
  return (config.method?.rewards ?? []).map((component) => (typeof component.grader === "string" ? component.grader : component.grader.name));
}

/** The steps and components a `reward_divergence` warning names (its message: "... over steps 3-7: ..."). */
export function divergenceMarks(warnings) {
  return (warnings ?? [])
    .filter((warning) => warning.code === "reward_divergence")
    .map((warning) => {
      const steps = /over steps (\d+)-(\d+)/.exec(warning.message);
      return steps ? { from: Number(steps[1]), to: Number(steps[2]), label: warning.message } : null;
    })
    .filter(Boolean);
}

function rewardChart(state) {
  const names = rewardNames(state.job.config);
  const points = state.progress.filter((point) => point.rewards);
  const series = names.map((name, index) => ({
    name,
    color: COLORS[index % COLORS.length],
    points: points.map((point) => ({ x: point.step, y: point.rewards[name]?.mean ?? null })),
  }));
  series.push({ name: "Total", color: TOTAL_COLOR, dash: "5 3", points: points.map((point) => ({ x: point.step, y: point.reward })) });
  const marks = divergenceMarks(state.job.warnings);
  return h(
    "div",
    { id: "reward-chart", dataset: { marks: String(marks.length) } },
    lineChart(series, { title: "Reward components by step (mean score)", xLabel: "step", yLabel: "mean score", yMin: 0, yMax: 1, integerX: true, marks }),
    marks.length
      ? h("ul", { class: "warnings", id: "divergence-list" }, marks.map((mark) => h("li", {}, `⚠ steps ${mark.from}-${mark.to}: ${mark.label}`)))
      : null,
  );
}

function rolloutTable(names, rollouts) {
  return h(
    "table",
    { class: "data", id: "rollout-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Prompt"), h("th", {}, "Completion"), names.map((name) => h("th", {}, name)), h("th", {}, "Total"), h("th", {}, "Advantage"))),
    h(
      "tbody",
      {},
      rollouts.map((rollout) =>
        h(
          "tr",
          { dataset: { index: String(rollout.completion_index) } },
          h("td", { class: "num" }, rollout.completion_index),
          h("td", { class: "text" }, expandable(rollout.prompt, 120, "prompt")),
          h("td", { class: "text" }, expandable(rollout.completion, 200, "completion")),
          names.map((name) => h("td", { class: "num", dataset: { component: name } }, rollout.rewards[name] == null ? "—" : fmtNum(rollout.rewards[name], 3))),
          h("td", { class: "num", dataset: { component: "total" } }, rollout.reward == null ? "—" : fmtNum(rollout.reward, 3)),
          h("td", { class: "num", dataset: { component: "advantage" } }, fmtNum(rollout.advantage, 3)),
        ),
      ),
    ),
  );
}

async function stepRollouts(jobId, step) {
  const rows = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const response = await api(`/v1/jobs/${jobId}/rollouts`, { query: { step, cursor } });
    rows.push(...response.items);
    if (!response.has_more) break;
    cursor = response.next_cursor;
  }
  return rows;
}

export function rolloutsTab(panel, context) {
  const { jobId, state } = context;
  const chartBox = h("div", {});
  const slider = h("input", { type: "range", id: "rollout-step", min: 1, max: 1, value: 1, "aria-label": "Training step" });
  const stepOut = h("output", { for: "rollout-step", id: "rollout-step-value" }, "1");
  const tableBox = h("div", { id: "rollout-step-rows", "aria-live": "polite" });
  let following = true; // the slider stays on the newest step until it is moved back
  let shown = null;
  let destroyed = false;
  panel.append(
    h("h2", {}, "Rewards"),
    chartBox,
    h("h2", {}, "Rollouts by step"),
    h("div", { class: "toolbar", id: "rollout-export" }, exportButtons((format) => downloadExport(`/v1/jobs/${jobId}/rollouts/export`, { format }, `rollouts-${jobId}.${format}`))),
    h("div", { class: "slider" }, h("label", { for: "rollout-step" }, "Step"), slider, stepOut),
    tableBox,
  );

  function lastStep() {
    const steps = [state.job.progress?.step ?? 0, state.progress[state.progress.length - 1]?.step ?? 0];
    return Math.max(...steps);
  }

  async function showStep(step) {
    stepOut.textContent = String(step);
    shown = step;
    try {
      const rollouts = await stepRollouts(jobId, step);
      if (destroyed || shown !== step) return;
      clear(tableBox, rollouts.length ? rolloutTable(rewardNames(state.job.config), rollouts) : h("p", { class: "muted" }, `No rollout stored for step ${step}.`));
    } catch (exc) {
      if (!destroyed) clear(tableBox, h("p", { class: "error" }, `Could not load the rollouts: ${exc.message}`));
    }
  }

  function render() {
    clear(chartBox, rewardChart(state));
    const last = lastStep();
    if (!last) {
      clear(tableBox, h("p", { class: "muted" }, "No training step has finished yet."));
      return;
    }
    slider.max = String(last);
    if (following) slider.value = String(last);
    if (following || Number(slider.value) !== shown) showStep(Number(slider.value)); // the newest step may still be filling
  }

  slider.addEventListener("input", () => {
    following = Number(slider.value) === Number(slider.max);
    showStep(Number(slider.value));
  });
  const unsubscribe = context.onRefresh(render);
  render();
  return {
    destroy() {
      destroyed = true;
      unsubscribe();
    },
  };
}
