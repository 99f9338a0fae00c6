// What this browser knows about uploads it started, kept in localStorage:
// the file's size (the API learns it only at complete) and, for an upload
// the page stopped, why. Nothing secret: no grant, no token, no content.

const KEY = 'partwise.known'
const KEEP_MS = 7 * 24 * 3600 * 1000

function read() {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? '{}') ?? {}
  } catch {
    return {}
  }
}

function write(all) {
  const now = Date.now()
  for (const [id, v] of Object.entries(all)) if (!(now - (v.at ?? 0) < KEEP_MS)) delete all[id]
  try {
    localStorage.setItem(KEY, JSON.stringify(all))
  } catch {
    // Full or unavailable storage: the list then shows less, nothing breaks.
  }
}

/** `{ size?, name?, why? }` for an uploadId. */
export const known = (uploadId) => read()[uploadId]

/** Merges `fields` into what is known about `uploadId`. */
export function remember(uploadId, fields) {
  const all = read()
  const had = all[uploadId]
  if (had && Object.entries(fields).every(([k, v]) => had[k] === v)) return
  all[uploadId] = { ...had, ...fields, at: Date.now() }
  write(all)
}
