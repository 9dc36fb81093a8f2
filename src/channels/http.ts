/**
 * One HTTP/1.1 request over a secured stream (a `SecureStream`, or a TLS connection made by
 * hand): the device's requests to the CA API and a node's `POST /offer` to a peer both go this
 * way. The answer is read up to a bound; a refusal's `{code, message}` becomes its `ZtError`.
 *
 * @example
 * ```ts
 * const answer = await requestOverStream(link, { method: 'POST', path: '/offer', body: offer }, { maxAnswerBytes: 64 * 1024, signal })
 * const signedAnswer = answerBody(answer, 'the peer') // or throws the peer's refusal
 * ```
 */

import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'

import { createError, isErrorCode } from '../errors.js'

/** A request: method, path (with its query), headers and body. */
export interface StreamRequest {
  method?: string
  path: string
  /** The `Host` header (default: none beyond what node:http adds). */
  host?: string
  headers?: Record<string, string>
  body?: Uint8Array
}

/** An answer: status, headers and the whole body. */
export interface StreamAnswer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/**
 * Sends `sent` on `stream` (which is closed with the answer: `connection: close`) and reads the
 * answer, refusing one longer than `maxAnswerBytes` with `ERR_BAD_RESPONSE`.
 */
export function requestOverStream(stream: NodeJS.ReadWriteStream & { destroy(): void }, sent: StreamRequest, init: { maxAnswerBytes: number; signal?: AbortSignal; what?: string }): Promise<StreamAnswer> {
  const body = sent.body ?? new Uint8Array(0)
  const what = init.what ?? 'the peer'
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        method: sent.method ?? 'GET',
        ...(sent.host !== undefined && { host: sent.host }),
        path: sent.path,
        headers: { ...sent.headers, 'content-length': body.byteLength, connection: 'close' },
        createConnection: () => stream as never,
        ...(init.signal !== undefined && { signal: init.signal }),
      },
      (response: IncomingMessage) => {
        const chunks: Buffer[] = []
        let size = 0
        response.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > init.maxAnswerBytes) {
            response.destroy()
            reject(createError('ERR_BAD_RESPONSE', `${what} answered ${sent.path} with more than ${init.maxAnswerBytes} bytes`))
            return
          }
          chunks.push(chunk)
        })
        response.once('end', () => {
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) })
          stream.destroy()
        })
        response.once('error', reject)
      },
    )
    request.once('error', reject)
    request.end(body)
  })
}

/**
 * The body of a 2xx answer; otherwise the refusal it carries (`{code, message}` JSON, the code
 * one of the catalog's) thrown as its `ZtError`, or `ERR_BAD_RESPONSE` when it carries none.
 */
export function answerBody(answer: StreamAnswer, what = 'the peer', path = ''): Buffer {
  if (answer.status >= 200 && answer.status < 300) return answer.body
  let refusal: { code?: unknown; message?: unknown } = {}
  try {
    const parsed = JSON.parse(answer.body.toString('utf8')) as unknown
    if (typeof parsed === 'object' && parsed !== null) refusal = parsed
  } catch {
    throw createError('ERR_BAD_RESPONSE', `${what} answered ${path === '' ? '' : `${path} `}with ${answer.status} without JSON`)
  }
  const code = isErrorCode(refusal.code) ? refusal.code : 'ERR_BAD_RESPONSE'
  throw createError(code, typeof refusal.message === 'string' ? refusal.message.slice(0, 200) : `${what} answered ${answer.status}`)
}
