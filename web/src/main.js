// The Partwise upload page: sign in (a dev-mode name, a JWT, or nothing in
// anonymous mode), trade the token for an upload grant (POST /grants), and
// let a plain Uppy Dashboard upload through the grant's endpoint. Uppy sends
// no credentials; the grant in the URL is the caller.
//
// Around Uppy the page adds what a person needs: the real reason for each
// failure (api-watch.js, errors.js), an abort of whatever was refused, resume
// after a reload (Golden Retriever, and the sign-in kept for the tab:
// session.js), and the list of the caller's uploads (list.js).
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import AwsS3 from '@uppy/aws-s3'
import GoldenRetriever from '@uppy/golden-retriever'
import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import './style.css'
import { GRANT, takeFailure, watchApi } from './api-watch.js'
import { KINDS, REFUSED, explain, s3Code } from './errors.js'
import { remember } from './known.js'
import { rows } from './list.js'
import { clearSession, grantClaims, loadSession, nameFromToken, saveSession } from './session.js'

const MiB = 1024 * 1024
/**
 * Files up to this size are kept in the browser (IndexedDB) while they
 * upload, so a reload or a browser restart resumes them by itself. A larger
 * file resumes too, once the person picks it again (docs/page.md).
 */
export const RESUME_STORE_MAX_FILE = 1024 * MiB
const RESUME_STORE_MAX_TOTAL = 2048 * MiB

/** Uploads listed at once; older ones come with "Show older uploads". */
const PAGE = 25

const $ = (id) => document.getElementById(id)
const params = new URLSearchParams(location.search)

let session = null // { api, endpoint, expires, anonymous, name }
const waiting = new Map() // file id → KINDS.expired, or the symbol of its wait for the connection
const restarted = new Set() // file ids started again after a resume was refused

// --- messages -----------------------------------------------------------------

/**
 * Shows `text` in the message list (an alert region, so screen readers read
 * it), replacing any earlier message with the same `id`. `actions` are
 * buttons: `[{ label, run }]`.
 */
function say(id, text, { kind = 'error', actions = [] } = {}) {
  const list = $('messages')
  list.querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove()
  if (!text) return
  const li = document.createElement('li')
  li.dataset.id = id
  li.dataset.kind = kind
  li.className = kind === 'info' || kind === 'done' ? 'info' : ''
  const p = document.createElement('span')
  p.textContent = text
  li.append(p)
  for (const a of actions) {
    const b = document.createElement('button')
    b.type = 'button'
    b.className = 'small'
    b.textContent = a.label
    b.onclick = a.run
    li.append(b)
  }
  const close = document.createElement('button')
  close.type = 'button'
  close.className = 'small plain'
  close.textContent = '×'
  close.setAttribute('aria-label', 'Dismiss this message')
  close.onclick = () => li.remove()
  li.append(close)
  list.append(li)
}

/** A short polite announcement for screen readers (upload started, done...). */
function announce(text) {
  // The same text again is no change to a live region: say it with a
  // different invisible ending so it is read again.
  const a = $('announce')
  a.textContent = a.textContent === text ? `${text}\u00a0` : text
}

// --- API calls the page makes itself ------------------------------------------

/** A JSON call to the API; throws an Error whose message is for people. */
async function call(url, init = {}) {
  let res
  try {
    res = await fetch(url, init)
  } catch {
    throw new Error('The upload service cannot be reached. Check your connection and try again.')
  }
  const body = await res.json().catch(() => ({}))
  if (!res.ok) {
    const message =
      res.status === 401
        ? 'Your sign-in is not valid or has expired. Sign in again.'
        : res.status === 403 && /grants/.test(body.message ?? '')
          ? 'This service does not allow browser uploads (upload grants are off).'
          : (body.message ?? `The request failed (HTTP ${res.status}).`)
    throw Object.assign(new Error(message), { status: res.status })
  }
  return body
}

/** Whether the API answers at all just now (any HTTP answer counts). */
async function reachable() {
  if (navigator.onLine === false) return false
  try {
    // no-cors: any answer at all counts, readable or not.
    await fetch(`${session?.api ?? $('api').value}/`, { mode: 'no-cors', cache: 'no-store', signal: AbortSignal.timeout(5000) })
    return true
  } catch {
    return false
  }
}

