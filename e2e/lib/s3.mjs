// Reads the local stack's Garage directly (signed S3 requests), so the tests
// judge what is really stored, not what the API or Uppy claim.
//
// `partwise-local serve` does not print the stack's endpoint, so it is taken
// from the URLs the API handed the browser (path-style: origin/bucket/key).
import aws4 from 'aws4'
import { readFileSync } from 'node:fs'
import http from 'node:http'

// The stack's fixed local-only test key, read from its one definition
// (local/src/stack/mod.rs) so the two can never drift apart.
function stackCredentials() {
  const file = new URL('../../local/src/stack/mod.rs', import.meta.url)
  const src = readFileSync(file, 'utf8')
  const get = (name) => {
    const m = src.match(new RegExp(`pub const ${name}: &str =\\s*"([^"]+)"`))
    if (!m) throw new Error(`no \`pub const ${name}\` in ${file.pathname}`)
    return m[1]
  }
  return {
    accessKeyId: get('ACCESS_KEY_ID'),
    secretAccessKey: get('SECRET_ACCESS_KEY'),
    region: get('REGION'),
  }
}

const creds = stackCredentials()

/** RFC 3986 escaping of one path segment, as S3 signatures want it. */
const escapeSegment = (s) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

/** `{ origin, bucket }` of a path-style S3 URL on loopback, such as a presigned part URL. */
export function bucketOf(url) {
  const u = new URL(url)
  // The test key only ever goes to the local stack.
  if (!/^(127(\.\d+){3}|localhost|\[::1\])$/.test(u.hostname)) {
    throw new Error(`${url} is not on loopback: not the local stack`)
  }
  const bucket = decodeURIComponent(u.pathname.split('/')[1] ?? '')
  if (!bucket) throw new Error(`no bucket in the path of ${url}`)
  return { origin: u.origin, bucket }
}

function request(method, origin, path) {
  const { host, hostname, port } = new URL(origin)
  const signed = aws4.sign({ host, path, method, service: 's3', region: creds.region, headers: {} }, creds)
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path, method, headers: signed.headers }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.setTimeout(30_000, () => req.destroy(new Error(`S3 ${method} ${path}: no answer in 30 s`)))
    req.on('error', reject)
    req.end()
  })
}

const objectPath = (bucket, key) => `/${escapeSegment(bucket)}/${key.split('/').map(escapeSegment).join('/')}`

/** GetObject: `{ status, headers, body }`. */
export function getObject({ origin, bucket }, key) {
  return request('GET', origin, objectPath(bucket, key))
}

/** HeadObject status (200 or 404). */
export async function headObject({ origin, bucket }, key) {
  return (await request('HEAD', origin, objectPath(bucket, key))).status
}

/** ListMultipartUploads for exactly `key`: `[uploadId]`. */
export async function multipartUploadsOf({ origin, bucket }, key) {
  const res = await request('GET', origin, `/${escapeSegment(bucket)}?prefix=${escapeSegment(key)}&uploads=`)
  const xml = res.body.toString('utf8')
  if (res.status !== 200) throw new Error(`ListMultipartUploads: HTTP ${res.status}: ${xml}`)
  const unescape = (s) =>
    s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&')
  return [...xml.matchAll(/<Upload>([\s\S]*?)<\/Upload>/g)]
    .map(([, u]) => ({
      key: unescape(u.match(/<Key>([\s\S]*?)<\/Key>/)?.[1] ?? ''),
      uploadId: unescape(u.match(/<UploadId>([\s\S]*?)<\/UploadId>/)?.[1] ?? ''),
    }))
    .filter((u) => u.key === key)
    .map((u) => u.uploadId)
}

/**
 * The key a location URL names in `bucket`, path-style (`origin/bucket/key`,
 * as Uppy builds it for the POST form) or virtual-hosted (`bucket.host/key`,
 * as S3 answers CompleteMultipartUpload).
 */
export function keyOfLocation(location, bucket) {
  const u = new URL(location)
  const segments = u.pathname.split('/').slice(1).map(decodeURIComponent)
  if (u.hostname.startsWith(`${bucket}.`)) return segments.join('/')
  if (segments[0] === bucket) return segments.slice(1).join('/')
  throw new Error(`${location} names no object in bucket ${bucket}`)
}
