// One dataset: its facts and report, a paged preview of its rows (prompt vs ground truth), and delete.

import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { datasetFacts, datasetReport, getModels } from "./dataset_report.js";
import { deleteDataset } from "./datasets.js";
import { samplesTable } from "./samples.js";

const PAGE_SIZE = 20;

export function datasetView(root, route, { navigate }) {
  const datasetId = route.parts[1];
  let destroyed = false;
  let dataset = null;
  // Keyset paging: the cursor of each page seen so far, so Previous goes back without offsets.
  let cursors = [null];
  let pageIndex = 0;
  let nextCursor = null;
  let rowsSeq = 0;

  const head = h("div", { class: "dataset-head" }, h("p", { class: "muted" }, "Loading…"));
  const error = h("p", { class: "error", id: "dataset-error", role: "alert", hidden: true });
  const report = h("section", { class: "card", "aria-labelledby": "report-title" });
  const rowsBox = h("div", { id: "rows-preview" });
  const pageInfo = h("span", { id: "rows-page-info", class: "muted" });
  const prev = h("button", { type: "button", disabled: true, onclick: () => showPage(pageIndex - 1) }, "← Previous");
  const next = h("button", { type: "button", disabled: true, onclick: () => showPage(pageIndex + 1) }, "Next →");
  const rowsSection = h(
    "section",
    { class: "card", "aria-labelledby": "rows-title" },
    h("h2", { id: "rows-title" }, "Rows"),
    h("p", { class: "help" }, "What training sees: the prompt the model is given, and the ground truth it should answer."),
    rowsBox,
    h("div", { class: "pager" }, prev, pageInfo, next),
  );

  root.append(h("p", { class: "breadcrumb" }, h("a", { href: "#/datasets" }, "← Datasets")), head, error, report, rowsSection);

  async function remove() {
    error.hidden = true;
    try {
      if (await deleteDataset(dataset)) navigate("#/datasets");
    } catch (exc) {
      error.textContent = `Could not delete: ${exc.message}`;
      error.hidden = false;
    }
  }

  function renderHead() {
    clear(
      head,
      h(
        "div",
        { class: "page-head" },
        h("h1", {}, "Dataset ", h("span", { class: "filename" }, dataset.filename)),
        h(
          "div",
          { class: "actions" },
          h("a", { class: "button", href: `#/new?dataset=${encodeURIComponent(dataset.dataset_id)}` }, "Use in a new job"),
          h("button", { type: "button", class: "danger", onclick: remove }, "Delete dataset"),
        ),
      ),
      datasetFacts(dataset),
      dataset.provenance ? provenanceLine(dataset.provenance) : null,
    );
  }

  // A dataset the API built: which job's rounds, by which rule.
  function provenanceLine(built) {
    const rule = built.rule;
    return h(
      "p",
      { id: "dataset-provenance" },
      `${built.pairs} preference pairs (${built.regressions} regressions) from `,
      h("a", { href: `#/jobs/${built.job_id}` }, `job ${built.job_id.slice(0, 8)}`),
      `, rounds ${built.rounds.join(", ")}: rejected failed ${rule.grader === "human" ? "your verdicts" : rule.grader}, chosen from ${rule.chosen.join(" then ").replaceAll("_", " ")}.`,
    );
  }

  async function showPage(index) {
    const seq = ++rowsSeq;
    prev.disabled = true;
    next.disabled = true;
    pageInfo.textContent = "Loading rows…";
    try {
      const page = await api(`/v1/datasets/${encodeURIComponent(datasetId)}/rows`, { query: { limit: PAGE_SIZE, cursor: cursors[index] } });
      if (destroyed || seq !== rowsSeq) return;
      pageIndex = index;
      nextCursor = page.next_cursor;
      cursors = cursors.slice(0, index + 1);
      if (nextCursor) cursors.push(nextCursor);
      clear(
        rowsBox,
        page.items.length
          ? samplesTable(page.items, { id: "rows-table", caption: "Rows of the dataset, in file order", showFormat: true })
          : h("p", { class: "muted" }, "No usable rows on this page."),
      );
      const first = pageIndex * PAGE_SIZE + 1;
      pageInfo.textContent = page.items.length ? `Page ${pageIndex + 1} · rows ${first}–${first + page.items.length - 1}` : `Page ${pageIndex + 1}`;
      prev.disabled = pageIndex === 0;
      next.disabled = !nextCursor;
    } catch (exc) {
      if (destroyed || seq !== rowsSeq) return;
      pageInfo.textContent = "";
      clear(rowsBox, h("p", { class: "error", role: "alert" }, `Could not load the rows: ${exc.message}`));
      prev.disabled = pageIndex === 0;
    }
  }

  async function load() {
    try {
      dataset = await api(`/v1/datasets/${encodeURIComponent(datasetId)}`);
    } catch (exc) {
      if (destroyed) return;
      clear(head, h("h1", {}, exc.status === 404 ? "Dataset not found" : "Could not load the dataset"), h("p", {}, exc.status === 404 ? "It does not exist, or it is not yours." : exc.message));
      report.hidden = true;
      rowsSection.hidden = true;
      return;
    }
    if (destroyed) return;
    document.title = `Epochscope · ${dataset.filename}`;
    renderHead();
    clear(report, h("h2", { id: "report-title" }, "Validation report"), h("p", { class: "muted" }, "Loading the model catalog…"));
    const models = await getModels().catch(() => []);
    if (destroyed) return;
    clear(report, h("h2", { id: "report-title" }, "Validation report"), datasetReport(dataset, models));
    showPage(0);
  }

  load();
  return {
    destroy() {
      destroyed = true;
    },
  };
}
