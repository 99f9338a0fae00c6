// Resuming with the page: a reload mid-upload goes on with the same uploadId
// and sends no part twice (Golden Retriever and the sign-in kept for the tab);
// a new tab (as after a browser restart) restores the upload and finishes it
// after a sign-in; another browser sees the unfinished upload marked as not
// resumable there, and its Abort leaves nothing in S3.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { diagnose, launchBrowser, serveSite } from './lib/harness.mjs'
import { API, checkBothSizes, DESKTOP, MiB, openUploadPage, pageSuite, signIn, upload, waitMessage, waitRow, WEB } from './lib/page.mjs'
import { bucketOf, getObject, multipartUploadsOf } from './lib/s3.mjs'

if (!API || !WEB) throw new Error('set E2E_API and E2E_WEB (scripts/e2e.sh does)')

let site
let browser
let dir
pageSuite('page-resume', (s) => ({ site, browser, dir } = s))

const isS3 = (url) => !url.startsWith(API) && !url.startsWith(site.origin)
const partOf = (url) => new URL(url).searchParams.get('partNumber')
const isSign = (n) => (url) => url.href.startsWith(API) && new RegExp(`/s3/multipart/[^/]+/${n}$`).test(url.pathname)

async function file(name, size) {
  const data = randomBytes(size)
  await writeFile(path.join(dir, name), data)
  return { name, data, path: path.join(dir, name) }
}

/**
 * Holds the first signing of part `n` (so every earlier part is certainly
 * done and none after it started) until `release()`; later ones pass.
 */
async function holdSigning(page, n) {
  let held = null
  let hit
  const reached = new Promise((resolve) => {
    hit = resolve
  })
  await page.route(isSign(n), (route) => {
    if (held) return route.continue()
    held = route
    hit()
  })
  return { reached, release: () => held?.abort().catch(() => {}) }
}

async function listedVia(endpoint) {
  return (await (await fetch(`${endpoint}/s3/multipart?bytes=true`)).json()).uploads
}

test('reload mid-upload: same uploadId, no part sent twice, byte-exact', { timeout: 150_000 }, async () => {
  const p = await openUploadPage(browser, site.origin)
  const { page, net } = p
  try {
    await signIn(page)
    const f = await file('field-recording.wav', 26 * MiB) // 6 parts: 5 × 5 MiB + 1 MiB
    const hold = await holdSigning(page, 3)
    await upload(page, f.path)
    await hold.reached
    const before = await page.evaluate(() => window.partwise.uppy().getFiles()[0].s3Multipart)
    assert.ok(before?.uploadId)
    await waitRow(page, f.name, 'ACTIVE')
    await page.evaluate(() => window.partwise.refresh())
    const mid = await waitRow(page, f.name, 'ACTIVE')
    assert.equal(mid.size, '26 MB', 'the file size, not what was sent')
    assert.equal(mid.held, '10 MB', 'two parts held')
    await checkBothSizes(page, 'mid-upload')
    await page.waitForTimeout(800) // Golden Retriever saves its state at most every 500 ms

    await page.reload()
    hold.release()
    // Still signed in, and the upload goes on by itself.
    await page.waitForSelector('#uploader:not([hidden])')
    assert.match(await page.textContent('#who'), /^Signed in anonymously/)
    await page.waitForFunction(() => window.partwise.uppy().getFiles().some((f) => f.isRestored), null, { timeout: 15_000 })
    await checkBothSizes(page, 'after-reload')
    const row = await waitRow(page, f.name, 'COMPLETED', 90_000)
    assert.equal(row.uploadId, before.uploadId, 'the same upload, resumed')
    assert.equal(row.size, '26 MB')

    const creates = net.filter((n) => n.method === 'POST' && n.url.startsWith(API) && /\/s3\/multipart$/.test(new URL(n.url).pathname))
    assert.equal(creates.length, 1, 'one create in all')
    const puts = net.filter((n) => n.method === 'PUT' && isS3(n.url)).map((n) => `${partOf(n.url)}:${n.status}`)
    assert.deepEqual(puts.sort(), ['1:200', '2:200', '3:200', '4:200', '5:200', '6:200'], 'each part sent once')
    const object = await getObject(bucketOf(net.find((n) => n.method === 'PUT' && isS3(n.url)).url), before.key)
    assert.equal(object.status, 200)
    assert.ok(object.body.equals(f.data), 'byte-exact')
  } catch (e) {
    console.error(diagnose(p))
    throw e
  } finally {
    await p.close()
  }
})

