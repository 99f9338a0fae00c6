// Each way an upload fails, as the page's user meets it: its own message
// (checked on the text), what the page does next (abort, wait for a sign-in,
// retry), and what S3 holds afterwards (checked on Garage directly). Each
// error state is kept as a screenshot at both widths.
//
// The causes are real: a grant with a smaller file limit or fewer types
// (POST /grants as a site would ask it), a grant that expires, the browser
// going offline, a part URL Garage refuses. Only the quota case depends on
// the server's quotas (skipped, and says so, on a server without them).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { diagnose, launchBrowser, serveSite } from './lib/harness.mjs'
import { API, checkBothSizes, MiB, openUploadPage, pageSuite, signIn, upload, waitMessage, waitRow, WEB } from './lib/page.mjs'
import { bucketOf, getObject, multipartUploadsOf } from './lib/s3.mjs'

if (!API || !WEB) throw new Error('set E2E_API and E2E_WEB (scripts/e2e.sh does)')

let site
let browser
let dir
pageSuite('page-errors', (s) => ({ site, browser, dir } = s))

async function file(name, size) {
  const data = randomBytes(size)
  await writeFile(path.join(dir, name), data)
  return { name, data, path: path.join(dir, name) }
}

async function withPage(opts, fn) {
  const p = await openUploadPage(browser, site.origin, opts)
  try {
    await fn(p)
  } catch (e) {
    console.error(diagnose(p))
    await p.page.screenshot({ path: path.join(process.env.E2E_ARTIFACTS ?? tmpdir(), 'page-errors-failure.png'), fullPage: true }).catch(() => {})
    throw e
  } finally {
    await p.close()
  }
}

const isS3 = (url) => !url.startsWith(API) && !url.startsWith(site.origin)
const s3Of = (net) => bucketOf(net.find((n) => n.method === 'PUT' && isS3(n.url)).url)
async function listed(page) {
  const endpoint = await page.evaluate(() => window.partwise.session().endpoint)
  return (await (await fetch(`${endpoint}/s3/multipart?bytes=true`)).json()).uploads
}

/** The upload is gone from S3: no object, no multipart upload under its key. */
async function nothingInS3(s3, key) {
  assert.equal((await getObject(s3, key)).status, 404, `no object at ${key}`)
  assert.deepEqual(await multipartUploadsOf(s3, key), [], `no parts left at ${key}`)
}

test('too large: its own message with the limit, the upload is aborted at once, S3 keeps nothing', { timeout: 120_000 }, () =>
  withPage({ grant: { maxFileSize: 6 * MiB } }, async ({ page, net }) => {
    await signIn(page)
    const f = await file('too-big.bin', 11 * MiB)
    await upload(page, f.path)
    const text = await waitMessage(page, 'too-large', 60_000)
    assert.match(text, /^“too-big\.bin” is too large: this service takes files up to 6 MB\. The upload was stopped and nothing of it is kept\./)
    const row = await waitRow(page, f.name, 'ABORTED')
    assert.match(row.stateText, /Aborted.*too large/)
    assert.equal(row.size, '11 MB', 'the file size, not the bytes sent')
    const u = (await listed(page)).find((x) => x.filename === f.name)
    await nothingInS3(s3Of(net), u.key)
    await checkBothSizes(page, 'error-too-large')
  }),
)

test('type not allowed: its own message, nothing is started', { timeout: 60_000 }, () =>
  withPage({ grant: { allowedTypes: ['image/png'] } }, async ({ page, net }) => {
    await signIn(page)
    const f = await file('notes.txt', 64 * 1024)
    await upload(page, f.path)
    const text = await waitMessage(page, 'type')
    assert.match(text, /^“notes\.txt” is a type of file this service does not accept \(text\/plain\)\. Nothing of it was kept\./)
    const creates = net.filter((n) => n.method === 'POST' && /\/s3\/multipart$/.test(n.url))
    assert.deepEqual(creates.map((n) => n.status), [422], 'the one create was refused')
    assert.equal((await listed(page)).filter((x) => x.filename === f.name).length, 0, 'nothing tracked')
    await checkBothSizes(page, 'error-type')
  }),
)

