// The predictions table: round / epoch / failing-grader filters, keyset pagination, click to expand, validator badge,
// each grader's verdict, scores.

import { api, score } from "./api.js";
import { clear, debounce, expandable, fmtEpoch, fmtNum, h } from "./dom.js";

const PAGE_SIZES = [25, 50, 100];

export function validatorBadge(row) {
  if (row.valid === true) return h("span", { class: "badge valid-yes", title: "Passed every validator" }, "valid");
  if (row.valid === false) {
    return h("span", { class: "badge valid-no", title: row.validation_error || "Failed a validator" }, "invalid");
  }
  return h("span", { class: "badge valid-none", title: "No validators configured" }, "—");
}

// Each grader's verdict on one answer, by name; its reason on hover.
export function gradeBadges(grades) {
  const entries = Object.entries(grades || {});
  if (!entries.length) return h("span", { class: "muted" }, "—");
  return h(
    "ul",
    { class: "grades" },
    entries.map(([name, grade]) =>
      h("li", { class: grade.passed ? "pass" : "fail", dataset: { grader: name, passed: String(grade.passed) }, title: grade.error ?? "" }, `${grade.passed ? "✓" : "✗"} ${name} ${fmtNum(grade.score, 2)}`),
    ),
  );
}

// The job's graders by name: its config's, then any other its rounds name.
export function jobGraderNames(state) {
  const configured = (state.job?.config?.predictions?.graders ?? []).map((grader) => grader.name);
  return [...new Set([...configured, ...state.rounds.flatMap((r) => Object.keys(r.graders || {}))])];
}

