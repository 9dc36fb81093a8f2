// The staff page. Its key is a NON-extractable WebCrypto ECDSA P-256 key: it signs, and nothing
// (this page included) can read it out. The page builds no protocol byte: the gateway's core
// prepares every object (the CSR aside, a PKCS#10 request made by @peculiar/x509), the page
// signs the exact bytes it is given, and the core assembles and verifies the result.
/* global x509 */

const log = (line) => {
  document.getElementById('log').textContent += `${new Date().toISOString()} ${line}\n`
}
const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0))
const ECDSA = { name: 'ECDSA', hash: 'SHA-256' }

const state = { keys: undefined, chainPem: undefined, identity: undefined, ws: undefined, nextId: 1, waiting: new Map(), answers: new Map(), presence: new Set(), errors: [] }

/** Makes the page's key: non-extractable; returns whether it is (false). */
async function createKey() {
  state.keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])
  return state.keys.privateKey.extractable
}

/** Enrolls the key with a one-time token: a CSR made here, the certificate issued by the site CA. */
async function enroll(token) {
  if (state.keys === undefined) await createKey()
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=staff', keys: state.keys, signingAlgorithm: ECDSA })
  const response = await fetch('/staff/v1/enroll', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, csr: csr.toString('pem') }) })
  const body = await response.json()
  if (!response.ok) throw Object.assign(new Error(body.message), { code: body.code })
  state.chainPem = body.chainPem
  state.identity = body.identity
  log(`enrolled as ${body.identity.deviceId} (${body.identity.tenant}, roles ${body.identity.roles.join(',')})`)
  return body.identity
}

async function sign(toBeSigned) {
  return b64(await crypto.subtle.sign(ECDSA, state.keys.privateKey, unb64(toBeSigned)))
}

function send(frame) {
  state.ws.send(JSON.stringify(frame))
}

/** Asks the gateway to prepare an object, signs it, and waits until the gateway sent it. */
function signAndSend(request) {
  const id = state.nextId++
  return new Promise((resolve, reject) => {
    state.waiting.set(id, { resolve, reject })
    send({ type: 'prepare', id, ...request })
  })
}

/** Joins the hub: chain, challenge, signature, welcome; then publishes presence. */
function join() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://${location.host}/staff/v1/ws`)
    state.ws = ws
    ws.onopen = () => send({ type: 'hello', chain: state.chainPem })
    ws.onclose = (event) => reject(Object.assign(new Error(`closed ${event.code} ${event.reason}`), { code: event.reason }))
    ws.onmessage = async (event) => {
      const frame = JSON.parse(event.data)
      switch (frame.type) {
        case 'challenge':
          send({ type: 'answer', signature: await sign(frame.toBeSigned) })
          return
        case 'welcome':
          log(`joined hub ${frame.hubId} as ${frame.identity.deviceId}`)
          await signAndSend({ what: 'presence' })
          setInterval(() => signAndSend({ what: 'presence' }).catch(() => {}), 20_000)
          resolve(frame.identity)
          return
        case 'tbs':
          send({ type: 'signed', id: frame.id, signature: await sign(frame.toBeSigned) })
          return
        case 'sent':
          state.waiting.get(frame.id)?.resolve(frame.digest)
          state.waiting.delete(frame.id)
          return
        case 'answer':
          state.answers.get(frame.from)?.(frame)
          return
        case 'presence':
          if (frame.online) state.presence.add(frame.deviceId)
          else state.presence.delete(frame.deviceId)
          return
        case 'error':
          state.errors.push(frame)
          log(`refused: ${frame.code} ${frame.message}`)
          if (frame.id !== undefined) {
            state.waiting.get(frame.id)?.reject(Object.assign(new Error(frame.message), { code: frame.code }))
            state.waiting.delete(frame.id)
          }
          return
      }
    }
  })
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve()
  return new Promise((resolve) => pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve()))
}

/** Opens a data channel to `deviceId` through the hub: a signed offer, a verified answer. */
async function connectTo(deviceId, label = 'staff') {
  const pc = new RTCPeerConnection({ iceServers: [] })
  const channel = pc.createDataChannel(label)
  await pc.setLocalDescription(await pc.createOffer())
  await gathered(pc)
  const answered = new Promise((resolve) => state.answers.set(deviceId, resolve))
  const digest = await signAndSend({ what: 'offer', to: deviceId, sdp: pc.localDescription.sdp })
  const answer = await answered
  if (answer.offerDigest !== digest) throw new Error('an answer to another offer')
  await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp })
  if (channel.readyState !== 'open') await new Promise((resolve, reject) => {
    channel.onopen = resolve
    channel.onerror = reject
  })
  log(`data channel open to ${deviceId}`)
  return { pc, channel }
}

/** The whole job: enroll, join, connect, send `text`, and return the first message back. */
async function run({ token, deviceId, text }) {
  const extractable = await createKey()
  await enroll(token)
  await join()
  const { channel } = await connectTo(deviceId)
  const reply = new Promise((resolve) => (channel.onmessage = (event) => resolve(String(event.data))))
  channel.send(text)
  const got = await reply
  log(`${deviceId}: ${got}`)
  return { extractable, identity: state.identity, reply: got }
}

window.ztStaff = { createKey, enroll, join, connectTo, run, state }

document.getElementById('enroll').addEventListener('submit', (event) => {
  event.preventDefault()
  enroll(document.getElementById('token').value).then(join).catch((error) => log(`error: ${error.code ?? ''} ${error.message}`))
})
document.getElementById('connect').addEventListener('submit', (event) => {
  event.preventDefault()
  connectTo(document.getElementById('peer').value)
    .then(({ channel }) => {
      channel.onmessage = (e) => log(`message: ${e.data}`)
      channel.send(document.getElementById('text').value)
    })
    .catch((error) => log(`error: ${error.code ?? ''} ${error.message}`))
})
