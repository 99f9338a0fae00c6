// The upload page (web/) in headless Chromium, the way its users meet it:
// sign in, upload two files, see both complete in the list with their sizes
// in Uppy's units, cancel a third, sign out. S3 is checked directly.
//
// Needs E2E_API, E2E_WEB (the built page) and E2E_ARTIFACTS (scripts/e2e.sh).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { diagnose, launchBrowser, serveSite } from './lib/harness.mjs'
import { API, checkBothSizes, MiB, openUploadPage, pageSuite, signIn, upload, waitRow, WEB } from './lib/page.mjs'
import { bucketOf, getObject, multipartUploadsOf } from './lib/s3.mjs'

if (!API || !WEB) throw new Error('set E2E_API and E2E_WEB (scripts/e2e.sh does)')

let site
let browser
let dir
pageSuite('page', (s) => ({ site, browser, dir } = s))

/** The caller's uploads, as the page's grant lists them. */
async function listed(page) {
  const endpoint = await page.evaluate(() => window.partwise.session().endpoint)
  return (await (await fetch(`${endpoint}/s3/multipart?bytes=true`)).json()).uploads
}

test('sign in, upload two files, both complete with their sizes, cancel a third, sign out; S3 agrees', { timeout: 180_000 }, async () => {
  const p = await openUploadPage(browser, site.origin)
  const { page, net } = p
  try {
    await checkBothSizes(page, 'signed-out')
    assert.equal(await page.isVisible('#signout'), false)

    // Sign-in collapses to who and a sign-out.
    await signIn(page)
    assert.match(await page.textContent('#who'), /^Signed in anonymously · until \d/)
    assert.equal(await page.isVisible('#signin'), false, 'the sign-in form is gone')
    assert.equal(await page.isVisible('#signout'), true)
    // One drop hint, Uppy's.
    const hints = await page.evaluate(() => (document.body.innerText.match(/drop files/gi) ?? []).length)
    assert.equal(hints, 1, 'one drop hint')
    await checkBothSizes(page, 'signed-in')

    const files = []
    for (const [name, size] of [
      ['survey-photo.jpg', 300 * 1024],
      ['site-plan.pdf', 7 * MiB],
    ]) {
      const data = randomBytes(size)
      await writeFile(path.join(dir, name), data)
      files.push({ name, data })
    }
    await upload(page, files.map((f) => path.join(dir, f.name)))
    // The list shows each file's size in Uppy's own words, before and after.
    const uppySizes = await page.evaluate(() =>
      Object.fromEntries([...document.querySelectorAll('.uppy-Dashboard-Item')].map((el) => [
        el.querySelector('.uppy-Dashboard-Item-name')?.textContent,
        el.querySelector('.uppy-Dashboard-Item-statusSize')?.textContent,
      ])),
    )
    for (const f of files) {
      const row = await waitRow(page, f.name, 'COMPLETED')
      assert.equal(row.size, uppySizes[f.name], `${f.name}: the list and Uppy say the same size`)
      assert.match(row.stateText, /^Completed/)
    }
    // Screen readers hear the outcome (a polite live region).
    assert.match(await page.textContent('#announce'), /^(survey-photo\.jpg|site-plan\.pdf) uploaded\.$/)
    await checkBothSizes(page, 'completed')

    // S3 holds both, byte-exact.
    const s3url = net.find((n) => n.method === 'PUT' && !n.url.startsWith(API) && !n.url.startsWith(site.origin))
    const s3 = bucketOf(s3url.url)
    const uploads = await listed(page)
    for (const f of files) {
      const u = uploads.find((x) => x.filename === f.name)
      assert.ok(u, `${f.name} listed`)
      const object = await getObject(s3, u.key)
      assert.equal(object.status, 200, u.key)
      assert.ok(object.body.equals(f.data), `${f.name} byte-exact`)
    }

    // Each completed row offers its download: the button opens the owner's
    // presigned GET in a new tab (caught here, so headless Chromium's PDF
    // handling does not matter), whose bytes are the file's.
    await page.evaluate(() => { window.open = (url) => { window.__opened = url } })
    for (const f of files) {
      await page.evaluate(() => { window.__opened = null })
      await page.locator('#uploads tr', { hasText: f.name }).getByRole('button', { name: `Download ${f.name}` }).click()
      await page.waitForFunction(() => window.__opened)
      const url = await page.evaluate(() => window.__opened)
      const got = Buffer.from(await (await fetch(url)).arrayBuffer())
      assert.ok(got.equals(f.data), `${f.name}: the Download button's URL serves the file byte-exact`)
    }

    // A third file, cancelled midway with the Dashboard's cancel: ABORTED, nothing in S3.
    const third = { name: 'cancel-me.bin', data: randomBytes(12 * MiB) }
    await writeFile(path.join(dir, third.name), third.data)
    await page.evaluate(() => window.partwise.uppy().getFiles().forEach((f) => window.partwise.uppy().removeFile(f.id)))
    // Part 2's signing is held, so the cancel certainly comes midway.
    let hit
    const held = new Promise((resolve) => {
      hit = resolve
    })
    await page.route((url) => url.href.startsWith(API) && /\/s3\/multipart\/[^/]+\/2$/.test(url.pathname), (route) => hit(route))
    await upload(page, path.join(dir, third.name))
    const route = await held
    await page.click('.uppy-StatusBar-actionBtn--cancel, button[aria-label="Cancel"]')
    await route.abort().catch(() => {})
    await page.evaluate(() => window.partwise.refresh())
    const row = await waitRow(page, third.name, 'ABORTED', 30_000)
    assert.match(row.held, /^—$/)
    const cancelled = (await listed(page)).find((x) => x.filename === third.name)
    assert.equal(cancelled.state, 'ABORTED')
    assert.equal((await getObject(s3, cancelled.key)).status, 404, 'no object for the cancelled file')
    assert.deepEqual(await multipartUploadsOf(s3, cancelled.key), [], 'no parts left')

    // Sign out: back to the form, and a reload stays signed out.
    await page.click('#signout')
    assert.equal(await page.isVisible('#signin'), true)
    assert.equal(await page.textContent('#who'), 'Not signed in')
    assert.equal(await page.evaluate(() => sessionStorage.getItem('partwise.session')), null)
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'token', 'focus goes to the sign-in')
    await page.reload()
    await page.waitForSelector('#signin:not([hidden])')
    assert.equal(await page.isVisible('#uploader'), false)
  } catch (e) {
    console.error(diagnose(p))
    await page.screenshot({ path: path.join(process.env.E2E_ARTIFACTS ?? tmpdir(), 'page-failure.png'), fullPage: true }).catch(() => {})
    throw e
  } finally {
    await p.close()
  }
})

