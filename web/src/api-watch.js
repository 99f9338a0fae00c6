// The page's hook on Uppy's calls to our API.
//
// @uppy/aws-s3 in companion mode calls `fetch(companionEndpoint + '/s3' + path)`
// and, on a refusal, throws an Error with no status and without reading the
// answer. So Uppy is given a placeholder endpoint (GRANT) and every fetch to
// it passes through here: it goes to the current grant's endpoint (so a new
// sign-in takes effect for uploads already under way, without rebuilding
// Uppy), and each refusal is kept with its status and JSON body, for the page
// to say what really happened.

/** What Uppy is given as its `companionEndpoint`. */
export const GRANT = 'partwise-grant:'

const failures = []
const KEEP = 50

/**
 * Routes Uppy's calls through `endpoint()` (the current grant's endpoint, or
 * null when signed out) and records refusals. Installed once.
 */
export function watchApi(endpoint) {
  const realFetch = window.fetch.bind(window)
  window.fetch = async (input, init = {}) => {
    if (typeof input !== 'string' || !input.startsWith(GRANT)) return realFetch(input, init)
    const path = input.slice(GRANT.length)
    const record = describe(path, init)
    const base = endpoint()
    if (!base) {
      remember({ ...record, status: 401, body: { error: { code: 'Unauthorized', message: 'not signed in' } } })
      return new Response('{"message":"not signed in"}', { status: 401, statusText: 'Unauthorized' })
    }
    let res
    try {
      res = await realFetch(base + path, init)
    } catch (e) {
      if (e?.name !== 'AbortError') remember({ ...record, status: 0, body: null })
      throw e
    }
    if (!res.ok) {
      const body = await res.clone().json().catch(() => null)
      const retryAfter = Number(res.headers.get('retry-after')) || undefined
      remember({ ...record, status: res.status, body, retryAfter })
    }
    return res
  }
}

/** The call in Uppy's terms: which upload (or file name, for a create) it was for. */
function describe(path, init) {
  const url = new URL(path, 'http://x')
  const m = /^\/s3\/multipart\/([^/]+)/.exec(url.pathname)
  let filename
  if (url.pathname === '/s3/multipart' && typeof init.body === 'string') {
    try {
      filename = JSON.parse(init.body).filename
    } catch {}
  }
  if (url.pathname === '/s3/params') filename = url.searchParams.get('filename') ?? undefined
  return {
    method: (init.method ?? 'GET').toUpperCase(),
    path: url.pathname,
    uploadId: m ? decodeURIComponent(m[1]) : undefined,
    filename,
    partNumber: /^\/s3\/multipart\/[^/]+\/(\d+)$/.exec(url.pathname)?.[1],
    at: Date.now(),
  }
}

function remember(f) {
  failures.push(f)
  if (failures.length > KEEP) failures.shift()
}

/**
 * The latest recorded refusal of a call for `file` (by its uploadId, else by
 * its name for the create), taken out of the record so it is reported once.
 */
export function takeFailure(file) {
  const uploadId = file.s3Multipart?.uploadId
  for (let i = failures.length - 1; i >= 0; i--) {
    const f = failures[i]
    if ((uploadId && f.uploadId === uploadId) || (!f.uploadId && f.filename === file.name)) {
      failures.splice(i, 1)
      return f
    }
  }
  return null
}
