// The page with a keyboard and a screen reader in mind: sign-in by keyboard
// alone, a focus order that follows the page, live regions that say what
// happened, and an axe-core scan of the signed-in page (with a finished and
// an unfinished upload listed) at both widths: no serious or critical
// violation.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { diagnose, launchBrowser, serveSite } from './lib/harness.mjs'
import { API, checkAndShoot, DESKTOP, MiB, openUploadPage, pageSuite, PHONE, upload, waitRow, WEB } from './lib/page.mjs'

if (!API || !WEB) throw new Error('set E2E_API and E2E_WEB (scripts/e2e.sh does)')

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js')

let site
let browser
let dir
pageSuite('page-a11y', (s) => ({ site, browser, dir } = s))

/** What has focus, as a person would name it. */
const focused = (page) =>
  page.evaluate(() => {
    const el = document.activeElement
    return el?.id || el?.getAttribute('aria-label') || el?.textContent?.trim().slice(0, 30) || el?.tagName
  })

async function tabOrder(page, presses) {
  const seen = []
  for (let i = 0; i < presses; i++) {
    await page.keyboard.press('Tab')
    seen.push(await focused(page))
  }
  return seen
}

async function axeScan(page) {
  await page.addScriptTag({ path: AXE })
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations)
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')})`)
}

test('keyboard sign-in, focus order, announced states, and no serious axe-core violation signed in', { timeout: 150_000 }, async () => {
  const p = await openUploadPage(browser, site.origin)
  const { page } = p
  try {
    // Signed out: API, token, Sign in, in that order; Enter signs in.
    const out = await tabOrder(page, 3)
    assert.deepEqual(out, ['api', 'token', 'Sign in'])
    assert.deepEqual(await axeScan(page), [], 'signed out')
    await page.focus('#token')
    await page.keyboard.press('Enter')
    await page.waitForSelector('#uploader:not([hidden]) .uppy-Dashboard')
    assert.match(await page.textContent('#who'), /^Signed in anonymously/)
    assert.equal(await page.getAttribute('#who', 'aria-live'), 'polite', 'the sign-in state is announced')

    // One finished upload and one unfinished (its part 2 held), so the list has both kinds of row.
    const done = path.join(dir, 'minutes.pdf')
    await writeFile(done, randomBytes(200 * 1024))
    await upload(page, done)
    await waitRow(page, 'minutes.pdf', 'COMPLETED')
    await page.waitForFunction(() => document.querySelector('#announce').textContent === 'minutes.pdf uploaded.', null, { timeout: 10_000 })
    await page.evaluate(() => window.partwise.uppy().getFiles().forEach((f) => window.partwise.uppy().removeFile(f.id)))
    await page.route((url) => url.href.startsWith(API) && /\/s3\/multipart\/[^/]+\/2$/.test(url.pathname), () => {})
    const open = path.join(dir, 'raw-footage.mov')
    await writeFile(open, randomBytes(11 * MiB))
    await upload(page, open)
    await page.waitForFunction(() => window.partwise.uppy().getFiles().some((f) => f.s3Multipart?.uploadId))
    await page.evaluate(() => window.partwise.refresh())
    await waitRow(page, 'raw-footage.mov', 'ACTIVE')

    // Focus order follows the page: account, then the Dashboard, then the list.
    const order = await tabOrder(page, 40)
    const from = order.indexOf('signout')
    const at = (name) => order.indexOf(name, from)
    const seen = order.join(' | ')
    assert.ok(from >= 0, `sign-out reachable: ${seen}`)
    assert.ok(at('Add more files') > from, `then the Dashboard: ${seen}`)
    assert.ok(at('refresh') > at('Add more files'), `then the list: ${seen}`)
    assert.ok(at('Abort the upload of raw-footage.mov') > at('refresh'), `then its Abort: ${seen}`)

    for (const v of [DESKTOP, PHONE]) {
      await page.setViewportSize(v)
      await page.waitForTimeout(250)
      assert.deepEqual(await axeScan(page), [], `signed in at ${v.width}px`)
      await checkAndShoot(page, 'a11y-signed-in')
    }
    // Given up by keyboard: Abort has a name that says which upload it ends.
    await page.focus('button[aria-label="Abort the upload of raw-footage.mov"]')
    await page.keyboard.press('Enter')
    await waitRow(page, 'raw-footage.mov', 'ABORTED')
    await page.waitForFunction(() => document.querySelector('#announce').textContent === 'raw-footage.mov aborted.', null, { timeout: 10_000 })
  } catch (e) {
    console.error(diagnose(p))
    throw e
  } finally {
    await p.close()
  }
})
