// Jobs side by side (#/compare?jobs=a,b[,c,d]): each metric's line per job on one epoch axis, and the
// samples every job shares with each job's answer, word diffs against the first job, and filters.

import { api, ApiError, passRate, roundScore } from "./api.js";
import { lineChart } from "./charts.js";
import { renderDiff } from "./diff.js";
import { clear, fmtEpoch, h } from "./dom.js";
import { downloadExport, exportButtons } from "./export.js";
import { gradeBadges } from "./predictions.js";
import { changeLine } from "./timeline.js";

const JOB_COLORS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea"];
const DASHES = [null, "6 3", "2 3", "8 3 2 3"];
const BUILTIN = [
  ["exact_match", "Exact match"],
  ["f1", "F1"],
  ["rouge_l", "ROUGE-L"],
];
const FILTERS = {
  all: "All shared samples",
  disagree: "Jobs disagree",
  split: "One passes, another fails",
};

export function jobLabel(job) {
  return job.name || String(job.job_id).slice(0, 8);
}

// Each chart: one metric, a line per job (x: epoch). Graders first, then the built-in scores.
function metricCharts(jobs) {
  const graderNames = [...new Set(jobs.flatMap((job) => job.rounds.flatMap((r) => Object.keys(r.graders || {}))))];
  const metrics = [
    ...graderNames.map((name) => [`${name} (mean score)`, (r) => r.graders?.[name]?.mean_score ?? null]),
    ...BUILTIN.map(([key, title]) => [title, (r) => roundScore(r, key)]),
    ["Validator pass rate", (r) => passRate(r)],
  ];
  return metrics
    .map(([title, value]) => {
      const series = jobs.map((job, index) => ({
        name: jobLabel(job),
        color: JOB_COLORS[index],
        dash: DASHES[index],
        points: job.rounds.map((r) => ({ x: r.epoch, y: value(r) })),
      }));
      if (!series.some((line) => line.points.some((p) => p.y != null))) return null;
      const options = { title, xLabel: "epoch", yLabel: "score", yMin: 0, yMax: 1, formatY: (v) => `${Math.round(v * 100)}%` };
      return h("section", { class: "card", dataset: { metric: title } }, lineChart(series, options));
    })
    .filter(Boolean);
}

function verdicts(answer) {
  const grades = answer?.grades || {};
  const found = Object.fromEntries(Object.entries(grades).map(([name, grade]) => [name, grade.passed]));
  if (answer?.valid != null && !("valid" in found)) found.valid = answer.valid;
  return found;
}

export function samplesMatching(samples, filter) {
  if (filter === "disagree") {
    return samples.filter((s) => new Set(s.answers.map((a) => (a.answer?.prediction ?? "").trim())).size > 1);
  }
  if (filter === "split") {
    return samples.filter((s) => {
      const all = s.answers.map((a) => verdicts(a.answer));
      const names = new Set(all.flatMap((v) => Object.keys(v)));
      return [...names].some((name) => new Set(all.map((v) => v[name]).filter((x) => x != null)).size > 1);
    });
  }
  return samples;
}

function gradeList(answer) {
  return Object.keys(answer?.grades || {}).length ? gradeBadges(answer.grades) : null;
}

function answerCell(first, entry, index) {
  const answer = entry.answer;
  if (!answer) return h("td", { class: "muted" }, "no answer");
  const text = answer.prediction;
  const body = index === 0 || !first ? h("div", { class: "answer" }, text || "(empty)") : renderDiff(first.prediction, text, { insTitle: "only in this job", delTitle: "only in the first job" }).element;
  return h("td", { class: "wrap", dataset: { jobId: entry.job_id } }, body, h("p", { class: "muted" }, `epoch ${fmtEpoch(answer.epoch)}`), gradeList(answer));
}

