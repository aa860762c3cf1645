// A dataset's validation report: its facts, malformed rows by reason, the first malformed lines, the rows each
// training method can use (and why not the others), tokens per model.

import { api } from "./api.js";
import { fmtDate, fmtInt, h } from "./dom.js";
import { fmtBytes } from "./upload.js";

let modelsPromise = null;

// The catalog, fetched once per page load (display names and context lengths for the token table).
export function getModels() {
  modelsPromise ??= api("/v1/models")
    .then((page) => page?.items ?? [])
    .catch((error) => {
      modelsPromise = null;
      throw error;
    });
  return modelsPromise;
}

export function formatLabel(dataset) {
  const rowFormat = {
    chat: "chat messages",
    prompt_completion: "prompt / completion",
    conversational: "conversational",
    text: "text",
    preference: "preference pairs (text)",
    conversational_preference: "preference pairs (messages)",
  }[dataset.row_format];
  return `${(dataset.file_type ?? "?").toUpperCase()}${rowFormat ? ` · ${rowFormat}` : ""}`;
}

export function rowsLabel(dataset) {
  return dataset.usable_rows === dataset.rows
    ? `${fmtInt(dataset.rows)} rows`
    : `${fmtInt(dataset.usable_rows)} usable of ${fmtInt(dataset.rows)} rows`;
}

export function datasetFacts(dataset) {
  const report = dataset.report ?? {};
  return h(
    "dl",
    { class: "facts", id: "dataset-facts" },
    [
      ["File", dataset.filename],
      ["Format", formatLabel(dataset)],
      ["Rows", fmtInt(dataset.rows)],
      ["Usable rows", fmtInt(dataset.usable_rows)],
      ["Malformed rows", fmtInt(report.malformed ?? dataset.rows - dataset.usable_rows)],
      ["Size", fmtBytes(dataset.bytes)],
      ["Uploaded", fmtDate(dataset.created_at)],
      ["SHA-256", h("code", { title: dataset.sha256 }, String(dataset.sha256 ?? "").slice(0, 16))],
      ["Dataset id", h("code", {}, dataset.dataset_id)],
    ].map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value ?? "—"))),
  );
}

function malformedSection(report) {
  const count = report.malformed ?? 0;
  if (!count) {
    return h("section", { class: "report-part", id: "malformed" }, h("h3", {}, "Malformed rows"), h("p", { class: "ok-text" }, "✓ No malformed rows: every row is usable."));
  }
  const reasons = Object.entries(report.malformed_by_reason ?? {}).sort((a, b) => b[1] - a[1]);
  const examples = report.malformed_examples ?? [];
  return h(
    "section",
    { class: "report-part", id: "malformed" },
    h("h3", {}, `Malformed rows: ${fmtInt(count)}`),
    h("p", { class: "help" }, "These rows are skipped: training and predictions use the usable rows only."),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "data", id: "malformed-reasons" },
        h("caption", { class: "sr-only" }, "Malformed rows by reason"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Reason"), h("th", { scope: "col" }, "Rows"))),
        h("tbody", {}, reasons.map(([reason, n]) => h("tr", {}, h("td", {}, reason), h("td", { class: "num" }, fmtInt(n))))),
      ),
    ),
    examples.length
      ? [
          h("h4", {}, examples.length < count ? `The first ${examples.length} malformed lines` : "Malformed lines"),
          h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "data", id: "malformed-examples" },
              h("caption", { class: "sr-only" }, "The first malformed lines"),
              h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Line"), h("th", { scope: "col" }, "Reason"))),
              h(
                "tbody",
                {},
                examples.map((example) =>
                  h("tr", { dataset: { line: example.line } }, h("td", { class: "num" }, `line ${example.line}`), h("td", { class: "text" }, example.reason)),
                ),
              ),
            ),
          ),
        ]
      : null,
  );
}

const METHOD_NAMES = { sft: "SFT", dpo: "DPO", grpo: "GRPO" };

