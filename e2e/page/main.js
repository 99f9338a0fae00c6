// What an app using Partwise ships: Uppy with @uppy/aws-s3 pointed at the API
// as if it were Companion, and no other backend option. Files arrive through a
// real <input type=file>; the test drives the rest through `window.e2e` and
// reads back plain JSON, since Uppy's objects do not cross into Node.
import Uppy from '@uppy/core'
import AwsS3 from '@uppy/aws-s3'

const api = new URLSearchParams(location.search).get('api')
const picker = document.getElementById('picker')

let uppy = null
let events = []
let pending = null
let meta = {}

const file = (f) => ({ id: f?.id, name: f?.name, size: f?.size })
const error = (e) => String(e?.message ?? e)

function summary(result) {
  if (result == null) return null
  return {
    successful: result.successful.map((f) => ({
      ...file(f),
      uploadURL: f.uploadURL ?? null,
      body: f.response?.body ?? null,
    })),
    failed: result.failed.map((f) => ({ ...file(f), error: error(f.error) })),
  }
}

function reset(options) {
  uppy?.destroy()
  events = []
  pending = null
  uppy = new Uppy({ autoProceed: false })
  uppy.use(AwsS3, { companionEndpoint: api, ...options })
  uppy.on('upload-success', (f, res) =>
    events.push({ type: 'upload-success', ...file(f), uploadURL: res.uploadURL, body: res.body }),
  )
  uppy.on('upload-error', (f, e) => events.push({ type: 'upload-error', ...file(f), error: error(e) }))
  uppy.on('s3-multipart:part-uploaded', (f, part) =>
    events.push({ type: 'part-uploaded', ...file(f), partNumber: part.PartNumber, etag: part.ETag }),
  )
  uppy.on('file-removed', (f) => events.push({ type: 'file-removed', ...file(f) }))
  uppy.on('cancel-all', () => events.push({ type: 'cancel-all' }))
  uppy.on('complete', (result) => events.push({ type: 'complete', result: summary(result) }))
  uppy.on('error', (e) => events.push({ type: 'error', error: error(e) }))
}

picker.addEventListener('change', () => {
  for (const f of picker.files) {
    uppy.addFile({ name: f.name, type: f.type, data: f, source: 'file input', meta })
  }
  picker.value = ''
})

window.e2e = {
  ready: true,
  /**
   * Fresh Uppy; `multipart: true` forces multipart whatever the size, and
   * `endpoint` (an upload grant's, from POST /grants) replaces the API's,
   * and `fileMeta` is set on every file picked (Uppy sends it as metadata).
   */
  reset({ multipart = false, endpoint = null, fileMeta = {} } = {}) {
    meta = fileMeta
    reset({
      ...(multipart ? { shouldUseMultipart: true } : {}),
      ...(endpoint ? { companionEndpoint: endpoint } : {}),
    })
  },
  fileCount: () => uppy.getFiles().length,
  /** Starts uploading; `settle()` waits for the outcome. */
  start() {
    pending = uppy.upload().then(
      (result) => ({ result: summary(result), thrown: null }),
      (e) => ({ result: null, thrown: error(e) }),
    )
  },
  async settle() {
    const outcome = await pending
    return { ...outcome, events }
  },
  async upload() {
    this.start()
    return this.settle()
  },
  cancelAll: () => uppy.cancelAll(),
  events: () => events,
}
