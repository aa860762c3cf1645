// The signed-in user's jobs, newest first, with a status filter; refreshed while some are still running.

import { api } from "./api.js";
import { clear, fmtDate, fmtEpoch, h, shortId, statusBadge } from "./dom.js";

const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];
const REFRESH_MS = 4000;

export function progressText(job) {
  const progress = job.progress;
  if (!progress || progress.max_steps == null) return null;
  const epochs = progress.num_epochs ?? job.config?.num_epochs;
  return `step ${progress.step} / ${progress.max_steps} · epoch ${fmtEpoch(progress.epoch)}${epochs ? ` / ${epochs}` : ""}`;
}

export function jobsView(root) {
  let statusFilter = "";
  let jobs = [];
  let nextCursor = null;
  let timer = null;
  let destroyed = false;

  const filter = h(
    "select",
    { id: "status-filter", onchange: () => { statusFilter = filter.value; load(); } },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((status) => h("option", { value: status }, status)),
  );
  const body = h("tbody");
  const table = h(
    "table",
    { class: "data", id: "jobs-table" },
    h("caption", { class: "sr-only" }, "Your jobs, newest first"),
    h("thead", {}, h("tr", {}, ["Job", "Status", "Model", "Progress", "Predictions", "Created"].map((name) => h("th", { scope: "col" }, name)))),
    body,
  );
  const empty = h("p", { class: "muted", hidden: true }, "No jobs yet. ", h("a", { href: "#/new" }, "Create one"), ".");
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const more = h("button", { type: "button", hidden: true, onclick: () => load(true) }, "Load more");

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Jobs"), h("a", { class: "button primary", href: "#/new" }, "New job")),
    h("div", { class: "toolbar" }, h("label", { for: "status-filter" }, "Status"), filter),
    error,
    h("div", { class: "table-wrap" }, table),
    empty,
    more,
  );

  function render() {
    clear(
      body,
      jobs.map((job) => {
        const predictions = job.config?.predictions;
        return h(
          "tr",
          { dataset: { jobId: job.job_id } },
          h("td", {}, h("a", { href: `#/jobs/${job.job_id}`, "aria-label": `Job ${shortId(job.job_id)}` }, h("code", {}, shortId(job.job_id)))),
          h("td", {}, statusBadge(job.status)),
          h("td", { class: "wrap" }, job.config?.model ?? "—"),
          h("td", {}, progressText(job) ?? (job.status === "queued" ? "waiting for a trainer" : "—")),
          h("td", {}, predictions?.enabled ? `${predictions.sample_count} per ${predictions.sample_frequency === "steps" ? `${predictions.step_interval} steps` : predictions.sample_frequency}` : "off"),
          h("td", {}, fmtDate(job.created_at)),
        );
      }),
    );
    empty.hidden = jobs.length > 0;
    more.hidden = !nextCursor;
  }

  async function load(append = false) {
    clearTimeout(timer);
    try {
      const page = await api("/v1/jobs", { query: { limit: 50, status: statusFilter, cursor: append ? nextCursor : null } });
      if (destroyed) return;
      jobs = append ? jobs.concat(page.items) : page.items;
      nextCursor = page.next_cursor;
      error.hidden = true;
      render();
    } catch (exc) {
      error.textContent = `Could not load your jobs: ${exc.message}`;
      error.hidden = false;
    }
    // Keep the first page fresh while something is still moving (and the user has not paged on).
    if (!destroyed && !append && jobs.some((job) => job.status === "queued" || job.status === "running")) {
      timer = setTimeout(() => load(), REFRESH_MS);
    }
  }

  load();
  return {
    destroy() {
      destroyed = true;
      clearTimeout(timer);
    },
  };
}