/** Aborts an upload through the grant: S3 drops its parts. */
async function abortUpload(uploadId, key) {
  if (!session) return
  await call(`${session.endpoint}/s3/multipart/${encodeURIComponent(uploadId)}?key=${encodeURIComponent(key)}`, {
    method: 'DELETE',
  })
}

// --- sign-in ------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault()
  say('signin', '')
  const api = $('api').value.replace(/\/+$/, '')
  const token = $('token').value.trim()
  const button = $('signin').querySelector('button[type=submit]')
  button.disabled = true
  try {
    const grant = await call(`${api}/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: '{}',
    })
    session = { api, endpoint: grant.endpoint, expires: grant.expires, anonymous: !token, name: token ? nameFromToken(token) : null }
    saveSession(session)
  } catch (e) {
    say('signin', e.message)
    return
  } finally {
    button.disabled = false
  }
  $('token').value = ''
  showSignedIn(true)
  goOn()
}

function signOut() {
  // Uploads under way are paused, not aborted: signing in again continues them.
  const busy = uppy.getFiles().filter((f) => f.progress.uploadStarted && !f.progress.uploadComplete && !f.error)
  uppy.pauseAll()
  session = null
  clearSession()
  showSignedOut()
  if (busy.length) {
    say('signout', `Signed out. ${busy.length === 1 ? 'One upload is' : `${busy.length} uploads are`} paused; sign in again to continue.`, { kind: 'info' })
  } else {
    say('signout', 'Signed out.', { kind: 'info' })
  }
  $('token').focus()
}

function showSignedIn(focus) {
  const until = new Date(session.expires).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
  const who = session.anonymous ? 'anonymously' : `as ${session.name ?? grantClaims(session.endpoint)?.sub ?? 'you'}`
  $('who').textContent = `Signed in ${who} · until ${until}`
  $('signin').hidden = true
  $('signout').hidden = false
  $('uploader').hidden = false
  $('mine').hidden = false
  say('signout', '')
  say('expired', '')
  if (focus) document.querySelector('.uppy-Dashboard-browse')?.focus()
  refresh()
}

function showSignedOut() {
  $('who').textContent = 'Not signed in'
  $('signin').hidden = false
  $('signout').hidden = true
  $('uploader').hidden = true
  $('mine').hidden = true
  $('uploads').replaceChildren()
}

/** After a sign-in: uploads restored from before a reload, or waiting for a sign-in, go on. */
function goOn() {
  const { recoveredState } = uppy.getState()
  const files = uppy.getFiles()
  if (recoveredState && files.length && !files.some((f) => f.isGhost)) {
    uppy.emit('restore-confirmed')
    announce('Restored uploads continue.')
  }
  for (const f of files) {
    if (f.isPaused && !f.error) uppy.pauseResume(f.id)
  }
  for (const [id, why] of waiting) {
    if (why === KINDS.expired && uppy.getFile(id)) {
      waiting.delete(id)
      uppy.retryUpload(id).catch(() => {})
    }
  }
}

// --- Uppy ---------------------------------------------------------------------

watchApi(() => session?.endpoint ?? null)

const uppy = new Uppy({ id: 'partwise', autoProceed: false })
  .use(Dashboard, {
    inline: true,
    target: '#dashboard',
    height: 340,
    width: '100%',
    proudlyDisplayPoweredByUppy: false,
    showProgressDetails: true,
    // Failures are explained in the page's own messages, once and in words;
    // Uppy's informer would add a second, vaguer text.
    disableInformer: true,
    note: 'Large files go up in parts. If the page closes, the upload continues where it stopped.',
  })
  // Multipart for every non-empty file: each is then tracked, listed below,
  // and can be paused and resumed (a POST form upload is neither).
  .use(AwsS3, { companionEndpoint: GRANT, shouldUseMultipart: (file) => file.size > 0 })
  .use(GoldenRetriever, { indexedDB: { maxFileSize: RESUME_STORE_MAX_FILE, maxTotalSize: RESUME_STORE_MAX_TOTAL } })

// Uppy 6's Dashboard shows a single file as role="listitem" in a container
// without the list role (axe: aria-required-parent, critical), so screen
// readers get a list item outside any list. The container gets its role.
new MutationObserver(() => {
  for (const el of document.querySelectorAll('.uppy-Dashboard-files:not([role])')) el.setAttribute('role', 'list')
}).observe($('dashboard'), { childList: true, subtree: true })

uppy.on('restored', () => {
  const files = uppy.getFiles().filter((f) => !f.progress.uploadComplete)
  if (!files.length) return
  const ghosts = files.filter((f) => f.isGhost).length
  announce(`${files.length} unfinished ${files.length === 1 ? 'upload' : 'uploads'} restored.`)
  if (ghosts) {
    say('restored', `${ghosts === 1 ? 'One file was' : `${ghosts} files were`} too large to keep in the browser. Add ${ghosts === 1 ? 'it' : 'them'} again to resume where ${ghosts === 1 ? 'it' : 'they'} stopped.`, { kind: 'info' })
  }
  if (session) goOn()
  else say('restored-signin', 'Unfinished uploads were restored. Sign in to continue them.', { kind: 'info' })
})

// Remember each upload's file size as soon as it has an uploadId: the API
// learns the size only at complete, and the list shows it before that.
uppy.on('state-update', (prev, next) => {
  if (prev.files === next.files) return
  for (const f of Object.values(next.files)) {
    const id = f.s3Multipart?.uploadId
    if (id && prev.files[f.id]?.s3Multipart?.uploadId !== id) {
      remember(id, { size: f.size, name: f.name })
      refreshSoon()
    }
  }
})

uppy.on('upload', (_, files) => {
  for (const f of files ?? []) say(`file:${f.id}`, '')
  announce(`Uploading ${files?.length === 1 ? files[0].name : `${files?.length ?? ''} files`}.`)
})

uppy.on('upload-success', (file) => {
  // An error about the file is over; a note (connection back, restarted) stays.
  const note = document.querySelector(`#messages li[data-id="${CSS.escape(`file:${file.id}`)}"]`)
  if (note?.dataset.kind !== 'info') note?.remove()
  // Not every path ends in Uppy's 'complete' event (a single retried file does not).
  refreshSoon()
  announce(`${file.name} uploaded.`)
})

