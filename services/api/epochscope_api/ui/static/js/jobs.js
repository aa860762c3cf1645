// The signed-in user's jobs, newest first, with a status filter; refreshed while some are still running.

import { api } from "./api.js";
import { clear, debounce, fmtDate, fmtEpoch, h, queuePlace, shortId, statusBadge } from "./dom.js";

const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];
const REFRESH_MS = 4000;
const MAX_COMPARED = 4;

// The job's name, else its id's first characters.
export function jobTitle(job) {
  return job.name || shortId(job.job_id);
}

export function progressText(job) {
  const progress = job.progress;
  if (!progress || progress.max_steps == null) return null;
  const epochs = progress.num_epochs ?? job.config?.num_epochs;
  return `step ${progress.step} / ${progress.max_steps} · epoch ${fmtEpoch(progress.epoch)}${epochs ? ` / ${epochs}` : ""}`;
}

export function jobsView(root, route, { navigate }) {
  let statusFilter = "";
  let nameFilter = "";
  const selected = new Set();
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
  const nameInput = h("input", {
    id: "name-filter",
    type: "search",
    placeholder: "part of a name",
    oninput: debounce(() => { nameFilter = nameInput.value.trim(); load(); }, 300),
  });
  const compare = h("button", { type: "button", id: "compare-jobs", class: "primary", disabled: true, onclick: () => navigate(`#/compare?jobs=${[...selected].join(",")}`) }, "Compare selected");
  const body = h("tbody");
  const table = h(
    "table",
    { class: "data", id: "jobs-table" },
    h("caption", { class: "sr-only" }, "Your jobs, newest first"),
    h("thead", {}, h("tr", {}, ["", "Job", "Status", "Model", "Progress", "Predictions", "Created"].map((name) => h("th", { scope: "col" }, name)))),
    body,
  );
  const empty = h("p", { class: "muted", hidden: true }, "No jobs yet. ", h("a", { href: "#/new" }, "Create one"), ".");
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const more = h("button", { type: "button", hidden: true, onclick: () => load(true) }, "Load more");

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Jobs"), h("a", { class: "button primary", href: "#/new" }, "New job")),
    h("div", { class: "toolbar" }, h("label", { for: "status-filter" }, "Status"), filter, h("label", { for: "name-filter" }, "Name"), nameInput, compare),
    error,
    h("div", { class: "table-wrap" }, table),
    empty,
    more,
  );

  function toggle(jobId, on) {
    if (on) selected.add(jobId);
    else selected.delete(jobId);
    compare.disabled = selected.size < 2 || selected.size > MAX_COMPARED;
    compare.textContent = selected.size > MAX_COMPARED ? `Compare (at most ${MAX_COMPARED})` : `Compare selected (${selected.size})`;
  }

  function render() {
    clear(
      body,
      jobs.map((job) => {
        const predictions = job.config?.predictions;
        return h(
          "tr",
          { dataset: { jobId: job.job_id } },
          h("td", {}, h("input", { type: "checkbox", class: "select-job", "aria-label": `Select ${jobTitle(job)} to compare`, checked: selected.has(job.job_id), onchange: (event) => toggle(job.job_id, event.target.checked) })),
          h("td", {}, h("a", { href: `#/jobs/${job.job_id}`, "aria-label": `Job ${jobTitle(job)}`, title: job.job_id }, job.name ? job.name : h("code", {}, shortId(job.job_id)))),
          h("td", {}, statusBadge(job.status), queuePlace(job) ? h("span", { class: "muted queue-place" }, " ", queuePlace(job)) : null),
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
      const page = await api("/v1/jobs", { query: { limit: 50, status: statusFilter, name: nameFilter, cursor: append ? nextCursor : null } });
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
