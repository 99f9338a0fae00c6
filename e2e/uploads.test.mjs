// Uppy's real S3 plugin, in headless Chromium, uploading through Partwise as
// if it were Companion. Every case is judged on what Garage really holds.
//
// Needs E2E_API (the API's base URL) and E2E_SITE (the built page);
// scripts/e2e.sh provides both.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { apiCalls, diagnose, launchBrowser, openPage, serveSite, within } from './lib/harness.mjs'
import { bucketOf, getObject, headObject, keyOfLocation, multipartUploadsOf } from './lib/s3.mjs'

const API = process.env.E2E_API?.replace(/\/+$/, '')
const SITE = process.env.E2E_SITE
if (!API || !SITE) throw new Error('set E2E_API and E2E_SITE (scripts/e2e.sh does)')

const MiB = 1024 * 1024
const CASE_TIMEOUT = 120_000
const UPLOAD_TIMEOUT = 90_000

let site
let browser

before(async () => {
  site = await serveSite(SITE)
  assert.notEqual(new URL(site.origin).origin, new URL(API).origin, 'page and API must be cross-origin')
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await site?.close()
})

/** Runs `fn` on a fresh page; on failure, prints the page's traffic and console. */
async function onPage(fn) {
  const p = await openPage(browser, site.origin, API)
  // The browser reads picked files from disk while it uploads: they live as long as the page.
  p.files = await mkdtemp(path.join(tmpdir(), 'partwise-e2e-'))
  try {
    await fn(p)
  } catch (e) {
    console.error(diagnose(p))
    throw e
  } finally {
    await p.close()
    await rm(p.files, { recursive: true, force: true })
  }
}

/**
 * Chooses a file in the page's <input type=file>, from disk as a person would
 * (also far quicker than handing megabytes over the DevTools protocol).
 */
async function pick(p, name, data) {
  const file = path.join(p.files, name)
  await writeFile(file, data)
  await p.page.setInputFiles('#picker', file)
}

/** Picks `data` as `name` through the page's file input and uploads it with Uppy. */
async function upload(p, { name, data, multipart }) {
  await p.page.evaluate((multipart) => window.e2e.reset({ multipart }), multipart)
  await pick(p, name, data)
  assert.equal(await p.page.evaluate(() => window.e2e.fileCount()), 1, 'Uppy took the picked file')
  return within(UPLOAD_TIMEOUT, `Uppy upload of ${name}`, p.page.evaluate(() => window.e2e.upload()))
}

function sameBytes(actual, expected, what) {
  if (actual.equals(expected)) return
  let i = 0
  while (i < Math.min(actual.length, expected.length) && actual[i] === expected[i]) i++
  assert.fail(`${what}: ${actual.length} bytes stored, ${expected.length} uploaded; first difference at byte ${i}`)
}

/** The page's requests straight to S3 (neither the API nor the page's own origin). */
function s3Calls(p, method) {
  return p.net.filter((n) => n.method === method && !n.url.startsWith(`${API}/`) && !n.url.startsWith(site.origin))
}

/** Garage's endpoint and bucket, from the presigned URLs the API gave the browser. */
function s3Of(p) {
  const first = s3Calls(p, 'POST')[0] ?? s3Calls(p, 'PUT')[0] ?? assert.fail('nothing was sent to S3')
  return bucketOf(first.url)
}

/**
 * Uppy reports exactly one success, at a location naming the key it was told,
 * and S3 holds exactly the picked bytes there. Returns where it is.
 */
