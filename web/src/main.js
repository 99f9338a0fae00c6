// The Partwise upload page: sign in (a dev-mode name, a JWT, or nothing in
// anonymous mode), trade the token for an upload grant (POST /grants), and
// hand the grant's endpoint to Uppy as its companionEndpoint. Uppy sends no
// credentials; the grant in the URL is the caller.
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import AwsS3 from '@uppy/aws-s3'
import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import './style.css'

const $ = (id) => document.getElementById(id)
const params = new URLSearchParams(location.search)
$('api').value = params.get('api') ?? location.origin

let uppy = null
let grant = null // { endpoint, expires }

/** What a person should read for a failed call or upload. */
function explain(status, message) {
  if (status === 401) return 'Your sign-in is not valid or has expired. Sign in again to continue.'
  if (status === 403) return 'This service does not allow browser uploads (upload grants are off).'
  if (status === 413) return `This file is too large for this service. ${message ?? ''}`.trim()
  if (status === 429) return 'The service is busy. Wait a moment and try again.'
  if (status === 0 || status == null) return 'The upload service cannot be reached. Check your connection; paused uploads resume when it is back.'
  if (status >= 500) return 'The upload service had a problem. Try again in a minute.'
  return message ?? `The request failed (HTTP ${status}).`
}

function show(text, kind = 'error') {
  const m = $('message')
  m.textContent = text
  m.className = kind === 'info' ? 'info' : ''
  m.hidden = !text
}

/** A JSON call to the API; throws an Error whose message is for people. */
async function call(url, init = {}) {
  let res
  try {
    res = await fetch(url, init)
  } catch {
    throw new Error(explain(0))
  }
  const body = await res.json().catch(() => ({}))
  if (!res.ok) throw Object.assign(new Error(explain(res.status, body.message)), { status: res.status })
  return body
}

async function signIn(event) {
  event.preventDefault()
  show('')
  const api = $('api').value.replace(/\/+$/, '')
  const token = $('token').value.trim()
  try {
    grant = await call(`${api}/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: '{}',
    })
  } catch (e) {
    show(e.message)
    return
  }
  const until = new Date(grant.expires)
  $('who').textContent = `${token ? 'Signed in' : 'Anonymous'} · uploads allowed until ${until.toLocaleTimeString()}`
  startUppy()
  $('uploader').hidden = false
  $('mine').hidden = false
  await refresh()
}

function startUppy() {
  uppy?.destroy()
  uppy = new Uppy({ autoProceed: false })
    .use(Dashboard, {
      inline: true,
      target: '#dashboard',
      height: 360,
      width: '100%',
      proudlyDisplayPoweredByUppy: false,
      showProgressDetails: true,
      note: 'Drop files here or browse. Large files upload in parts and can be paused and resumed.',
    })
    // Multipart for every non-empty file: each is then tracked, listed below,
    // and can be paused and resumed (a POST form upload is neither).
    .use(AwsS3, { companionEndpoint: grant.endpoint, shouldUseMultipart: (file) => file.size > 0 })
  uppy.on('upload-error', (file, error, response) => {
    const status = response?.status ?? error?.source?.status ?? (error?.isNetworkError ? 0 : undefined)
    show(`${file?.name}: ${explain(status, error?.message)}`)
  })
  uppy.on('complete', () => refresh())
  uppy.on('file-removed', () => setTimeout(refresh, 500))
}

const age = (iso) => {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000)
  if (s < 60) return 'just now'
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return `${Math.floor(s / 86400)} d ago`
}
const size = (n) =>
  n == null ? '—' : n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`

/** The caller's uploads, through the grant (no token needed). */
async function refresh() {
  if (!grant) return
  let list
  try {
    list = await call(`${grant.endpoint}/s3/multipart?bytes=true`)
  } catch (e) {
    show(e.message)
    return
  }
  const rows = list.uploads.map((u) => {
    const tr = document.createElement('tr')
    tr.dataset.uploadId = u.uploadId
    for (const [text, cls] of [
      [u.filename, 'name'],
      [u.state, `state ${u.state}`],
      [size(u.size ?? u.bytesHeld), 'size'],
      [age(u.initiated), 'age'],
    ]) {
      const td = document.createElement('td')
      td.textContent = text
      td.className = cls
      tr.append(td)
    }
    const td = document.createElement('td')
    if (u.state === 'ACTIVE') {
      const b = document.createElement('button')
      b.textContent = 'Abort'
      b.className = 'small danger'
      b.onclick = () => abort(u)
      td.append(b)
    }
    tr.append(td)
    return tr
  })
  $('uploads').replaceChildren(...rows)
  $('empty').hidden = rows.length > 0
  followTransitions(list.uploads)
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
    await call(`${grant.endpoint}/s3/multipart/${encodeURIComponent(u.uploadId)}?key=${encodeURIComponent(u.key)}`, {
      method: 'DELETE',
    })
    show(`${u.filename}: upload aborted; nothing of it is kept.`, 'info')
  } catch (e) {
    show(`${u.filename}: ${e.message}`)
  }
  await refresh()
}

$('signin').addEventListener('submit', signIn)
$('refresh').addEventListener('click', refresh)
window.partwise = { refresh, uppy: () => uppy }
