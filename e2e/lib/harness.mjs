// The page's own origin (a static server on another port than the API, so
// every API call is cross-origin and CORS is really applied), the browser,
// and a record of what the page sent and saw.
import { createReadStream, existsSync, statSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { chromium } from 'playwright-core'

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
}

/** Serves `dir` on 127.0.0.1 (free port): `{ origin, close() }`. */
export async function serveSite(dir) {
  const root = path.resolve(dir)
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname)
    const file = path.join(root, rel === '/' ? 'index.html' : rel)
    if (!file.startsWith(root + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' })
    createReadStream(file).pipe(res)
  })
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(resolve)
      }),
  }
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 60_000,
  })
}

/**
 * A fresh browser context on the test page, with `net` (every response and
 * failed request, in order) and `console` (the page's messages) recorded.
 */
export async function openPage(browser, siteOrigin, api) {
  const context = await browser.newContext()
  const page = await context.newPage()
  const net = []
  const console = []
  page.on('response', (r) => net.push({ method: r.request().method(), url: r.url(), status: r.status() }))
  page.on('requestfailed', (r) =>
    net.push({ method: r.method(), url: r.url(), status: 0, failure: r.failure()?.errorText }),
  )
  page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', (e) => console.push(`pageerror: ${e.message}`))
  await page.goto(`${siteOrigin}/index.html?api=${encodeURIComponent(api)}`)
  await page.waitForFunction(() => window.e2e?.ready === true, null, { timeout: 15_000 })
  return { page, net, console, close: () => context.close() }
}

/** `promise`, or a loud rejection after `ms`. */
export function within(ms, what, promise) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** API calls in `net` as `METHOD /path` (query dropped), to compare with the expected protocol. */
export function apiCalls(net, api) {
  return net
    .filter((n) => n.url.startsWith(`${api}/`))
    .map((n) => `${n.method} ${new URL(n.url).pathname} ${n.status}`)
}

/** What to print when a case fails: the traffic and the page's console. */
export function diagnose({ net, console }) {
  const short = (u) => (u.length > 160 ? `${u.slice(0, 160)}…` : u)
  return [
    '--- what the page sent (network) ---',
    ...net.map((n) => `${n.method} ${short(n.url)} -> ${n.status}${n.failure ? ` (${n.failure})` : ''}`),
    '--- what the page said (console) ---',
    ...console,
  ].join('\n')
}