test('anonymous visitors each see only their own uploads', { timeout: 120_000 }, async () => {
  // Each anonymous grant is an owner of its own; a grant is sealed, so its
  // owner is asked of the API (GET {endpoint}/quota answers it).
  const sub = async () => {
    const g = await (await fetch(`${API}/grants`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()
    return (await (await fetch(`${g.endpoint}/quota`)).json()).owner
  }
  const [a, b] = [await sub(), await sub()]
  assert.ok(a && b && a !== b, `two anonymous grants, two owners: ${a} ${b}`)
  const visitors = []
  try {
    for (const name of ['visitor-a.bin', 'visitor-b.bin']) {
      const v = await openUploadPage(browser, site.origin)
      visitors.push(v)
      await signIn(v.page)
      await writeFile(path.join(dir, name), randomBytes(64 * 1024))
      await upload(v.page, path.join(dir, name))
      await waitRow(v.page, name, 'COMPLETED')
    }
    for (const [v, own, other] of [
      [visitors[0], 'visitor-a.bin', 'visitor-b.bin'],
      [visitors[1], 'visitor-b.bin', 'visitor-a.bin'],
    ]) {
      await v.page.evaluate(() => window.partwise.refresh())
      const names = await v.page.$$eval('#uploads tr .name', (tds) => tds.map((td) => td.textContent))
      assert.ok(names.includes(own), `${own} listed for its visitor`)
      assert.ok(!names.includes(other), `${other} not listed for the other visitor`)
      assert.deepEqual(new Set((await listed(v.page)).map((u) => u.filename)), new Set([own]))
    }
  } finally {
    for (const v of visitors) await v.close()
  }
})
