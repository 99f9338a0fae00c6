// The sign-in, remembered for this tab until its upload grant expires.
//
// What is kept is the grant (an endpoint that stops working at `expires`),
// in sessionStorage: it survives a reload but not the tab, and never goes to
// localStorage. The token typed in (a JWT or a dev-mode name) is not kept at
// all: it was only needed to get the grant.

const KEY = 'partwise.session'

/** Seconds of margin: a grant this close to expiry is treated as expired. */
const MARGIN_MS = 5_000

/**
 * `{ api, endpoint, expires, anonymous, name }`, or null when there is none
 * or it has expired; `{ expired: true, api }` for one that has (said once:
 * it is then forgotten).
 */
export function loadSession(now = Date.now()) {
  let s
  try {
    s = JSON.parse(sessionStorage.getItem(KEY) ?? 'null')
  } catch {
    s = null
  }
  if (!s?.endpoint) return null
  if (!(Date.parse(s.expires) > now + MARGIN_MS)) {
    sessionStorage.removeItem(KEY)
    return { expired: true, api: s.api }
  }
  return s
}

export function saveSession(session) {
  sessionStorage.setItem(KEY, JSON.stringify(session))
}

export function clearSession() {
  sessionStorage.removeItem(KEY)
}

/** Milliseconds until the session's grant expires (negative once it has). */
export const msLeft = (session, now = Date.now()) => Date.parse(session.expires) - now

/**
 * What the grant in an endpoint (`…/g/{claims}.{signature}`) says: `{ sub,
 * exp, max?, types? }`, or null. The claims are plain base64url JSON; the
 * page reads them only to show limits and whose uploads these are. The API
 * checks the signature, never the page.
 */
export function grantClaims(endpoint) {
  const m = /\/g\/([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+$/.exec(endpoint ?? '')
  if (!m) return null
  try {
    const b64 = m[1].replace(/-/g, '+').replace(/_/g, '/')
    const json = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))))
  } catch {
    return null
  }
}

/**
 * A readable name from what was typed to sign in: a JWT's `name`, `email`
 * or `sub`, else the text itself (a dev-mode name). Never shown for a token
 * that does not parse: a person sees "Signed in" then.
 */
export function nameFromToken(token) {
  const parts = token.split('.')
  if (parts.length !== 3) return token.length <= 64 ? token : null
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/')
    const claims = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)))
    return claims.name ?? claims.email ?? claims.preferred_username ?? claims.sub ?? null
  } catch {
    return null
  }
}
