// What went wrong with an upload, in words a person can act on.
//
// Each cause has its own kind, and the kind decides what the page does next:
// a refusal (too large, type, quota, storage) stops the upload and aborts it
// so S3 keeps nothing; an expired sign-in waits for a new one; a lost
// connection retries by itself.
import { prettierBytes } from '@transloadit/prettier-bytes'

/** Byte counts as Uppy shows them (1024-based, "MB"), so the whole page uses one unit. */
export const bytes = (n) => (n == null || !Number.isFinite(n) ? '—' : prettierBytes(n))

export const KINDS = {
  tooLarge: 'too-large',
  type: 'type',
  expired: 'expired',
  quota: 'quota',
  network: 'network',
  storage: 'storage',
  other: 'other',
}

/** Kinds after which the upload cannot go on: it is aborted at once. */
export const REFUSED = new Set([KINDS.tooLarge, KINDS.type, KINDS.quota, KINDS.storage])

/**
 * `{ kind, text }` for a failed upload of `name`.
 *
 * - `api`: the refused call to our API as recorded (`{status, body, retryAfter}`), if any;
 * - `s3`: the failed request to S3 (`{status, code}`; status 0 when the browser may not read it);
 * - `reachable`: whether the API answered a probe just now (false: the connection is gone);
 * - `limit`: the largest file the grant allows, when it says.
 */
export function explain({ name, type, api, s3, reachable, limit }) {
  const file = `“${name}”`
  const status = api?.status
  const err = api?.body?.error ?? {}
  const message = err.message ?? api?.body?.message
  if (err.code === 'QuotaExceeded' || (status === 429 && api)) return quota(file, err, api?.retryAfter)
  if (status === 413 || err.code === 'TooLarge') {
    const max = err.limit ?? limit ?? limitIn(message)
    return {
      kind: KINDS.tooLarge,
      text: `${file} is too large${max ? `: this service takes files up to ${bytes(max)}` : ''}. The upload was stopped and nothing of it is kept.`,
    }
  }
  if (status === 422 && /content type/i.test(message ?? '')) {
    return {
      kind: KINDS.type,
      text: `${file} is a type of file this service does not accept${type ? ` (${type})` : ''}. Nothing of it was kept.`,
    }
  }
  if (status === 401) {
    return {
      kind: KINDS.expired,
      text: `Your sign-in has expired, so ${file} is waiting. Sign in again and it goes on where it stopped.`,
    }
  }
  if (status === 0 || (reachable === false && !(s3?.status > 0))) {
    return {
      kind: KINDS.network,
      text: `The connection was lost while uploading ${file}. Retrying by itself; it goes on where it stopped once the connection is back.`,
    }
  }
  if (s3) {
    const what = s3.status > 0 ? ` (HTTP ${s3.status}${s3.code ? `, ${s3.code}` : ''})` : ''
    return {
      kind: KINDS.storage,
      text: `The storage service refused part of ${file}${what}. The upload was stopped and its parts removed; press Retry to start it again.`,
    }
  }
  if (status === 403) return { kind: KINDS.other, text: `${file} was refused: ${message ?? 'not allowed'}.` }
  if (status >= 500) {
    return { kind: KINDS.other, text: `The upload service had a problem with ${file}. Press Retry in a minute.` }
  }
  return { kind: KINDS.other, text: `${file} could not be uploaded${message ? `: ${message}` : ''}${status ? ` (HTTP ${status})` : ''}.` }
}

function quota(file, err, retryAfter) {
  const { usage, limit } = err
  const text = {
    liveUploads: `${file} was not started: you have ${usage} uploads under way, the most allowed at once is ${limit}. Finish or abort one, then add the file again.`,
    bytesInFlight: `${file} was stopped: your unfinished uploads hold ${bytes(usage)}, the most allowed is ${bytes(limit)}. Finish or abort one, then add the file again.`,
    uploadsPerMinute: `${file} was not started: you started ${usage} uploads in the last minute, the most allowed is ${limit}. Add it again${retryAfter ? ` in ${retryAfter} s` : ' in a minute'}.`,
  }[err.quota]
  return {
    kind: KINDS.quota,
    text: text ?? `${file} was not started: you have reached your upload quota${usage != null ? ` (${usage} of ${limit})` : ''}. Try again later.`,
  }
}

/** The byte limit a TooLarge message names ("… more than the 1048576 allowed"). */
function limitIn(message) {
  const m = /more than (?:the )?(\d+)/.exec(message ?? '')
  return m ? Number(m[1]) : null
}

/** The `<Code>` of an S3 XML error answer, when the browser could read it. */
export function s3Code(xml) {
  return /<Code>([^<]+)<\/Code>/.exec(xml ?? '')?.[1]
}
