// Uppy through an upload grant: the page asks POST /grants for an endpoint
// and hands it to @uppy/aws-s3 as its companionEndpoint, unchanged. Judged on
// what Garage really holds.
//
// Needs E2E_API and E2E_SITE, and an API with grant keys (scripts/e2e.sh).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { apiCalls, diagnose, launchBrowser, openPage, serveSite, within } from './lib/harness.mjs'
import { bucketOf, getObject, multipartUploadsOf } from './lib/s3.mjs'

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
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await site?.close()
})

/** A grant's endpoint, as a signed-in page gets it (this API is in anonymous mode). */
async function grantEndpoint(body = {}) {
  const res = await fetch(`${API}/grants`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const answer = await res.json()
  assert.equal(res.status, 200, JSON.stringify(answer))
  assert.match(answer.endpoint, new RegExp(`^${API.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/g/[\\w-]+\\.[\\w-]+$`))
  assert.ok(Date.parse(answer.expires) > Date.now(), 'expires in the future')
  return answer.endpoint
}

async function withPage(fn) {
  const p = await openPage(browser, site.origin, API)
  p.files = await mkdtemp(path.join(tmpdir(), 'partwise-e2e-grants-'))
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

async function uploadThrough(p, endpoint, { name, data, multipart }) {
  await p.page.evaluate((o) => window.e2e.reset(o), { multipart, endpoint })
  const file = path.join(p.files, name)
  await writeFile(file, data)
  await p.page.setInputFiles('#picker', file)
  return within(UPLOAD_TIMEOUT, `Uppy upload of ${name}`, p.page.evaluate(() => window.e2e.upload()))
}

for (const [n, what, size, multipart] of [
  [1, 'multipart, 11 MiB in 3 parts', 11 * MiB, true],
  [2, 'POST form, 200 KiB', 200 * 1024, false],
]) {
  test(`${n}. through a grant: ${what}, byte-exact under the owner's prefix, with Uppy's metadata`, { timeout: CASE_TIMEOUT }, () =>
    withPage(async (p) => {
      const endpoint = await grantEndpoint()
      const data = randomBytes(size)
      const name = `granted-${n}.bin`
      const out = await uploadThrough(p, endpoint, { name, data, multipart })
      assert.equal(out.thrown, null)
      assert.deepEqual(out.events.filter((e) => e.type === 'upload-error'), [])
      assert.equal(out.result.successful.length, 1)
      // Every API call went through the grant's prefix, with no token.
      const grantPath = new URL(endpoint).pathname
      const calls = apiCalls(p.net, API)
      assert.ok(calls.length > 0)
      for (const c of calls) assert.ok(c.split(' ')[1].startsWith(`${grantPath}/s3/`), c)

      const key = out.result.successful[0].body?.key ?? out.events.find((e) => e.type === 'upload-success').body.key
      assert.match(key, /^uploads\/anon-[0-9a-f]{32}\//, "the grant's own fresh owner")
      const s3url = p.net.find((x) => (x.method === 'PUT' || x.method === 'POST') && !x.url.startsWith(API))
      const s3 = bucketOf(s3url.url)
      const object = await getObject(s3, key)
      assert.equal(object.status, 200)
      assert.ok(object.body.equals(data), 'byte-exact')
      assert.equal(object.headers['x-amz-meta-name'], name, 'Uppy metadata on the object')
      assert.deepEqual(await multipartUploadsOf(s3, key), [])
    }),
  )
}

test('3. a tampered grant is refused (401) and Uppy reports it; nothing is started', { timeout: CASE_TIMEOUT }, () =>
  withPage(async (p) => {
    const endpoint = await grantEndpoint()
    const tampered = endpoint.replace(/\/g\/(\w)/, (_, c) => `/g/${c === 'A' ? 'B' : 'A'}`)
    const out = await uploadThrough(p, tampered, { name: 'refused.bin', data: randomBytes(1024), multipart: true })
    assert.equal(out.result?.successful?.length ?? 0, 0)
    const errors = out.events.filter((e) => e.type === 'upload-error')
    assert.equal(errors.length, 1, JSON.stringify(out.events))
    const calls = apiCalls(p.net, API)
    assert.deepEqual(calls.map((c) => c.split(' ').pop()), ['401'])
  }),
)