async function assertStored(out, { name, data }, p) {
  assert.equal(out.thrown, null, 'uppy.upload() threw')
  const errors = out.events.filter((e) => e.type === 'upload-error' || e.type === 'error')
  assert.deepEqual(errors, [], 'Uppy reported errors')
  assert.equal(out.result.failed.length, 0, 'result.failed')
  assert.equal(out.result.successful.length, 1, 'result.successful')
  const [file] = out.result.successful
  assert.equal(file.name, name)
  assert.equal(file.size, data.length)

  const successes = out.events.filter((e) => e.type === 'upload-success')
  assert.equal(successes.length, 1, 'one upload-success event')
  const [success] = successes
  assert.equal(typeof success.uploadURL, 'string', 'upload-success carries an uploadURL')
  assert.equal(success.uploadURL, file.uploadURL)
  assert.equal(success.body.location, success.uploadURL)
  const completes = out.events.filter((e) => e.type === 'complete')
  assert.equal(completes.length, 1, 'one complete event')
  assert.equal(completes[0].result.successful.length, 1)
  assert.equal(completes[0].result.failed.length, 0)

  const key = success.body.key
  assert.equal(typeof key, 'string', 'upload-success body carries the key')
  const s3 = s3Of(p)
  assert.equal(keyOfLocation(success.uploadURL, s3.bucket), key, 'the location names the key')

  const object = await getObject(s3, key)
  assert.equal(object.status, 200, `GetObject ${key}: ${object.body.toString('utf8').slice(0, 300)}`)
  sameBytes(object.body, data, `object ${key}`)

  const cors = p.console.filter((m) => /CORS|Access-Control/i.test(m))
  assert.deepEqual(cors, [], 'the browser reported CORS problems')
  return { s3, key }
}

const PART_URL = /^\/s3\/multipart\/[^/]+\/(\d+)$/

/** The multipart protocol as the browser spoke it to the API: create, sign 1..n, complete. */
function assertMultipartCalls(p, parts) {
  const calls = apiCalls(p.net, API).map((c) => c.replace(/^(\w+ \/s3\/multipart\/)[^/ ]+/, '$1ID'))
  const signs = Array.from({ length: parts }, (_, i) => `GET /s3/multipart/ID/${i + 1} 200`)
  assert.deepEqual(calls, ['POST /s3/multipart 200', ...signs, 'POST /s3/multipart/ID/complete 200'])
}

async function assertMultipart(p, out, parts, stored) {
  assertMultipartCalls(p, parts)
  const puts = s3Calls(p, 'PUT')
  assert.deepEqual(
    puts.map((n) => n.status),
    Array(parts).fill(200),
    'each part PUT straight to S3 once, answered 200',
  )
  const numbers = out.events.filter((e) => e.type === 'part-uploaded').map((e) => e.partNumber)
  assert.deepEqual(numbers, Array.from({ length: parts }, (_, i) => i + 1), 'parts uploaded (ETags read through CORS)')
  assert.deepEqual(await multipartUploadsOf(stored.s3, stored.key), [], 'no multipart upload left open')
}

test('1. small file: GET /s3/params, presigned POST form, bytes in S3', { timeout: CASE_TIMEOUT }, () =>
  onPage(async (p) => {
    const file = { name: 'small.bin', data: randomBytes(300 * 1024 + 7) }
    const out = await upload(p, { ...file, multipart: false })
    await assertStored(out, file, p)
    assert.deepEqual(apiCalls(p.net, API), ['GET /s3/params 200'], 'one API call, for the POST form')
    const posts = s3Calls(p, 'POST')
    assert.equal(posts.length, 1, 'one POST straight to S3')
    assert.ok(posts[0].status >= 200 && posts[0].status < 300, `S3 POST answered ${posts[0].status}`)
  }),
)

test('2. multipart: 11 MiB in 3 parts of 5 MiB, bytes in S3', { timeout: CASE_TIMEOUT }, () =>
  onPage(async (p) => {
    const file = { name: 'eleven.bin', data: randomBytes(11 * MiB) }
    const out = await upload(p, { ...file, multipart: true })
    const stored = await assertStored(out, file, p)
    await assertMultipart(p, out, 3, stored)
  }),
)

const ODD_NAME = 'my report, v2 – é.bin'

test(`3a. odd file name ${JSON.stringify(ODD_NAME)} through the POST form`, { timeout: CASE_TIMEOUT }, () =>
  onPage(async (p) => {
    const file = { name: ODD_NAME, data: randomBytes(64 * 1024) }
    const out = await upload(p, { ...file, multipart: false })
    const { key } = await assertStored(out, file, p)
    assert.ok(key.endsWith(`/${ODD_NAME}`), `key ${JSON.stringify(key)} keeps the file name`)
  }),
)