export function compareJobsView(root, route) {
  const ids = (route.query.get("jobs") || "").split(",").filter(Boolean);
  let filter = route.query.get("filter") in FILTERS ? route.query.get("filter") : "all";
  let comparison = null;

  const summary = h("p", { id: "compare-summary", role: "status" });
  const charts = h("div", { class: "grid-2 charts", id: "compare-charts" });
  const significance = h("section", { class: "card", id: "compare-significance", hidden: true });
  const body = h("tbody");
  const head = h("thead");
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const filterSelect = h(
    "select",
    { id: "compare-filter", onchange: () => { filter = filterSelect.value; renderSamples(); } },
    Object.entries(FILTERS).map(([value, text]) => h("option", { value }, text)),
  );
  filterSelect.value = filter;
  const exports = exportButtons((format) => downloadExport(`/v1/comparisons/export`, { job_ids: ids.join(","), format }, `comparison.${format}`));
  root.append(
    h("p", { class: "breadcrumb" }, h("a", { href: "#/jobs" }, "← Jobs")),
    h("div", { class: "page-head" }, h("h1", {}, "Compare jobs"), exports),
    error,
    summary,
    significance,
    charts,
    h("section", { class: "card", "aria-labelledby": "compare-samples-title" },
      h("h2", { id: "compare-samples-title" }, "Shared samples"),
      h("div", { class: "toolbar" }, h("label", { for: "compare-filter" }, "Show"), filterSelect),
      h("p", { class: "legend diff-legend" }, "Each answer is diffed against the first job's: ", h("ins", {}, "only in this job"), " ", h("del", {}, "only in the first job"), "."),
      h("div", { class: "table-wrap" }, h("table", { class: "data", id: "compare-table" }, head, body)),
    ),
  );

  function renderSamples() {
    const { jobs, samples } = comparison;
    const shown = samplesMatching(samples, filter);
    clear(head, h("tr", {}, h("th", { scope: "col" }, "Sample"), h("th", { scope: "col" }, "Ground truth"), jobs.map((job, i) => h("th", { scope: "col", style: `border-top: 3px solid ${JOB_COLORS[i]}` }, jobLabel(job)))));
    clear(
      body,
      shown.length
        ? shown.map((s) =>
            h("tr", { dataset: { sampleId: s.sample_id } },
              h("th", { scope: "row", class: "wrap" }, h("code", {}, s.sample_id), h("p", { class: "muted" }, s.prompt.slice(0, 160))),
              h("td", { class: "wrap" }, s.ground_truth ?? "—"),
              s.answers.map((entry, index) => answerCell(s.answers[0].answer, entry, index)),
            ),
          )
        : h("tr", {}, h("td", { colspan: jobs.length + 2, class: "muted", id: "compare-empty" }, "No shared sample matches this filter.")),
    );
  }

  async function load() {
    try {
      comparison = await api("/v1/comparisons", { query: { job_ids: ids.join(",") } });
    } catch (exc) {
      error.textContent = exc instanceof ApiError && exc.status === 404 ? "One of these jobs was not found." : `Could not compare: ${exc.message}`;
      error.hidden = false;
      return;
    }
    const names = comparison.jobs.map(jobLabel).join(", ");
    summary.textContent = comparison.same_dataset
      ? `${names}: ${comparison.shared_samples} shared samples.`
      : `${names}: these jobs predict on different datasets, so they share no samples.`;
    clear(charts, metricCharts(comparison.jobs));
    renderSamples();
    if (ids.length === 2 && comparison.shared_samples) await loadSignificance();
  }

  // Two jobs on the same samples: the second's latest answers against the first's, per grader, in words.
  async function loadSignificance() {
    const changes = await api("/v1/comparisons/changes", { query: { job_ids: ids.join(",") } });
    clear(
      significance,
      h("h2", {}, "Is it really better?"),
      h("p", { class: "muted" }, `Each job's latest answers on ${changes.shared_samples} shared samples; exact McNemar test, ${Math.round(changes.confidence * 100)}% paired bootstrap intervals.`),
      h("ul", { id: "significance-list" }, changes.graders.map(changeLine)),
    );
    significance.hidden = false;
  }

  load();
  return {};
}
