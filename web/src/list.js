// "Your uploads": one row per tracked upload, with the file's size, its state
// in words, what S3 holds for it while unfinished, and an Abort action for
// unfinished ones. Rows of uploads this browser can no longer resume say so.
import { bytes } from './errors.js'
import { known } from './known.js'

const STATES = {
  ACTIVE: 'In progress',
  COMPLETING: 'Finishing',
  COMPLETED: 'Completed',
  ABORTING: 'Aborting',
  ABORTED: 'Aborted',
}

const REASONS = {
  owner: 'you aborted it',
  stale: 'left unfinished too long',
  vanished: 'gone from storage',
  too_large: 'too large',
  expired: 'expired',
}

const age = (iso) => {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000)
  if (s < 60) return 'just now'
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return `${Math.floor(s / 86400)} d ago`
}

/**
 * How this browser stands with a live upload: `here` (Uppy has the file and
 * goes on with it), `reselect` (restored without its content: picking the
 * file again resumes it), or `lost` (this browser cannot resume it).
 */
function standing(u, files) {
  const f = files.find((x) => x.s3Multipart?.uploadId === u.uploadId)
  if (!f) return { how: 'lost', text: 'This browser cannot resume it.' }
  if (f.isGhost) return { how: 'reselect', text: 'Add the same file again to resume it.' }
  if (f.error) return { how: 'here', text: 'Stopped; see the message above.' }
  if (f.isPaused) return { how: 'here', text: 'Paused.' }
  return { how: 'here', text: '' }
}

/** The table body's rows for `uploads`; `files` are Uppy's; `onAbort(u)` is the Abort
 * action, `onDownload(u)` a completed upload's Download. */
export function rows(uploads, files, onAbort, onDownload) {
  return uploads.map((u) => {
    const tr = document.createElement('tr')
    tr.dataset.uploadId = u.uploadId
    tr.dataset.state = u.state
    const mine = known(u.uploadId)
    const live = u.state === 'ACTIVE'
    const stand = live ? standing(u, files) : null
    tr.dataset.standing = stand?.how ?? ''

    const name = cell('File', 'name')
    name.textContent = u.filename
    const state = cell('State', `state ${u.state}`)
    const label = document.createElement('span')
    label.textContent = STATES[u.state] ?? u.state
    state.append(label)
    const why = u.state === 'ABORTED' ? (mine?.why ?? REASONS[u.abortReason ?? u.reason]) : stand?.text
    if (why) {
      const small = document.createElement('span')
      small.className = 'why'
      small.textContent = u.state === 'ABORTED' ? `(${why})` : why
      state.append(' ', small)
    }
    const size = cell('Size', 'size')
    const total = u.size ?? mine?.size
    size.textContent = bytes(total)
    if (total == null) size.title = 'Not known: the service learns the size when the upload completes'
    const held = cell('Held in S3', 'held')
    held.textContent = live || u.state === 'ABORTING' ? bytes(u.bytesHeld) : '—'
    const started = cell('Started', 'age')
    started.textContent = age(u.initiated)
    const action = cell('', 'action')
    if (live) {
      const b = document.createElement('button')
      b.type = 'button'
      b.textContent = 'Abort'
      b.className = 'small danger'
      b.setAttribute('aria-label', `Abort the upload of ${u.filename}`)
      b.onclick = () => onAbort(u)
      action.append(b)
    } else if (u.state === 'COMPLETED' && onDownload) {
      const b = document.createElement('button')
      b.type = 'button'
      b.textContent = 'Download'
      b.className = 'small'
      b.setAttribute('aria-label', `Download ${u.filename}`)
      b.onclick = () => onDownload(u)
      action.append(b)
    }
    tr.append(name, state, size, held, started, action)
    return tr
  })
}

function cell(label, cls) {
  const td = document.createElement('td')
  td.className = cls
  if (label) td.dataset.label = label
  return td
}