uppy.on('complete', () => refresh())

uppy.on('upload-error', async (file, error) => {
  if (!file) return
  const current = uppy.getFile(file.id) ?? file
  const api = takeFailure(current)
  const xhr = error?.request
  const s3 = xhr ? { status: xhr.status, code: xhr.status > 0 ? s3Code(safeText(xhr)) : undefined } : null
  // A restored upload another sign-in started (an anonymous visitor is a new
  // owner after a browser restart) cannot be resumed: it starts again, once.
  if (api?.status === 404 && current.s3Multipart && !restarted.has(file.id)) {
    restarted.add(file.id)
    uppy.setFileState(file.id, { s3Multipart: undefined, error: null })
    uppy.retryUpload(file.id).catch(() => {})
    // After the retry: starting an upload clears the file's earlier messages.
    say(`file:${file.id}`, `“${current.name}” could not be resumed under this sign-in, so it starts again from the beginning.`, { kind: 'info' })
    return
  }
  // A refusal the browser may read says enough. Otherwise: is it the
  // connection, or an answer the browser may not read (S3 without CORS)?
  const up = api?.status > 0 || s3?.status > 0 ? true : await reachable()
  const out = explain({
    name: current.name,
    type: current.type,
    api,
    s3,
    reachable: up,
    limit: grantClaims(session?.endpoint)?.max,
  })
  if (uppy.getFile(file.id)) uppy.setFileState(file.id, { error: out.text })
  if (REFUSED.has(out.kind)) {
    await stop(current, out)
  } else if (out.kind === KINDS.network) {
    say(`file:${file.id}`, out.text, { kind: out.kind })
    waitForConnection(file.id)
  } else if (out.kind === KINDS.expired) {
    waiting.set(file.id, KINDS.expired)
    $('who').textContent = 'Sign-in expired'
    say(`file:${file.id}`, out.text, {
      kind: out.kind,
      actions: [{ label: 'Sign in again', run: signInAgain }],
    })
  } else {
    say(`file:${file.id}`, out.text, { kind: out.kind })
  }
  refreshSoon()
})

