// A dataset upload with progress. fetch() reports no upload progress, so this one request uses XMLHttpRequest.

import { ApiError, getToken, notifyUnauthorized } from "./api.js";

export const ACCEPTED_TYPES = [".jsonl", ".ndjson", ".csv", ".parquet"];

// POST /v1/datasets as multipart/form-data (one part, `file`).
// onProgress({ loaded, total }) while the body is sent; onSent() once it is all sent and the server validates.
// Resolves with the Dataset; rejects with an ApiError (status 0: the network failed or the upload was aborted).
export function uploadDataset(file, { onProgress, onSent, signal } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", new URL("/v1/datasets", window.location.origin));
    xhr.setRequestHeader("Accept", "application/json");
    const token = getToken();
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.responseType = "text";
    xhr.upload.onprogress = (event) => {
      onProgress?.({ loaded: event.loaded, total: event.lengthComputable ? event.total : file.size });
    };
    xhr.upload.onload = () => {
      onProgress?.({ loaded: file.size, total: file.size });
      onSent?.();
    };
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(data);
        return;
      }
      if (xhr.status === 401) notifyUnauthorized();
      reject(new ApiError(xhr.status, data?.detail ?? (xhr.statusText || `request failed (${xhr.status})`)));
    };
    xhr.onerror = () => reject(new ApiError(0, "the upload failed: the server could not be reached"));
    xhr.onabort = () => reject(new ApiError(0, "the upload was cancelled"));
    signal?.addEventListener("abort", () => xhr.abort());
    const body = new FormData();
    body.append("file", file, file.name);
    xhr.send(body);
  });
}

// One readable sentence from an upload's error (413: too large; 422: a string or FastAPI's list).
export function uploadErrorText(exc) {
  if (!(exc instanceof ApiError)) return String(exc?.message ?? exc);
  const detail = exc.fieldErrors.length
    ? exc.fieldErrors.map((e) => e.msg.replace(/^Value error, /, "")).join("; ")
    : exc.message;
  if (exc.status === 413) return `The file is too large: ${detail}`;
  if (exc.status === 422) return `The file was not accepted: ${detail}`;
  if (exc.status === 0) return `Upload failed: ${detail}`;
  return `Upload failed (${exc.status}): ${detail}`;
}

export function fmtBytes(bytes) {
  if (bytes == null) return "—";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

// "1.2 of 3.4 MB": the progress label always in MB, as the user reads it.
export function fmtMegabytes(loaded, total) {
  const mb = (value) => (value / 1024 / 1024).toFixed(value < 10 * 1024 * 1024 ? 2 : 1);
  return `${mb(loaded)} of ${mb(total)} MB`;
}
