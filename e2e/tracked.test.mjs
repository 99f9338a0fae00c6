// The README's Uppy snippet, unchanged (`companionEndpoint` only, no
// `shouldUseMultipart`): @uppy/aws-s3 sends every file of 100 MiB or less
// through `GET /s3/params` as one POST form. Each such upload must still be
// tracked: COMPLETED in `GET /s3/multipart` with its real size, and exactly
// one "Upload Completed" carrying its metadata, settled from S3's "Object
// Created" notification (locally: the transport in front of Garage).
//
// Needs E2E_API, E2E_SITE and E2E_EVENTS (the API's log, where serve writes
// one `{"event": …}` line per published event); scripts/e2e.sh sets them.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'
import { diagnose, launchBrowser, openPage, serveSite, within } from './lib/harness.mjs'

const API = process.env.E2E_API?.replace(/\/+$/, '')
const SITE = process.env.E2E_SITE
const EVENTS = process.env.E2E_EVENTS
if (!API || !SITE || !EVENTS) throw new Error('set E2E_API, E2E_SITE and E2E_EVENTS (scripts/e2e.sh does)')

const KiB = 1024
const MiB = 1024 * KiB
const SETTLE_TIMEOUT = 20_000
const SCHEMAS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'schemas')

let site
let browser

before(async () => {
  site = await serveSite(SITE)
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await site?.close()
})

/** A grant's endpoint: the page's Companion endpoint, naming this visitor. */
async function grantEndpoint() {
  const res = await fetch(`${API}/grants`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  })
  const answer = await res.json()
  assert.equal(res.status, 200, JSON.stringify(answer))
  return answer.endpoint
}

/** The published events of `uploadId`, from the API's log. */
async function eventsOf(uploadId) {
  const text = await readFile(EVENTS, 'utf8')
  return text
    .split('\n')
    .filter((l) => l.startsWith('{"event"'))
    .map((l) => JSON.parse(l).event)
    .filter((e) => e.detail?.uploadId === uploadId)
}

/**
 * `detail` against the top level of its schema in `schemas/`: every required
 * field there, no field the schema does not name, and enum values in their
 * enum (the Rust tests run the full JSON Schema validator on every event).
 */
async function assertShaped(detailType, detail) {
  const file = detailType.toLowerCase().replace(' ', '-') + '.json'
  const schema = JSON.parse(await readFile(path.join(SCHEMAS, file), 'utf8'))
  for (const field of schema.required) assert.ok(field in detail, `${detailType} lacks ${field}`)
  for (const [field, value] of Object.entries(detail)) {
    const spec = schema.properties[field]
    assert.ok(spec, `${detailType} has ${field}, which its schema does not name`)
    if (spec.enum) assert.ok(spec.enum.includes(value), `${field} = ${value} is not one of ${spec.enum}`)
    if (spec.type === 'object') assert.equal(typeof value, 'object', field)
    if (spec.type === 'integer') assert.ok(Number.isInteger(value), field)
  }
}

test('the README snippet: every file is tracked, COMPLETED with its size, announced once with its metadata', { timeout: 180_000 }, async () => {
  const endpoint = await grantEndpoint()
  const p = await openPage(browser, site.origin, API)
  const dir = await mkdtemp(path.join(tmpdir(), 'partwise-e2e-tracked-'))
  try {
    const files = [
      { name: 'one-kib.txt', size: KiB },
      { name: 'five-mib.bin', size: 5 * MiB },
      { name: 'thirty-mib.bin', size: 30 * MiB },
    ]
    for (const f of files) {
      await p.page.evaluate(
        ({ endpoint, name }) => window.e2e.reset({ endpoint, fileMeta: { project: 'apollo', label: name } }),
        { endpoint, name: f.name },
      )
      const file = path.join(dir, f.name)
      await writeFile(file, randomBytes(f.size))
      await p.page.setInputFiles('#picker', file)
      const out = await within(120_000, `upload of ${f.name}`, p.page.evaluate(() => window.e2e.upload()))
      assert.equal(out.thrown, null)
      assert.equal(out.result.successful.length, 1, JSON.stringify(out.result))
    }
    // Uppy chose POST forms for all three: no multipart call reached the API.
    const creates = p.net.filter((n) => n.method === 'POST' && n.url.startsWith(`${endpoint}/s3/multipart`))
    assert.deepEqual(creates, [], 'no multipart upload')

    // Each appears COMPLETED with its real size (settled from S3's notification).
    const deadline = Date.now() + SETTLE_TIMEOUT
    let listed = []
    for (;;) {
      const res = await fetch(`${endpoint}/s3/multipart`)
      assert.equal(res.status, 200)
      listed = (await res.json()).uploads
      const done = files.every((f) =>
        listed.some((u) => u.filename === f.name && u.state === 'COMPLETED' && u.size === f.size),
      )
      if (done || Date.now() > deadline) break
      await new Promise((r) => setTimeout(r, 250))
    }
    for (const f of files) {
      const u = listed.find((u) => u.filename === f.name)
      assert.ok(u, `${f.name} is listed: ${JSON.stringify(listed)}`)
      assert.deepEqual([u.state, u.size, u.kind], ['COMPLETED', f.size, 'post'], f.name)
      // The stream watcher publishes twice a second: give any extra event time to show.
      await new Promise((r) => setTimeout(r, 1200))
      const events = await eventsOf(u.uploadId)
      assert.deepEqual(
        events.map((e) => e['detail-type']),
        ['Upload Started', 'Upload Completed'],
        `${f.name}: ${JSON.stringify(events)}`,
      )
      const done = events[1].detail
      assert.equal(done.size, f.size)
      assert.equal(done.kind, 'post')
      assert.equal(done.source, 's3')
      assert.equal(done.metadata.project, 'apollo')
      assert.equal(done.metadata.label, f.name)
      for (const e of events) await assertShaped(e['detail-type'], e.detail)
    }
  } catch (e) {
    console.error(diagnose(p))
    throw e
  } finally {
    await p.close()
    await rm(dir, { recursive: true, force: true })
  }
})