/** A refused upload: aborted at once so S3 keeps nothing, and the reason kept for the list. */
async function stop(file, out) {
  const mp = file.s3Multipart
  let text = out.text
  if (mp?.uploadId) {
    remember(mp.uploadId, { why: { [KINDS.tooLarge]: 'too large', [KINDS.type]: 'type not accepted', [KINDS.quota]: 'over quota', [KINDS.storage]: 'refused by storage' }[out.kind] })
    try {
      await abortUpload(mp.uploadId, mp.key)
    } catch (e) {
      text = `${text} (Aborting it failed too: ${e.message} Use Abort in the list below.)`
    }
    // A retry starts a new upload rather than resuming the aborted one.
    if (uppy.getFile(file.id)) uppy.setFileState(file.id, { s3Multipart: undefined })
  }
  say(`file:${file.id}`, text, { kind: out.kind })
  refresh()
}

/** Retries a file once the API answers again: every 2 s, then slower, for at most 30 min. */
function waitForConnection(fileId, first = 2000) {
  const token = Symbol(KINDS.network)
  waiting.set(fileId, token)
  const started = Date.now()
  let delay = 2000
  const tick = async () => {
    // A newer wait for the same file (after an 'online' event) takes over.
    if (waiting.get(fileId) !== token || !uppy.getFile(fileId)) return
    if (await reachable()) {
      waiting.delete(fileId)
      const f = uppy.getFile(fileId)
      uppy.retryUpload(fileId).catch(() => {})
      say(`file:${fileId}`, `The connection is back; “${f.name}” goes on where it stopped.`, { kind: 'info' })
      return
    }
    if (Date.now() - started > 30 * 60_000) {
      waiting.delete(fileId)
      say(`file:${fileId}`, `Still no connection after 30 minutes; press Retry to try “${uppy.getFile(fileId)?.name}” again.`, { kind: KINDS.network })
      return
    }
    delay = Math.min(delay * 1.5, 30_000)
    setTimeout(tick, delay)
  }
  setTimeout(tick, first)
}
window.addEventListener('online', () => {
  // Collected first: waitForConnection puts each id back into `waiting`.
  const ids = [...waiting].filter(([, why]) => typeof why === 'symbol').map(([id]) => id)
  for (const id of ids) {
    waiting.delete(id)
    waitForConnection(id, 0)
  }
})

// A file taken out of the Dashboard is given up: its upload is aborted, even
// when Uppy's own uploader is gone (after an error, or restored and not
// restarted). Aborting twice is harmless: the API answers 200 again.
uppy.on('file-removed', (file) => {
  waiting.delete(file.id)
  say(`file:${file.id}`, '')
  const mp = file.s3Multipart
  if (mp?.uploadId && !file.progress?.uploadComplete) {
    abortUpload(mp.uploadId, mp.key)
      .catch(() => {})
      .finally(refreshSoon)
  } else {
    refreshSoon()
  }
})

function signInAgain() {
  showSignedOut()
  $('mine').hidden = true
  $('token').focus()
}

function safeText(xhr) {
  try {
    return xhr.responseText
  } catch {
    return ''
  }
}

// --- the list -----------------------------------------------------------------

let refreshTimer
function refreshSoon() {
  clearTimeout(refreshTimer)
  refreshTimer = setTimeout(refresh, 600)
}

/** The caller's uploads, through the grant (no token needed). */
async function refresh() {
  if (!session) return
  let list
  try {
    list = await call(`${session.endpoint}/s3/multipart?bytes=true&limit=${PAGE}`)
  } catch (e) {
    if (e.status === 401) {
      if (document.querySelector('#messages li[data-kind="expired"]')) return
      say('expired', 'Your sign-in has expired. Sign in again to see and continue your uploads.', {
        kind: KINDS.expired,
        actions: [{ label: 'Sign in again', run: signInAgain }],
      })
    } else if (e.status || !document.querySelector('#messages li[data-kind="network"]')) {
      // (A lost connection is already said, once.)
      say('list', e.message)
    }
    return
  }
  say('list', '')
  showQuota()
  const shown = rows(list.uploads, uppy.getFiles(), abort, download)
  $('uploads').replaceChildren(...shown)
  $('empty').hidden = shown.length > 0
  showMore(list.next)
  followTransitions(list.uploads)
}

