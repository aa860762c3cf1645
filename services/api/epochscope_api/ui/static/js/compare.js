// The comparison view: one sample's ground truth and its prediction at every round, side by side,
// with a word-level diff against the previous round and against the ground truth.

import { api, ApiError, score } from "./api.js";
import { clear, debounce, fmtEpoch, fmtNum, h } from "./dom.js";
import { renderDiff } from "./diff.js";
import { gradeBadges, validatorBadge } from "./predictions.js";
import { sampleVerdicts, verdictControls } from "./verdicts.js";

const SCORE_NAMES = { exact_match: "exact match", f1: "F1", rouge_l: "ROUGE-L" };

export function compareTab(panel, context, query) {
  let sampleId = query.get("sample") ?? "";
  let samples = [];
  let destroyed = false;
  let request = 0;

  const picker = h("select", { id: "sample-picker" });
  const prev = h("button", { type: "button", id: "prev-sample", onclick: () => step(-1) }, "← Previous sample");
  const next = h("button", { type: "button", id: "next-sample", onclick: () => step(1) }, "Next sample →");
  const content = h("div", { id: "comparison", "aria-live": "polite" });

  panel.append(
    h("h2", { class: "sr-only" }, "Compare a sample across rounds"),
    h("div", { class: "toolbar" }, h("label", { for: "sample-picker" }, "Sample"), picker, prev, next),
    h(
      "p",
      { class: "legend diff-legend" },
      "Word-level differences: ",
      h("ins", {}, "added words"),
      " ",
      h("del", {}, "removed words"),
      ". “Since previous round” compares with the round before; “Against ground truth” turns the ground truth into the prediction.",
    ),
    content,
  );

  async function loadSamples() {
    const rounds = context.state.rounds;
    if (!rounds.length) {
      samples = [];
      renderPicker();
      return;
    }
    const limit = context.state.limits?.predictions_page_max ?? 500;
    // Every round predicts the same seeded samples: the first round lists them.
    const page = await api(`/v1/jobs/${context.jobId}/predictions`, { query: { step: rounds[0].step, limit } });
    samples = page.items.sort((a, b) => a.sample_index - b.sample_index);
    renderPicker();
  }

  function renderPicker() {
    clear(
      picker,
      samples.map((s) => h("option", { value: s.sample_id }, `#${s.sample_index} · ${s.sample_id} · ${s.prompt.slice(0, 50)}${s.prompt.length > 50 ? "…" : ""}`)),
    );
    if (!sampleId && samples.length) sampleId = samples[0].sample_id;
    if (sampleId && !samples.some((s) => s.sample_id === sampleId)) picker.append(h("option", { value: sampleId }, sampleId));
    picker.value = sampleId;
    const index = samples.findIndex((s) => s.sample_id === sampleId);
    prev.disabled = index <= 0;
    next.disabled = index < 0 || index >= samples.length - 1;
    picker.disabled = !samples.length && !sampleId;
  }

  function step(delta) {
    const index = samples.findIndex((s) => s.sample_id === sampleId);
    const target = samples[index + delta];
    if (target) context.navigate(`#/jobs/${context.jobId}/compare?sample=${encodeURIComponent(target.sample_id)}`);
  }

  picker.addEventListener("change", () => {
    context.navigate(`#/jobs/${context.jobId}/compare?sample=${encodeURIComponent(picker.value)}`);
  });

  function text(label, value, id) {
    return h("section", { class: "card reference" }, h("h3", {}, label), h("div", { class: "pre", id }, value ?? "(none)"));
  }

  function roundCard(round, previous, groundTruth, verdict) {
    const sincePrevious = previous ? renderDiff(previous.prediction, round.prediction, { insTitle: "new since the previous round", delTitle: "gone since the previous round" }) : null;
    const vsTruth = groundTruth != null ? renderDiff(groundTruth, round.prediction, { insTitle: "not in the ground truth", delTitle: "missing from the prediction" }) : null;
    const scores = ["exact_match", "f1", "rouge_l"].map((name) => [name, score(round, name)]).filter(([, value]) => value != null);
    return h(
      "article",
      { class: "round-card", role: "listitem", dataset: { roundIndex: round.round_index }, "aria-labelledby": `round-${round.round_index}-title` },
      h("h3", { id: `round-${round.round_index}-title` }, `Round ${round.round_index}`, h("span", { class: "muted" }, ` · epoch ${fmtEpoch(round.epoch)} · step ${round.step}`)),
      h("div", { class: "badges" },
        "valid" in round ? validatorBadge(round) : null,
        scores.map(([name, value]) => h("span", { class: "badge score" }, `${SCORE_NAMES[name]} ${fmtNum(value, 2)}`)),
        h("span", { class: "badge score" }, `${round.tokens_generated} tokens`),
      ),
      Object.keys(round.grades || {}).length ? h("div", { class: "round-grades" }, h("h4", {}, "Graders"), gradeBadges(round.grades)) : null,
      h("h4", {}, "Prediction"),
      h("div", { class: "pre prediction-text" }, round.prediction || h("span", { class: "muted" }, "(empty)")),
      h("h4", {}, previous ? `Since round ${previous.round_index}` : "Since previous round"),
      sincePrevious
        ? h("div", { class: "diff-block diff-previous" }, sincePrevious.same ? h("p", { class: "muted" }, "No change.") : sincePrevious.element)
        : h("p", { class: "muted diff-previous" }, "First round: nothing to compare with."),
      h("h4", {}, "Against ground truth"),
      vsTruth
        ? h("div", { class: "diff-block diff-truth" }, vsTruth.same ? h("p", { class: "match" }, "✓ Matches the ground truth word for word.") : vsTruth.element)
        : h("p", { class: "muted diff-truth" }, "No ground truth for this sample."),
      verdictControls(context.jobId, { ...round, sample_id: sampleId }, verdict),
    );
  }

  async function loadSample() {
    const mine = ++request;
    if (!sampleId) {
      clear(content, h("p", { class: "muted" }, context.state.rounds.length ? "Pick a sample." : "No predictions yet. They appear here live while the job runs."));
      return;
    }
    try {
      const [history, verdicts] = await Promise.all([
        api(`/v1/jobs/${context.jobId}/samples/${encodeURIComponent(sampleId)}`),
        sampleVerdicts(context.jobId, sampleId),
      ]);
      if (destroyed || mine !== request) return;
      const rounds = [...history.rounds].sort((a, b) => a.step - b.step);
      clear(
        content,
        h("div", { class: "grid-2" }, text("Prompt", history.prompt, "compare-prompt"), text("Ground truth", history.ground_truth, "compare-ground-truth")),
        h("div", { class: "rounds-strip", role: "list", "aria-label": `Sample ${history.sample_id} at every round`, tabindex: "0" },
          rounds.map((round, index) => roundCard(round, rounds[index - 1], history.ground_truth, verdicts.get(round.step)))),
      );
    } catch (exc) {
      if (destroyed || mine !== request) return;
      clear(content, h("p", { class: "error" }, exc instanceof ApiError && exc.status === 404 ? `No sample ${sampleId} in this job yet.` : `Could not load the sample: ${exc.message}`));
    }
  }

  const reloadSample = debounce(loadSample, 500);
  const reloadSamples = debounce(() => loadSamples().then(loadSample).catch(() => {}), 500);
  context.onPrediction((prediction) => {
    if (!samples.length) reloadSamples();
    else if (prediction.sample_id === sampleId) reloadSample();
  });
  context.onRefresh(() => {
    if (!samples.length && context.state.rounds.length) reloadSamples();
  });

  loadSamples()
    .catch((exc) => clear(content, h("p", { class: "error" }, `Could not load samples: ${exc.message}`)))
    .then(loadSample);

  return {
    update(nextQuery) {
      const target = nextQuery.get("sample") ?? "";
      if (target && target !== sampleId) {
        sampleId = target;
        renderPicker();
        loadSample();
      }
    },
    destroy() {
      destroyed = true;
      reloadSample.cancel();
      reloadSamples.cancel();
    },
  };
}
