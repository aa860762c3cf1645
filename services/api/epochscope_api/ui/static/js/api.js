// The REST API, as the signed-in user. The bearer token lives in localStorage on this browser only.

const TOKEN_KEY = "epochscope.token";
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `request failed (${status})`);
    this.status = status;
    this.detail = detail;
  }

  // FastAPI's 422 shape: a list of { loc, msg, type }.
  get fieldErrors() {
    return Array.isArray(this.detail) ? this.detail : [];
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  localStorage.setItem(TOKEN_KEY, token);
  limitsPromise = null;
}

export function clearToken() {
  localStorage.removeItem(TOKEN_KEY);
  limitsPromise = null;
}

// The token's `sub`, read without verifying (the server verifies); null when it is not a JWT.
export function tokenUser(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
    return typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}

// Called with no argument whenever the server says the token is missing, invalid or expired.
export function onUnauthorized(listener) {
  listeners.add(listener);
}

export function notifyUnauthorized() {
  listeners.forEach((listener) => listener());
}

export async function api(path, { method = "GET", body, query, signal, token } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value != null && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  const bearer = token ?? getToken();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && token === undefined) notifyUnauthorized();
    throw new ApiError(response.status, data?.detail ?? response.statusText);
  }
  return data;
}

let limitsPromise = null;

// The server's limits (max sample count, ...), fetched once per sign-in.
export function getLimits() {
  limitsPromise ??= api("/v1/limits").catch((error) => {
    limitsPromise = null;
    throw error;
  });
  return limitsPromise;
}

// The job's live-stream URL, opened with a short-lived ticket for this job alone: EventSource cannot send the
// bearer token, and a token in a URL would end up in proxies' logs. `after`: the id of the last event received.
export async function streamUrl(jobId, after) {
  const job = encodeURIComponent(jobId);
  const { ticket } = await api(`/v1/jobs/${job}/stream-tickets`, { method: "POST" });
  const url = new URL(`/v1/jobs/${job}/stream`, window.location.origin);
  url.searchParams.set("ticket", ticket);
  if (after) url.searchParams.set("last_event_id", after);
  return url.toString();
}

// Read a quality figure whichever way the API names it (flat column or nested `scores`).
export function score(row, name) {
  const value = row?.scores?.[name] ?? row?.[name];
  return typeof value === "number" ? value : null;
}

// A round's validator pass rate from its summary, as a fraction; null until summarized or when nothing was validated.
export function passRate(round) {
  return typeof round?.validator_pass_rate === "number" ? round.validator_pass_rate : null;
}

export function roundScore(round, name) {
  const value = round?.[`mean_${name}`] ?? round?.scores?.[name];
  return typeof value === "number" ? value : null;
}
