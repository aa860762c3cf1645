// Export buttons: the file is fetched with the bearer token (a plain link cannot send it) and saved.

import { getToken, notifyUnauthorized } from "./api.js";
import { h } from "./dom.js";

const FORMATS = ["jsonl", "csv", "parquet"];

export async function downloadExport(path, query, filename) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  const response = await fetch(url, { headers: { Authorization: `Bearer ${getToken() || ""}` } });
  if (response.status === 401) notifyUnauthorized();
  if (!response.ok) throw new Error(`export failed (${response.status})`);
  const link = h("a", { href: URL.createObjectURL(await response.blob()), download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

// "Export: JSONL CSV Parquet" buttons; `start(format)` returns the download's promise.
export function exportButtons(start) {
  const status = h("span", { class: "muted", role: "status" });
  return h(
    "div",
    { class: "actions export-buttons" },
    h("span", {}, "Export"),
    FORMATS.map((format) =>
      h("button", {
        type: "button",
        dataset: { export: format },
        onclick: async () => {
          status.textContent = "preparing…";
          try {
            await start(format);
            status.textContent = "";
          } catch (exc) {
            status.textContent = exc.message;
          }
        },
      }, format.toUpperCase()),
    ),
    status,
  );
}