test('expired sign-in: its own message and a way to sign in again, then the upload goes on', { timeout: 120_000 }, () =>
  withPage({ grant: { expiresIn: 2 } }, async ({ page, net }) => {
    await signIn(page)
    await page.waitForTimeout(2500)
    const f = await file('after-lunch.bin', 6 * MiB)
    await upload(page, f.path)
    const text = await waitMessage(page, 'expired')
    assert.match(text, /^Your sign-in has expired, so “after-lunch\.bin” is waiting\. Sign in again and it goes on where it stopped\./)
    assert.equal(net.filter((n) => n.method === 'POST' && /\/s3\/multipart$/.test(n.url) && n.status === 200).length, 0)
    await checkBothSizes(page, 'error-expired')
    // Sign in again (a normal grant this time): the waiting upload goes on by itself.
    await page.unroute(`${API}/grants`)
    await page.click('#messages li[data-kind="expired"] button:text("Sign in again")')
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'token')
    await signIn(page)
    const row = await waitRow(page, f.name, 'COMPLETED')
    const u = (await listed(page)).find((x) => x.uploadId === row.uploadId)
    const object = await getObject(s3Of(net), u.key)
    assert.ok(object.body.equals(f.data), 'byte-exact')
  }),
)

test('a reload after the sign-in expired: signed out, and says why', { timeout: 60_000 }, () =>
  withPage({ grant: { expiresIn: 3 } }, async ({ page }) => {
    await signIn(page)
    await page.waitForTimeout(3500)
    await page.reload()
    const text = await waitMessage(page, 'expired')
    assert.match(text, /^Your sign-in has expired\. Sign in again to continue your uploads\./)
    assert.equal(await page.isVisible('#signin'), true)
    assert.equal(await page.isVisible('#uploader'), false)
    assert.equal(await page.evaluate(() => sessionStorage.getItem('partwise.session')), null, 'forgotten')
  }),
)

test('connection lost mid-upload: its own message, retried by itself, completes byte-exact', { timeout: 150_000 }, () =>
  withPage({}, async ({ page, net, context }) => {
    await signIn(page)
    const f = await file('on-the-train.bin', 16 * MiB)
    // Part 2 is cut off as the connection drops.
    let dropped = false
    await page.route((url) => isS3(url.href) && url.searchParams.get('partNumber') === '2', async (route) => {
      if (dropped) return route.continue()
      dropped = true
      await context.setOffline(true)
      await route.abort('internetdisconnected')
    })
    await upload(page, f.path)
    const text = await waitMessage(page, 'network')
    assert.match(text, /^The connection was lost while uploading “on-the-train\.bin”\. Retrying by itself; it goes on where it stopped once the connection is back\./)
    await checkBothSizes(page, 'error-network')
    await context.setOffline(false)
    const row = await waitRow(page, f.name, 'COMPLETED', 90_000)
    assert.match(await page.textContent('#messages'), /The connection is back; “on-the-train\.bin” goes on where it stopped\./)
    const creates = net.filter((n) => n.method === 'POST' && /\/s3\/multipart$/.test(n.url) && n.status === 200)
    assert.equal(creates.length, 1, 'resumed, not started again')
    const u = (await listed(page)).find((x) => x.uploadId === row.uploadId)
    assert.ok((await getObject(s3Of(net), u.key)).body.equals(f.data), 'byte-exact')
  }),
)

