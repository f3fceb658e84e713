// The REST client of the page: same origin, /v1, the bearer token from sessionStorage when the controller wants one.

const BASE = "/v1";
const TOKEN_KEY = "sdn-api-token";

/** A failed call, carrying the API's own error body ({code, message, details}). */
export class ApiError extends Error {
  constructor(error) {
    super(error.message);
    this.error = error;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

let onUnauthorized = () => {};

/** Called with the API's 401 error; the page asks for the token again. */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/** One call; resolves to the decoded body (null when empty), rejects with ApiError. */
export async function call(method, path, body) {
  const headers = {Accept: "application/json"};
  const saved = token();
  if (saved) headers.Authorization = `Bearer ${saved}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(BASE + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (exc) {
    throw new ApiError({code: 0, message: `the controller did not answer (${exc.message})`, details: []});
  }
  const raw = await response.text();
  let decoded = null;
  try {
    decoded = raw ? JSON.parse(raw) : null;
  } catch {
    decoded = null;
  }
  if (response.ok) return decoded;
  const error = decoded && decoded.error ? decoded.error
    : {code: response.status, message: `${method} ${path}: HTTP ${response.status}`, details: []};
  if (response.status === 401) onUnauthorized(error);
  throw new ApiError(error);
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const del = (path) => call("DELETE", path);