/**
 * The owner's unfinished uploads against the service's limit (GET /quota),
 * when it has one: the figure a quota refusal will quote. Quiet when the
 * API has no quotas.
 */
async function showQuota() {
  let text = ''
  try {
    const res = await fetch(`${session.endpoint}/quota`)
    const live = res.ok ? (await res.json()).quotas?.liveUploads : null
    if (live?.limit != null) {
      text = `You have ${live.usage} unfinished ${live.usage === 1 ? 'upload' : 'uploads'}; this service allows ${live.limit} at once.`
    }
  } catch {}
  $('quota').textContent = text
  $('quota').hidden = !text
}

// Older uploads a page at a time, on request: the list stays one query long.
let nextCursor = null
function showMore(next) {
  nextCursor = next ?? null
  $('more').hidden = !nextCursor
}
async function more() {
  if (!session || !nextCursor) return
  try {
    const list = await call(`${session.endpoint}/s3/multipart?bytes=true&limit=${PAGE}&cursor=${encodeURIComponent(nextCursor)}`)
    $('uploads').append(...rows(list.uploads, uppy.getFiles(), abort, download))
    showMore(list.next)
  } catch (e) {
    say('list', e.message)
  }
}

// ABORTING and COMPLETING last a moment (S3 is being told): look again until
// they settle, so a cancel or a finish shows its end state without a click.
// Bounded: a state stuck longer is for the sweep to settle, and Refresh shows it.
let followUps = 0
let followTimer
function followTransitions(uploads) {
  clearTimeout(followTimer)
  const moving = uploads.some((u) => u.state === 'ABORTING' || u.state === 'COMPLETING')
  if (!moving) {
    followUps = 0
    return
  }
  if (followUps++ < 30) followTimer = setTimeout(refresh, 1000)
}

async function abort(u) {
  try {
    await abortUpload(u.uploadId, u.key)
    remember(u.uploadId, { why: 'you aborted it' })
    // Uppy must not resume what was just given up.
    const f = uppy.getFiles().find((x) => x.s3Multipart?.uploadId === u.uploadId)
    if (f) uppy.removeFile(f.id)
    say(`upload:${u.uploadId}`, `“${u.filename}”: upload aborted; nothing of it is kept.`, { kind: 'done' })
    announce(`${u.filename} aborted.`)
  } catch (e) {
    say(`upload:${u.uploadId}`, `“${u.filename}”: ${e.message}`)
  }
  await refresh()
}

/** A completed upload's bytes: the API signs a GET for its owner only
 * (`/download`), which the browser follows as a download. */
async function download(u) {
  try {
    const d = await call(
      `${session.endpoint}/s3/multipart/${encodeURIComponent(u.uploadId)}/download?key=${encodeURIComponent(u.key)}`,
    )
    // A new tab: the `download` attribute does not hold across origins, and
    // the page must not navigate away from uploads in flight.
    window.open(d.url, '_blank', 'noopener')
  } catch (e) {
    say(`upload:${u.uploadId}`, `“${u.filename}”: ${e.message}`)
  }
}

// --- start ----------------------------------------------------------------------

$('api').value = params.get('api') ?? location.origin
$('signin').addEventListener('submit', signIn)
$('signout').addEventListener('click', signOut)
$('refresh').addEventListener('click', refresh)
$('more').addEventListener('click', more)
session = loadSession()
if (session?.expired) {
  $('api').value = session.api ?? $('api').value
  session = null
  say('expired', 'Your sign-in has expired. Sign in again to continue your uploads.', { kind: KINDS.expired })
} else if (session) {
  $('api').value = session.api
  showSignedIn(false)
}

window.partwise = { refresh, uppy: () => uppy, session: () => session }