test('S3 refuses a part: its own message, the upload is aborted, S3 keeps nothing', { timeout: 120_000 }, () =>
  withPage({}, async ({ page, net }) => {
    await signIn(page)
    const f = await file('tampered.bin', 12 * MiB)
    // Part 2's URL reaches Garage with a signature it did not make: a real 403.
    await page.route((url) => isS3(url.href) && url.searchParams.get('partNumber') === '2', (route) => {
      const u = new URL(route.request().url())
      const sig = u.searchParams.get('X-Amz-Signature')
      u.searchParams.set('X-Amz-Signature', (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1))
      return route.continue({ url: u.href })
    })
    await upload(page, f.path)
    const text = await waitMessage(page, 'storage', 60_000)
    assert.match(text, /^The storage service refused part of “tampered\.bin” \(HTTP 403, (AccessDenied|SignatureDoesNotMatch)\)\. The upload was stopped and its parts removed; press Retry to start it again\./)
    const row = await waitRow(page, f.name, 'ABORTED')
    assert.match(row.stateText, /refused by storage/)
    const u = (await listed(page)).find((x) => x.uploadId === row.uploadId)
    await nothingInS3(s3Of(net), u.key)
    await checkBothSizes(page, 'error-storage')
  }),
)

test('quota reached: its own message with the usage, nothing kept of the refused upload', { timeout: 120_000 }, async (t) => {
  // Needs the server's quotas (GET /quota and QuotaExceeded refusals).
  const grant = await (await fetch(`${API}/grants`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()
  const probe = await fetch(`${grant.endpoint}/quota`)
  if (probe.status !== 200) {
    t.skip(`this server has no quotas yet (GET /g/…/quota answered ${probe.status})`)
    return
  }
  const FILL_AT_MOST = 200
  const { quotas } = await probe.json()
  const room = (quotas.liveUploads.limit ?? Infinity) - quotas.liveUploads.usage
  if (room > FILL_AT_MOST) {
    t.skip(`the live-uploads quota leaves room for ${room}, more than this test fills (scripts/e2e.sh sets 40)`)
    return
  }
  await withPage({}, async ({ page }) => {
    await signIn(page)
    const endpoint = await page.evaluate(() => window.partwise.session().endpoint)
    // Fill the live-uploads quota through the page's own grant, bounded.
    const made = []
    const max = FILL_AT_MOST
    for (let i = 0; i < max; i++) {
      const r = await fetch(`${endpoint}/s3/multipart`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ filename: `filler-${i}.bin`, type: 'application/octet-stream', metadata: {} }),
      })
      if (r.status !== 200) break
      made.push(await r.json())
    }
    try {
      const f = await file('one-too-many.bin', 6 * MiB)
      await upload(page, f.path)
      const text = await waitMessage(page, 'quota')
      assert.match(text, /^“one-too-many\.bin” was not started: you (have \d+ uploads under way, the most allowed at once is \d+|started \d+ uploads in the last minute, the most allowed is \d+)\./)
      // The list says how far the quota is used.
      await page.waitForFunction(
        (n) => document.querySelector('#quota').textContent === `You have ${n} unfinished uploads; this service allows ${n} at once.`,
        quotas.liveUploads.limit,
        { timeout: 10_000 },
      )
      await checkBothSizes(page, 'error-quota')
      assert.equal((await listed(page)).filter((x) => x.filename === f.name && x.state === 'ACTIVE').length, 0)
      // More uploads than one page of the list: the older ones come on request.
      await page.evaluate(() => window.partwise.refresh())
      assert.equal(await page.locator('#uploads tr').count(), 25)
      await page.click('#more')
      await page.waitForFunction(() => document.querySelectorAll('#uploads tr').length > 25)
      const ids = await page.$$eval('#uploads tr', (trs) => trs.map((tr) => tr.dataset.uploadId))
      assert.equal(new Set(ids).size, ids.length, 'no upload listed twice')
      const names = await page.$$eval('#uploads tr .name', (tds) => tds.map((td) => td.textContent))
      assert.ok(names.includes('filler-0.bin'), 'the oldest filler is reachable')
    } finally {
      for (const m of made) {
        await fetch(`${endpoint}/s3/multipart/${encodeURIComponent(m.uploadId)}?key=${encodeURIComponent(m.key)}`, { method: 'DELETE' })
      }
    }
  })
})