test('a new tab (as after a browser restart): restored, signed out; after sign-in it finishes byte-exact', { timeout: 150_000 }, async () => {
  const context = await browser.newContext({ viewport: DESKTOP })
  const first = await openUploadPage(browser, site.origin, { context })
  let second
  try {
    await signIn(first.page)
    const f = await file('handover.bin', 12 * MiB)
    const hold = await holdSigning(first.page, 2)
    await upload(first.page, f.path)
    await hold.reached
    await first.page.waitForTimeout(800)
    await first.page.close()
    hold.release()

    second = await openUploadPage(browser, site.origin, { context })
    const { page, net } = second
    assert.match(await waitMessage(page, 'info'), /Unfinished uploads were restored\. Sign in to continue them\./)
    assert.equal(await page.isVisible('#signin'), true, 'the sign-in was not kept past the tab')
    await checkBothSizes(page, 'restored-signed-out')
    await signIn(page)
    const row = await waitRow(page, f.name, 'COMPLETED', 90_000)
    const endpoint = await page.evaluate(() => window.partwise.session().endpoint)
    const u = (await listedVia(endpoint)).find((x) => x.uploadId === row.uploadId)
    const s3 = bucketOf([...first.net, ...net].find((n) => n.method === 'PUT' && isS3(n.url)).url)
    assert.ok((await getObject(s3, u.key)).body.equals(f.data), 'byte-exact')
  } catch (e) {
    console.error(diagnose(first))
    if (second) console.error(diagnose(second))
    throw e
  } finally {
    await context.close()
  }
})

test('another browser: the unfinished upload is marked as not resumable there, and its Abort leaves nothing in S3', { timeout: 120_000 }, async () => {
  const a = await openUploadPage(browser, site.origin)
  let b
  try {
    await signIn(a.page)
    const f = await file('left-at-work.bin', 12 * MiB)
    const hold = await holdSigning(a.page, 2)
    await upload(a.page, f.path)
    await hold.reached
    const session = await a.page.evaluate(() => sessionStorage.getItem('partwise.session'))
    const mp = await a.page.evaluate(() => window.partwise.uppy().getFiles()[0].s3Multipart)
    const s3 = bucketOf(a.net.find((n) => n.method === 'PUT' && isS3(n.url)).url)
    await a.close()
    hold.release()

    // The same sign-in in another browser (its grant, as a person would be
    // signed in twice): it lists the upload but holds no file to resume it.
    const ctx = await browser.newContext({ viewport: DESKTOP })
    await ctx.addInitScript((s) => sessionStorage.setItem('partwise.session', s), session)
    b = await openUploadPage(browser, site.origin, { context: ctx })
    const row = await waitRow(b.page, f.name, 'ACTIVE')
    assert.equal(row.standing, 'lost')
    assert.match(row.stateText, /This browser cannot resume it\./)
    assert.equal(row.held, '5 MB')
    await checkBothSizes(b.page, 'not-resumable')
    await b.page.click(`#uploads tr[data-upload-id="${mp.uploadId}"] button:text("Abort")`)
    const gone = await waitRow(b.page, f.name, 'ABORTED')
    assert.match(gone.stateText, /you aborted it/)
    assert.deepEqual(await multipartUploadsOf(s3, mp.key), [], 'no parts left')
    await ctx.close()
  } catch (e) {
    console.error(diagnose(a))
    if (b) console.error(diagnose(b))
    throw e
  }
})
