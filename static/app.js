// Shared helpers for the authserver pages: the API wrapper, status messages and the
// WebAuthn JSON round trip. No dependencies; base64url is handled by the browser through
// PublicKeyCredential.parse*OptionsFromJSON() and credential.toJSON() (WebAuthn L3 §5.1.8-9).

export const API = "/api/v1";

/** A refusal from the server (RFC 9457 problem+json) or a failure to reach it. */
export class ApiError extends Error {
  constructor(status, problem, retryAfter = null) {
    super(problem.title || `Request failed (${status})`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
    this.code = problem.code || `http_${status}`;
    this.title = problem.title || this.message;
    this.retryAfter = retryAfter;
  }
}

/**
 * Call the JSON API. Resolves with the parsed body (null for 204); rejects with ApiError
 * carrying the problem's stable `code`. The HttpOnly session cookie goes along by itself.
 */
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json, application/problem+json", ...headers },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch {
    throw new ApiError(0, { code: "network_error", title: "The server could not be reached" });
  }
  let data = null;
  if (response.status !== 204 && (response.headers.get("content-type") || "").includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : {};
    throw new ApiError(
      response.status,
      { ...problem, code: problem.code || `http_${response.status}`, title: problem.title || response.statusText || "Request failed" },
      response.headers.get("Retry-After"),
    );
  }
  return data;
}

// ---- status messages ----------------------------------------------------------------------

const statusBox = () => document.getElementById("status");

/** Show a message in the page's role="status" element. kind: info | success | error. */
export function setStatus(message, kind = "info", code = null) {
  const box = statusBox();
  if (!box) return;
  box.replaceChildren();
  box.dataset.kind = kind;
  box.dataset.code = code || "";
  if (!message) {
    delete box.dataset.kind;
    return;
  }
  box.append(message);
  if (code) {
    const c = document.createElement("code");
    c.dataset.testid = "status-code";
    c.textContent = code;
    box.append(" (", c, ")");
  }
}

export function clearStatus() {
  setStatus("");
}

const WEBAUTHN_MESSAGES = {
  NotAllowedError: "The request was cancelled, timed out, or no matching passkey or security key was found.",
  InvalidStateError: "This authenticator is already registered for your account.",
  NotSupportedError: "This authenticator does not support what the server asked for.",
  SecurityError: "The browser refused the request for this site (check the address and that it uses HTTPS or localhost).",
  AbortError: "The request was cancelled.",
};

/** Describe any failure (ApiError, WebAuthn DOMException, other) in the status element. */
export function showError(error) {
  if (error instanceof ApiError) {
    let message = error.title;
    const errors = error.problem.errors;
    if (Array.isArray(errors) && errors.length) {
      message += ": " + errors.map((e) => `${e.field}: ${e.message}`).join("; ");
    } else if (error.problem.detail && error.problem.detail !== error.title) {
      message += ". " + error.problem.detail;
    }
    if (error.retryAfter) message += ` Try again in ${error.retryAfter} s.`;
    setStatus(message, "error", error.code);
  } else if (error && error.name in WEBAUTHN_MESSAGES) {
    setStatus(WEBAUTHN_MESSAGES[error.name], "error", error.name);
  } else {
    setStatus(String((error && error.message) || error), "error");
  }
  if (!(error instanceof ApiError)) console.error(error);
}

/** Carry one message to the next page (shown by showFlash() there). */
export function setFlash(message, kind = "success") {
  sessionStorage.setItem("authserver.flash", JSON.stringify({ message, kind }));
}

export function showFlash() {
  const raw = sessionStorage.getItem("authserver.flash");
  if (!raw) return;
  sessionStorage.removeItem("authserver.flash");
  try {
    const { message, kind } = JSON.parse(raw);
    setStatus(message, kind);
  } catch {
    /* ignore a damaged flash */
  }
}

/** Run an async action with its button disabled; errors go to the status element. */
export async function busy(button, action) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---- WebAuthn -----------------------------------------------------------------------------

export function webauthnSupported() {
  return (
    typeof window.PublicKeyCredential === "function" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function"
  );
}

function requireWebAuthn() {
  if (!webauthnSupported()) {
    throw new Error("This browser does not support passkeys or security keys here (WebAuthn JSON API missing).");
  }
}

/** navigator.credentials.create() from PublicKeyCredentialCreationOptionsJSON → RegistrationResponseJSON. */
export async function createCredential(optionsJSON) {
  requireWebAuthn();
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(optionsJSON);
  const credential = await navigator.credentials.create({ publicKey });
  return credential.toJSON();
}

/** navigator.credentials.get() from PublicKeyCredentialRequestOptionsJSON → AuthenticationResponseJSON. */
export async function getAssertion(optionsJSON, { mediation, signal } = {}) {
  requireWebAuthn();
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(optionsJSON);
  const request = { publicKey };
  if (mediation) request.mediation = mediation;
  if (signal) request.signal = signal;
  const credential = await navigator.credentials.get(request);
  return credential.toJSON();
}

// ---- formatting ---------------------------------------------------------------------------

/** A <time> element for an ISO timestamp (machine value in datetime=), or a dash. */
export function timeElement(iso, { dateOnly = false, empty = "—" } = {}) {
  if (!iso) {
    const span = document.createElement("span");
    span.className = "empty";
    span.textContent = empty;
    return span;
  }
  const t = document.createElement("time");
  t.dateTime = iso;
  const date = new Date(iso);
  t.textContent = Number.isNaN(date.getTime())
    ? iso
    : date.toLocaleString(undefined, dateOnly ? { dateStyle: "medium" } : { dateStyle: "medium", timeStyle: "short" });
  t.title = iso;
  return t;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

export const AMR_LABELS = {
  pwd: "password",
  hwk: "device-bound key",
  swk: "synced passkey",
  user: "user verification",
  otp: "one-time code",
  sms: "SMS code",
  rc: "recovery code",
};
