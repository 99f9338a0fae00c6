// Driving the upload page (web/) as a person would: open it, sign in, pick
// files, press Upload; plus what every page test checks and keeps (the
// layout at the two widths, a screenshot of each state).
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before } from 'node:test'
import { launchBrowser, serveSite } from './harness.mjs'

export const API = process.env.E2E_API?.replace(/\/+$/, '')
export const WEB = process.env.E2E_WEB
export const SHOTS = process.env.E2E_ARTIFACTS ?? path.join(tmpdir(), 'partwise-e2e-artifacts')
export const MiB = 1024 * 1024
export const DESKTOP = { width: 1280, height: 800 }
export const PHONE = { width: 390, height: 844 }

/**
 * A fresh browser context on the page (another browser, as far as storage
 * goes), with every response and failed request in `net` and the page's
 * console in `console`. `grant` (optional) is the body the page's
 * `POST /grants` is sent with instead of `{}`: a shorter life, a smaller
 * file limit, fewer types, as a site would configure it.
 */
export async function openUploadPage(browser, siteOrigin, { viewport = DESKTOP, grant, context } = {}) {
  const ctx = context ?? (await browser.newContext({ viewport }))
  const page = await ctx.newPage()
  const net = []
  const console = []
  page.on('response', (r) => net.push({ method: r.request().method(), url: r.url(), status: r.status() }))
  page.on('requestfailed', (r) => net.push({ method: r.method(), url: r.url(), status: 0, failure: r.failure()?.errorText }))
  page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', (e) => console.push(`pageerror: ${e.message}`))
  if (grant) await narrowGrant(page, grant)
  await page.goto(`${siteOrigin}/index.html?api=${encodeURIComponent(API)}`)
  return { page, context: ctx, net, console, close: () => (context ? page.close() : ctx.close()) }
}

/** Every `POST /grants` of `page` asks for `body` (until `page.unroute`). */
export function narrowGrant(page, body) {
  return page.route(`${API}/grants`, (route) =>
    route.request().method() === 'POST' ? route.continue({ postData: JSON.stringify(body) }) : route.continue(),
  )
}

/** Signs in (anonymous API: no token) and waits for the Dashboard. */
export async function signIn(page) {
  await page.click('#signin button[type=submit]')
  await page.waitForSelector('#uploader:not([hidden]) .uppy-Dashboard', { timeout: 15_000 })
  await page.waitForFunction(() => document.querySelector('#signin').hidden)
}

/** Picks `files` (paths) in the Dashboard and presses its Upload button. */
export async function upload(page, files) {
  await page.setInputFiles('.uppy-Dashboard-input', files)
  await page.click('.uppy-StatusBar-actionBtn--upload')
}

/** The row of the uploads list for `name` once `test(row)` holds: `{ state, standing, text }`. */
export async function waitRow(page, name, state, timeout = 60_000) {
  await page.waitForFunction(
    ([n, s]) =>
      [...document.querySelectorAll('#uploads tr')].some(
        (tr) => tr.querySelector('.name')?.textContent === n && (!s || tr.dataset.state === s),
      ),
    [name, state],
    { timeout },
  )
  return page.evaluate(
    ([n, s]) => {
      const tr = [...document.querySelectorAll('#uploads tr')].find(
        (r) => r.querySelector('.name')?.textContent === n && (!s || r.dataset.state === s),
      )
      const cell = (c) => tr.querySelector(`.${c}`)?.textContent
      return {
        uploadId: tr.dataset.uploadId,
        state: tr.dataset.state,
        standing: tr.dataset.standing,
        text: tr.textContent,
        size: cell('size'),
        held: cell('held'),
        stateText: cell('state'),
      }
    },
    [name, state],
  )
}

/** The message of `kind` once shown: its text. */
export async function waitMessage(page, kind, timeout = 30_000) {
  const li = await page.waitForSelector(`#messages li[data-kind="${kind}"]`, { timeout })
  return li.textContent()
}

/**
 * Checks the layout as a person on this viewport sees it, then keeps a
 * screenshot: nothing wider than the screen, and every visible button
 * wholly inside it horizontally (reachable by scrolling down only).
 */
export async function checkAndShoot(page, name) {
  const layout = await page.evaluate(() => {
    const buttons = [...document.querySelectorAll('button, [role=button]')]
      .filter((b) => b.offsetParent !== null && getComputedStyle(b).visibility !== 'hidden')
      .map((b) => {
        const r = b.getBoundingClientRect()
        return { text: (b.getAttribute('aria-label') || b.textContent || '').trim().slice(0, 40), left: r.left, right: r.right, width: r.width }
      })
      .filter((b) => b.width > 0)
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth, buttons }
  })
  const size = page.viewportSize()
  assert.ok(layout.scrollWidth <= layout.innerWidth, `${name} at ${size.width}px: page is ${layout.scrollWidth}px wide`)
  for (const b of layout.buttons) {
    assert.ok(b.left >= 0 && b.right <= layout.innerWidth + 0.5, `${name} at ${size.width}px: button "${b.text}" at ${b.left}..${b.right}`)
  }
  await mkdir(SHOTS, { recursive: true })
  await page.screenshot({ path: path.join(SHOTS, `page-${name}-${size.width}.png`), fullPage: true })
  return layout
}

/** `checkAndShoot` at the desktop and the phone size, back to where it was. */
export async function checkBothSizes(page, name) {
  const before = page.viewportSize()
  for (const v of [DESKTOP, PHONE]) {
    await page.setViewportSize(v)
    await page.waitForTimeout(250) // Uppy re-lays its Dashboard on resize
    await checkAndShoot(page, name)
  }
  await page.setViewportSize(before)
}

/** One test file's page site, browser and scratch folder: opened before its
 * tests, closed after them; `set` receives them once open. */
export function pageSuite(name, set) {
  const s = {}
  before(async () => {
    s.site = await serveSite(WEB)
    s.browser = await launchBrowser()
    s.dir = await mkdtemp(path.join(tmpdir(), `partwise-${name}-`))
    set(s)
  })
  after(async () => {
    await s.browser?.close()
    await s.site?.close()
    if (s.dir) await rm(s.dir, { recursive: true, force: true })
  })
}