test(`3b. odd file name ${JSON.stringify(ODD_NAME)} through multipart (key in every query string)`, { timeout: CASE_TIMEOUT }, () =>
  onPage(async (p) => {
    const file = { name: ODD_NAME, data: randomBytes(6 * MiB + 3) }
    const out = await upload(p, { ...file, multipart: true })
    const stored = await assertStored(out, file, p)
    assert.ok(stored.key.endsWith(`/${ODD_NAME}`), `key ${JSON.stringify(stored.key)} keeps the file name`)
    await assertMultipart(p, out, 2, stored)
  }),
)

test('4. cancel midway: DELETE reaches the API and S3 keeps nothing', { timeout: CASE_TIMEOUT }, () =>
  onPage(async (p) => {
    const isApi = (method, path) => (r) => r.request().method() === method && r.url().startsWith(`${API}/`) && path.test(new URL(r.url()).pathname)
    // Holding the signature of part 2 freezes the upload exactly after part 1
    // is in S3: cancelling is then certain to land midway.
    const held = new Promise((resolve) => {
      p.page.route((u) => `${u.origin}` === new URL(API).origin && PART_URL.exec(u.pathname)?.[1] === '2', resolve)
    })

    await p.page.evaluate(() => window.e2e.reset({ multipart: true }))
    await pick(p, 'cancelled.bin', randomBytes(16 * MiB))
    await p.page.evaluate(() => window.e2e.start())
    const route = await within(30_000, 'Uppy to ask for part 2', held)
    const signUrl = new URL(route.request().url())
    const uploadId = decodeURIComponent(signUrl.pathname.split('/')[3])
    const key = signUrl.searchParams.get('key')

    assert.equal(s3Calls(p, 'PUT').length, 1, 'part 1 was PUT to S3')
    const s3 = s3Of(p)
    assert.deepEqual(await multipartUploadsOf(s3, key), [uploadId], 'the upload is open in S3 before the cancel')

    const deleted = p.page.waitForResponse(isApi('DELETE', /^\/s3\/multipart\/[^/]+$/), { timeout: 30_000 })
    await p.page.evaluate(() => window.e2e.cancelAll())
    const del = await deleted
    // The page aborted it already; this only lets Playwright forget it.
    await within(10_000, 'releasing part 2', route.continue()).catch(() => {})

    // Not del.text(): Playwright may never deliver a body while another request is held.
    assert.ok(del.status() >= 200 && del.status() < 300, `DELETE answered ${del.status()}`)
    const delUrl = new URL(del.url())
    assert.equal(decodeURIComponent(delUrl.pathname.split('/').pop()), uploadId, 'DELETE names the upload')
    assert.equal(delUrl.searchParams.get('key'), key, 'DELETE names the key')

    const out = await within(30_000, 'uppy.upload() to settle after cancelAll', p.page.evaluate(() => window.e2e.settle()))
    assert.equal(out.thrown, null, 'uppy.upload() threw')
    assert.deepEqual(out.result, { successful: [], failed: [] }, 'a cancelled upload is neither a success nor a failure')
    const outcomes = out.events.filter((e) => ['upload-success', 'upload-error', 'error'].includes(e.type))
    assert.deepEqual(outcomes, [], 'no success or error events after cancel')
    assert.deepEqual(out.events.filter((e) => e.type === 'part-uploaded').map((e) => e.partNumber), [1])
    assert.equal(await p.page.evaluate(() => window.e2e.fileCount()), 0, 'the file left Uppy')
    assert.equal(s3Calls(p, 'PUT').length, 1, 'only part 1 reached S3')

    assert.deepEqual(await multipartUploadsOf(s3, key), [], 'ListMultipartUploads shows nothing for the key')
    assert.equal(await headObject(s3, key), 404, 'no object at the key')
  }),
)
