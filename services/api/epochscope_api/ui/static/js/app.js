// Entry point: a hash router over the views, the top bar, and sign-in / sign-out.

import { clearToken, getToken, onUnauthorized, tokenUser } from "./api.js";
import { clear, h, parseHash } from "./dom.js";
import { compareJobsView } from "./comparejobs.js";
import { datasetView } from "./dataset.js";
import { datasetsView } from "./datasets.js";
import { jobsView } from "./jobs.js";
import { jobView } from "./job.js";
import { newJobView } from "./newjob.js";
import { signInView } from "./signin.js";

const main = document.getElementById("main");
let current = null; // { key, view: { update?(route), destroy?() } }
let notice = null;

export function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function renderUserBox() {
  const box = document.getElementById("user-box");
  const token = getToken();
  document.getElementById("main-nav").hidden = !token;
  if (!token) {
    clear(box);
    return;
  }
  clear(
    box,
    h("span", { class: "who" }, "Signed in as ", h("strong", { id: "signed-in-user" }, tokenUser(token) ?? "unknown")),
    h(
      "button",
      {
        type: "button",
        class: "link-button",
        onclick: () => {
          clearToken();
          navigate("#/signin");
        },
      },
      "Sign out",
    ),
  );
}

function routeKey(parts) {
  if (parts[0] === "jobs" && parts[1]) return `job:${parts[1]}`;
  if (parts[0] === "datasets" && parts[1]) return `dataset:${parts[1]}`;
  return parts[0] || "jobs";
}

async function route() {
  const { parts, query } = parseHash(window.location.hash);
  const signedIn = Boolean(getToken());
  if (!signedIn && parts[0] !== "signin") {
    navigate("#/signin");
    return;
  }
  if (signedIn && (parts.length === 0 || parts[0] === "signin")) {
    navigate("#/jobs");
    return;
  }
  renderUserBox();
  const section = parts[0] === "new" || parts[0] === "datasets" ? parts[0] : parts[0] === "jobs" && !parts[1] ? "jobs" : "";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section)
      link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const key = routeKey(parts);
  const routeInfo = { parts, query };
  if (current && current.key === key && current.view.update) {
    current.view.update(routeInfo);
    return;
  }
  current?.view.destroy?.();
  clear(main);
  if (notice) {
    main.append(h("p", { class: "notice", role: "status" }, notice));
    notice = null;
  }
  const container = h("div", { class: "view" });
  main.append(container);
  const factories = { signin: signInView, jobs: jobsView, new: newJobView, datasets: datasetsView, compare: compareJobsView };
  const factory = key.startsWith("job:") ? jobView : key.startsWith("dataset:") ? datasetView : factories[key];
  if (!factory) {
    container.append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/jobs" }, "Back to your jobs")));
    current = { key, view: {} };
    return;
  }
  const view = factory(container, routeInfo, { navigate });
  current = { key, view };
  document.title = `Epochscope · ${{ signin: "Sign in", jobs: "Jobs", new: "New job", datasets: "Datasets", compare: "Compare jobs" }[key] ?? (key.startsWith("dataset:") ? "Dataset" : "Job")}`;
  main.focus({ preventScroll: true });
}

onUnauthorized(() => {
  if (!getToken()) return;
  clearToken();
  notice = "Your token was refused (missing, invalid or expired). Sign in again.";
  navigate("#/signin");
});

window.addEventListener("hashchange", route);
route();