export function predictionsTab(panel, context, query) {
  let step = query.get("step") ?? "";
  let epoch = query.get("epoch") ?? "";
  let failing = query.get("failing") ?? "";
  let pageSize = 25;
  let cursors = [null]; // cursors[i] fetches page i
  let page = 0;
  let result = null;
  let destroyed = false;
  let request = 0;

  const roundSelect = h("select", { id: "round-filter" });
  const epochSelect = h("select", { id: "epoch-filter" });
  const failingSelect = h("select", { id: "failing-filter" });
  const sizeSelect = h("select", { id: "page-size" }, PAGE_SIZES.map((size) => h("option", { value: size }, size)));
  const prev = h("button", { type: "button", id: "prev-page", onclick: () => go(page - 1) }, "← Previous");
  const next = h("button", { type: "button", id: "next-page", onclick: () => go(page + 1) }, "Next →");
  const pageInfo = h("span", { id: "page-info", "aria-live": "polite" });
  const body = h("tbody");
  const status = h("p", { class: "muted", id: "predictions-status", role: "status" });

  panel.append(
    h("h2", { class: "sr-only" }, "Predictions"),
    h(
      "div",
      { class: "toolbar" },
      h("label", { for: "round-filter" }, "Round"), roundSelect,
      h("label", { for: "epoch-filter" }, "Epoch"), epochSelect,
      h("label", { for: "failing-filter" }, "Failing grader"), failingSelect,
      h("label", { for: "page-size" }, "Rows per page"), sizeSelect,
    ),
    h("div", { class: "table-wrap" },
      h("table", { class: "data predictions", id: "predictions-table" },
        h("caption", { class: "sr-only" }, "Predictions; buttons in the text columns expand the full text"),
        h("thead", {}, h("tr", {},
          ["Round", "Epoch", "Step", "Sample", "Prompt", "Ground truth", "Prediction", "Validator", "Graders", "Exact match", "F1", "ROUGE-L", "Tokens"].map((name) => h("th", { scope: "col" }, name)))),
        body,
      ),
    ),
    status,
    h("div", { class: "pager", role: "navigation", "aria-label": "Pages of predictions" }, prev, pageInfo, next),
  );

  function renderFilters() {
    const rounds = context.state.rounds;
    const epochs = [...new Set(rounds.map((r) => r.epoch))].sort((a, b) => a - b);
    clear(
      roundSelect,
      h("option", { value: "" }, "All rounds"),
      rounds.map((r) => h("option", { value: String(r.step) }, `Round ${r.round_index} (epoch ${fmtEpoch(r.epoch)}, step ${r.step})`)),
    );
    clear(epochSelect, h("option", { value: "" }, "All epochs"), epochs.map((e) => h("option", { value: String(e) }, fmtEpoch(e))));
    if (step && !rounds.some((r) => String(r.step) === step)) roundSelect.append(h("option", { value: step }, `Step ${step}`));
    roundSelect.value = step;
    epochSelect.value = epoch;
    const graders = jobGraderNames(context.state);
    if (failing && !graders.includes(failing)) graders.push(failing);
    clear(failingSelect, h("option", { value: "" }, "Any answer"), graders.map((name) => h("option", { value: name }, name)));
    failingSelect.value = failing;
  }

  function row(p) {
    return h(
      "tr",
      { dataset: { sampleId: p.sample_id, step: p.step } },
      h("td", {}, p.round_index),
      h("td", {}, fmtEpoch(p.epoch)),
      h("td", {}, p.step),
      h("td", { class: "nowrap" }, h("a", { href: `#/jobs/${context.jobId}/compare?sample=${encodeURIComponent(p.sample_id)}`, title: "Compare this sample across rounds" }, p.sample_id)),
      h("td", { class: "text", dataset: { col: "prompt" } }, expandable(p.prompt, 60, "prompt")),
      h("td", { class: "text", dataset: { col: "ground-truth" } }, p.ground_truth == null ? h("span", { class: "muted" }, "none") : expandable(p.ground_truth, 60, "ground truth")),
      h("td", { class: "text", dataset: { col: "prediction" } }, expandable(p.prediction, 60, "prediction")),
      h("td", { dataset: { col: "validator" } }, validatorBadge(p)),
      h("td", { dataset: { col: "graders" } }, gradeBadges(p.grades)),
      h("td", { class: "num", dataset: { col: "exact-match" } }, fmtNum(score(p, "exact_match"), 2)),
      h("td", { class: "num", dataset: { col: "f1" } }, fmtNum(score(p, "f1"))),
      h("td", { class: "num", dataset: { col: "rouge-l" } }, fmtNum(score(p, "rouge_l"))),
      h("td", { class: "num" }, p.tokens_generated),
    );
  }

  async function load() {
    const mine = ++request;
    status.textContent = "Loading…";
    try {
      const data = await api(`/v1/jobs/${context.jobId}/predictions`, {
        query: { limit: pageSize, cursor: cursors[page], step, epoch, failing_grader: failing },
      });
      if (destroyed || mine !== request) return;
      result = data;
      if (data.has_more) cursors[page + 1] = data.next_cursor;
      clear(body, data.items.map(row));
      const first = page * pageSize + 1;
      pageInfo.textContent = data.items.length ? `Page ${page + 1} · rows ${first}–${first + data.items.length - 1}` : `Page ${page + 1}`;
      status.textContent = data.items.length ? "" : page === 0 ? "No predictions match yet." : "No more predictions.";
      prev.disabled = page === 0;
      next.disabled = !data.has_more;
    } catch (exc) {
      if (!destroyed) status.textContent = `Could not load predictions: ${exc.message}`;
    }
  }

  function go(target) {
    if (target < 0 || target >= cursors.length) return;
    page = target;
    load();
  }

  function reset() {
    cursors = [null];
    page = 0;
    load();
  }

  roundSelect.addEventListener("change", () => {
    step = roundSelect.value;
    reset();
  });
  epochSelect.addEventListener("change", () => {
    epoch = epochSelect.value;
    reset();
  });
  failingSelect.addEventListener("change", () => {
    failing = failingSelect.value;
    reset();
  });
  sizeSelect.addEventListener("change", () => {
    pageSize = Number(sizeSelect.value);
    reset();
  });

  // New rows sort after the existing ones (later steps): reload this page when it is the last one.
  const reloadIfLast = debounce(() => {
    if (!result || !result.has_more || result.items.length < pageSize) load();
  }, 700);
  context.onPrediction(reloadIfLast);
  context.onRefresh(renderFilters);

  renderFilters();
  load();
  return {
    update(nextQuery) {
      const newStep = nextQuery.get("step") ?? "";
      const newEpoch = nextQuery.get("epoch") ?? "";
      const newFailing = nextQuery.get("failing") ?? "";
      if (newStep !== step || newEpoch !== epoch || newFailing !== failing) {
        step = newStep;
        epoch = newEpoch;
        failing = newFailing;
        renderFilters();
        reset();
      }
    },
    destroy() {
      destroyed = true;
      reloadIfLast.cancel();
    },
  };
}
