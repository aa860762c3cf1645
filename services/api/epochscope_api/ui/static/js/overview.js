// The job's overview tab: loss chart, rounds summary and a quality chart per round.

import { passRate, roundScore } from "./api.js";
import { lineChart } from "./charts.js";
import { checkpointCell, loadCheckpoints, metricValue } from "./checkpoints.js";
import { clear, fmtEpoch, fmtInt, fmtNum, fmtPct, h } from "./dom.js";
import { isPreferenceJob, preferenceCharts } from "./preference_chart.js";
import { jobGraderNames } from "./predictions.js";

const COLORS = { loss: "#2563eb", exact: "#16a34a", f1: "#9333ea", rouge: "#ea580c", valid: "#0891b2" };
const GRADER_COLORS = ["#dc2626", "#0d9488", "#ca8a04", "#4f46e5", "#db2777", "#65a30d", "#7c3aed", "#0284c7"];

// One line per grader: its pass rate in each round.
function graderSeries(names, rounds) {
  return names.map((name, index) => ({
    name: `${name} pass rate`,
    color: GRADER_COLORS[index % GRADER_COLORS.length],
    dash: "2 3",
    points: rounds.map((r) => ({ x: r.round_index, y: r.graders?.[name]?.pass_rate ?? null })),
  }));
}

// The best round as one marked point, at its value of the job's checkpoint metric.
function bestSeries(job, rounds) {
  const best = rounds.find((r) => r.round_index === job.best_round);
  if (!best) return [];
  const metric = job.config?.predictions?.checkpoints?.metric ?? "validator_pass_rate";
  return [{ name: `★ Best round (${metric.replace(/_/g, " ")})`, color: "#b8860b", points: [{ x: best.round_index, y: metricValue(best, metric) }] }];
}

// A grader's pass rate in one round, with its counts and mean score on hover; where it failed some answers, a link
// to them (the predictions table filtered by that round and that grader failing).
function graderCell(jobId, round, name) {
  const summary = round.graders?.[name];
  const title = summary ? `${name}: ${summary.passed} of ${summary.graded} passed, mean score ${fmtNum(summary.mean_score)}` : `${name}: not graded`;
  const rate = fmtPct(summary?.pass_rate ?? null);
  const failed = summary && summary.passed < summary.graded;
  const query = `step=${round.step}&failing=${encodeURIComponent(name)}`;
  return h("td", { class: "num", dataset: { col: "grader", grader: name }, title }, failed ? h("a", { href: `#/jobs/${jobId}/predictions?${query}` }, rate) : rate);
}