// Per training method: its usable rows, and each reason the others are not with their first lines. Absent for a
// dataset reported before the server counted per method.
function methodsSection(report) {
  const entries = Object.entries(report.methods ?? {});
  if (!entries.length) return null;
  const reasonCell = (unusable) => {
    const reasons = Object.entries(unusable ?? {});
    if (!reasons.length) return h("span", { class: "ok-text" }, "✓ every row");
    return h(
      "ul",
      { class: "reasons" },
      reasons.map(([reason, rows]) =>
        h("li", {}, `${reason}: ${fmtInt(rows.rows)} ${rows.rows === 1 ? "row" : "rows"}`, h("span", { class: "muted" }, ` (line ${rows.first_lines.join(", ")}${rows.rows > rows.first_lines.length ? ", …" : ""})`)),
      ),
    );
  };
  return h(
    "section",
    { class: "report-part", id: "methods" },
    h("h3", {}, "Rows per training method"),
    h("p", { class: "help" }, "A job's method trains on the rows it can use; a method with none is refused when the job is submitted."),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "data", id: "method-rows" },
        h("caption", { class: "sr-only" }, "Usable rows per training method, and why the others are not"),
        h("thead", {}, h("tr", {}, ["Method", "Usable rows", "Not usable, by reason"].map((name) => h("th", { scope: "col" }, name)))),
        h(
          "tbody",
          {},
          entries.map(([method, rows]) =>
            h(
              "tr",
              { dataset: { method }, class: rows.usable ? null : "unusable" },
              h("td", {}, METHOD_NAMES[method] ?? method),
              h("td", { class: "num" }, fmtInt(rows.usable)),
              h("td", { class: "text" }, reasonCell(rows.unusable)),
            ),
          ),
        ),
      ),
    ),
  );
}

function tokensSection(report, models) {
  const entries = Object.entries(report.tokens ?? {});
  const byId = new Map(models.map((model) => [model.id, model]));
  if (!entries.length) {
    return h("section", { class: "report-part", id: "tokens" }, h("h3", {}, "Tokens per model"), h("p", { class: "muted" }, "No token counts: the server has no tokenizer for its models."));
  }
  return h(
    "section",
    { class: "report-part", id: "tokens" },
    h("h3", {}, "Tokens per model"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "data", id: "token-counts" },
        h("caption", { class: "sr-only" }, "Token counts of the usable rows, per catalog model"),
        h(
          "thead",
          {},
          h("tr", {}, ["Model", "Prompt tokens", "Completion tokens", "Longest prompt", "Longest completion"].map((name) => h("th", { scope: "col" }, name))),
        ),
        h(
          "tbody",
          {},
          entries.map(([modelId, counts]) => {
            const model = byId.get(modelId);
            const longest = (counts.max_prompt_tokens ?? 0) + (counts.max_completion_tokens ?? 0);
            const tooLong = model && longest > model.context_length;
            return h(
              "tr",
              { dataset: { modelId } },
              h("td", {}, model?.display_name ?? modelId, model ? h("div", { class: "muted" }, h("code", {}, modelId)) : null),
              h("td", { class: "num" }, fmtInt(counts.prompt_tokens)),
              h("td", { class: "num" }, fmtInt(counts.completion_tokens)),
              h("td", { class: "num" }, fmtInt(counts.max_prompt_tokens)),
              h(
                "td",
                { class: "num" },
                fmtInt(counts.max_completion_tokens),
                tooLong ? h("div", { class: "error" }, `longest row exceeds the ${fmtInt(model.context_length)}-token context`) : null,
              ),
            );
          }),
        ),
      ),
    ),
  );
}

// The report's two parts. `models` is the catalog (may be empty: then ids stand for names).
export function datasetReport(dataset, models = []) {
  const report = dataset.report ?? {};
  return h("div", { class: "dataset-report" }, malformedSection(report), methodsSection(report), tokensSection(report, models));
}
