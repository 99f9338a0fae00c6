// The upload page (web/) in headless Chromium: sign in, upload two files
// with the Dashboard, see both complete in the list, cancel a third, and
// check S3. Screenshots before, during and after go to E2E_ARTIFACTS.
//
// Needs E2E_API, E2E_WEB (the built page) and E2E_ARTIFACTS (scripts/e2e.sh).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { diagnose, launchBrowser, serveSite } from './lib/harness.mjs'
import { bucketOf, getObject, multipartUploadsOf } from './lib/s3.mjs'

const API = process.env.E2E_API?.replace(/\/+$/, '')
const WEB = process.env.E2E_WEB
const SHOTS = process.env.E2E_ARTIFACTS ?? path.join(tmpdir(), 'partwise-e2e-artifacts')
if (!API || !WEB) throw new Error('set E2E_API and E2E_WEB (scripts/e2e.sh does)')

const MiB = 1024 * 1024

let site
let browser

before(async () => {
  site = await serveSite(WEB)
  browser = await launchBrowser()
  await mkdir(SHOTS, { recursive: true })
})

after(async () => {
  await browser?.close()
  await site?.close()
})

test('the page: sign in, upload two files, both complete in the list, cancel a third, S3 agrees', { timeout: 180_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } })
  const page = await context.newPage()
  const net = []
  const console = []
  page.on('response', (r) => net.push({ method: r.request().method(), url: r.url(), status: r.status() }))
  page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', (e) => console.push(`pageerror: ${e.message}`))
  const dir = await mkdtemp(path.join(tmpdir(), 'partwise-page-'))
  try {
    await page.goto(`${site.origin}/index.html?api=${encodeURIComponent(API)}`)
    await page.screenshot({ path: path.join(SHOTS, 'page-before.png'), fullPage: true })

    // Anonymous API: signing in needs no token.
    await page.click('#signin button[type=submit]')
    await page.waitForSelector('.uppy-Dashboard', { timeout: 15_000 })
    assert.match(await page.textContent('#who'), /uploads allowed until/)

    const files = []
    for (const [name, size] of [
      ['survey-photo.jpg', 300 * 1024],
      ['site-plan.pdf', 7 * MiB],
    ]) {
      const data = randomBytes(size)
      await writeFile(path.join(dir, name), data)
      files.push({ name, data })
    }
    await page.setInputFiles('.uppy-Dashboard-input', files.map((f) => path.join(dir, f.name)))
    await page.click('.uppy-StatusBar-actionBtn--upload')
    await page.waitForSelector('.uppy-StatusBar.is-uploading', { timeout: 10_000 }).catch(() => {})
    await page.screenshot({ path: path.join(SHOTS, 'page-during.png'), fullPage: true })

    // Both complete, in the list.
    await page.waitForFunction(
      (names) => names.every((n) => [...document.querySelectorAll('#uploads tr')].some((tr) => tr.textContent.includes(n) && tr.textContent.includes('COMPLETED'))),
      files.map((f) => f.name),
      { timeout: 60_000 },
    )
    await page.screenshot({ path: path.join(SHOTS, 'page-after.png'), fullPage: true })

    // S3 holds both, byte-exact, with Uppy's metadata.
    const s3url = net.find((n) => (n.method === 'PUT' || n.method === 'POST') && !n.url.startsWith(API) && !n.url.startsWith(site.origin))
    const s3 = bucketOf(s3url.url)
    const listed = await (await fetch(net.find((n) => /\/s3\/multipart\?bytes=true$/.test(n.url)).url)).json()
    for (const f of files) {
      const u = listed.uploads.find((x) => x.filename === f.name)
      assert.ok(u, `${f.name} listed`)
      const object = await getObject(s3, u.key)
      assert.equal(object.status, 200, u.key)
      assert.ok(object.body.equals(f.data), `${f.name} byte-exact`)
    }

    // A third file, cancelled midway: Dashboard's cancel, then nothing in S3.
    const third = { name: 'cancel-me.bin', data: randomBytes(12 * MiB) }
    await writeFile(path.join(dir, third.name), third.data)
    await page.evaluate(() => window.partwise.uppy().getFiles().forEach((f) => window.partwise.uppy().removeFile(f.id)))
    await page.setInputFiles('.uppy-Dashboard-input', path.join(dir, third.name))
    await page.click('.uppy-StatusBar-actionBtn--upload')
    await page.waitForFunction(
      () => window.partwise.uppy().getFiles().some((f) => f.progress.bytesUploaded > 0 || f.s3Multipart?.uploadId),
      null,
      { timeout: 30_000 },
    )
    await page.click('.uppy-StatusBar-actionBtn--cancel, button[aria-label="Cancel"]')
    await page.evaluate(() => window.partwise.refresh())
    await page.waitForFunction(
      (n) => [...document.querySelectorAll('#uploads tr')].some((tr) => tr.textContent.includes(n) && tr.textContent.includes('ABORTED')),
      third.name,
      { timeout: 30_000 },
    )
    await page.screenshot({ path: path.join(SHOTS, 'page-cancelled.png'), fullPage: true })
    const again = await (await fetch(net.filter((n) => /\/s3\/multipart\?bytes=true$/.test(n.url)).at(-1).url)).json()
    const cancelled = again.uploads.find((x) => x.filename === third.name)
    assert.equal(cancelled.state, 'ABORTED')
    assert.equal((await getObject(s3, cancelled.key)).status, 404, 'no object for the cancelled file')
    assert.deepEqual(await multipartUploadsOf(s3, cancelled.key), [], 'no parts left')
  } catch (e) {
    globalThis.console.error(diagnose({ net, console }))
    await page.screenshot({ path: path.join(SHOTS, 'page-failure.png'), fullPage: true }).catch(() => {})
    throw e
  } finally {
    await context.close()
    await rm(dir, { recursive: true, force: true })
  }
})