export function overviewTab(panel, context) {
  const lossBox = h("div", { id: "loss-chart" });
  const preferenceBox = isPreferenceJob(context.state.job) ? h("div", { id: "preference-chart" }) : null;
  const qualityBox = h("div", { id: "quality-chart" });
  const roundsBox = h("div", { id: "rounds-summary" });
  const predictionsOn = Boolean(context.state.job.config.predictions?.enabled);
  panel.append(
    h("div", { class: predictionsOn ? "grid-2 charts" : "charts" },
      h("section", { class: "card", "aria-labelledby": "loss-title" }, h("h2", { id: "loss-title" }, "Training loss"), lossBox, preferenceBox),
      predictionsOn ? h("section", { class: "card", "aria-labelledby": "quality-title" }, h("h2", { id: "quality-title" }, "Prediction quality per round"), qualityBox) : null,
    ),
    predictionsOn
      ? h("section", { class: "card", "aria-labelledby": "rounds-title" }, h("h2", { id: "rounds-title" }, "Rounds"), roundsBox)
      : h("p", { class: "muted" }, "Predictions were not enabled for this job."),
  );

  function render() {
    const { progress, rounds, job } = context.state;
    let lossPoints = progress.filter((p) => p.loss != null).map((p) => ({ x: p.step, y: p.loss }));
    if (!lossPoints.length && job.progress?.loss != null) lossPoints = [{ x: job.progress.step, y: job.progress.loss }];
    clear(lossBox, lineChart([{ name: "Loss", color: COLORS.loss, points: lossPoints }], { title: "Training loss by step", xLabel: "step", yLabel: "loss", integerX: true }));
    if (preferenceBox) clear(preferenceBox, preferenceCharts(progress));
    if (!predictionsOn) return;
    const graders = jobGraderNames(context.state);

    // A round's metrics are null until its summary arrives (the chart skips them): in-progress rounds draw nothing.
    const series = [
      { name: "Exact match", color: COLORS.exact, points: rounds.map((r) => ({ x: r.round_index, y: roundScore(r, "exact_match") })) },
      { name: "F1", color: COLORS.f1, points: rounds.map((r) => ({ x: r.round_index, y: roundScore(r, "f1") })) },
      { name: "ROUGE-L", color: COLORS.rouge, points: rounds.map((r) => ({ x: r.round_index, y: roundScore(r, "rouge_l") })), dash: "5 3" },
      { name: "Validator pass rate", color: COLORS.valid, points: rounds.map((r) => ({ x: r.round_index, y: passRate(r) })) },
      ...graderSeries(graders, rounds),
      ...bestSeries(job, rounds),
    ].filter((line) => line.points.some((p) => p.y != null));
    clear(
      qualityBox,
      series.length
        ? lineChart(series, { title: "Quality by round", xLabel: "round", yLabel: "score", yMin: 0, yMax: 1, integerX: true, formatY: (v) => `${Math.round(v * 100)}%` })
        : h("p", { class: "muted" }, rounds.some((r) => r.summarized) ? "No scores or validator results in these rounds." : rounds.length ? "No round summarized yet." : "No rounds yet."),
    );

    if (!rounds.length) {
      clear(roundsBox, h("p", { class: "muted", id: "no-rounds" }, "No prediction rounds yet. They appear here live while the job runs."));
      return;
    }
    clear(
      roundsBox,
      h("div", { class: "table-wrap" },
        h("table", { class: "data", id: "rounds-table" },
          h("caption", { class: "sr-only" }, "One row per prediction round"),
          h("thead", {}, h("tr", {}, ["Round", "Epoch", "Step", "Trigger", "Predictions", "Validator pass rate", "Exact match", "F1", "ROUGE-L"].map((name) => h("th", { scope: "col" }, name)),
            graders.map((name) => h("th", { scope: "col", class: "grader-col", title: `Grader ${name}: pass rate` }, `${name} pass rate`)),
            ["Tokens", "Checkpoint", ""].map((name) => h("th", { scope: "col" }, name)))),
          h("tbody", {},
            rounds.map((r) =>
              h("tr", { dataset: { roundIndex: r.round_index }, class: r.round_index === job.best_round ? "best-round" : null },
                h("th", { scope: "row" }, r.round_index),
                h("td", {}, fmtEpoch(r.epoch)),
                h("td", {}, r.step),
                h("td", {}, r.trigger ?? "—", r.summarized ? null : h("span", { class: "muted", title: "Predictions are arriving; its metrics come with the trainer's summary" }, " (in progress)")),
                h("td", { class: "num" }, fmtInt(r.predictions)),
                h("td", { class: "num", dataset: { col: "pass-rate" } }, fmtPct(passRate(r))),
                h("td", { class: "num", dataset: { col: "exact-match" } }, fmtPct(roundScore(r, "exact_match"))),
                h("td", { class: "num", dataset: { col: "f1" } }, fmtNum(roundScore(r, "f1"))),
                h("td", { class: "num", dataset: { col: "rouge-l" } }, fmtNum(roundScore(r, "rouge_l"))),
                graders.map((name) => graderCell(context.jobId, r, name)),
                h("td", { class: "num" }, fmtInt(r.tokens)),
                checkpointCell(context.jobId, checkpoints.get(r.round_index), `round-${r.round_index}`),
                h("td", {},
                  h("a", { href: `#/jobs/${context.jobId}/predictions?step=${r.step}` }, `Round ${r.round_index} predictions`),
                  r.round_index === job.best_round ? h("span", { class: "badge best", id: "best-round", title: "The best round by the job's checkpoint metric" }, "★ best") : null,
                ),
              ),
            ),
          ),
        ),
      ),
      finalWeights(),
    );
  }

  // The final weights of a completed job, kept with any checkpoints mode but none.
  function finalWeights() {
    const final = checkpoints.get("final");
    if (!final) return null;
    return h("table", { class: "data", id: "final-weights" }, h("tbody", {}, h("tr", {}, h("th", { scope: "row" }, `Final weights (step ${final.step})`), checkpointCell(context.jobId, final, "final"))));
  }

  let checkpoints = new Map();
  async function refreshCheckpoints() {
    try {
      checkpoints = await loadCheckpoints(context.state.job);
    } catch {
      return; // the table keeps its dashes; the next refresh tries again
    }
    render();
  }

  render();
  refreshCheckpoints();
  context.onRefresh(() => {
    render();
    refreshCheckpoints();
  });
  return {};
}
